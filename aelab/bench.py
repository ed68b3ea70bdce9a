"""`aelab bench`: how fast aelab trains, next to the loop a tutorial would write.

The naive loop is the one most tutorials show: a DataLoader over a TensorDataset
of float images, batch 16, shuffled, NCHW fp32, `loss.item()` after every step.
aelab's loop keeps uint8 images on the device, batches by index slices, syncs
once per epoch, uses channels_last (and bf16 autocast on CUDA); fit_many trains
many models as one vmapped model on CUDA; train_probes fits every probe at once.

Each measurement runs once small (a warm-up), then `repeats` times with the
variants taking turns, so a busy machine slows them alike. Cells give the
median and, in brackets, the min-max. ratio = how many times faster aelab is.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import datetime
from statistics import median

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from aelab.data import load_dataset
from aelab.models import ConvAutoencoder, EncoderClassifier
from aelab.splits import make_splits
from aelab.sweep import fit_many, train_probes
from aelab.losses import classification_objective, reconstruction_objective
from aelab.train import autocast, fit, predict
from aelab.utils import get_device


recon = reconstruction_objective
ce = classification_objective


def naive_train(model, tensors, loss_fn, device, *, batch_size=16, num_epochs=1):
    """The tutorial loop: DataLoader, fp32 NCHW, a sync (loss.item()) every step."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True)
    running = 0.0
    for _ in range(num_epochs):
        for batch in loader:
            batch = [t.to(device) for t in batch]
            loss = loss_fn(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()  # what tutorials print; a sync every step
    return model.eval()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(variants: dict, repeats: int, device):
    """{name: fn(small)} -> ({name: [seconds]}, {name: last result}): one small
    warm-up call each, then `repeats` rounds in which the variants take turns."""
    for fn in variants.values():
        fn(True)
    seconds, last = {name: [] for name in variants}, {}
    for _ in range(repeats):
        for name, fn in variants.items():
            _sync(device)
            start = time.perf_counter()
            last[name] = fn(False)
            _sync(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds, last


def _tile(X, n):
    return X.repeat(-(-n // len(X)), 1, 1, 1)[:n]


def _accuracy(pred, y):
    return (pred.cpu() == y.cpu()).float().mean().item()


def bench_autoencoder(X, device, quick, repeats):
    """1. images/s training barletta2024's AE: naive (batch 16) vs fit (256, 64)."""
    n_naive = 160 if quick else (4000 if device.type == "cuda" else 2000)
    n_fit = 1000 if quick else (64_000 if device.type == "cuda" else 16_000)
    Xf, Xu = X[:n_naive].float() / 255, _tile(X, n_fit)

    def naive(small):
        naive_train(ConvAutoencoder(), (Xf[:64] if small else Xf,), recon, device)

    def aelab(batch_size):
        def run(small):
            fit(ConvAutoencoder(), (Xu[:512] if small else Xu,), recon, num_epochs=1,
                batch_size=batch_size, device=device, quiet=True)
        return run

    variants = {"naive": naive, "fit 256": aelab(256), "fit 64": aelab(64)}
    sec, _ = interleave(variants, repeats, device)
    rate = {"naive": [n_naive / s for s in sec["naive"]]}
    rate.update({k: [n_fit / s for s in v] for k, v in sec.items() if k != "naive"})
    return [(f"AE training, fit batch {b} (naive: DataLoader batch 16)", "images/s",
             rate["naive"], rate[f"fit {b}"], "") for b in (256, 64)]


def bench_sweep(X, y, Xte, yte, device, quick, repeats):
    """2. M classifiers, each on its own labelled subset: a loop vs fit_many."""
    M, n, epochs = (2, 64, 1) if quick else (16, 512, 3)
    g = torch.Generator().manual_seed(0)
    subsets = [torch.randperm(len(X), generator=g)[:n] for _ in range(M)]
    datas = [(X[s], y[s]) for s in subsets]

    def models(m):
        torch.manual_seed(0)
        return [EncoderClassifier(ConvAutoencoder().encoder, freeze=False)
                for _ in range(m)]

    def naive(small):
        m = 2 if small else M
        return [naive_train(model, (Xs.float() / 255, ys), ce, device,
                            num_epochs=1 if small else epochs)
                for model, (Xs, ys) in zip(models(m), datas)]

    def aelab(small):
        m = 2 if small else M
        ms = models(m)
        fit_many(ms, list(datas[:m]), ce, num_epochs=1 if small else epochs,
                 batch_size=16, device=device, quiet=True)
        return ms

    sec, last = interleave({"naive": naive, "aelab": aelab}, repeats, device)
    acc = {k: statistics.mean(_accuracy(predict(m, Xte).argmax(1), yte) for m in ms)
           for k, ms in last.items()}
    strategy = "vmap" if device.type == "cuda" else "sequential"
    note = (f"{M} EncoderClassifiers x {n} images x {epochs} epochs; fit_many "
            f"({strategy}), both batch 16; mean test accuracy naive "
            f"{acc['naive']:.3f}, aelab {acc['aelab']:.3f}")
    return [(f"{M}-model sweep", "s", sec["naive"], sec["aelab"], note)]


def bench_probes(X, y, Xte, yte, device, quick, repeats):
    """3. 30 softmax heads on frozen 196-d features: a loop vs train_probes."""
    # The label budgets of lesson 01's classroom profile, nested per seed.
    budgets = (10, 50) if quick else (20, 50, 100, 160, 200, 320, 500, 640, 800, 1000)
    seeds, epochs, steps = ((0, 1), 3, 100) if quick else ((0, 1, 2), 20, 300)
    ae = ConvAutoencoder()
    fit(ae, (X,), recon, num_epochs=1 if quick else 3, batch_size=128, device=device,
        quiet=True)
    feats = predict(ae.encoder, X).flatten(1)  # N x 4x7x7 -> N x 196
    feats_te = predict(ae.encoder, Xte).flatten(1)
    subsets = [make_splits(y, seed=s).labeled(b) for s in seeds for b in budgets]

    def naive(small):
        return [naive_train(nn.Linear(feats.shape[1], 10), (feats[s], y[s]), ce, device,
                            batch_size=32, num_epochs=1 if small else epochs)
                for s in (subsets[:3] if small else subsets)]

    def aelab(small):
        return train_probes(feats, y, subsets[:3] if small else subsets,
                            num_steps=steps, device=device)

    sec, last = interleave({"naive": naive, "aelab": aelab}, repeats, device)
    acc_naive = statistics.mean(
        _accuracy(head(feats_te.to(device)).argmax(1), yte) for head in last["naive"])
    acc_aelab = _accuracy(last["aelab"].predict(feats_te), yte.expand(len(subsets), -1))
    note = (f"{len(subsets)} heads ({len(budgets)} budgets x {len(seeds)} seeds), "
            f"naive {epochs} epochs batch 32, aelab {steps} full-batch steps; mean "
            f"test accuracy naive {acc_naive:.3f}, aelab {acc_aelab:.3f}")
    return [(f"{len(subsets)} linear probes", "s", sec["naive"], sec["aelab"], note)]


def bench_gpu(X, device, quick, repeats):
    """4. CUDA only: large batches, many vmapped models, and the roofline."""
    n, naive_n, per_model = (2048, 160, 512) if quick else (131_072, 2000, 4000)
    # (models, batch per model, cudnn.benchmark): the last is a diagnostic only
    configs = [(4, 256, False)] if quick else [(64, 4096, False), (256, 1024, False),
                                               (256, 256, False), (256, 1024, True)]
    Xg, Xf = _tile(X, n).to(device), X[:naive_n].float() / 255

    def naive(small):
        naive_train(ConvAutoencoder(), (Xf[:64] if small else Xf,), recon, device)

    def big_fit(batch_size):
        def run(small):
            fit(ConvAutoencoder(), (Xg[:batch_size] if small else Xg,), recon,
                num_epochs=1, batch_size=batch_size, device=device, quiet=True)
        return run

    def many(m, batch_size, benchmark=False):
        def run(small):
            torch.manual_seed(0)
            k = batch_size if small else per_model
            torch.backends.cudnn.benchmark = benchmark  # aelab leaves it off
            try:
                fit_many([ConvAutoencoder() for _ in range(m)], [(Xg[:k],)] * m, recon,
                         strategy="vmap", num_epochs=1 if small else 2,
                         batch_size=batch_size, device=device, quiet=True)
            finally:
                torch.backends.cudnn.benchmark = False
        return run

    variants = {"naive": naive, "fit batch 4096": big_fit(4096),
                "fit batch 16384": big_fit(16384)}
    images = {"naive": naive_n, "fit batch 4096": n, "fit batch 16384": n}
    for m, b, benchmark in configs:
        name = f"fit_many {m} models x batch {b}" + ", cudnn.benchmark" * benchmark
        variants[name], images[name] = many(m, b, benchmark), m * per_model * 2
    sec, _ = interleave(variants, repeats, device)
    rate = {k: [images[k] / s for s in v] for k, v in sec.items()}
    rows = [(f"AE training on CUDA, {k}", "images/s", rate["naive"], v,
             "aggregate over the models; " * k.startswith("fit_many")
             + "naive: the same loop as above, same GPU")
            for k, v in rate.items() if k != "naive"]
    best = max((k for k in rate if k != "naive"), key=lambda k: median(rate[k]))
    return rows, roofline(device, best, median(rate[best]))


def roofline(device, label, images_per_s):
    """Achieved TFLOP/s and GB/s of `label` against measured ceilings."""
    model = ConvAutoencoder().to(device, memory_format=torch.channels_last)
    Xb = torch.rand(256, 1, 28, 28, device=device)
    saved = {}

    def pack(t):  # every tensor autograd keeps for the backward pass
        saved[(t.data_ptr(), t.dtype)] = t.numel() * t.element_size()
        return t

    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with autocast(device):
            loss = recon(model, (Xb,))
        loss.backward()
    flops = counter.get_total_flops() / len(Xb)
    # An estimate: each saved activation is written once, read once in backward,
    # and its gradient written once; parameters and the uint8 input are negligible.
    bytes_ = 3 * sum(saved.values()) / len(Xb)
    k = 8192 if device.type == "cuda" else 1024  # random data: zeros run faster
    a, b = (torch.randn(k, k, device=device, dtype=torch.bfloat16) for _ in "ab")
    peak = 2 * k**3 * 10 / _best_time(lambda: [a @ b for _ in range(10)], device)
    src = torch.rand(2**28 if device.type == "cuda" else 2**24, device=device)
    dst = torch.empty_like(src)
    bandwidth = 2 * src.nbytes * 10 / _best_time(
        lambda: [dst.copy_(src) for _ in range(10)], device)
    tflops, gbs = flops * images_per_s / 1e12, bytes_ * images_per_s / 1e9
    return (f"| {label} | {images_per_s:,.0f} | {flops / 1e6:.2f} MFLOP | "
            f"{tflops:.2f} of {peak / 1e12:.0f} ({100 * tflops * 1e12 / peak:.2f}%) | "
            f"{bytes_ / 1e3:.1f} kB | {gbs:,.0f} of {bandwidth / 1e9:,.0f} "
            f"({100 * gbs * 1e9 / bandwidth:.1f}%) |")


def _best_time(fn, device, repeats=3):
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def _cell(values, unit):
    fmt = "{:,.0f}" if unit == "images/s" else "{:.2f}"
    lo, mid, hi = min(values), median(values), max(values)
    return f"{fmt.format(mid)} ({fmt.format(lo)}-{fmt.format(hi)})"


def table(rows) -> str:
    lines = ["| measurement | unit | naive | aelab | ratio (x faster) | note |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for label, unit, naive, ours, note in rows:
        ratio = (median(ours) / median(naive) if unit == "images/s"
                 else median(naive) / median(ours))
        shown = f"{ratio:.1f}" if ratio >= 1 else f"{ratio:.2g}"  # never "0.0"
        lines.append(f"| {label} | {unit} | {_cell(naive, unit)} | {_cell(ours, unit)} "
                     f"| {shown}x | {note} |")
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
    return (f"- date: {datetime.now():%Y-%m-%d %H:%M}\n"
            f"- CPU: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
            f"threads, load average {_load():.1f} at the start\n"
            f"- torch {torch.__version__}, Python {platform.python_version()}\n"
            f"- device: {device}; GPU: {gpu}")


def main(quick: bool = False, out=None, device=None) -> str:
    """Run every benchmark, print the table and, if `out`, append it there."""
    device = torch.device(device) if device is not None else get_device()
    repeats, t0 = 3, time.perf_counter()
    machine = describe_machine(device)
    train, test = (load_dataset("mnist", s, quiet=True) for s in ("train", "test"))
    X, y, Xte, yte = train.X, train.y, test.X, test.y
    sections = [("autoencoder images/s", lambda: bench_autoencoder(X, device, quick,
                                                                    repeats)),
                ("a many-model sweep", lambda: bench_sweep(X, y, Xte, yte, device,
                                                           quick, repeats)),
                ("linear probes", lambda: bench_probes(X, y, Xte, yte, device, quick,
                                                       repeats))]
    if device.type == "cuda":
        sections.append(("large batches and many models on the GPU",
                         lambda: bench_gpu(X, device, quick, repeats)))
    rows, extra = [], ""
    for k, (what, run) in enumerate(sections, 1):
        print(f"bench: {k}/4 {what} on {device}", flush=True)
        result = run()
        if k == 4:  # the GPU section also returns its roofline line
            result, line = result
            extra = ("\n\nRoofline of the fastest configuration (FLOPs counted by "
                     "FlopCounterMode on one training step; bytes estimated from the "
                     "activations kept for backward):\n\n| configuration | images/s "
                     "| FLOPs/image | TFLOP/s of bf16 matmul peak | bytes/image | GB/s "
                     "of copy bandwidth |\n| --- | ---: | ---: | ---: | ---: | ---: |\n"
                     + line)
        print(table(result), flush=True)
        rows += result
    if device.type != "cuda":
        print("bench: 4/4 skipped (no CUDA device)", flush=True)
    text = (f"### aelab bench{' (quick)' if quick else ''}, {device}\n\n{machine}\n"
            f"- {repeats} interleaved repeats; took {time.perf_counter() - t0:.0f} s; "
            f"load average {_load():.1f} at the end (other work on the machine "
            "slows the parallel kernels of the larger batches most)\n\n"
            + table(rows) + extra + "\n")
    print(text, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")
    return text
