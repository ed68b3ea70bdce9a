# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Reconstruction as an auxiliary objective, and what pooling switches keep
#
# *Paper: Yuting Zhang, Kibok Lee & Honglak Lee (2016), "Augmenting Supervised
# Neural Networks with Unsupervised Objectives for Large-scale Image
# Classification", ICML 2016.*
#
# **The question.** Lessons 01-04 pretrained with an autoencoder, then
# fine-tuned. Zhang et al. turn it around: a *trained* classifier gets a
# second, mirrored pathway that decodes its features back into the image, and
# the whole network is then fine-tuned on one loss, classification plus
# reconstruction, **C + λU**. Does the reconstruction objective help the
# classifier? And what does a classifier's representation keep of the image,
# layer by layer, once max-pooling has thrown away *where* each maximum was?
#
# **The paper's claims** (checked at the end):
# 1. **Table 1:** every network augmented with a decoding pathway beats the
#    classifier alone (16-layer VGGNet on ImageNet: top-1 error 29.05% →
#    27.39% single-crop for the best, SWWAE-all; about 1.3-1.7 points);
# 2. **§5:** the pooling switches are "helpful, but not critical" for the
#    classifier (SWWAE and SAE variants within 0.2 points of each other in
#    Table 1), while they matter for the reconstruction;
# 3. **§4.3:** the layer-wise reconstruction loss regularises: SAE/SWWAE-all
#    reach lower validation error than SAE/SWWAE-first (27.54 vs 27.70 and
#    27.39 vs 27.60);
# 4. **§4.2, Figures 4-5:** decoding a trained classifier's features with the
#    *known* pooling switches ("what-where") reconstructs the image far better
#    than unpooling to a fixed position, and the gap grows with depth: from
#    the deepest layer, fixed unpooling gives a blur, known switches the shapes.
#
# We rebuild them in small, on Fashion-MNIST (MNIST too in the `paper`
# profile, and CIFAR-10 when it can be downloaded).
#
# **This notebook is the experiment.** The networks (macro-layers, the two
# unpoolings, the inverting decoders), the joint loss (which you write), the
# unpooling with switches (which you write), the three-step training recipe,
# the protocol loop over label budgets × seeds × networks and the rules of the
# verdict are in the cells below. `aelab run joint` executes this same text
# headless.

# %% [markdown]
# On Colab, this cell installs aelab first (elsewhere it does nothing). It
# keeps Colab's own ipywidgets 7.7, which shows aelab's widgets as they are
# (no custom widget manager needed). The command is Colab's `!pip install`,
# written as Python: should pip replace a package Colab had already imported,
# Colab says so and offers to restart the runtime.

# %%
import sys

if "google.colab" in sys.modules:  # Colab starts without aelab
    import os

    from IPython import get_ipython

    class InstallFailed(Exception):
        def _render_traceback_(self):  # one line, not a traceback
            return [f"InstallFailed: {self}"]

    # AELAB_SOURCE: an uploaded wheel or zip, or a git URL (the README says how)
    AELAB = os.environ.get("AELAB_SOURCE",
                           "aelab @ git+https://github.com/aelab-course/aelab")
    get_ipython().system(f'pip install -q "{AELAB}"')
    if get_ipython().user_ns.get("_exit_code"):  # `!pip` does not raise
        raise InstallFailed(f"pip could not install {AELAB}: upload the aelab wheel "
                            "(Files pane), run `%env AELAB_SOURCE=/content/<its name>`"
                            ", then this cell again")

# %% [markdown]
# Seed everything first, so two runs give the same numbers.

# %%
import functools
import math
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import aelab
from aelab import metrics, plot, widgets
from aelab.exercises import answer, check, close
from aelab.splits import to_float
from aelab.study import (Claim, Gates, Results, beats, health_gate, judge, markdown,
                         paired_effect, paired_gaps, plateau, rule, within)

aelab.seed_everything(0)

# %% [markdown]
# **Profile.** `fast` (seconds, for the tests) trains tiny networks for a few
# steps: its numbers mean nothing. `classroom` (minutes on a 2-core laptop)
# runs the study on a Fashion-MNIST subset, two label budgets and 10 seeds;
# one dataset, because every network must train until its loss curves
# flatten (section 5's gate), and two datasets that far would not fit in ten
# minutes on 2 cores. `paper` (a GPU) uses the full training sets, wider
# networks, more steps, 20 seeds, and adds MNIST, and CIFAR-10 when it can be
# downloaded. Every trained network is cached: a re-run is quick.
#
# **Seeds.** The effect the paper reports is 1-2 points; the spread of a small
# network's accuracy over seeds is as large. A verdict needs at least 5 paired
# seeds, and an effect that small needs more: the classroom profile runs 10.
# `aelab run joint --seeds 10-19` (or `AELAB_SEEDS=10-19`) replaces them, to
# rerun the study on seeds nobody tuned on.
#
# **Steps** (`<phase>_steps`, optimizer steps of `batch_size` images, at every
# budget; at least `min_epochs` passes over the labeled images, so that each
# loss curve has enough points to show whether it flattened): `clf_steps` for
# the classifier, `dec_steps` for the decoders, `ft_steps` for the joint
# fine-tuning at the reduced rate `ft_lr` (section 4 has the recipe).

# %%
PROFILE = aelab.get_profile()
SETTINGS = {
    "fast": dict(datasets=("mnist",), pool_size=400, num_test=200, widths=(4, 8),
                 budgets=(50,), seeds=(0, 1), batch_size=32, min_epochs=4,
                 clf_steps=16, dec_steps=12, ft_steps=8, lr=2e-3, ft_lr=5e-4,
                 lam=1.0, lambdas=(10.0,), inv_images=200, inv_steps=12,
                 inv_seeds=2),
    # lr 5e-3 and these steps: the shortest we tried at which every network of
    # two disjoint seed sets reached its plateau (the trials are in
    # benchmarks/RESULTS.md)
    "classroom": dict(datasets=("fashion_mnist",), pool_size=3000,
                      num_test=1000, widths=(4, 8, 16), budgets=(100, 300),
                      seeds=tuple(range(10)), batch_size=32, min_epochs=6,
                      clf_steps=1200, dec_steps=300, ft_steps=600, lr=5e-3,
                      ft_lr=5e-4, lam=1.0, lambdas=(), inv_images=384,
                      inv_steps=450, inv_seeds=5),
    "paper": dict(datasets=("mnist", "fashion_mnist", "cifar10"), pool_size=None,
                  num_test=10000, widths=(32, 64, 128), budgets=(100, 1000, 10000),
                  seeds=tuple(range(20)), batch_size=32, min_epochs=10,
                  clf_steps=3000, dec_steps=1500, ft_steps=1500, lr=2e-3,
                  ft_lr=5e-4, lam=1.0, lambdas=(0.1, 0.3, 3.0, 10.0),
                  inv_images=20000, inv_steps=3000, inv_seeds=10),
}[PROFILE]
SEEDS = aelab.profile.get_seeds(SETTINGS["seeds"])  # AELAB_SEEDS / --seeds win
BATCH_SIZE = SETTINGS["batch_size"]  # Adam, for every network in the study
print(PROFILE, SETTINGS, "seeds", SEEDS)
device = aelab.get_device()

# %% [markdown]
# ## 1 · The data
#
# For each dataset: an unlabeled **pool** (the images the label budgets are
# drawn from, and what the inverting decoders of section 6 learn from) and a
# fixed **test** set. A dataset that cannot be loaded here is skipped, and its
# claims say NOT TESTED.

# %%
DATA, MISSING = {}, {}
for name in SETTINGS["datasets"]:
    try:
        train = aelab.load_dataset(name, "train", quiet=True)
        test = aelab.load_dataset(name, "test", quiet=True)
    except aelab.data.DataError as err:
        MISSING[name] = str(err).split(".")[0]
        continue
    splits = aelab.make_splits(train.y, seed=0, pool_size=SETTINGS["pool_size"])
    DATA[name] = dict(pool=train.X[splits.pool], pool_y=train.y[splits.pool],
                      X_test=test.X[:SETTINGS["num_test"]],
                      y_test=test.y[:SETTINGS["num_test"]])
    print(f"{name}: pool {len(splits.pool):,} images {tuple(train.X.shape[1:])}, "
          f"test {len(DATA[name]['X_test']):,}  ({train.provenance.source})")
