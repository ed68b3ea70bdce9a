"""`aelab bench --quick` runs and writes a sane table. No speed assertions here:
speed goals live in the benchmark and benchmarks/RESULTS.md, not in tests."""
import importlib.util
import math
import os
import re
from pathlib import Path

import pytest
import torch

from aelab.bench import main, noisy_baseline, table
from aelab.bench.naive import Worker


def _rows(text):
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]
            if not line.startswith("| ---")]
    return header, rows


@pytest.mark.slow
def test_quick_bench_writes_a_table_with_positive_finite_ratios(tmp_path):
    out = tmp_path / "r.md"
    text = main(quick=True, out=out, device="cpu")
    written = out.read_text()
    assert text.strip() in written and "naive" in written and "torch" in written
    header, rows = _rows(written)
    assert "naive" in header and any("ratio" in c for c in header)
    ratio = next(i for i, c in enumerate(header) if "ratio" in c)
    assert len(rows) >= 8  # AE (two batch sizes), sweep, MLP inits, 3 conv seeds, probes
    assert sum("seeds of a" in row[0] for row in rows) == 3  # the conv many-seed rows
    for row in rows:  # "3.5x (3.1-3.9)": the median, then the min-max over rounds
        cell = re.fullmatch(r"(\S+)x \((\S+)-(\S+)\)", row[ratio])
        mid, lo, hi = map(float, cell.groups())
        assert all(math.isfinite(v) and v > 0 for v in (mid, lo, hi)), row
        assert lo <= mid <= hi, row


def test_ratios_are_taken_round_by_round():
    # images/s: aelab/naive per round -> 3, 2, 3; seconds: naive/aelab -> 2, 4, 1
    text = table([("a", "images/s", [1, 2, 3], [3, 4, 9], ""),
                  ("b", "s", [2, 4, 1], [1, 1, 1], "")])
    assert "| 3.0x (2.0-3.0) |" in text and "| 2.0x (1.0-4.0) |" in text


def _whoami():
    return os.getpid(), os.environ.get("AELAB_MALLOC")


def test_the_naive_loop_runs_in_a_fresh_process_with_default_malloc():
    with Worker() as worker:
        timed = worker(_whoami, device="cpu")
    pid, malloc = timed.result
    assert pid != os.getpid() and malloc == "default" and timed.seconds >= 0


def test_the_gpu_candidates_train_the_same_models_as_separate_training():
    """benchmarks/gpu_candidates.py's grouped network must be M independent AEs,
    or its images/s would be measuring something else."""
    path = Path(__file__).parents[1] / "benchmarks" / "gpu_candidates.py"
    spec = importlib.util.spec_from_file_location("gpu_candidates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check(torch.device("cpu"))  # raises if grouped != separate


def test_a_dead_worker_is_one_clear_error():
    with Worker() as worker:
        worker.proc.kill()
        worker.proc.join()
        with pytest.raises(RuntimeError, match="worker process died"):
            worker(_whoami, device="cpu")


def test_a_baseline_that_varies_more_than_the_effect_is_flagged_noisy():
    # naive 2.2-3.7 s (spread 56% of its median 2.7), aelab 1.8x faster: 80% > 56%
    assert noisy_baseline([2.2, 2.7, 3.7], [1.2, 1.5, 2.1], "s") == ""
    # the same baseline, a 1.2x effect: the spread decides it
    warning = noisy_baseline([2.2, 2.7, 3.7], [1.8, 2.25, 3.1], "s")
    assert warning.startswith("NOISY: the baseline varied by 56%")
    assert "NOISY" in table([("a", "s", [2.2, 2.7, 3.7], [1.8, 2.25, 3.1], "")])
    assert "NOISY" not in table([("a", "s", [2.6, 2.7, 2.8], [1.8, 2.25, 1.9], "")])
