"""One cold fast-profile run of a lesson per pytest session, shared.

`aelab run NAME --profile fast` in a fresh process with its own empty cache, as
a student's first run is. The lesson tests read what it printed and
wrote; tests/test_determinism.py compares it with a second cold run. Sharing
the run saves one whole lesson run per lesson in `pytest -m slow`."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LessonRun:
    result: subprocess.CompletedProcess
    out: Path    # what the run wrote (--out)
    cache: Path  # the cache it filled: a later run given it starts warm

    def verified(self) -> str:
        """What `--verify` prints after the run: the report and the claims
        table (runner.print_claims on what the run wrote)."""
        import io

        from aelab import runner
        text = io.StringIO()
        runner.print_claims(self.out, file=text)
        return text.getvalue()

    def ok(self) -> str:
        """'' when the run exited 0, else the end of what it printed."""
        return "" if self.result.returncode == 0 else (
            self.result.stdout[-2000:] + self.result.stderr[-2000:])


def run_cold(name: str, folder: Path, *args: str) -> LessonRun:
    """aelab run NAME --profile fast --out FOLDER/out, with a fresh cache."""
    folder.mkdir(parents=True, exist_ok=True)
    out, cache = folder / "out", folder / "cache"
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_CACHE": str(cache),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "aelab.cli", "run", str(name), "--profile", "fast",
         "--out", str(out), *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False)
    return LessonRun(result, out, cache)


@functools.cache
def shared_run(name: str) -> LessonRun:
    """The session's one cold fast run of lesson NAME (run on first use)."""
    folder = Path(tempfile.mkdtemp(prefix=f"aelab-{name}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return run_cold(name, folder)