for name, why in MISSING.items():
    print(f"{name}: not available here ({why[:90]}...)")

# %% [markdown]
# ## 2 · The augmented network
#
# The classifier (§3.1) is a stack of **macro-layers**, each a 3×3
# convolution, a ReLU and a 2×2 max-pool: a_l = f_l(a_{l-1}), a_0 = x, and a
# linear classifier reads the last one, a_L. The **decoding pathway** mirrors
# it (§3.2): f_l^dec unpools a_l back to the size before the pool, then a 3×3
# convolution maps it to a_{l-1}'s channels. Three ways to wire and score it:
#
# * **SAE-first** (eq. 3): decode from the top, â_L = a_L, â_{l-1} =
#   f_l^dec(â_l), and score only the image: U = ‖x̂ − x‖²;
# * **SAE-all**: the same pathway, and score every level on the way down:
#   U = Σ_{l=0}^{L-1} γ_l ‖â_l − a_l‖²;
# * **SAE-layerwise**: each macro-layer inverts *itself* from the clean
#   encoder activation, â_{l-1} = f_l^dec(a_l), with the same U as SAE-all.
#
# Each comes with two unpoolings. **Fixed** switches put every value at the
# top-left of its 2×2 window (the paper's "SAE"). **Known** switches put it
# back where the max-pool found its maximum: the encoder tells the decoder
# *where*, the features say *what* ("SWWAE", the stacked what-where
# autoencoder). The pooling keeps its switches (`return_indices=True`), the
# fixed unpooling ignores them:

# %%
def switch_pool(X):
    """2x2 max-pool and its switches (the argmax of each window)."""
    return F.max_pool2d(X, 2, return_indices=True)  # C x H x W -> C x H/2 x W/2


class FixedUnpool(nn.Module):
    """Unpooling with fixed switches: each value at the top-left of its 2x2
    window, zeros elsewhere (the switches are not used)."""

    def forward(self, X, switches, output_size):
        N, C, h, w = X.shape
        out = X.new_zeros(N, C, *tuple(output_size)[-2:])
        out[:, :, 0:2 * h:2, 0:2 * w:2] = X  # C x h x w -> C x H x W
        return out


# %% [markdown]
# The network. `forward` returns the logits and the list of (target,
# prediction) pairs that U scores. `detach=True` makes the targets a_l
# constants of U (section 4 says why that is a choice, and measures it).

# %%
class AugmentedNet(nn.Module):
    """A classifier of macro-layers with a mirrored decoding pathway (§3).

    mode "first":     â_L = a_L, â_{l-1} = f_l^dec(â_l); pairs [(x, â_0)]
    mode "all":       the same pathway; pairs [(a_l, â_l) for l = 0..L-1]
    mode "layerwise": â_{l-1} = f_l^dec(a_l) from the encoder's own a_l; the
                      same pairs as "all"
    unpool: a module called as unpool(X, switches, output_size).
    """

    def __init__(self, *, unpool, mode="all", widths=(8, 16, 32), in_channels=1,
                 in_size=28, num_classes=10, detach=False):
        super().__init__()
        self.mode, self.detach, self.widths = mode, detach, tuple(widths)
        chans, size = (in_channels, *widths), in_size
        self.encoder = nn.ModuleList(  # encoder[l - 1] is f_l (before its pool)
            nn.Sequential(nn.Conv2d(chans[k - 1], chans[k], 3, padding=1), nn.ReLU())
            for k in range(1, len(chans)))
        self.unpool = unpool
        self.decoder = nn.ModuleList(  # decoder[l - 1] is f_l^dec: a_l -> a_{l-1}
            nn.Sequential(nn.Conv2d(chans[k], chans[k - 1], 3, padding=1),
                          *([nn.ReLU()] if k > 1 else []))
            for k in range(1, len(chans)))
        for _ in widths:
            size //= 2  # 28 -> 14 -> 7 -> 3
        self.classifier = nn.Sequential(  # C x s x s -> C*s*s -> num_classes
            nn.Flatten(), nn.Linear(chans[-1] * size * size, num_classes))

    def extra_repr(self):  # in the repr, so the cache tells the variants apart
        return f"mode={self.mode!r}, detach={self.detach}"

    def encode(self, X):
        """[a_0 = X, a_1, ..., a_L], each macro-layer's switches and sizes."""
        acts, switches, sizes = [X], [], []
        for f in self.encoder:
            h = f(acts[-1])
            sizes.append(h.shape[-2:])
            h, idx = switch_pool(h)  # c x H x W -> c x H/2 x W/2
            acts.append(h)
            switches.append(idx)
        return acts, switches, sizes

    def classify(self, X):
        """The classification pathway alone: the logits."""
        return self.classifier(self.encode(X)[0][-1])

    def decode(self, k, h, switches, sizes):
        """f_k^dec: a_k -> a_{k-1}, unpooling with macro-layer k's switches."""
        h = self.unpool(h, switches[k - 1], sizes[k - 1])  # h x w -> H x W
        return self.decoder[k - 1](h)

    def forward(self, X):
        acts, switches, sizes = self.encode(X)
        L = len(self.encoder)
        logits = self.classifier(acts[L])
        targets = [a.detach() if self.detach and k > 0 else a
                   for k, a in enumerate(acts)]
        if self.mode == "layerwise":
            return logits, [(targets[k - 1], self.decode(k, acts[k], switches, sizes))
                            for k in range(1, L + 1)]
        preds, h = {}, acts[L]
        for k in range(L, 0, -1):
            h = preds[k - 1] = self.decode(k, h, switches, sizes)
        levels = [0] if self.mode == "first" else range(L)
        return logits, [(targets[k], preds[k]) for k in levels]


# %% [markdown]
# The profile's network, and the size of each macro-layer's output:

# %%
WIDTHS = SETTINGS["widths"]
model = AugmentedNet(unpool=FixedUnpool(), mode="all", widths=WIDTHS)
print(model)
for k, a in enumerate(model.encode(torch.zeros(1, 1, 28, 28))[0][1:], 1):
    print(f"a_{k}: {tuple(a.shape[1:])}")

# %% [markdown]
# What the two unpoolings do to one pooled 4×4 patch: the max of each 2×2
# window survives the pool; known switches put it back in place, fixed ones
# at the top-left.

# %%
patch = torch.tensor([[[[0.1, 0.9, 0.2, 0.0], [0.3, 0.4, 0.0, 0.8],
                        [0.7, 0.0, 0.1, 0.2], [0.2, 0.1, 0.6, 0.3]]]])
pooled, switches = switch_pool(patch)
print("patch\n", patch[0, 0].numpy(), "\npooled\n", pooled[0, 0].numpy())
print("fixed unpooling\n", FixedUnpool()(pooled, switches, (4, 4))[0, 0].numpy())

# %% [markdown]
# **Exercise 1.** Unpool with known switches. `F.max_pool2d(X, 2,
# return_indices=True)` returns, for every pooled value, the index of its
# maximum in the flattened H×W plane of its channel (`switches`, the same
# shape as the pooled values). Put each value at that index of an all-zero
# plane of `output_size` (H, W), and return the planes as (N, C, H, W).
# (`Tensor.scatter` along the flattened plane does it in one line;
# `F.max_unpool2d` is the library's version, also allowed.)

# %%
def unpool_with_switches(X, switches, output_size):
    ...  # your code here: return a (N, C, H, W) tensor


# %% [markdown]
# The check pools random images (even and odd sizes) and unpools them with
# your function.

