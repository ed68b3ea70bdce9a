"""A lesson's fast-profile run, twice, each in fresh processes with its own
empty cache, writes bitwise-identical tables and figures (results, claims,
report, every PNG): same seeds, same numbers, same pictures.

Parametrized over every lessons/NN_name.py, so a lesson added later is covered.
The first run is the session's shared one (tests/lesson_runs.py: the lesson
tests read it too), the second is this test's own. AELAB_TEST_LESSONS=quick
runs only QUICK (00 and 02), for a shorter local run."""
import os

import pytest
from lesson_runs import LessonRun, run_cold, shared_run

from aelab import runner

QUICK = ("tour", "pitfall")
NOT_COMPARED = {"kernel-stderr.log"}  # and the notebook: its text holds timings


def written(run: LessonRun) -> dict:
    """{relative path: bytes} of what a run wrote (but the notebook and the log)."""
    assert not run.ok(), run.ok()
    return {str(p.relative_to(run.out)): p.read_bytes() for p in sorted(run.out.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and p.name not in NOT_COMPARED}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(runner.available()))
def test_two_fast_runs_of_a_lesson_write_identical_tables_and_figures(name, tmp_path):
    if name not in QUICK and os.environ.get("AELAB_TEST_LESSONS") == "quick":
        pytest.skip(f"{name}: AELAB_TEST_LESSONS=quick runs only {', '.join(QUICK)}")
    first = written(shared_run(name))
    second = written(run_cold(name, tmp_path / "second"))
    assert first, "the run wrote no tables or figures"
    assert sorted(first) == sorted(second)
    differ = [path for path in first if first[path] != second[path]]
    assert not differ, f"{name}: these differ between two fast runs: {differ}"
