"""Timing helpers for `aelab bench`: interleaved rounds, best-of-n, sync."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass
class Timed:
    """A result timed where it ran (in the naive worker), not around the pipe."""
    seconds: float
    result: object


def sync(device) -> None:
    """Wait for the GPU's queued work; `device` may be a name."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleave(variants: dict, repeats: int, device):
    """{name: fn(small)} -> ({name: [seconds per round]}, {name: last result}).

    Each variant runs once small (a warm-up), then `repeats` rounds in which the
    variants take turns, so a machine that gets busier slows all of them alike.
    A variant run in the naive worker returns a Timed: its own clock is used.
    """
    for fn in variants.values():
        fn(True)
    seconds, last = {name: [] for name in variants}, {}
    for _ in range(repeats):
        for name, fn in variants.items():
            sync(device)
            start = time.perf_counter()
            out = fn(False)
            sync(device)
            elapsed = time.perf_counter() - start
            if isinstance(out, Timed):
                elapsed, out = out.seconds, out.result
            seconds[name].append(elapsed)
            last[name] = out
    return seconds, last


def best_time(fn, device, repeats=3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)