# %%
def check_unpool(unpool_with_switches):
    ex = aelab.exercises  # the probes: gradients, dtypes, one fit_many step
    torch.manual_seed(0)
    X6, X7 = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 7, 7)

    def got(X):
        pooled, idx = F.max_pool2d(X, 2, return_indices=True)
        return answer(unpool_with_switches(pooled, idx, X.shape[-2:]))

    def want(X):
        pooled, idx = F.max_pool2d(X, 2, return_indices=True)
        return nn.MaxUnpool2d(2)(pooled, idx, output_size=X.shape[-2:])

    def odd_size_ok():  # a 6x6 plane cannot hold a 7x7 map's switches: it raises
        try:
            return close(got(X7), want(X7))
        except RuntimeError:
            return False

    pooled, idx = F.max_pool2d(X6, 2, return_indices=True)
    snapshot = ex.Snapshot(pooled, idx)  # before the first call

    def untouched():
        unpool_with_switches(pooled, idx, X6.shape[-2:])
        return snapshot.unchanged()

    def gradient_flows():  # the decoder learns through the unpooling
        values = pooled.clone().requires_grad_()
        out = answer(unpool_with_switches(values, idx, X6.shape[-2:]))
        return not ex.no_gradient(out.pow(2).sum(), [values])

    def in_dtype(dtype):
        out = got(X6.to(dtype))
        return out.dtype == dtype and close(out, want(X6.to(dtype)), rtol=1e-2)

    class Unpool(nn.Module):  # the lesson's KnownSwitches
        def forward(self, X, switches, output_size):
            return unpool_with_switches(X, switches, tuple(output_size)[-2:])

    def trains(strategy):  # two seeds side by side, as the study trains them
        nets = [AugmentedNet(unpool=Unpool(), mode="all", widths=(2, 2))
                for _ in range(2)]
        X, y = torch.rand(4, 1, 28, 28), torch.arange(4)

        def loss_fn(model, batch):
            logits, recons = model(batch[0])
            return F.cross_entropy(logits, batch[1]) + sum(
                F.mse_loss(p, t) for t, p in recons)
        return ex.one_step(nets, [(X, y)] * 2, loss_fn, strategy=strategy)

    return check("Exercise 1", [
        (lambda: got(X6), "it must run on 2x3x3x3 pooled values, their switches and "
         "output_size (6, 6)"),
        (lambda: torch.is_tensor(got(X6)) and got(X6).shape == X6.shape,
         "return a tensor of shape (N, C, H, W) with output_size's H and W"),
        (untouched, "leave X and switches as they are: scatter into a new zero "
         "tensor"),
        (lambda: not close(got(X6), FixedUnpool()(*switch_pool(X6), X6.shape)),
         "that is fixed unpooling (top-left): put each value at its switch"),
        (lambda: close((got(X6) != 0).sum(), F.max_pool2d(X6, 2).numel()),
         "one value per pooled window and zeros everywhere else"),
        (lambda: close(got(X6), want(X6)),
         "each value goes to the position its switch names, in its own channel"),
        (odd_size_ok,
         "use output_size: a 7x7 map pools to 3x3 and must unpool to 7x7"),
        (gradient_flows, "keep the graph: the decoder learns through the "
         "unpooling (no .detach(), .tolist() or torch.tensor(...))"),
        (lambda: in_dtype(torch.float64) and in_dtype(torch.bfloat16), "build the "
         "zero planes with X.new_zeros(...), so that dtype and device follow X "
         "(torch.zeros(...) is float32 on the CPU)"),
        (lambda: trains("sequential"), "fit_many cannot train the SWWAE nets "
         "through it: return the (N, C, H, W) tensor of unpooled values"),
        # fit_many stacks the nets under vmap on a GPU (never on a CPU): tried here
        (lambda: trains("vmap"), "on a GPU fit_many trains the nets under vmap, "
         "which cannot branch on a tensor's value: no `if` on a tensor, no .item() "
         "or .tolist() (torch.where(cond, a, b) picks without branching)"),
    ], done="the decoder now knows where each maximum was", code=unpool_with_switches)


check_unpool(unpool_with_switches)

# %% [markdown]
# *Solution:*

# %% tags=["solution", "hide-cell"]
def unpool_with_switches(X, switches, output_size):
    N, C, h, w = X.shape
    H, W = output_size
    flat = X.new_zeros(N, C, H * W).scatter(2, switches.flatten(2), X.flatten(2))
    return flat.view(N, C, H, W)


check_unpool(unpool_with_switches)

# %% [markdown]
# Your function becomes the SWWAE networks' unpooling layer.

# %%
check_unpool(unpool_with_switches).require()  # stop here if Exercise 1 is not done


class KnownSwitches(nn.Module):
    """Unpooling with known switches: your unpool_with_switches."""

    def forward(self, X, switches, output_size):
        return unpool_with_switches(X, switches, tuple(output_size)[-2:])


UNPOOLS = {"SAE": FixedUnpool, "SWWAE": KnownSwitches}


def augmented(kind, mode, in_shape, detach=False, widths=WIDTHS):
    """The augmented classifier: kind "SAE" (fixed) or "SWWAE" (known switches)."""
    return AugmentedNet(unpool=UNPOOLS[kind](), mode=mode, widths=widths,
                        in_channels=in_shape[0], in_size=in_shape[-1], detach=detach)


# %% [markdown]
# ## 3 · The joint loss
#
# The paper's eq. (2), averaged over a batch:
#
# **L(x, y) = C(x, y) + λ · U(x),  U(x) = Σ_l γ_l · mse(â_l, a_l)**
#
# C is the cross-entropy of the classifier; U sums the reconstruction
# errors of the levels the network scores ((target, prediction) pairs, one
# for SAE-first, L for SAE-all and SAE-layerwise). We take the *mean*
# squared error where the paper writes ‖·‖²: the two differ by a constant per
# layer, which the γ_l absorb. λ = 0 is the classifier alone.
#
# **Exercise 2.** Write it: `recons` is the list of (target, prediction)
# pairs the network returns, `gammas` one weight per pair.

# %%
def joint_loss(logits, y, recons, lam, gammas):
    ...  # your code here: return C + lam * U, a 0-dim tensor


# %% [markdown]
# The check compares your loss with the formula on random tensors.

# %%
def check_joint_loss(joint_loss):
    ex = aelab.exercises  # the probes: gradients, dtypes, one fit_many step
    torch.manual_seed(0)
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    recons = [(torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)),
              (torch.rand(6, 4, 4, 4), torch.rand(6, 4, 4, 4))]
    C = F.cross_entropy(logits, y)
    mse = [F.mse_loss(p, t) for t, p in recons]

    def got(lam=0.5, gammas=(1.0, 3.0), pairs=recons, logits=logits):
        return answer(joint_loss(logits, y, pairs, lam, list(gammas)))

    def same_gradients():  # every term must train: logits, targets, predictions
        leaves = [logits.clone().requires_grad_()] + [
            t.clone().requires_grad_() for pair in recons for t in pair]
        pairs = [tuple(leaves[1 + 2 * i: 3 + 2 * i]) for i in range(len(recons))]
        want = F.cross_entropy(leaves[0], y) + 0.5 * (
            F.mse_loss(pairs[0][1], pairs[0][0]) + 3.0 * F.mse_loss(*pairs[1][::-1]))
        return ex.same_gradients(got(pairs=pairs, logits=leaves[0]), want, leaves)

    def in_float64():
        pairs = [(t.double(), p.double()) for t, p in recons]
        return got(pairs=pairs, logits=logits.double()).dtype == torch.float64

    def trains(strategy):  # two seeds side by side, as the study trains them
        nets = [AugmentedNet(unpool=FixedUnpool(), mode="all", widths=(2, 2))
                for _ in range(2)]
        X, y = torch.rand(4, 1, 28, 28), torch.arange(4)

        def loss_fn(model, batch):
            logits, pairs = model(batch[0])
            return joint_loss(logits, batch[1], pairs, 1.0, [1.0] * len(pairs))
        return ex.one_step(nets, [(X, y)] * 2, loss_fn, strategy=strategy)

    # No bfloat16 case: a GPU trains under bf16 autocast, where logits and
    # predictions are bf16 but the cross-entropy and the MSE run in float32; the
    # ops that fail there on a float32 tensor made with torch.zeros (scatter,
    # index_put) fail the float64 case too. (Exercise 1's check has one: the
    # unpooling runs inside the network, on bf16 activations.)
    snapshot = ex.Snapshot(logits, y, recons)  # before the first call
    return check("Exercise 2", [
        (got, "it must run on logits (6x10), labels y and two (target, prediction) "
         "pairs"),
        (lambda: torch.is_tensor(got()) and got().dim() == 0,
         "return one number: a 0-dimensional tensor"),
        (snapshot.unchanged, "leave the logits, labels and pairs as they are: "
         "nothing in place"),
        (lambda: close(got(lam=0.0), C),
         "with lam = 0 it is the cross-entropy alone: F.cross_entropy(logits, y)"),
        (lambda: close(got(pairs=recons[:1], gammas=(1.0,)), C + 0.5 * mse[0]),
         "U is the mean squared error (F.mse_loss(prediction, target)), times lam, "
         "added to C (lam weighs U, not C)"),
        (lambda: close(got(gammas=(1.0, 1.0)), C + 0.5 * (mse[0] + mse[1])),
         "sum the errors of every (target, prediction) pair, not only the first"),
        (lambda: close(got(), C + 0.5 * (mse[0] + 3.0 * mse[1])),
         "weigh pair l's error by gammas[l]"),
        (same_gradients, "the right value, but not the gradient: keep every term "
         "a tensor (no .item(), float(), .detach() or torch.tensor([...]))"),
        (in_float64, "keep the inputs' dtype (float64 here): multiply by the "
         "Python floats gammas[l], no torch.tensor(gammas) of a fixed dtype"),
        (lambda: trains("sequential"), "fit_many cannot train on it: return one "
         "tensor, C + lam * U"),
        # fit_many stacks the nets under vmap on a GPU (never on a CPU): tried here
        (lambda: trains("vmap"), "on a GPU fit_many trains the nets under vmap, "
         "which cannot branch on a tensor's value: no `if` on a tensor, no .item() "
         "(torch.where(cond, a, b) picks without branching)"),
    ], done="C + lam * sum_l gamma_l * mse(a^_l, a_l)", code=joint_loss)


