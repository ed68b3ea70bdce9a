"""Progress for long work: tqdm bars in notebooks, one line per bar under
`aelab run`, an early estimate when a run will be long, and notices said once.
"""
from __future__ import annotations

import os
import sys
import time

from aelab import validate

LONG_RUN_S = 60.0  # a bar expected to run longer says so once, with a faster option
_said: set[str] = set()


class _LineProgress:
    """A progress bar for logs: one line when the work is done (or stopped),
    instead of a redrawn bar. Written to the process's real stderr, which
    `aelab run` forwards to the terminal."""

    def __init__(self, iterable=None, *, total=None, desc="", initial=0,
                 disable=False, **_):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, initial
        self.disable, self.postfix, self.start = disable, {}, time.perf_counter()

    def __iter__(self):
        yield from self.iterable or ()

    def update(self, n=1):
        self.n += n

    def set_postfix(self, refresh=False, **kw):
        self.postfix = kw

    def close(self):
        if self.disable:
            return
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"    {self.desc}: {done} in {time.perf_counter() - self.start:.0f} s"
              f"{extra}", file=sys.__stderr__ or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def long_run_notice(desc: str, seconds: float, detail: str = "") -> str | None:
    """The one line a run expected to take over LONG_RUN_S prints (else None):
    the estimate and how to get a quicker run."""
    if not seconds > LONG_RUN_S:
        return None
    profile = os.environ.get("AELAB_PROFILE") or "classroom"
    if profile != "fast":
        tip = ("for a quicker run pick the fast profile (AELAB_PROFILE=fast before "
               "starting Jupyter, or `aelab run LESSON --profile fast`)")
    else:
        tip = ("this is already the fast profile: fewer epochs or images, or a GPU, "
               "make it quicker")
    detail = f" ({detail})" if detail else ""
    return (f"aelab: {desc or 'this run'} will take about {_duration(seconds)} on this "
            f"machine{detail}; {tip}")


def announce(line: str) -> None:
    """Print a notice in the notebook (stdout) and, under `aelab run`
    (AELAB_PROGRESS=lines), on the terminal too."""
    print(line, flush=True)
    if os.environ.get("AELAB_PROGRESS") == "lines" and sys.__stderr__ is not None:
        print(line, file=sys.__stderr__, flush=True)


class _Estimate:
    """A progress bar that, once it has seen about a second of work, estimates
    the whole and says so in one line if that is over LONG_RUN_S. The first
    unit (warm-up: allocation, kernel selection) is left out of the rate when
    there are more to measure."""

    MEASURE_S = 1.0

    def __init__(self, bar, *, total, desc, unit, initial=0):
        self.bar, self.total, self.desc, self.unit = bar, total, desc, unit
        self.done = initial
        self.start = time.perf_counter()
        self.first = None  # (time, units) when the first unit finished
        self.decided = not total

    def __getattr__(self, name):
        return getattr(self.bar, name)

    def __iter__(self):
        for item in self.bar:
            yield item
            self._tick(1)

    def update(self, n=1):
        self.bar.update(n)
        self._tick(n)

    def _tick(self, n: int) -> None:
        if self.decided:
            return
        now = time.perf_counter()
        self.done += n
        if self.first is None:
            self.first = (now, self.done)
        if now - self.start < self.MEASURE_S and self.done < self.total:
            return
        self.decided = True
        t1, n1 = self.first
        rate = ((now - t1) / (self.done - n1) if self.done > n1
                else (now - self.start) / max(self.done, 1))
        seconds = now - self.start + rate * (self.total - self.done)
        line = long_run_notice(self.desc, seconds,
                               f"{self.total:,} {self.unit}s at {rate:.2g} s each")
        if line:
            announce(line)


def progress(iterable=None, **kwargs):
    """tqdm.auto's bar (a widget in notebooks), or with AELAB_PROGRESS=lines
    (what `aelab run` sets) one line per finished bar. A bar that will run for
    more than LONG_RUN_S says so once, early (long_run_notice)."""
    style = validate.env_choice("AELAB_PROGRESS", ("lines", "bar"), "bar")
    if style == "lines":
        bar = _LineProgress(iterable, **kwargs)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(iterable, **kwargs)
    total = kwargs.get("total")
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if kwargs.get("disable") or not total:
        return bar
    return _Estimate(bar, total=total, desc=kwargs.get("desc", ""),
                     unit=kwargs.get("unit", "step"), initial=kwargs.get("initial", 0))


def say_once(key: str, message: str) -> None:
    """Print `message` the first time `key` is seen in this process."""
    if key not in _said:
        _said.add(key)
        print(message, flush=True)
