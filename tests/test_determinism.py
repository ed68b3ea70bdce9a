"""A lesson's fast-profile run, twice, each in fresh processes with its own
empty cache, writes bitwise-identical tables and figures (results, claims,
report, every PNG): same seeds, same numbers, same pictures.

Parametrized over every lessons/NN_name.py, so a lesson added later is covered.
Two fast runs of all six lessons took 146 s + the two of 00 and 02 on this
2-core machine (fresh caches), inside CI's budget. AELAB_TEST_LESSONS=quick
runs only QUICK (00 and 02), for a shorter local run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aelab import runner

ROOT = Path(__file__).resolve().parent.parent
QUICK = ("tour", "pitfall")
NOT_COMPARED = {"kernel-stderr.log"}  # and the notebook: its text holds timings


def fast_run(name: str, folder: Path) -> dict:
    """aelab run NAME --profile fast in a fresh process and a fresh cache;
    {relative path: bytes} of what it wrote (but the notebook and the log)."""
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_CACHE": str(folder / "cache"),
           "PYTHONPATH": str(ROOT)}
    out = folder / "out"
    folder.mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "aelab.cli", "run", name,
                             "--profile", "fast", "--out", str(out)], cwd=folder,
                            env=env, capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and p.name not in NOT_COMPARED}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(runner.available()))
def test_two_fast_runs_of_a_lesson_write_identical_tables_and_figures(name, tmp_path):
    if name not in QUICK and os.environ.get("AELAB_TEST_LESSONS") == "quick":
        pytest.skip(f"{name}: AELAB_TEST_LESSONS=quick runs only {', '.join(QUICK)}")
    first = fast_run(name, tmp_path / "first")
    second = fast_run(name, tmp_path / "second")
    assert first, "the run wrote no tables or figures"
    assert sorted(first) == sorted(second)
    differ = [path for path in first if first[path] != second[path]]
    assert not differ, f"{name}: these differ between two fast runs: {differ}"
