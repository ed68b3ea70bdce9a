"""The disk cache: content hashes of data, weights and functions, atomic
writes, and `cached(config, compute)`. A damaged entry is reported in one line
and recomputed; a full disk costs the entry, never the result.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import pickle
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

from aelab import validate


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then
    os.replace: a reader (another process too) sees the old file or the whole
    new one, never half of one, even if this process is killed mid-write (the
    fsync: nor after a crash of the machine); a temporary file left by a kill
    starts with '.', ends in .tmp and is never read as an entry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The folder is not fsynced: after a power cut the rename may be lost, which
    # costs a recomputation, while fsyncing it took 10-50 ms a write here.
    return path


def save_or_warn(obj, path: Path) -> bool:
    """atomic_save into the cache; if the disk is full (or the folder
    unwritable), say so in one line and go on: the caller keeps its result."""
    try:
        atomic_save(obj, path)
        return True
    except OSError as err:
        print(f"aelab: could not write cache file {Path(path).name} "
              f"({err.strerror or type(err).__name__}); the result is kept but not "
              "cached: free some disk space or point AELAB_CACHE at another folder",
              flush=True)
        return False


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-able config (keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tensor_hash(*arrays) -> str:
    """sha256 (first 16 hex digits) of the bytes of tensors or numpy arrays: a
    content key for data and weights. Fast: ~0.1 s for all of MNIST."""
    digest = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
        digest.update(str((a.dtype, a.shape)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def fingerprint(obj) -> str:
    """A short stable hash of what determines a result: tensors by content,
    modules by class, structure and weights, functions by their source code
    (and the values they close over), partials by function and arguments.
    Two notebook sessions that define the same function get the same key; edit
    the function and the key changes. (Globals a function reads are not seen.)"""
    return config_hash(_describe(obj, set()))


def _describe(obj, seen: set):
    if torch.is_tensor(obj) or isinstance(obj, np.ndarray):
        return "tensor:" + tensor_hash(obj)
    d = functools.partial(_describe, seen=seen)
    if isinstance(obj, torch.nn.Module):
        state = obj.state_dict()
        return ["module", repr(obj), tensor_hash(*state.values()) if state else ""]
    if isinstance(obj, functools.partial):
        return ["partial", d(obj.func), d(obj.args), d(obj.keywords)]
    if isinstance(obj, (list, tuple)):
        return [d(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): d(v) for k, v in obj.items()}
    if callable(obj) and hasattr(obj, "__code__"):
        if id(obj) in seen:  # recursion
            return "function:" + obj.__qualname__
        seen.add(id(obj))
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):  # no source (e.g. exec'd): the bytecode
            source = obj.__code__.co_code.hex() + repr(obj.__code__.co_consts)
        cells = [c.cell_contents for c in (obj.__closure__ or ())]
        # Functions of the same module that it calls by name (a notebook's own
        # helpers, e.g. the student's answer) are part of what it computes.
        calls = {name: g for name in obj.__code__.co_names
                 if inspect.isfunction(g := obj.__globals__.get(name))
                 and g.__module__ == obj.__module__}
        return ["function", textwrap.dedent(source), d(cells),
                d(obj.__defaults__ or ()), d(calls)]
    if hasattr(obj, "tensors"):  # a Loader
        return d(list(obj.tensors))
    return repr(obj)


def unreadable(path: Path, err: Exception) -> str:
    """Why a cache file cannot be used, in one line."""
    if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
        # weights_only=True met a Python object to import and call: it said no
        return (f"aelab: cache file {path.name} was refused: it holds Python objects, "
                "not plain tensors and numbers (a pickle payload?), and was not run; "
                "recomputing it")
    return (f"aelab: cache file {path.name} is unreadable ({type(err).__name__}); "
            "recomputing it")


def cache_dir() -> Path:
    """AELAB_CACHE, else ~/.cache/aelab. Created on first use."""
    root = os.environ.get("AELAB_CACHE") or Path.home() / ".cache" / "aelab"
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise ValueError(f"AELAB_CACHE={root} is a file, not a folder: point it at a "
                         "folder (or unset it for ~/.cache/aelab)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the cache folder {root} ({err.strerror}): set "
                         "AELAB_CACHE to a folder you can write to, or AELAB_NO_CACHE=1"
                         ) from None
    return path


def cache_path(config: dict, kind: str = "run") -> Path:
    """Where the result of `config` is cached: <cache_dir>/<kind>/<hash>.pt."""
    return cache_dir() / kind / f"{config_hash(config)}.pt"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached(config: dict, compute, *, kind: str = "run", refresh: bool = False):
    """Return compute() for `config`, from the disk cache when it is there.

    The result must be plain data (dicts, lists, numbers, strings, tensors) so
    that it reloads with torch.load(weights_only=True). A truncated or corrupt
    file (an interrupted write from an older version, a full disk) is reported
    in one line and recomputed rather than crashed on; a write that fails (a
    full disk) is reported in one line and the result still returned. Several
    processes may share one cache folder: each writes whole files atomically.
    Set AELAB_NO_CACHE=1 to bypass.
    """
    if no_cache():
        return compute()
    path = cache_path(config, kind)
    if path.exists() and not refresh:
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is recomputed
            print(unreadable(path, err), flush=True)
    result = compute()
    save_or_warn(result, path)  # a full disk costs the cache entry, not the result
    return result


def no_cache() -> bool:
    """AELAB_NO_CACHE=1: recompute everything."""
    return validate.flag("AELAB_NO_CACHE")
