"""`aelab bench --quick` runs and writes a sane table. No speed assertions here:
speed goals live in the benchmark and benchmarks/RESULTS.md, not in tests."""
import math

from aelab.bench import main


def _rows(text):
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]
            if not line.startswith("| ---")]
    return header, rows


def test_quick_bench_writes_a_table_with_positive_finite_ratios(tmp_path):
    out = tmp_path / "r.md"
    text = main(quick=True, out=out, device="cpu")
    written = out.read_text()
    assert text.strip() in written and "naive" in written and "torch" in written
    header, rows = _rows(written)
    assert "naive" in header and any("ratio" in c for c in header)
    ratio = next(i for i, c in enumerate(header) if "ratio" in c)
    assert len(rows) >= 4  # AE (two batch sizes), the sweep, the probes
    for row in rows:
        value = float(row[ratio].rstrip("x"))
        assert math.isfinite(value) and value > 0, row