check_joint_loss(joint_loss)

# %% [markdown]
# *Solution:*

# %% tags=["solution", "hide-cell"]
def joint_loss(logits, y, recons, lam, gammas):
    U = sum(g * F.mse_loss(pred, target) for g, (target, pred) in zip(gammas, recons))
    return F.cross_entropy(logits, y) + lam * U


check_joint_loss(joint_loss)

# %% [markdown]
# Your loss in `fit`'s (model, batch) form, and the classifier's own: C alone,
# through the classification pathway only (the decoder is not even run).

# %%
check_joint_loss(joint_loss).require()  # stop here if Exercise 2 is not done


def objective(lam, gammas):
    """The joint loss in fit's (model, batch) form, with this lam and these gammas."""
    def loss_fn(model, batch):
        X, y = batch
        logits, recons = model(X)
        return joint_loss(logits, y, recons, lam, gammas[:len(recons)])
    return loss_fn


def classification_loss(model, batch):
    X, y = batch
    return F.cross_entropy(model.classify(X), y)


# %% [markdown]
# ## 4 · The study: C + λU against C alone, with the paper's recipe
#
# **The recipe** (§4.1). The paper does not train the augmented networks from
# scratch: it starts from a trained VGGNet, and
# 1. **the classifier** is trained first, on C alone;
# 2. **the decoding pathway** is trained with the classifier frozen (on U: C
#    cannot change, so C + λU moves only the decoder);
# 3. **everything** is then fine-tuned jointly on C + λU, at a reduced
#    learning rate.
#
# We do the same at every label budget and seed: Adam, `lr` in step 1 and 2,
# `ft_lr` in step 3, batches of `batch_size`. The **classifier alone** gets
# step 3 too, on C alone (λ = 0) at the same reduced rate for the same steps,
# so that the comparison is between two networks fine-tuned alike and
# differs only in U (the paper: fine-tuning VGGNet further on C "did not lead
# to significant performance change"). Every arm at a seed starts step 3 from
# the *same* classifier, and every decoder at a seed from the same initial
# weights: the comparison is paired all the way. (The paper also initialises
# the SAE-first/all decoders from trained SAE-layerwise ones; ours are small
# enough to train directly.) As in the paper, every training image has its
# label, and U is computed on the same images (no extra unlabeled data).
#
# The arms, at each label budget and seed:
# * **classifier alone**: steps 1 and 3 on C;
# * the six augmented networks, SAE / SWWAE × first / all / layerwise, at
#   λ = `lam` (1);
# * **SWWAE-all, targets detached** (the choice below);
# * SWWAE-all at the other λ of `lambdas`, for the λ slider of section 5.
#
# **Detaching the targets, a choice.** In U = Σ γ_l ‖â_l − a_l‖², the
# targets a_l (l ≥ 1) are the encoder's own activations. Taken literally, as
# eq. (2) writes it (and as Caffe's loss layers do unless told otherwise), U's
# gradient flows into a_l too: the encoder can lower U by *shrinking* the
# activations the decoder must match, rather than by keeping what they say
# about the image. A detached target is a constant: U then only asks that
# a_l be *decodable*. Our default is the paper's literal objective (not
# detached); the detached arm measures what the choice changes, on accuracy
# and on the size of the activations (section 4's last table).

# %%
# The claims' margins, fixed before any network trains (section 7 says why)
MARGIN, SWITCH_MARGIN, RECON_MARGIN = 0.5, 1.0, 5.0
INV_MARGIN, DEEPER_MARGIN = 1.1, 0.2
MODES = ("first", "all", "layerwise")
LAM = SETTINGS["lam"]
DETACHED = "SWWAE-all, targets detached"
ARMS = {"classifier alone": None}  # arm -> (kind, mode, lam, detach)
for kind in ("SAE", "SWWAE"):
    for mode in MODES:
        ARMS[f"{kind}-{mode}"] = (kind, mode, LAM, False)
ARMS[DETACHED] = ("SWWAE", "all", LAM, True)
for lam in SETTINGS["lambdas"]:
    ARMS[f"SWWAE-all λ={lam:g}"] = ("SWWAE", "all", lam, False)
AUGMENTED = [f"{kind}-{mode}" for kind in ("SAE", "SWWAE") for mode in MODES]


def labeled_subset(d, n, seed):
    """n class-balanced images of the pool, seed's draw (nested over n)."""
    order = aelab.splits.stratified_order(d["pool_y"], seed)[:n]
    return d["pool"][order], d["pool_y"][order]


def train(nets, subsets, loss_fn, steps, lr, desc, seeds=SEEDS):
    """One fit_many over the seeds: `steps` optimizer steps (at least
    min_epochs passes over the images), one network per seed."""
    n = len(subsets[0][0])
    num_epochs = max(SETTINGS["min_epochs"], round(steps / math.ceil(n / BATCH_SIZE)))
    return aelab.fit_many(nets, subsets, loss_fn, num_epochs=num_epochs, lr=lr,
                          batch_size=BATCH_SIZE, seeds=list(seeds), cache=True,
                          quiet=True, desc=desc)


def copy_of(net, kind, mode, in_shape, detach=False, train_only=None):
    """A network of this kind and mode with `net`'s weights (every variant has
    the same parameters); only the named parts (`train_only`) are trainable."""
    new = augmented(kind, mode, in_shape, detach)
    new.load_state_dict(net.state_dict())
    if train_only is not None:
        new.requires_grad_(False)
        for part in train_only:
            getattr(new, part).requires_grad_(True)
    return new


# %% [markdown]
# **Step 1: the classifiers.** One per (dataset, budget, seed), on C alone,
# its decoder frozen at its initial weights (which every decoder of that seed
# then starts from). `fit_many` trains the seeds of a budget in one call and
# picks how: on a GPU stacked side by side under `torch.func.vmap`, on a CPU
# (for convolutional networks) one per core in worker processes on Linux, one
# after another elsewhere.

# %% tags=["nbval-ignore-output"]
SUBSETS, CLASSIFIERS, HISTORY = {}, {}, {}  # HISTORY[ds, n, arm, seed][step] = History
START = time.perf_counter()
for ds, d in DATA.items():
    shape = tuple(d["pool"].shape[1:])
    for n in SETTINGS["budgets"]:
        SUBSETS[ds, n] = [labeled_subset(d, n, seed) for seed in SEEDS]
        nets = []
        for seed in SEEDS:
            torch.manual_seed(seed)
            net = augmented("SWWAE", "first", shape)
            net.decoder.requires_grad_(False)  # step 1 trains the classification pathway
            nets.append(net)
        hs = train(nets, SUBSETS[ds, n], classification_loss, SETTINGS["clf_steps"],
                   SETTINGS["lr"], f"{ds} {n}: classifiers")
        for seed, net, h in zip(SEEDS, nets, hs):
            CLASSIFIERS[ds, n, seed] = net.eval()
            for arm in ARMS:
                HISTORY[ds, n, arm, seed] = {1: h}
    print(f"{ds}: {len(SETTINGS['budgets'])} budgets x {len(SEEDS)} classifiers "
          f"trained or loaded ({time.perf_counter() - START:.0f} s so far)")

