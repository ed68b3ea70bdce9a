"""`aelab cache export` / `aelab cache import`: a class's warm cache in one zip,
checked entry by entry on the way in."""
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from lesson_runs import run_cold, shared_run

from aelab import cache_archive


class Payload:  # a pickled Python object: weights_only=True must refuse it
    def __reduce__(self):
        return (print, ("this ran",))


def fill(folder: Path, n: int = 3) -> list[str]:
    names = []
    for i in range(n):
        name = f"fit/{i:016x}.pt"
        (folder / "fit").mkdir(parents=True, exist_ok=True)
        torch.save({"state": {"w": torch.full((2,), float(i))}, "history": {"i": i}},
                   folder / name)
        names.append(name)
    return names


def rewrite(src: Path, dest: Path, *, change=None, add=(), manifest=True):
    """A copy of an exported zip with entries changed or added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        meta = json.loads(zin.read("manifest.json"))
        for info in zin.infolist():
            if info.filename == "manifest.json":
                continue
            data = zin.read(info)
            if change and info.filename in change:
                data = change[info.filename]
            zout.writestr(info.filename, data)
        for name, data, listed in add:
            zout.writestr(name, data)
            if listed:
                meta["entries"][name] = hashlib.sha256(data).hexdigest()
        if manifest:
            zout.writestr("manifest.json", json.dumps(meta))


def test_export_then_import_copies_every_entry_byte_for_byte(tmp_path):
    names = fill(tmp_path / "teacher")
    (tmp_path / "teacher" / "resume").mkdir()
    torch.save({"partial": 1}, tmp_path / "teacher" / "resume" / f"{9:016x}.pt")
    assert cache_archive.export(tmp_path / "class.zip", tmp_path / "teacher") == 3
    got = cache_archive.import_(str(tmp_path / "class.zip"), tmp_path / "student")
    assert got == {"added": 3, "present": 0, "refused": []}
    assert cache_archive.entries(tmp_path / "student") == names  # no resume/ entry
    for name in names:
        assert ((tmp_path / "student" / name).read_bytes()
                == (tmp_path / "teacher" / name).read_bytes())
    again = cache_archive.import_(str(tmp_path / "class.zip"), tmp_path / "student")
    assert again == {"added": 0, "present": 3, "refused": []}


def test_import_refuses_tampered_pickled_and_misnamed_entries_and_keeps_the_rest(
        tmp_path):
    names = fill(tmp_path / "teacher")
    cache_archive.export(tmp_path / "class.zip", tmp_path / "teacher")
    import io
    payload = io.BytesIO()
    torch.save({"x": Payload()}, payload)
    rewrite(tmp_path / "class.zip", tmp_path / "bad.zip",
            change={names[0]: b"not what was hashed"},
            add=[(f"fit/{7:016x}.pt", payload.getvalue(), True),
                 ("../outside.pt", b"x", True),
                 (f"fit/{8:016x}.pt", (tmp_path / "teacher" / names[1]).read_bytes(),
                  False)])
    got = cache_archive.import_(str(tmp_path / "bad.zip"), tmp_path / "student")
    assert got["added"] == 2  # names[1] and names[2]
    reasons = "\n".join(got["refused"])
    assert len(got["refused"]) == 4, reasons
    assert f"{names[0]}: its bytes do not match" in reasons
    assert f"fit/{7:016x}.pt: it holds Python objects" in reasons
    assert "../outside.pt: not a cache entry's name" in reasons
    assert f"fit/{8:016x}.pt: its bytes do not match" in reasons  # not in the manifest
    assert not (tmp_path / "outside.pt").exists()
    assert cache_archive.entries(tmp_path / "student") == names[1:]


def test_import_of_a_zip_without_manifest_or_not_a_zip_is_one_line(tmp_path):
    fill(tmp_path / "teacher")
    cache_archive.export(tmp_path / "class.zip", tmp_path / "teacher")
    rewrite(tmp_path / "class.zip", tmp_path / "bare.zip", manifest=False)
    with pytest.raises(ValueError, match="no aelab cache manifest"):
        cache_archive.import_(str(tmp_path / "bare.zip"), tmp_path / "student")
    (tmp_path / "notes.zip").write_text("hello")
    with pytest.raises(ValueError, match="is not a zip file"):
        cache_archive.import_(str(tmp_path / "notes.zip"), tmp_path / "student")
    assert not (tmp_path / "student").exists() or not cache_archive.entries(
        tmp_path / "student")


def aelab(*args, cache):
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "aelab.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600,
                          check=False)


def test_cache_cli_says_in_one_line_what_is_wrong(tmp_path):
    empty = aelab("cache", "export", tmp_path / "class.zip", cache=tmp_path / "c")
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1, empty.stderr
    assert "holds no entries" in empty.stderr
    missing = aelab("cache", "import", tmp_path / "nope.zip", cache=tmp_path / "c")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_a_lesson_rerun_after_import_trains_nothing_and_gives_the_same_claims(
        tmp_path):
    """The instructor exports a fast run of lesson 05; a student imports it into
    an empty cache and runs the lesson: no new cache entry appears (every fit
    was loaded, none trained) and the claims are the same."""
    teacher = aelab("cache", "export", tmp_path / "class.zip", "--lesson", "joint",
                    "--profile", "fast", cache=tmp_path / "unused")
    assert teacher.returncode == 0, teacher.stderr[-2000:]
    student = tmp_path / "student"
    student.mkdir()
    imported = aelab("cache", "import", tmp_path / "class.zip", cache=student / "cache")
    assert imported.returncode == 0, imported.stderr
    before = cache_archive.entries(student / "cache")
    assert before and f"{len(before)} entries added" in imported.stdout
    stamps = {n: (student / "cache" / n).stat().st_mtime_ns for n in before}
    rerun = run_cold("joint", student)  # its cache folder is student/cache
    assert not rerun.ok(), rerun.ok()
    assert cache_archive.entries(student / "cache") == before, "something trained"
    assert {n: (student / "cache" / n).stat().st_mtime_ns for n in before} == stamps
    fresh = shared_run("joint")  # the session's cold run (the determinism test's)
    claims = [json.loads((r.out / "claims.json").read_text()) for r in (rerun, fresh)]
    assert claims[0] == claims[1]
