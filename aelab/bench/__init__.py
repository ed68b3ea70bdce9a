"""`aelab bench`: how fast aelab trains, next to the loop a tutorial would write.

The naive loop (aelab/bench/naive.py) runs in a fresh worker process, as a
tutorial's Python would; aelab's loop runs here. Each measurement runs once
small (a warm-up), then `repeats` rounds with the variants taking turns, so a
busy machine slows them alike. Cells give the median and, in brackets, the
min-max over rounds. ratio = how many times faster aelab is, taken round by
round (each round's aelab against the same round's naive): median (min-max).
The many-initialisation and many-seed rows compare aelab's own strategies: their
naive column is one `fit` after another, their aelab column fit_many's batched
(MLPs) or automatic choice (conv models: worker processes on a CPU).
"""
from __future__ import annotations

import os
import platform
import time
from datetime import datetime
from statistics import median

import torch

from aelab.bench import cases
from aelab.bench.naive import Worker
from aelab.data import load_dataset
from aelab.utils import training_device, tune_cpu_allocator

ROOFLINE_HEADER = (
    "\n\nRoofline of the fastest configuration (FLOPs counted by FlopCounterMode on "
    "one training step; bytes estimated from the activations kept for backward):\n\n"
    "| configuration | images/s | FLOPs/image | TFLOP/s of bf16 matmul peak | "
    "bytes/image | GB/s of copy bandwidth |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: |\n")


def _cell(values, fmt):
    lo, mid, hi = (fmt.format(f(values)) for f in (min, median, max))
    return f"{mid} ({lo}-{hi})"


def _times(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"  # never "0.0"


def ratios(naive: list, ours: list, unit: str) -> list:
    """Round-by-round speed-ups: aelab/naive for images/s, naive/aelab for s."""
    return [o / n if unit == "images/s" else n / o for n, o in zip(naive, ours)]


def noisy_baseline(naive: list, ours: list, unit: str) -> str:
    """A warning when the baseline's own spread over the rounds, (max - min) /
    median, is wider than the effect, |median ratio - 1|: the ratio is then
    decided by noise in the baseline (a busy machine), not by the code. '' if not."""
    mid = median(naive)
    spread = (max(naive) - min(naive)) / mid if mid else float("inf")
    effect = abs(median(ratios(naive, ours, unit)) - 1)
    if spread <= effect:
        return ""
    return (f"NOISY: the baseline varied by {spread:.0%} between rounds, more than the "
            f"{effect:.0%} effect; rerun on a quiet machine")


def table(rows) -> str:
    lines = ["| measurement | unit | naive | aelab | ratio (x faster) | note |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for label, unit, naive, ours, note in rows:
        fmt = "{:,.0f}" if unit == "images/s" else "{:.2f}"
        r = ratios(naive, ours, unit)
        spread = f"{_times(median(r))}x ({_times(min(r))}-{_times(max(r))})"
        note = "; ".join(filter(None, [noisy_baseline(naive, ours, unit), note]))
        lines.append(f"| {label} | {unit} | {_cell(naive, fmt)} | {_cell(ours, fmt)} | "
                     f"{spread} | {note} |")
    return "\n".join(lines)


def _load() -> float:
    """The 1-minute load average: above the core count, timings are shared."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def describe_machine(device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    allocator = ("glibc thresholds tuned" if device.type == "cpu" and tune_cpu_allocator()
                 else "defaults")
    return (f"- date: {datetime.now():%Y-%m-%d %H:%M}\n"
            f"- CPU: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
            f"threads, load average {_load():.1f} at the start\n"
            f"- torch {torch.__version__}, Python {platform.python_version()}\n"
            f"- device: {device}; GPU: {gpu}; allocator for aelab's side: {allocator} "
            "(the naive side runs in a fresh process with glibc's defaults)")


def main(quick: bool = False, out=None, device=None, repeats: int = 5,
         only: str | None = None) -> str:
    """Run every benchmark (or those whose title contains `only`), print the
    table and, if `out`, append it there."""
    device = training_device(device)  # aelab's side as fit() would run it
    repeats, t0 = (3 if quick else repeats), time.perf_counter()
    machine = describe_machine(device)
    train, test = (load_dataset("mnist", s, quiet=True) for s in ("train", "test"))
    X, y, Xte, yte = train.X, train.y, test.X, test.y
    sections = [("autoencoder images/s", lambda w: cases.autoencoder(
                    X, device, w, quick, repeats)),
                ("a many-model sweep", lambda w: cases.sweep(
                    X, y, Xte, yte, device, w, quick, repeats)),
                ("many initialisations of one MLP", lambda w: cases.many_inits(
                    X, y, Xte, yte, device, w, quick, repeats)),
                ("many seeds of one conv model", lambda w: cases.many_seeds(
                    X, y, device, w, quick, repeats)),
                ("linear probes", lambda w: cases.probes(
                    X, y, Xte, yte, device, w, quick, repeats))]
    if device.type == "cuda":
        sections.append(("large batches and many models on the GPU",
                         lambda w: cases.gpu(X, device, w, quick, repeats)))
    if only:
        sections = [(what, run) for what, run in sections if only in what]
    rows, extra = [], ""
    with Worker() as worker:
        for k, (what, run) in enumerate(sections, 1):
            print(f"bench: {k}/{len(sections)} {what} on {device}", flush=True)
            result = run(worker)
            if what.endswith("GPU"):  # it also returns its roofline line
                result, line = result
                extra = ROOFLINE_HEADER + line
            print(table(result), flush=True)
            rows += result
    if device.type != "cuda":
        print("bench: the GPU section skipped (no CUDA device)", flush=True)
    text = (f"### aelab bench{' (quick)' if quick else ''}, {device}\n\n{machine}\n"
            f"- {repeats} interleaved rounds; took {time.perf_counter() - t0:.0f} s; "
            f"load average {_load():.1f} at the end (other work on the machine "
            "slows the parallel kernels of the larger batches most)\n\n"
            + table(rows) + extra + "\n")
    print(text, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")
    return text