# %% [markdown]
# **The balancing weights γ_l** (§4.1: "make the weighted loss for every
# layer comparable to each other"). Our rule, fixed before training: γ_0 = 1
# for the image, and γ_l = mean(x²) / mean(a_l²) on 256 pool images, with the
# a_l of the trained classifiers of step 1 (averaged over their budgets and
# seeds). Each term then starts on the scale of the pixel term. One set per
# dataset, so every seed and budget of a dataset uses the same weights.

# %%
def activation_scale(net, X):
    """mean(a_l^2) for l = 0 (the image), 1, ..., L on these images."""
    acts = aelab.predict(lambda xb: net.encode(xb)[0], X)
    return [float(a.pow(2).mean()) for a in acts]


def balancing_weights(ds):
    X = DATA[ds]["pool"][:256]
    scales = np.mean([activation_scale(net, X)[:-1] for (ds_, _, _), net
                      in CLASSIFIERS.items() if ds_ == ds], axis=0)
    return [round(float(scales[0] / s), 3) for s in scales]


GAMMAS = {ds: balancing_weights(ds) for ds in DATA}
print("gamma_l for l = 0 (image), 1, ...:", GAMMAS)

# %% [markdown]
# **Steps 2 and 3.** For each (kind, mode): a copy of each classifier, only
# its decoder trainable, on C + λU (step 2); then, for each arm of that kind
# and mode, a copy of the result with everything trainable, fine-tuned on
# C + λU at `ft_lr` (step 3). Each trained network is one tidy row: test
# accuracy, training accuracy and loss, and how well it redraws the test
# images.

# %% tags=["nbval-ignore-output"]
def measure(net, d, subset):
    """One trained network's row: accuracy, training fit, image reconstruction."""
    X_lab, y_lab = subset
    logits, recons = aelab.predict(net, d["X_test"])
    train_logits = aelab.predict(net.classify, X_lab)
    target, X_hat = recons[0]  # the image and its reconstruction
    health = metrics.check_reconstruction(target, X_hat)
    return dict(accuracy=metrics.accuracy(logits, d["y_test"]),
                train_accuracy=metrics.accuracy(train_logits, y_lab),
                train_ce=float(F.cross_entropy(train_logits, y_lab.long())),
                mse=health.mse, recon_ratio=health.ratio,
                recon_pct=100 * health.ratio)


rows, NETS, SCALES = [], {}, {}
for ds, d in DATA.items():
    shape = tuple(d["pool"].shape[1:])
    X_scale = d["X_test"][:256]
    for n in SETTINGS["budgets"]:
        clfs = [CLASSIFIERS[ds, n, seed] for seed in SEEDS]
        stage = {}  # (kind, mode) -> the step-2 networks, one per seed
        for arm, spec in ARMS.items():
            if spec is None:  # the classifier alone: step 3 on C
                nets = [copy_of(c, "SWWAE", "first", shape,
                                train_only=("encoder", "classifier")) for c in clfs]
                hs = train(nets, SUBSETS[ds, n], classification_loss,
                           SETTINGS["ft_steps"], SETTINGS["ft_lr"], f"{ds} {n}: {arm}")
                lam = 0.0
            else:
                kind, mode, lam, detach = spec
                if (kind, mode) not in stage:  # step 2: the decoder, classifier frozen
                    dec = [copy_of(c, kind, mode, shape, train_only=("decoder",))
                           for c in clfs]
                    hs2 = train(dec, SUBSETS[ds, n], objective(LAM, GAMMAS[ds]),
                                SETTINGS["dec_steps"], SETTINGS["lr"],
                                f"{ds} {n}: {kind}-{mode} decoder")
                    stage[kind, mode] = list(zip(dec, hs2))
                nets = [copy_of(net, kind, mode, shape, detach)
                        for net, _ in stage[kind, mode]]
                hs = train(nets, SUBSETS[ds, n], objective(lam, GAMMAS[ds]),
                           SETTINGS["ft_steps"], SETTINGS["ft_lr"], f"{ds} {n}: {arm}")
            for i, (seed, net, h) in enumerate(zip(SEEDS, nets, hs)):
                if spec is not None:
                    HISTORY[ds, n, arm, seed][2] = stage[kind, mode][i][1]
                HISTORY[ds, n, arm, seed][3] = h
                NETS[ds, n, arm, seed] = net.eval()
                SCALES[ds, n, arm, seed] = activation_scale(net, X_scale)[1:]
                rows.append(dict(method=f"{arm} ({ds})", budget=n, seed=seed, arm=arm,
                                 dataset=ds, lam=lam,
                                 **measure(net, d, SUBSETS[ds, n][i])))
            if arm == "classifier alone":
                for seed, c in zip(SEEDS, clfs):
                    SCALES[ds, n, "step 1", seed] = activation_scale(c, X_scale)[1:]
        print(f"{ds}, {n} labels: {len(ARMS)} arms x {len(SEEDS)} seeds trained or "
              f"loaded ({time.perf_counter() - START:.0f} s so far)")
# %% [markdown]
# **Did they train?** Each (arm, seed) of a dataset gets a **health gate**,
# over every budget:
# * its loss curves reached a **plateau**: over the last quarter of a curve
#   the loss fell by less than 5% of the curve's whole fall (`plateau`). The
#   steps that minimise the same objective make one curve: a fine-tuning
#   that starts where its first step left off has almost nothing left to
#   fall, and "5% of almost nothing" would fail a network that is done. So
#   the classifier alone is read on step 1 (C, from scratch) and on steps
#   1 + 3 (C); an augmented network on step 1 and on steps 2 + 3 (C + λU; at
#   another λ than step 2's, steps 2 and 3 are read apart);
# * its test accuracy beats chance by more than 5 points at every budget;
# * an augmented network's image reconstruction beats the best constant
#   image (test MSE under 90% of the mean image's), at every budget.
#
# A claim that rests on a model that failed its gate reads INCONCLUSIVE,
# naming the model: "not trained yet" is not evidence against the paper.

# %%
GATE = dict(max_ratio=0.9, last=0.25, max_drop=0.05)  # the gate's limits
STEPS = {1: "classifier", 2: "decoder", 3: "fine-tune"}
budgets = SETTINGS["budgets"]


def curves_gate(gate, name, curves):
    """One plateau check over several loss curves (the worst one is shown)."""
    flat = [plateau(c, last=GATE["last"], max_drop=GATE["max_drop"]) for c in curves]
    worst = next((text for ok, text in flat if not ok), flat[-1][1])
    gate.checks[f"{name} plateau"] = (all(ok for ok, _ in flat), worst)


def curves_of(arm):
    """{name: steps}: the loss curves an arm's gate reads (one objective each)."""
    spec = ARMS[arm]
    if spec is None:
        return {"step 1": (1,), "steps 1+3 (C)": (1, 3)}
    if spec[2] == LAM:
        return {"step 1": (1,), "steps 2+3 (C + λU)": (2, 3)}
    return {"step 1": (1,), "step 2": (2,), "step 3": (3,)}


def arm_gate(ds, arm, seed):
    gate = aelab.verdicts.Gate(f"{arm} ({ds})", seed)
    for name, steps in curves_of(arm).items():
        curves_gate(gate, name, [
            [x for step in steps for x in HISTORY[ds, n, arm, seed][step].train_loss]
            for n in budgets])
    mine = [r for r in rows if (r["dataset"], r["arm"], r["seed"]) == (ds, arm, seed)]
    chance = metrics.chance_accuracy(DATA[ds]["y_test"])
    lowest = min(r["accuracy"] for r in mine)
    gate.checks["beats chance"] = (lowest > chance + 0.05, f"lowest {100 * lowest:.1f}% "
                                   f"vs chance {100 * chance:.0f}%")
    if ARMS[arm] is not None:
        worst = max(r["recon_ratio"] for r in mine)
        gate.checks["beats constant"] = (
            worst < GATE["max_ratio"], f"image MSE up to {worst:.0%} of the best "
            f"constant image's (limit {GATE['max_ratio']:.0%})")
    return gate


