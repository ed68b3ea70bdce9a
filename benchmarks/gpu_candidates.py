"""Candidates for the many-model GPU target (>= 1M images/s aggregate), in one run.

    python benchmarks/gpu_candidates.py            # on a CUDA machine: the table
    python benchmarks/gpu_candidates.py --check    # any device: grouped == separate

What is compared, M barletta2024 autoencoders trained at once (aggregate images/s):
1. `fit_many(strategy="vmap")`, aelab's current way. On an H100 it reached 332k
   images/s, 67% of its time in `upsample_nearest2d_backward`.
2. the same, with nearest upsampling written as expand + reshape (exact).
3. one grouped network: M models as channel groups (conv groups=M), M images
   per sample, so pooling and upsampling run on one wide channels_last tensor
   instead of on the strided views vmap hands them.
4. 3 under torch.compile.
Written while no GPU was lent (so not yet measured); --check runs anywhere.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from statistics import median

import torch
import torch.nn.functional as F
from torch import nn

from aelab import models as aelab_models
from aelab.bench.cases import tile
from aelab.bench.timing import interleave
from aelab.data import load_dataset
from aelab.losses import reconstruction_objective
from aelab.models import ConvAutoencoder
from aelab.splits import to_float
from aelab.sweep import fit_many
from aelab.train import autocast


class GroupedAE(nn.Module):
    """M ConvAutoencoders as one network: model m owns channel group m of every
    layer. Input and output (B, M, H, W): column m is model m's own image."""

    def __init__(self, models: list):
        super().__init__()
        self.m = len(models)
        layers = []
        for parts in zip(*(list(a.encoder) + list(a.decoder) for a in models)):
            first = parts[0]
            if isinstance(first, nn.Conv2d):
                conv = nn.Conv2d(first.in_channels * self.m, first.out_channels * self.m,
                                 first.kernel_size, padding=first.padding, groups=self.m)
                with torch.no_grad():  # out channels of group m = model m's filters
                    conv.weight.copy_(torch.cat([p.weight for p in parts]))
                    conv.bias.copy_(torch.cat([p.bias for p in parts]))
                layers.append(conv)
            else:  # ReLU, MaxPool2d, Upsample: channel-wise, shared as they are
                layers.append(first)
        self.net = nn.Sequential(*layers)

    def forward(self, X):
        return self.net(X)

    def conv_weights(self, i: int) -> list:
        """Model i's conv weights, to compare with a separately trained model."""
        out = []
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):
                k = layer.out_channels // self.m
                out.append(layer.weight[i * k:(i + 1) * k])
        return out


def grouped_loss(model, Xb):
    """Sum over models of each model's mean squared error."""
    return (model(Xb) - Xb).pow(2).mean(dim=(0, 2, 3)).sum()


def train_grouped(model, X, perms, batch_size, device, step_fn=None):
    """One epoch. X: (N, 1, H, W) uint8 on device; perms: (M, N) per-model orders."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step_fn = step_fn or grouped_loss
    for s in range(0, perms.shape[1], batch_size):
        idx = perms[:, s:s + batch_size]                      # M x b
        Xb = to_float(X[idx.T.reshape(-1)]).view(idx.shape[1], model.m, *X.shape[-2:])
        Xb = Xb.contiguous(memory_format=torch.channels_last)  # b x M x H x W
        with autocast(device):
            loss = step_fn(model, Xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def expand_upsample(x, size=None, scale_factor=None, mode="nearest", **_):
    """Nearest x2 upsampling as a broadcast: its backward is a plain sum."""
    B, C, H, W = x.shape
    if size is not None and tuple(size) != (2 * H, 2 * W):
        return F.interpolate(x, size=size, mode=mode)
    return x[:, :, :, None, :, None].expand(B, C, H, 2, W, 2).reshape(B, C, 2 * H, 2 * W)


@contextmanager
def patched_upsample():
    original = aelab_models.F.interpolate
    aelab_models.F.interpolate = expand_upsample
    try:
        yield
    finally:
        aelab_models.F.interpolate = original


def check(device) -> None:
    """Grouped training equals training the M models separately (same batches)."""
    torch.manual_seed(0)
    M, N, b = 3, 64, 16
    X = (torch.rand(N, 1, 28, 28) * 255).to(torch.uint8).to(device)
    separate = [ConvAutoencoder().to(device) for _ in range(M)]
    grouped = GroupedAE(separate).to(device, memory_format=torch.channels_last)
    perms = torch.stack([torch.randperm(N) for _ in range(M)]).to(device)
    train_grouped(grouped, X, perms, b, device)
    for i, model in enumerate(separate):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for s in range(0, N, b):
            loss = reconstruction_objective(model, (to_float(X[perms[i, s:s + b]]),))
            opt.zero_grad()
            loss.backward()
            opt.step()
        ours = [w for w in model.parameters() if w.dim() == 4]
        for w, g in zip(ours, grouped.conv_weights(i)):
            gap = (w - g).abs().max().item()
            assert gap < 1e-4, f"model {i}: grouped differs from separate by {gap:.2e}"
    x = torch.rand(2, 4, 7, 7, device=device)
    assert torch.equal(expand_upsample(x), F.interpolate(x, scale_factor=2))
    print(f"check on {device}: grouped == separate, expand upsample == interpolate")


def measure(device, M, batch, per_model, repeats=3) -> None:
    X = tile(load_dataset("mnist", "train", quiet=True).X, per_model).to(device)

    def vmap_fit():
        torch.manual_seed(0)
        fit_many([ConvAutoencoder() for _ in range(M)], [(X,)] * M,
                 reconstruction_objective, strategy="vmap", num_epochs=1,
                 batch_size=batch, device=device, quiet=True)

    def vmap_expand():
        with patched_upsample():
            vmap_fit()

    def grouped(compiled=False):
        # One network and one compiled loss per variant, so every timed call is a
        # plain epoch (a new network each call would make torch.compile recompile).
        torch.manual_seed(0)
        model = GroupedAE([ConvAutoencoder() for _ in range(M)])
        model.to(device, memory_format=torch.channels_last)
        step = torch.compile(grouped_loss) if compiled else None

        def run():
            perms = torch.stack([torch.randperm(per_model) for _ in range(M)]).to(device)
            train_grouped(model, X, perms, batch, device, step)
        return run

    variants = {"fit_many vmap (aelab now)": vmap_fit,
                "fit_many vmap, expand upsample": vmap_expand,
                "grouped network": grouped(),
                "grouped network, torch.compile": grouped(True)}
    print(f"| {M} models x batch {batch}, {per_model} images each | images/s "
          "(median of 3, aggregate) |\n| --- | ---: |")
    for name, fn in variants.items():
        try:  # a warm-up call (and compilation), then `repeats` timed ones
            seconds, _ = interleave({name: lambda small, fn=fn: fn()}, repeats, device)
            rate = M * per_model / median(seconds[name])
            print(f"| {name} | {rate:,.0f} |", flush=True)
        except Exception as err:  # noqa: BLE001 - one candidate failing is a result too
            print(f"| {name} | failed: {type(err).__name__}: {str(err)[:80]} |",
                  flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="correctness only, tiny sizes")
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--per-model", type=int, default=8192)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check(device)
    if not args.check:
        measure(device, args.models, args.batch, args.per_model)
