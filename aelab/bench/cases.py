"""What `aelab bench` measures: each case returns table rows
(label, unit, naive values, aelab values, note), one value per round."""
from __future__ import annotations

from statistics import median

import torch
from torch.utils.flop_counter import FlopCounterMode

from aelab.bench import naive
from aelab.bench.timing import best_time, interleave
from aelab.losses import classification_objective as ce
from aelab.losses import reconstruction_objective as recon
from aelab.metrics import accuracy
from aelab.models import ConvAutoencoder
from aelab.splits import make_splits
from aelab.probes import train_probes
from aelab.sweep import _choose, fit_many
from aelab.train import autocast, fit, predict


def tile(X, n):
    """The first n images of X repeated as often as needed."""
    return X.repeat(-(-n // len(X)), 1, 1, 1)[:n]


def naive_autoencoder(Xf, device, worker):
    """The naive AE loop on float images Xf, run (and timed) in the worker."""
    def run(small):
        return worker(naive.autoencoder, Xf[:64] if small else Xf, device, device=device)
    return run


def autoencoder(X, device, worker, quick, repeats):
    """1. images/s training barletta2024's AE: naive (batch 16) vs fit (256, 64)."""
    n_naive = 160 if quick else (4000 if device.type == "cuda" else 1000)
    n_fit = 1000 if quick else (64_000 if device.type == "cuda" else 8192)
    Xu = tile(X, n_fit)

    def aelab(batch_size):
        def run(small):
            fit(ConvAutoencoder(), (Xu[:512] if small else Xu,), recon, num_epochs=1,
                batch_size=batch_size, device=device, quiet=True)
        return run

    variants = {"naive": naive_autoencoder(X[:n_naive].float() / 255, device, worker),
                "fit 256": aelab(256), "fit 64": aelab(64)}
    sec, _ = interleave(variants, repeats, device)
    rate = {"naive": [n_naive / s for s in sec["naive"]]}
    rate.update({k: [n_fit / s for s in v] for k, v in sec.items() if k != "naive"})
    return [(f"AE training, fit batch {b} (naive: DataLoader batch 16)", "images/s",
             rate["naive"], rate[f"fit {b}"], "") for b in (256, 64)]


def sweep(X, y, Xte, yte, device, worker, quick, repeats):
    """2. M classifiers, each on its own labelled subset: a loop vs fit_many."""
    M, n, epochs = (2, 64, 1) if quick else (16, 512, 3)
    g = torch.Generator().manual_seed(0)
    subsets = [torch.randperm(len(X), generator=g)[:n] for _ in range(M)]
    datas = [(X[s], y[s]) for s in subsets]

    def run_naive(small):
        return worker(naive.sweep, datas[:2] if small else datas, Xte, yte, device,
                      1 if small else epochs, device=device)

    def aelab(small):
        ms = naive.sweep_models(2 if small else M)
        fit_many(ms, list(datas[:len(ms)]), ce,
                 num_epochs=1 if small else epochs, batch_size=16, device=device,
                 quiet=True)
        return naive.mean_accuracy(ms, Xte, yte, device)

    sec, acc = interleave({"naive": run_naive, "aelab": aelab}, repeats, device)
    strategy = _choose("auto", naive.sweep_models(M), device, 16)
    note = (f"{M} EncoderClassifiers x {n} images x {epochs} epochs; fit_many "
            f"({strategy}), both batch 16; mean test accuracy naive "
            f"{acc['naive']:.3f}, aelab {acc['aelab']:.3f}")
    return [(f"{M}-model sweep", "s", sec["naive"], sec["aelab"], note)]


def mlp(width, depth=2):
    """784 -> width (sigmoid) x depth -> 10 logits."""
    layers, d = [torch.nn.Flatten()], 28 * 28
    for _ in range(depth):
        layers += [torch.nn.Linear(d, width), torch.nn.Sigmoid()]
        d = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(d, 10))


def many_inits(X, y, Xte, yte, device, worker, quick, repeats):
    """3. M same-shape MLPs from M random starts on one training set, test and
    train NLL recorded after every epoch: one fit after another
    (strategy="sequential") vs fit_many's stacked weights (strategy="batched")."""
    M, width, n, epochs = (4, 32, 512, 1) if quick else (20, 128, len(X), 2)

    def run(strategy):
        def go(small):
            torch.manual_seed(0)
            models = [mlp(width) for _ in range(2 if small else M)]
            k = 256 if small else n
            hs = fit_many(models, [(X[:k], y[:k])] * len(models), ce,
                          strategy=strategy, num_epochs=1 if small else epochs,
                          batch_size=64, test_data=(Xte, yte),
                          eval_data={"train": (X[:1000], y[:1000])}, device=device,
                          quiet=True)
            return [h.test_loss[-1] for h in hs]
        return go

    sec, out = interleave({"sequential": run("sequential"),
                           "batched": run("batched")}, repeats, device)
    gap = max(abs(a - b) for a, b in zip(out["sequential"], out["batched"]))
    note = (f"{M} MLPs 784-{width}-{width}-10 (sigmoid), {n} images x {epochs} "
            f"epochs, batch 64, Adam; test and train NLL after every epoch. naive "
            f"column: one fit after another; final test NLLs differ by <= {gap:.1e}")
    return [(f"{M}-initialisation MLP sweep, fit_many batched", "s",
             sec["sequential"], sec["batched"], note)]


def bn_denoiser():
    """A small conv denoiser with BatchNorm (running statistics per model)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 1, 3, padding=1))


def denoise(model, batch):
    X, = batch
    return torch.nn.functional.mse_loss(model(X + 0.3 * torch.randn_like(X)), X)


class JointNet(torch.nn.Module):
    """A small conv classifier with a decoding pathway from its features: the
    shape of a joint supervised + reconstruction model (logits, X_hat)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.encoder = nn.Sequential(  # 1x28x28 -> 8x14x14 -> 16x7x7
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
        self.decoder = nn.Sequential(  # 16x7x7 -> 8x14x14 -> 1x28x28
            nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, X):
        z = self.encoder(X)
        return self.head(z), self.decoder(z)


def joint(model, batch):
    X, y = batch
    logits, X_hat = model(X)
    F = torch.nn.functional
    return F.cross_entropy(logits, y) + F.mse_loss(X_hat, X)


def many_seeds(X, y, device, worker, quick, repeats):
    """3b. M seeds of one conv model on one training set: one fit after another
    (strategy="sequential") vs what fit_many picks on this device ("auto":
    worker processes on a CPU, vmap on CUDA)."""
    M, n, epochs = (2, 256, 1) if quick else (10, 2000, 1)
    shapes = {"conv AE (barletta2024's, 8-4 channels)": (ConvAutoencoder, recon, False),
              "BatchNorm conv denoiser (16 channels)": (bn_denoiser, denoise, False),
              "conv classifier with a decoder (cross-entropy + image MSE)":
                  (JointNet, joint, True)}
    rows = []
    for label, (make, objective, labeled) in shapes.items():
        def run(strategy, make=make, objective=objective, labeled=labeled):
            def go(small):
                torch.manual_seed(0)
                models = [make() for _ in range(2 if small else M)]
                k = 128 if small else n
                data = (X[:k], y[:k]) if labeled else (X[:k],)
                fit_many(models, [data] * len(models), objective,
                         strategy=strategy, num_epochs=1 if small else epochs,
                         batch_size=64, device=device, quiet=True)
            return go
        sec, _ = interleave({"sequential": run("sequential"), "auto": run("auto")},
                            repeats, device)
        torch.manual_seed(0)
        chosen = _choose("auto", [make() for _ in range(M)], device, 64)
        rows.append((f"{M} seeds of a {label}, fit_many {chosen}", "s",
                     sec["sequential"], sec["auto"],
                     f"{n} images x {epochs} epoch, batch 64, Adam; naive column: "
                     f"one fit after another, {torch.get_num_threads()} threads"))
    return rows


def probes(X, y, Xte, yte, device, worker, quick, repeats):
    """4. 30 softmax heads on frozen 196-d features: a loop vs train_probes."""
    # The label budgets of lesson 01's classroom profile, nested per seed.
    budgets = (10, 50) if quick else (20, 50, 100, 160, 200, 320, 500, 640, 800, 1000)
    seeds, epochs, steps = ((0, 1), 3, 100) if quick else ((0, 1, 2), 20, 300)
    ae = ConvAutoencoder()
    fit(ae, (X,), recon, num_epochs=1 if quick else 3, batch_size=128, device=device,
        quiet=True)
    feats = predict(ae.encoder, X).flatten(1)  # N x 4x7x7 -> N x 196
    feats_te = predict(ae.encoder, Xte).flatten(1)
    subsets = [make_splits(y, seed=s).labeled(b) for s in seeds for b in budgets]

    def run_naive(small):
        return worker(naive.probes, feats, y, subsets[:3] if small else subsets,
                      feats_te, yte, device, 1 if small else epochs, device=device)

    def aelab(small):
        heads = train_probes(feats, y, subsets[:3] if small else subsets,
                             num_steps=steps, device=device)
        pred = heads.predict(feats_te)  # heads x test images; one pooled accuracy
        return accuracy(pred.flatten(), yte.expand(len(pred), -1).flatten())

    sec, acc = interleave({"naive": run_naive, "aelab": aelab}, repeats, device)
    note = (f"{len(subsets)} heads ({len(budgets)} budgets x {len(seeds)} seeds), "
            f"naive {epochs} epochs batch 32, aelab {steps} full-batch steps; mean "
            f"test accuracy naive {acc['naive']:.3f}, aelab {acc['aelab']:.3f}")
    return [(f"{len(subsets)} linear probes", "s", sec["naive"], sec["aelab"], note)]


def gpu(X, device, worker, quick, repeats):
    """5. CUDA only: large batches, many vmapped models, and the roofline."""
    n, naive_n, per_model = (2048, 160, 512) if quick else (131_072, 2000, 4000)
    # (models, batch per model, cudnn.benchmark): the last is a diagnostic only
    configs = [(4, 256, False)] if quick else [(64, 4096, False), (256, 1024, False),
                                               (256, 256, False), (256, 1024, True)]
    Xg = tile(X, n).to(device)

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

    variants = {"naive": naive_autoencoder(X[:naive_n].float() / 255, device, worker),
                "fit batch 4096": big_fit(4096),
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
    peak = 2 * k**3 * 10 / best_time(lambda: [a @ b for _ in range(10)], device)
    src = torch.rand(2**28 if device.type == "cuda" else 2**24, device=device)
    dst = torch.empty_like(src)
    bandwidth = 2 * src.nbytes * 10 / best_time(
        lambda: [dst.copy_(src) for _ in range(10)], device)
    tflops, gbs = flops * images_per_s / 1e12, bytes_ * images_per_s / 1e9
    return (f"| {label} | {images_per_s:,.0f} | {flops / 1e6:.2f} MFLOP | "
            f"{tflops:.2f} of {peak / 1e12:.0f} ({100 * tflops * 1e12 / peak:.2f}%) | "
            f"{bytes_ / 1e3:.1f} kB | {gbs:,.0f} of {bandwidth / 1e9:,.0f} "
            f"({100 * gbs * 1e9 / bandwidth:.1f}%) |")