gates = Gates(arm_gate(ds, arm, seed) for ds in DATA for arm in ARMS for seed in SEEDS)
print(gates.summary())

# %% [markdown]
# The loss curves of the first seed at the largest budget, step by step: the
# classifier (C), the decoders with the classifier frozen (C + λU, C
# constant), the joint fine-tuning.

# %% alt="Loss curves of the first seed at the largest label budget on a log scale, per dataset, three panels for the three training steps (the classifier, the decoders with the classifier frozen, the joint fine-tuning), one line per arm."
fig, axes = plt.subplots(len(DATA), 3, figsize=(13, 3.2 * len(DATA)), squeeze=False)
for row, ds in zip(axes, DATA):
    for ax, (step, name) in zip(row, STEPS.items()):
        for c, arm in enumerate(("classifier alone", "SAE-all", "SWWAE-all",
                                 "SWWAE-first")):
            h = HISTORY[ds, budgets[-1], arm, SEEDS[0]].get(step)
            if h is not None and (step != 1 or c == 0):
                ax.plot(np.arange(1, len(h.train_loss) + 1), h.train_loss,
                        color=f"C{c}", label=arm if step != 1 else "every arm")
        ax.set(yscale="log", xlabel="epoch", ylabel="train loss",
               title=f"{ds}, step {step}: {name} ({budgets[-1]} labels, "
                     f"seed {SEEDS[0]})")
        ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ### The table: test accuracy per label budget
#
# Mean [min-max over seeds], per dataset; "classifier alone" is λ = 0.

# %% alt="Test accuracy against the label budget, one panel per dataset, for the classifier alone, SAE-all and SWWAE-all."
def table(ds, arms, value="accuracy"):
    return Results([dict(r, method=r["arm"]) for r in rows
                    if r["dataset"] == ds and r["arm"] in arms], value=value)


TABLES = []
for ds in DATA:
    TABLES.append(f"{ds}\n{table(ds, ['classifier alone', *AUGMENTED, DETACHED])}")
    print(TABLES[-1], "\n")
fig, axes = plt.subplots(1, len(DATA), figsize=(6 * len(DATA), 3.8), squeeze=False)
for ax, ds in zip(axes[0], DATA):
    plot.budget_curves(table(ds, ["classifier alone", "SAE-all", "SWWAE-all"]).curves(),
                       ax=ax, title=f"{ds}: test accuracy vs labels")
    ax.set_xscale("log")
fig.tight_layout()

# %% [markdown]
# **The paired gaps.** The table above averages over seeds; the claims look
# at each seed's *difference*: the arm minus the classifier alone, at the same
# seed, on the same labeled images, from the same step-1 classifier. Per
# budget and pooled over budgets (the mean of a seed's gaps), with the 95%
# bootstrap interval of the mean over seeds, in points of accuracy:

# %%
results = Results(rows)


def span(e, digits=1):
    """An effect's mean and 95% interval, signed: '+0.4 [-0.3, +1.1]'."""
    return f"{e.mean:+.{digits}f} [{e.low:+.{digits}f}, {e.high:+.{digits}f}]"


def gap_effect(method, rival, budget=None, margin=0.0, sense="above"):
    gaps = paired_gaps(results, method, rival, every_budget=budget is not None)
    per_seed = gaps[budget] if budget is not None else gaps[None]
    return paired_effect(list(per_seed.values()), margin, sense=sense, unit=" points")


lines = []
for ds in DATA:
    alone = f"classifier alone ({ds})"
    lines.append(f"{ds}: minus the classifier alone")
    for arm in [*AUGMENTED, DETACHED, *[a for a in ARMS if "λ" in a]]:
        per_budget = ", ".join(f"{n}: {span(gap_effect(f'{arm} ({ds})', alone, n))}"
                               for n in budgets)
        pooled = gap_effect(f"{arm} ({ds})", alone)
        lines.append(f"  {arm:<28} pooled {span(pooled, 2)}   per budget {per_budget}")
GAP_TABLE = "\n".join(lines)
print(GAP_TABLE)

# %% [markdown]
# **Better optimum or regulariser?** The paper found the augmented networks
# had *lower training error* too (§4.3), and read it as "a better local
# optimum" rather than regularisation. Training accuracy and cross-entropy on
# the labeled images, mean over seeds:

# %%
def mean_of(key, **where):
    return np.mean([r[key] for r in rows if all(r[k] == v for k, v in where.items())])


lines = [f"{'training accuracy % (CE)':<28}" + "".join(
    f"{ds.replace('_mnist', '')} {n:>5}".rjust(17) for ds in DATA for n in budgets)]
for arm in ["classifier alone", *AUGMENTED]:
    lines.append(f"{arm:<28}" + "".join(
        f"{100 * mean_of('train_accuracy', dataset=ds, budget=n, arm=arm):>9.1f} "
        f"({mean_of('train_ce', dataset=ds, budget=n, arm=arm):.3f})"
        for ds in DATA for n in budgets))
TRAIN_TABLE = "\n".join(lines)
print(TRAIN_TABLE)

# %% [markdown]
# **Detaching the targets: what the choice changes.** SWWAE-all with its
# targets detached against SWWAE-all as the paper writes it, per seed:
# accuracy (points; "within ±0.5" would say the choice does not matter), and
# the size of the activations after fine-tuning,
# mean(a_l²) as a share of the step-1 classifier's, mean over layers and
# budgets. If the literal objective shrank the activations to lower U, its
# share would sit well under the detached arm's.

# %%
def scale_share(ds, arm, seed):
    return float(np.mean([np.array(SCALES[ds, n, arm, seed])
                          / np.array(SCALES[ds, n, "step 1", seed]) for n in budgets]))


DETACH = {}
lines = []
for ds in DATA:
    DETACH[ds] = dict(
        accuracy=gap_effect(f"{DETACHED} ({ds})", f"SWWAE-all ({ds})",
                            margin=MARGIN, sense="within"),
        shares={arm: [scale_share(ds, arm, seed) for seed in SEEDS]
                for arm in ("classifier alone", "SWWAE-all", DETACHED)})
    lines.append(f"{ds}: detached minus not, accuracy {DETACH[ds]['accuracy']}")
    lines += [f"  {arm:<28} activations {np.mean(v):.2f}x the step-1 classifier's "
              f"[{min(v):.2f}-{max(v):.2f} over seeds]"
              for arm, v in DETACH[ds]["shares"].items()]
DETACH_TABLE = "\n".join(lines)
print(DETACH_TABLE)

# %% [markdown]
# ## 5 · λ: how much reconstruction?
#
# λ sets the trade: 0 is the classifier alone, a large λ makes the network
# mostly an autoencoder. The table shows SWWAE-all at every λ we trained;
# the slider below moves through the same cached runs (nothing trains), with
# the test images the network of the first seed redraws at the largest budget.

# %%
LAMBDAS = sorted({0.0, LAM, *SETTINGS["lambdas"]})


def lam_arm(lam):
    return ("classifier alone" if lam == 0 else "SWWAE-all" if lam == LAM
            else f"SWWAE-all λ={lam:g}")


LAMBDA_TABLES = []
for ds in DATA:
    t = table(ds, [lam_arm(lam) for lam in LAMBDAS])
    LAMBDA_TABLES.append(f"{ds}, SWWAE-all by λ\n{t}")
    print(LAMBDA_TABLES[-1], "\n")

# %% [markdown]
# **Try it.** Move λ: the accuracy of SWWAE-all at that λ against the
# classifier alone (bands span the seeds), and what the network redraws.

# %% tags=["nbval-ignore-output"]
def explore_lambda(dataset, lam):
    fig = widgets.new_figure(figsize=(10, 3.4))
    ax = fig.add_subplot(1, 2, 1)
    curves = table(dataset, ["classifier alone", lam_arm(lam)]).curves()
    plot.budget_curves(curves, ax=ax, title=f"{dataset}: λ = {lam:g}")
    ax.set_xscale("log")
    ax = fig.add_subplot(1, 2, 2)
    net = NETS[dataset, budgets[-1], lam_arm(lam), SEEDS[0]]
    X = DATA[dataset]["X_test"][:8]
    X_hat = aelab.predict(net, X)[1][0][1].clamp(0, 1)
    both = torch.cat([to_float(X), X_hat])  # 16 images: 2 rows of 8
    grid = both.view(2, 8, *X.shape[1:]).permute(0, 3, 1, 4, 2).reshape(
        2 * X.shape[-2], 8 * X.shape[-1], X.shape[1])
    ax.imshow(grid.squeeze(-1), cmap="gray", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[], title=f"top: test images; bottom: redrawn "
           f"({budgets[-1]} labels, seed {SEEDS[0]})")
    fig.tight_layout()
    return fig


