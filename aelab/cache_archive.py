"""A warm cache for a whole class: one zip of cache entries, checked on import.

An instructor trains once (`aelab cache export class.zip --lesson pretraining
--profile classroom` runs the lesson into a fresh cache and zips it); each
student imports the zip (`aelab cache import class.zip`, or its URL on Binder
or Colab) and the lesson then loads every model instead of training it.

The zip holds `manifest.json` ({entry: sha256}) and the entries as the cache
keeps them (`<kind>/<16 hex digits>.pt`). An import refuses, one line each: an
entry whose name is not of that form (no paths out of the cache), whose bytes
do not match the manifest's hash, or that torch.load(weights_only=True) will
not read (Python objects, not tensors and numbers). Entries already in the
cache are left as they are. Nothing is imported from a zip without a manifest.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from aelab.cache import cache_dir

ENTRY = re.compile(r"^[a-z_]+/[0-9a-f]{16}\.pt$")
MANIFEST = "manifest.json"
FORMAT = "aelab-cache-1"
SKIPPED = {"resume"}  # an interrupted run's checkpoints: the student's own


def entries(folder: str | os.PathLike | None = None) -> list[str]:
    """The cache entries in `folder` (default: the cache folder), as names
    relative to it ('fit/0123456789abcdef.pt'), sorted."""
    root = Path(folder) if folder is not None else cache_dir()
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.pt")
                  if ENTRY.match(str(p.relative_to(root)))
                  and p.parent.name not in SKIPPED)


def export(dest: str | os.PathLike, folder: str | os.PathLike | None = None) -> int:
    """Zip every cache entry of `folder` (default: the cache folder) into dest,
    with a manifest of sha256 hashes; the number of entries."""
    dest = Path(dest)
    if dest.suffix != ".zip":
        raise ValueError(f"{dest}: the export is a zip file: give a name ending in .zip")
    root = Path(folder) if folder is not None else cache_dir()
    names = entries(root)
    if not names:
        raise ValueError(f"the cache {root} holds no entries to export: run a lesson "
                         "first, or pass --lesson NAME to run one now")
    dest.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "entries": {}}
    tmp = dest.with_name(f".{dest.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            data = (root / name).read_bytes()
            manifest["entries"][name] = hashlib.sha256(data).hexdigest()
            zf.writestr(name, data)
        zf.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, dest)
    return len(names)


def _fetch(source: str) -> Path:
    """A local path for `source`: the file itself, or a URL downloaded."""
    if re.match(r"^https?://", source):
        import urllib.request

        fd, tmp = tempfile.mkstemp(suffix=".zip")
        os.close(fd)
        try:
            with urllib.request.urlopen(source, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)  # streamed: a class cache can be large
        except OSError as err:
            os.unlink(tmp)
            reason = getattr(err, "reason", None) or err
            raise OSError(f"could not download {source} ({reason}): download it "
                          "yourself and pass the file") from None
        return Path(tmp)
    path = Path(source)
    if not path.is_file():
        raise OSError(f"{source}: no such file (give the zip that `aelab cache "
                      "export` wrote, or its URL)")
    return path


def _readable(data: bytes) -> str:
    """'' if torch.load(weights_only=True) reads the bytes, else why not."""
    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as err:  # noqa: BLE001 - any refusal is reported, not raised
        return "it holds Python objects, not tensors and numbers" if (
            "Unsupported global" in str(err)) else f"unreadable ({type(err).__name__})"
    return ""


def _write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a unique temporary file beside it,
    flushed to disk before it takes the name: a crash or a second import at
    the same time never leaves half an entry under a cache name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                               suffix=".import")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def import_(source: str, folder: str | os.PathLike | None = None) -> dict:
    """Add the entries of an exported zip (a path or an http(s) URL) to the
    cache folder. {"added": n, "present": n, "refused": [one line each]}."""
    root = Path(folder) if folder is not None else cache_dir()
    path = _fetch(source)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{source} is not a zip file: give the file that `aelab "
                         "cache export` wrote") from None
    added, present, refused = 0, 0, []
    with zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
            hashes = manifest["entries"]
            assert manifest.get("format") == FORMAT and isinstance(hashes, dict)
        except (KeyError, ValueError, AssertionError, TypeError):
            raise ValueError(f"{source} has no aelab cache manifest: it was not written "
                             "by `aelab cache export`") from None
        for info in zf.infolist():
            name = info.filename
            if name == MANIFEST or info.is_dir():
                continue
            if not ENTRY.match(name):
                refused.append(f"{name}: not a cache entry's name (kind/hash.pt)")
                continue
            data = zf.read(info)
            if hashes.get(name) != hashlib.sha256(data).hexdigest():
                refused.append(f"{name}: its bytes do not match the manifest's sha256")
                continue
            why = _readable(data)
            if why:
                refused.append(f"{name}: {why}")
                continue
            target = root / name
            if target.exists():
                present += 1
                continue
            _write_atomically(target, data)
            added += 1
    if path != Path(source):
        path.unlink()
    return {"added": added, "present": present, "refused": refused}
