"""`aelab run LESSON > log 2>&1`: a log a person can read, one line per stage
(a cell that took a second or more, a finished progress bar), with none of a
redrawn bar's carriage returns."""
import os
import re
import subprocess
import sys


def test_run_into_a_file_writes_one_line_per_stage_and_no_carriage_returns(tmp_path):
    log = tmp_path / "log"
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_CACHE": str(tmp_path / "cache")}
    env.pop("AELAB_PROGRESS", None)  # what the kernel gets is aelab run's doing
    with open(log, "wb") as out:
        result = subprocess.run(
            [sys.executable, "-m", "aelab.cli", "run", "tour", "--profile", "fast",
             "--out", str(tmp_path / "out")], stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=tmp_path, timeout=600, check=False)
    text = log.read_bytes().decode()
    assert result.returncode == 0, text
    assert "\r" not in text, "a progress bar was redrawn into the log"
    lines = text.splitlines()
    bar = re.compile(r"\s+[\w -]+: \d+(/\d+)? in \d+ s")
    bars = [line for line in lines if bar.match(line)]
    assert bars, f"no finished progress bar in the log:\n{text}"
    assert len(bars) == len(set(bars)), "a bar was written more than once"
    stages = [tuple(map(int, m.groups())) for line in lines
              if (m := re.match(r"\s+\[\s*(\d+)/(\d+)\]", line))]
    cells = [k for k, _ in stages]
    assert stages and cells == sorted(set(cells)), "a stage was written twice"
    assert stages[-1][0] == stages[-1][1], "the last cell has no line"
    assert lines[-1].startswith("aelab run: done in")