widgets.interactive(
    explore_lambda,
    dataset=W.Dropdown(options=list(DATA), description="dataset"),
    lam=W.SelectionSlider(options=LAMBDAS, value=LAM, description="λ"))

# %% [markdown]
# ## 6 · Inverting a trained classifier (the paper's Figures 4-5, in small)
#
# Take the classifier of step 1 (trained on C alone, the largest budget),
# freeze it, and for each macro-layer k train a decoding pathway from a_k
# down to the image (`inverter`: the first k macro-layers, frozen, and a
# fresh decoder of k steps), on the reconstruction alone, U = mse(x̂, x).
# Twice: with the known switches of the frozen encoder (your unpooling), and
# with fixed unpooling. Both decoders see exactly the same features; the
# known switches add only *where* each maximum was. For the first `inv_seeds`
# seeds of the run (the effect is large: 5 are enough in the classroom
# profile); each decoder gets the same gate as above (plateau, beats the
# constant image).

# %%
def inverter(classifier, depth, kind, in_shape):
    """A decoding pathway from macro-layer `depth` of a trained classifier
    down to the image: its first `depth` macro-layers, copied and frozen, and
    a fresh decoder (the unused classifier head is frozen too)."""
    net = augmented(kind, "first", in_shape, widths=WIDTHS[:depth])
    for mine, theirs in zip(net.encoder, classifier.encoder):
        mine.load_state_dict(theirs.state_dict())
    net.encoder.requires_grad_(False)
    net.classifier.requires_grad_(False)
    return net


def reconstruction_loss(model, batch):
    X, = batch
    _, [(target, X_hat)] = model(X)
    return F.mse_loss(X_hat, target)


# %% [markdown]
# The decoders of every layer, both unpoolings, the seeds together:

# %% tags=["nbval-ignore-output"]
INVERT = {"known switches": "SWWAE", "fixed": "SAE"}
INV_SEEDS = SEEDS[:SETTINGS["inv_seeds"]]
INVERSION, INVERTERS = [], {}  # one row per (dataset, seed, layer, unpooling)
inv_gates = Gates()
for ds, d in DATA.items():
    shape = tuple(d["pool"].shape[1:])
    X_train = (d["pool"][:SETTINGS["inv_images"]],)
    for k in range(1, len(WIDTHS) + 1):
        for name, kind in INVERT.items():
            nets = [inverter(CLASSIFIERS[ds, budgets[-1], seed], k, kind, shape)
                    for seed in INV_SEEDS]
            hs = train(nets, [X_train] * len(INV_SEEDS), reconstruction_loss,
                       SETTINGS["inv_steps"], SETTINGS["lr"], f"{ds} invert a_{k} {name}",
                       seeds=INV_SEEDS)
            for seed, net, h in zip(INV_SEEDS, nets, hs):
                INVERTERS[ds, seed, k, name] = net.eval()
                _, [(target, X_hat)] = aelab.predict(net, d["X_test"])
                health = metrics.check_reconstruction(target, X_hat)
                INVERSION.append(dict(dataset=ds, seed=seed, layer=k, unpool=name,
                                      mse=health.mse, ratio=health.ratio))
                inv_gates.append(health_gate(
                    f"inverter a_{k} {name} ({ds})", seed, losses=h.train_loss,
                    error=health.mse, constant_error=health.constant_mse, **GATE))
print(inv_gates.summary())

# %% [markdown]
# The reconstruction error per layer: test MSE, mean [min-max] over seeds,
# and the ratio fixed / known (how many times worse fixed unpooling is). The
# best constant image's MSE is what a decoder that learned nothing would get.

# %%
def inversion_mse(ds, k, name):
    """{seed: test MSE} of the inverting decoders of layer k."""
    return {r["seed"]: r["mse"] for r in INVERSION
            if (r["dataset"], r["layer"], r["unpool"]) == (ds, k, name)}


def inversion_ratios(ds, k):
    """Per seed, fixed unpooling's MSE over known switches' (same features)."""
    known, fixed = inversion_mse(ds, k, "known switches"), inversion_mse(ds, k, "fixed")
    return [fixed[s] / known[s] for s in INV_SEEDS]


lines = [f"{'inversion: test MSE':<22}{'layer':>6}{'known switches':>22}"
         f"{'fixed':>22}{'fixed/known':>13}"]
for ds, d in DATA.items():
    for k in range(1, len(WIDTHS) + 1):
        parts = [np.array(list(inversion_mse(ds, k, name).values())) for name in INVERT]
        lines.append(f"{ds:<22}{k:>6}" + "".join(
            f"{v.mean():>9.4f} [{v.min():.4f}-{v.max():.4f}]" for v in parts)
            + f"{np.mean(inversion_ratios(ds, k)):>12.1f}x")
    lines.append(f"{ds:<22}{'':>6}  best constant image "
                 f"{metrics.best_constant_mse(to_float(d['X_test'])):.4f}")
INVERSION_TABLE = "\n".join(lines)
print(INVERSION_TABLE)

# %% [markdown]
# What each layer keeps: test images redrawn from a_1, a_2, ... of the
# classifier, with known switches and with fixed unpooling (the first seed).

# %% alt="Per dataset, ten test images in the top row and, below, their reconstructions from each layer's features of the classifier, with known switches and with fixed unpooling."
for ds, d in DATA.items():
    X = d["X_test"][:10]
    shown = {"input": X}
    for k in range(1, len(WIDTHS) + 1):
        for name in INVERT:
            net = INVERTERS[ds, SEEDS[0], k, name]
            shown[f"a_{k} {name}"] = aelab.predict(net, X)[1][0][1].clamp(0, 1)
    fig = plot.image_grid(shown, scale=0.8, suptitle=f"{ds}: inverting the "
                          "classifier trained alone")
# %% [markdown]
# ## 7 · The verdict
#
# **How a claim is judged** (as in lesson 01). A comparison is made *per
# seed*: the same labeled images, the same step-1 classifier and the same
# initial decoder in both arms. Over the seeds, the mean of those differences
# gets a 95% bootstrap interval, held against a **margin**, the smallest
# difference that matters: the interval entirely past it reads REPRODUCED,
# entirely short of it NOT REPRODUCED; an interval that straddles it, fewer
# than 5 seeds, or a model that failed its gate read INCONCLUSIVE (the line
# says which, and what would settle it). Budgets are pooled: a seed's effect
# is the mean of its gaps over the budgets (the per-budget gaps are in the
# table of section 4). The margins, written in section 4 before any network
# trained:
#
# * `MARGIN`, 0.5 points of test accuracy: "beats" means by at least half a
#   point, a third of the paper's gain. (The paper's -all over -first gaps,
#   0.16-0.21 points, are below it: our rule asks for more than its Table 1
#   shows there.)
# * `SWITCH_MARGIN`, 1 point: "not critical" means SWWAE and SAE of the same
#   wiring within ±1 point of each other, where the paper's gain over the
#   classifier is 1.3-1.7 points.
# * `RECON_MARGIN`, 5 points of image MSE, as a percentage of the best
#   constant image's: "helps the reconstruction" means at least that much
#   lower.
# * `INV_MARGIN`, 1.1x: in the inversion, fixed unpooling's error must be more
#   than 1.1 times the known switches' at every layer, and that ratio at least
#   `DEEPER_MARGIN` (0.2) larger at the deepest layer than at the first.
#
# One rule for every arm of a kind: "beats C alone" is the same rule for all
# six networks, and the switches rule compares SWWAE with SAE at each of the
# three wirings.
#
# Two helpers first: `On` judges a rule on another table of this run (the
# image errors, the training accuracy), and the inversion's rule is built
# from per-seed ratios.

# %%
class On(aelab.study.Rule):
    """A rule judged on another table of this run (the image errors, the
    training accuracy) instead of the test accuracy."""

    def __init__(self, table, inner, what):
        self.table, self.inner, self.arms = table, inner, inner.arms
        self.criterion = f"{what}: {inner.criterion}"

    def judge(self, results):
        return self.inner.judge(self.table)


def every(rules):
    return functools.reduce(lambda a, b: a & b, rules)


def inversion_rule(ds):
    """Known switches better at every layer, and more so at the deepest."""
    L = len(WIDTHS)

    def layer(k):
        def fn(_):
            e = paired_effect(inversion_ratios(ds, k), INV_MARGIN, center=1.0, unit="x")
            return e, f"layer {k}: {e}"
        return rule(f"fixed/known MSE at layer {k} above {INV_MARGIN:g}x", fn)

    def deeper(_):
        e = paired_effect(np.subtract(inversion_ratios(ds, L), inversion_ratios(ds, 1)),
                          DEEPER_MARGIN, unit="x")
        return e, f"layer {L} minus layer 1: {e}"

    return every([layer(k) for k in range(1, L + 1)] + [rule(
        f"the ratio at layer {L} minus at layer 1 above {DEEPER_MARGIN:g}", deeper)])


# %% [markdown]
# The claims, per dataset, with those margins:

# %%
RECON = Results(rows, value="recon_pct", scale=1.0, unit="%")
TRAIN = Results(rows, value="train_accuracy")
CLAIMS, untested = [], {}
for ds in DATA:
    alone = f"classifier alone ({ds})"
    CLAIMS += [
        Claim(f"C + λU beats C alone: SWWAE-all over the classifier alone ({ds})",
              beats(f"SWWAE-all ({ds})", [alone], margin=MARGIN),
              paper="Table 1: SWWAE-all 27.39 vs VGGNet 29.05% top-1 error "
                    "(single-crop)"),
        Claim(f"all six augmented networks beat C alone ({ds})",
              every([beats(f"{arm} ({ds})", [alone], margin=MARGIN)
                     for arm in AUGMENTED]),
              paper="Table 1: all six 1.35-1.66 points below VGGNet (single-crop)"),
        Claim(f"switches help the reconstruction, not the accuracy ({ds})",
              every([On(RECON, beats(f"SAE-{m} ({ds})", [f"SWWAE-{m} ({ds})"],
                                     margin=RECON_MARGIN),
                        "image MSE, % of the constant image's")
                     & within(f"SWWAE-{m} ({ds})", f"SAE-{m} ({ds})", SWITCH_MARGIN,
                              two_sided=True) for m in MODES]),
              paper="§5: switches 'helpful, but not critical'; Table 1: SWWAE vs "
                    "SAE within 0.2 points at each wiring"),
        Claim(f"the layer-wise loss regularises: -all beats -first ({ds})",
              every([beats(f"{kind}-all ({ds})", [f"{kind}-first ({ds})"],
                           margin=MARGIN) for kind in ("SAE", "SWWAE")]),
              paper="Table 1: SAE-all 27.54 vs SAE-first 27.70, SWWAE-all 27.39 vs "
                    "SWWAE-first 27.60% top-1 error"),
        Claim(f"a better optimum: SWWAE-all fits its labels better than C alone ({ds})",
              On(TRAIN, beats(f"SWWAE-all ({ds})", [alone], margin=MARGIN),
                 "training accuracy"),
              paper="Table 1: training top-1 error 15.67 (SWWAE-all) vs 17.43 (VGGNet)"),
        Claim(f"known switches reconstruct better than fixed unpooling, more so "
              f"deeper ({ds})", inversion_rule(ds),
              paper="§4.2, Fig. 5: SAE-first blurry from deep layers, SWWAE-first "
                    "sharp",
              models=[f"inverter a_{k} {name} ({ds})" for k in range(1, len(WIDTHS) + 1)
                      for name in INVERT]),
    ]
for ds, why in MISSING.items():
    text = f"the same on {ds} (closest to the paper's natural images)"
    CLAIMS.append(Claim(text, rule("the rules above, on this dataset",
                                   lambda _: (None, ""))))
    untested[text] = "not available here: run the paper profile with network"
claims = judge(CLAIMS, results, gates=Gates([*gates, *inv_gates]), untested=untested)
print(claims)
saved = aelab.study.save_run(
    rows=results, inversion=INVERSION, claims=claims,
    report="\n\n".join([*TABLES, GAP_TABLE, *LAMBDA_TABLES, TRAIN_TABLE, DETACH_TABLE,
                        INVERSION_TABLE, "Gates:\n" + gates.summary(),
                        "Inversion gates:\n" + inv_gates.summary()]))

# %% [markdown]
# **Reading it honestly.** What this run says, written by the cell below from
# this run's numbers (change a setting, and it says something else):

# %%
all_gates = Gates([*gates, *inv_gates])
reading = [claims.reading(), "",
           f"* **Profile `{PROFILE}`, {len(SEEDS)} seeds** "
           f"({', '.join(map(str, SEEDS))}), budgets "
           f"{', '.join(map(str, budgets))} labels; every network trained by the "
           f"paper's three steps (classifier, decoder with the classifier frozen, "
           f"joint fine-tuning at lr {SETTINGS['ft_lr']:g})."]
for ds in DATA:
    alone = f"classifier alone ({ds})"
    main = gap_effect(f"SWWAE-all ({ds})", alone)
    others = {arm: gap_effect(f"{arm} ({ds})", alone) for arm in AUGMENTED}
    lo, hi = min(others, key=lambda a: others[a].mean), max(others,
                                                             key=lambda a: others[a].mean)
    reading.append(
        f"* **{ds}: SWWAE-all minus the classifier alone**, pooled over budgets: "
        f"{span(main, 2)} points (95% interval, {main.n} seeds; margin "
        f"{MARGIN:g}). Over the six networks the pooled gap runs from "
        f"{others[lo].mean:+.2f} ({lo}) to {others[hi].mean:+.2f} ({hi}).")
    det, shares = DETACH[ds]["accuracy"], DETACH[ds]["shares"]
    reading.append(
        f"  Detaching the targets moved SWWAE-all's accuracy by {span(det, 2)} "
        f"points; its activations ended at {np.mean(shares[DETACHED]):.2f}x the "
        f"step-1 classifier's, against {np.mean(shares['SWWAE-all']):.2f}x without "
        f"detaching and {np.mean(shares['classifier alone']):.2f}x for the "
        "classifier alone.")
    ratios = [np.mean(inversion_ratios(ds, k)) for k in range(1, len(WIDTHS) + 1)]
    reading.append("  Inversion: fixed unpooling's MSE over the known switches', "
                   "by layer: " + ", ".join(f"{r:.1f}x" for r in ratios) + ".")
failed = [g for g in all_gates if not g.ok]
reading.append(f"* **Gates:** {len(all_gates) - len(failed)} of {len(all_gates)} "
               "models passed" + ("." if not failed else
                                  f"; the first that failed: {failed[0].model} "
                                  f"({'; '.join(failed[0].failures())})."))
if claims.to_settle():
    reading.append(claims.to_settle())
if PROFILE == "fast":
    reading.append("* `fast` is only a smoke test (a few steps of tiny networks, "
                   "two seeds): draw no conclusion from it.")
markdown("\n".join(reading))

# %% [markdown]
# Beyond this run:
# * The paper's 1.7 points come from one run per arm on 50,000 validation
#   images of ImageNet; ours are small networks on a few hundred labels, where
#   the spread over seeds is as large as the effect. A verdict you can trust
#   survives fresh seeds: `aelab run joint --profile classroom --seeds 10-19`.
#   A claim may move between REPRODUCED and INCONCLUSIVE; it should never flip
#   to NOT REPRODUCED.
# * `fast` is a smoke test: a few steps of tiny networks, and its numbers
#   mean nothing. Run `classroom`, or `aelab run joint --profile classroom
#   --verify`.
#
# **Try next.** Give U the unlabeled pool too (the semi-supervised what-where
# autoencoder of Zhao et al.): the reconstruction then sees 3,000 images where
# C sees 100. Set every γ_l to 1: does SAE-all redraw better, and classify
# worse? Make `detach=True` the default for every arm: which verdicts move?
