# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# fine-tuned. Zhang et al. do it in *one* phase: a classifier gets a second,
# mirrored pathway that decodes its features back into the image, and the
# whole network minimises one loss, classification plus reconstruction,
# **C + λU**. Does the reconstruction objective help the classifier? And,
# turning it around: what does a classifier's representation keep of the
# image, layer by layer, once max-pooling has thrown away *where* each maximum
# was?
#
# **The paper's claims** (checked at the end):
# 1. **Table 1:** every network augmented with a decoding pathway beats the
#    classifier alone (16-layer VGGNet on ImageNet: top-1 error 29.05% →
#    27.39% single-crop for the best, SWWAE-all; about 1-1.7 points);
# 2. **§4.2, Figures 4-5:** decoding a trained classifier's features with the
#    *known* pooling switches ("what-where") reconstructs the image far better
#    than unpooling to a fixed position, and the gap grows with depth: from
#    the deepest layer, fixed unpooling gives a blur, known switches the shapes.
#
# We rebuild both in small, on MNIST and Fashion-MNIST (CIFAR-10 too in the
# `paper` profile, when it can be downloaded).
#
# **This notebook is the experiment.** The networks, the joint loss (which you
# write), the unpooling (which you write), the protocol loop over label
# budgets × seeds × networks and the rules of the verdict are in the cells
# below. `aelab run joint` executes this same text headless.

# %% [markdown]
# On Colab, this cell installs aelab first (elsewhere it does nothing). It
# keeps Colab's own ipywidgets 7.7, which shows aelab's widgets as they are
# (no custom widget manager needed). The command is Colab's `!pip install`,
# written as Python: should pip replace a package Colab had already imported,
# Colab says so and offers to restart the runtime.

# %%
import sys

if "google.colab" in sys.modules:  # Colab starts without aelab
    from IPython import get_ipython

    AELAB = "aelab @ git+https://github.com/aelab-course/aelab"
    get_ipython().system(f'pip install -q "{AELAB}"')

# %% [markdown]
# Seed everything first, so two runs give the same numbers.

# %%
import textwrap
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
from aelab.study import Claim, Results, beats, combine, judge, rule
from aelab.whatwhere import FixedUnpool, MacroLayerAE, SwitchMaxPool, inverter

aelab.seed_everything(0)

# %% [markdown]
# **Profile.** `fast` (seconds, for the tests) trains tiny networks for a few
# steps: its numbers mean nothing. `classroom` (minutes on a 2-core laptop)
# runs the study on MNIST and Fashion-MNIST subsets, three label budgets and
# 3 seeds; `paper` (a GPU) uses the full training sets, wider networks, more
# steps, 5 seeds, and adds CIFAR-10 when it can be downloaded. Every trained
# network is cached: a re-run is quick. On a CPU the study uses one thread.

# %%
PROFILE = aelab.get_profile()
SETTINGS = {
    "fast": dict(datasets=("mnist",), pool_size=400, num_test=200, widths=(4, 8),
                 budgets=(50,), seeds=(0,), steps=10, lam=1.0, lambdas=(10.0,),
                 inv_images=200, inv_steps=10),
    "classroom": dict(datasets=("mnist", "fashion_mnist"), pool_size=3000,
                      num_test=1000, widths=(8, 16, 32), budgets=(100, 300, 1000),
                      seeds=(0, 1, 2), steps=120, lam=1.0, lambdas=(0.1, 10.0),
                      inv_images=1500, inv_steps=120),
    "paper": dict(datasets=("mnist", "fashion_mnist", "cifar10"), pool_size=None,
                  num_test=10000, widths=(32, 64, 128), budgets=(100, 1000, 10000),
                  seeds=(0, 1, 2, 3, 4), steps=3000, lam=1.0,
                  lambdas=(0.1, 0.3, 3.0, 10.0), inv_images=20000, inv_steps=3000),
}[PROFILE]
BATCH_SIZE, LR = 32, 2e-3  # Adam, for every network in the study
print(PROFILE, SETTINGS)
device = aelab.get_device()
if device.type == "cpu":
    # One thread: these convolutions are too small for a second one to help
    # much, and when another program holds a core, two threads that wait for
    # each other made the study 6-10x slower on a shared 2-core machine.
    torch.set_num_threads(1)

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
# autoencoder). With one seed all six start from the same encoder and
# classifier weights.

# %%
WIDTHS = SETTINGS["widths"]
model = MacroLayerAE(widths=WIDTHS, mode="all", unpool="switches")
print(model)
for k, a in enumerate(model.features(torch.zeros(1, 1, 28, 28)), 1):
    print(f"a_{k}: {tuple(a.shape[1:])}")

# %% [markdown]
# What the two unpoolings do to one pooled 4×4 patch: the max of each 2×2
# window survives the pool; known switches put it back in place, fixed ones
# at the top-left.

# %%
patch = torch.tensor([[[[0.1, 0.9, 0.2, 0.0], [0.3, 0.4, 0.0, 0.8],
                        [0.7, 0.0, 0.1, 0.2], [0.2, 0.1, 0.6, 0.3]]]])
pooled, switches = SwitchMaxPool()(patch)
print("patch\n", patch[0, 0].numpy(), "\npooled\n", pooled[0, 0].numpy())
print("fixed unpooling\n", FixedUnpool()(pooled)[0, 0].numpy())

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

    def trains():  # two seeds side by side under vmap, as the study trains them
        nets = [MacroLayerAE(widths=(2, 2), mode="all", unpool=Unpool())
                for _ in range(2)]
        X, y = torch.rand(4, 1, 28, 28), torch.arange(4)

        def loss_fn(model, batch):
            logits, recons = model(batch[0])
            return F.cross_entropy(logits, batch[1]) + sum(
                F.mse_loss(p, t) for t, p in recons)
        return ex.one_step(nets, [(X, y)] * 2, loss_fn, strategy="vmap")

    return check("Exercise 1", [
        (lambda: got(X6), "it must run on 2x3x3x3 pooled values, their switches and "
         "output_size (6, 6)"),
        (lambda: torch.is_tensor(got(X6)) and got(X6).shape == X6.shape,
         "return a tensor of shape (N, C, H, W) with output_size's H and W"),
        (untouched, "leave X and switches as they are: scatter into a new zero "
         "tensor"),
        (lambda: not close(got(X6), FixedUnpool()(F.max_pool2d(X6, 2))),
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
        (trains, "fit_many cannot train through it under vmap (as the study "
         "does): no .item() or .tolist(), no if on a tensor's value"),
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
# Your function becomes the SWWAE networks' unpooling layer. Fixed unpooling
# is aelab's `FixedUnpool`.

# %%
check_unpool(unpool_with_switches).require()  # stop here if Exercise 1 is not done


class KnownSwitches(nn.Module):
    def forward(self, X, switches, output_size):
        return unpool_with_switches(X, switches, tuple(output_size)[-2:])


def augmented(kind, mode, in_shape):
    """The augmented classifier: kind "SAE" (fixed) or "SWWAE" (known switches)."""
    unpool = KnownSwitches() if kind == "SWWAE" else "fixed"
    return MacroLayerAE(in_channels=in_shape[0], widths=WIDTHS, mode=mode,
                        unpool=unpool, in_size=in_shape[-1])


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
# layer, which the γ_l absorb. λ = 0 is the classifier alone: the decoder
# then gets no gradient and the encoder trains on C only. That is our
# baseline.
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

    def trains():  # two seeds side by side under vmap, as the study trains them
        nets = [MacroLayerAE(widths=(2, 2), mode="all") for _ in range(2)]
        X, y = torch.rand(4, 1, 28, 28), torch.arange(4)

        def loss_fn(model, batch):
            logits, pairs = model(batch[0])
            return joint_loss(logits, batch[1], pairs, 1.0, [1.0] * len(pairs))
        return ex.one_step(nets, [(X, y)] * 2, loss_fn, strategy="vmap")

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
        (trains, "fit_many cannot train on it under vmap: no .item(), no if on a "
         "tensor's value, one tensor C + lam * U"),
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
# **The balancing weights γ_l** (§4.1: "make the weighted loss for every
# layer comparable to each other"). Our rule, fixed before training: γ_0 = 1
# for the image, and γ_l = mean(x²) / mean(a_l²), measured on 256 pool images
# with the *untrained* network of seed 0. Each term then starts on the scale
# of the pixel term. Computed once per dataset, so every seed and budget of
# a dataset uses the same weights.

# %%
check_joint_loss(joint_loss).require()  # stop here if Exercise 2 is not done


def balancing_weights(X, in_shape):
    torch.manual_seed(0)
    net = augmented("SAE", "all", in_shape)
    with torch.no_grad():
        _, recons = net(to_float(X[:256]))
    pixel = recons[0][0].pow(2).mean()
    return [round(float(pixel / target.pow(2).mean()), 3) for target, _ in recons]


def objective(lam, gammas):
    """The joint loss in fit's (model, batch) form, with this lam and these gammas."""
    def loss_fn(model, batch):
        X, y = batch
        logits, recons = model(X)
        return joint_loss(logits, y, recons, lam, gammas[:len(recons)])
    return loss_fn


GAMMAS = {ds: balancing_weights(d["pool"], tuple(d["pool"].shape[1:]))
          for ds, d in DATA.items()}
print("gamma_l for l = 0 (image), 1, ...:", GAMMAS)

# %% [markdown]
# ## 4 · The study: C + λU against C alone
#
# **The recipe.** The paper starts from a trained VGGNet, trains the decoders
# with the classifier frozen, then fine-tunes everything jointly (§4.1). Our
# networks are small enough to train jointly from the start: Adam (lr 2e-3),
# batches of 32, the same number of steps at every budget. As in the paper,
# every training image has its label, and U is computed on the same images
# (no extra unlabeled data). The arms, at each label budget and seed:
#
# * **classifier alone**: λ = 0;
# * the six augmented networks, SAE / SWWAE × first / all / layerwise, at
#   λ = `lam` (1);
# * SWWAE-all at the other λ of `lambdas`, for the λ slider below.
#
# Every seed draws its own class-balanced labeled images from the pool
# (nested: the 300 hold the 100), the same for every arm.

# %%
MODES = ("first", "all", "layerwise")
ARMS = {"classifier alone": ("SAE", "first", 0.0)}
for kind in ("SAE", "SWWAE"):
    for mode in MODES:
        ARMS[f"{kind}-{mode}"] = (kind, mode, SETTINGS["lam"])
for lam in SETTINGS["lambdas"]:
    ARMS[f"SWWAE-all λ={lam:g}"] = ("SWWAE", "all", lam)
AUGMENTED = [a for a in ARMS if a != "classifier alone" and "λ" not in a]


def labeled_subset(d, n, seed):
    """n class-balanced images of the pool, seed's draw (nested over n)."""
    order = aelab.splits.stratified_order(d["pool_y"], seed)[:n]
    return d["pool"][order], d["pool_y"][order]


# %% [markdown]
# The protocol loop: one `fit_many` per (dataset, budget, arm) trains the
# seeds together, side by side as one batched network (`strategy="vmap"`,
# torch.func.vmap; on a 2-core CPU about a quarter faster than one after
# another), and each trained network is one tidy row: test accuracy,
# training accuracy, and how well it redraws the test images.

# %% tags=["nbval-ignore-output"]
rows, NETS, HISTORY = [], {}, {}
START = time.perf_counter()
for ds, d in DATA.items():
    shape = tuple(d["pool"].shape[1:])
    for n in SETTINGS["budgets"]:
        subsets = [labeled_subset(d, n, seed) for seed in SETTINGS["seeds"]]
        for arm, (kind, mode, lam) in ARMS.items():
            nets = []
            for seed in SETTINGS["seeds"]:
                torch.manual_seed(seed)
                nets.append(augmented(kind, mode, shape))
            hs = aelab.fit_many(
                nets, subsets, objective(lam, GAMMAS[ds]), lr=LR, strategy="vmap",
                batch_size=BATCH_SIZE, seeds=list(SETTINGS["seeds"]), cache=True,
                num_epochs=max(1, round(SETTINGS["steps"] * BATCH_SIZE / n)),
                quiet=True)
            for seed, net, h, (X_lab, y_lab) in zip(SETTINGS["seeds"], nets, hs,
                                                    subsets):
                NETS[ds, n, arm, seed], HISTORY[ds, n, arm, seed] = net.eval(), h
                logits, recons = aelab.predict(net, d["X_test"])
                target, X_hat = recons[0]  # the image and its reconstruction
                rows.append(dict(
                    method=f"{arm} ({ds})", budget=n, seed=seed, arm=arm, dataset=ds,
                    lam=lam, accuracy=metrics.accuracy(logits, d["y_test"]),
                    train_accuracy=metrics.accuracy(aelab.predict(
                        lambda xb, net=net: net(xb)[0], X_lab), y_lab),
                    mse=metrics.mse(target, X_hat),
                    classifier=metrics.check_classifier(d["y_test"], logits),
                    reconstruction=metrics.check_reconstruction(target, X_hat)))
        print(f"{ds}, {n} labels: {len(ARMS)} arms x {len(SETTINGS['seeds'])} seeds "
              f"trained or loaded ({time.perf_counter() - START:.0f} s so far)")

# %% [markdown]
# **Did they train?** Every network against chance (`check_classifier`); the
# augmented ones also against the best constant image
# (`check_reconstruction`, on the image level; the classifier alone never
# trains its decoder, so it is not asked to). A stalled network stays in the
# study and is counted here. The loss curves of seed 0 at the smallest and
# largest budget follow.

# %%
for r in rows:
    r["stalled"] = not r["classifier"].ok or (r["lam"] > 0
                                              and not r["reconstruction"].ok)
for ds in DATA:
    mine = [r for r in rows if r["dataset"] == ds]
    bad = [r for r in mine if r["stalled"]]
    print(f"{ds}: {len(bad)} of {len(mine)} networks stalled")
    for r in bad:
        print(f"  {r['arm']} {r['budget']} labels seed {r['seed']}: "
              f"{r['classifier'].message}; {r['reconstruction'].message}")
    drops = [1 - h.train_loss[-1] / h.train_loss[-2] for (ds_, *_), h in
             HISTORY.items() if ds_ == ds and len(h.train_loss) > 1]
    if drops:
        print(f"  last epoch: loss fell by {100 * np.median(drops):.1f}% (median), "
              f"{100 * max(drops):.1f}% (most)")
    ratios = {arm: np.median([r["reconstruction"].ratio for r in mine
                              if r["arm"] == arm]) for arm in ARMS if ARMS[arm][2] > 0}
    print(textwrap.fill("image MSE as % of the best constant image's (median): "
                        + ", ".join(f"{a} {100 * v:.0f}%" for a, v in ratios.items()),
                        width=86, initial_indent="  ", subsequent_indent="    "))
budgets = SETTINGS["budgets"]
fig, axes = plt.subplots(1, len(DATA), figsize=(6 * len(DATA), 3.4), squeeze=False)
for ax, ds in zip(axes[0], DATA):
    for c, arm in enumerate(("classifier alone", "SAE-all", "SWWAE-all")):
        for n, style in zip((budgets[0], budgets[-1]), ("-", "--")):
            loss = HISTORY[ds, n, arm, SETTINGS["seeds"][0]].train_loss
            steps = np.arange(1, len(loss) + 1) * -(-n // BATCH_SIZE)
            ax.plot(steps, loss, style, color=f"C{c}", label=f"{arm}, {n} labels")
    ax.set(yscale="log", xlabel="step", ylabel="train loss (C + λU)",
           title=f"{ds}, seed {SETTINGS['seeds'][0]}")
    ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ### The table: test accuracy per label budget
#
# Mean [min-max over seeds], per dataset; "classifier alone" is λ = 0.

# %%
def table(ds, arms, value="accuracy"):
    return Results([dict(r, method=r["arm"]) for r in rows
                    if r["dataset"] == ds and r["arm"] in arms], value=value)


TABLES = []
for ds in DATA:
    TABLES.append(f"{ds}\n{table(ds, ['classifier alone', *AUGMENTED])}")
    print(TABLES[-1], "\n")
fig, axes = plt.subplots(1, len(DATA), figsize=(6 * len(DATA), 3.8), squeeze=False)
for ax, ds in zip(axes[0], DATA):
    plot.budget_curves(table(ds, ["classifier alone", "SAE-all", "SWWAE-all"]).curves(),
                       ax=ax, title=f"{ds}: test accuracy vs labels")
    ax.set_xscale("log")
fig.tight_layout()

# %% [markdown]
# **Better optimum or regulariser?** The paper found the augmented networks
# had *lower training error* too (§4.3), and read it as "a better local
# optimum" rather than regularisation. Training accuracy on the labeled
# images, mean over seeds:

# %%
def mean_of(key, **where):
    return np.mean([r[key] for r in rows if all(r[k] == v for k, v in where.items())])


lines = [f"{'training accuracy (%)':<20}" + "".join(
    f"{ds.replace('_mnist', '')} {n:>5}".rjust(15) for ds in DATA for n in budgets)]
for arm in ["classifier alone", *AUGMENTED]:
    lines.append(f"{arm:<20}" + "".join(
        f"{100 * mean_of('train_accuracy', dataset=ds, budget=n, arm=arm):>15.1f}"
        for ds in DATA for n in budgets))
TRAIN_TABLE = "\n".join(lines)
print(TRAIN_TABLE)

# %% [markdown]
# ## 5 · λ: how much reconstruction?
#
# λ sets the trade: 0 is the classifier alone, a large λ makes the network
# mostly an autoencoder. The table shows SWWAE-all at every λ we trained;
# the slider below moves through the same cached runs (nothing trains), with
# the test images the network of seed 0 redraws at the largest budget.

# %%
LAMBDAS = sorted({0.0, SETTINGS["lam"], *SETTINGS["lambdas"]})


def lam_arm(lam):
    return ("classifier alone" if lam == 0 else "SWWAE-all" if lam == SETTINGS["lam"]
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
    net = NETS[dataset, budgets[-1], lam_arm(lam), SETTINGS["seeds"][0]]
    X = DATA[dataset]["X_test"][:8]
    X_hat = aelab.predict(net, X)[1][0][1].clamp(0, 1)
    both = torch.cat([to_float(X), X_hat])  # 16 images: 2 rows of 8
    grid = both.view(2, 8, *X.shape[1:]).permute(0, 3, 1, 4, 2).reshape(
        2 * X.shape[-2], 8 * X.shape[-1], X.shape[1])
    ax.imshow(grid.squeeze(-1), cmap="gray", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[], title=f"top: test images; bottom: redrawn "
           f"({budgets[-1]} labels, seed {SETTINGS['seeds'][0]})")
    fig.tight_layout()
    return fig


widgets.interactive(
    explore_lambda,
    dataset=W.Dropdown(options=list(DATA), description="dataset"),
    lam=W.SelectionSlider(options=LAMBDAS, value=SETTINGS["lam"], description="λ"))

# %% [markdown]
# ## 6 · Inverting a trained classifier (the paper's Figures 4-5, in small)
#
# Take the classifier trained **without** the decoder (λ = 0, the largest
# budget), freeze it, and for each macro-layer k train a decoding pathway
# from a_k down to the image (`inverter`: the first k macro-layers, frozen,
# and a fresh decoder of k steps), on the reconstruction alone, U = mse(x̂,
# x). Twice: with the known switches of the frozen encoder (your unpooling),
# and with fixed unpooling. Both decoders see exactly the same features;
# the known switches add only *where* each maximum was.

# %%
def reconstruction_loss(model, batch):
    X, = batch
    _, [(target, X_hat)] = model(X)
    return F.mse_loss(X_hat, target)


UNPOOLS = {"known switches": KnownSwitches, "fixed": lambda: "fixed"}
INVERSION = []  # one row per (dataset, seed, layer, unpooling)
INVERTERS = {}
for ds, d in DATA.items():
    X_train = d["pool"][:SETTINGS["inv_images"]]
    num_epochs = max(1, round(SETTINGS["inv_steps"] * BATCH_SIZE / len(X_train)))
    for seed in SETTINGS["seeds"]:
        classifier = NETS[ds, budgets[-1], "classifier alone", seed]
        for k in range(1, len(WIDTHS) + 1):
            for name, unpool in UNPOOLS.items():
                torch.manual_seed(seed)
                net = inverter(classifier, k, unpool=unpool())
                aelab.fit(net, (X_train,), reconstruction_loss, num_epochs=num_epochs,
                          lr=LR, batch_size=BATCH_SIZE, seed=seed, cache=True,
                          quiet=True, desc=f"{ds} invert a_{k} {name}")
                INVERTERS[ds, seed, k, name] = net.eval()
                _, [(target, X_hat)] = aelab.predict(net, d["X_test"])
                health = metrics.check_reconstruction(target, X_hat)
                INVERSION.append(dict(dataset=ds, seed=seed, layer=k, unpool=name,
                                      mse=health.mse, ratio=health.ratio,
                                      stalled=not health.ok))
bad = [r for r in INVERSION if r["stalled"]]
print(f"{len(bad)} of {len(INVERSION)} inverting decoders stalled (no better than "
      "the best constant image; they stay in the table)")

# %% [markdown]
# The reconstruction error per layer: test MSE, mean [min-max] over seeds,
# and the ratio fixed / known (how many times worse fixed unpooling is). The
# best constant image's MSE is what a decoder that learned nothing would get.

# %%
def inversion_mse(ds, k, name):
    return np.array([r["mse"] for r in INVERSION
                     if (r["dataset"], r["layer"], r["unpool"]) == (ds, k, name)])


lines = [f"{'inversion: test MSE':<22}{'layer':>6}{'known switches':>22}"
         f"{'fixed':>22}{'fixed/known':>13}"]
for ds, d in DATA.items():
    for k in range(1, len(WIDTHS) + 1):
        known, fixed = inversion_mse(ds, k, "known switches"), inversion_mse(ds, k,
                                                                             "fixed")
        lines.append(f"{ds:<22}{k:>6}" + "".join(
            f"{v.mean():>9.4f} [{v.min():.4f}-{v.max():.4f}]" for v in (known, fixed))
            + f"{fixed.mean() / known.mean():>12.1f}x")
    lines.append(f"{ds:<22}{'':>6}  best constant image "
                 f"{metrics.best_constant_mse(to_float(d['X_test'])):.4f}")
INVERSION_TABLE = "\n".join(lines)
print(INVERSION_TABLE)

# %% [markdown]
# What each layer keeps: test images redrawn from a_1, a_2, ... of the
# classifier, with known switches and with fixed unpooling (seed 0).

# %%
for ds, d in DATA.items():
    X = d["X_test"][:10]
    shown = {"input": X}
    for k in range(1, len(WIDTHS) + 1):
        for name in UNPOOLS:
            net = INVERTERS[ds, SETTINGS["seeds"][0], k, name]
            shown[f"a_{k} {name}"] = aelab.predict(net, X)[1][0][1].clamp(0, 1)
    fig = plot.image_grid(shown, scale=0.8, suptitle=f"{ds}: inverting the "
                          "classifier trained alone")

# %% [markdown]
# ## 7 · The verdict
#
# The rules, written before looking at the numbers, one rule for every arm
# of a kind:
#
# * **C + λU beats C alone, per label budget** (`beats`): at that budget,
#   SWWAE-all (the paper's best) is above the classifier alone in *every*
#   seed, by any margin (the paper's gain: 1.7 points of top-1 single-crop,
#   1.2 with dense evaluation, one run each);
# * **every augmented network beats C alone** (`beats`, mean over budgets,
#   every seed), all six, per dataset: Table 1 has all six ahead;
# * **known switches reconstruct better than fixed unpooling, more so at
#   deeper layers**: at every layer the mean test MSE with known switches is
#   below fixed unpooling's, and the ratio fixed / known at the deepest layer
#   is above the ratio at the first, in every dataset.

# %%
def switches_win(_):
    ok, parts = True, []
    for ds in DATA:
        ratios = [inversion_mse(ds, k, "fixed").mean()
                  / inversion_mse(ds, k, "known switches").mean()
                  for k in range(1, len(WIDTHS) + 1)]
        ok &= min(ratios) > 1 and ratios[-1] > ratios[0]
        parts.append(f"{ds}: fixed/known MSE by layer " + ", ".join(
            f"{x:.1f}x" for x in ratios))
    return bool(ok), f";\n{'':26}".join(parts)


def all_beat(ds):
    """The same `beats` rule for each of the six; the gaps in points, one a line."""
    def judge_it(results):
        statuses = [beats(f"{arm} ({ds})", [f"classifier alone ({ds})"])
                    .judge(results).status for arm in AUGMENTED]
        return (combine(statuses),
                f";\n{'':26}".join(gaps_text(ds, arm) for arm in AUGMENTED))
    return judge_it


def gaps_text(ds, arm, n=None):
    """Test accuracy of arm minus the classifier alone's, in points, per seed."""
    where = dict(dataset=ds) if n is None else dict(dataset=ds, budget=n)
    gaps = [100 * (mean_of("accuracy", arm=arm, seed=s, **where)
                   - mean_of("accuracy", arm="classifier alone", seed=s, **where))
            for s in SETTINGS["seeds"]]
    return f"{arm} {np.mean(gaps):+.1f} (seeds " + ", ".join(
        f"{g:+.1f}" for g in gaps) + ")"


def beats_alone(ds, n):
    """`beats` at one budget, its numbers said in points."""
    inner = beats(f"SWWAE-all ({ds})", [f"classifier alone ({ds})"], budgets=(n, n))
    return rule("SWWAE-all above the classifier alone at this budget, in every seed",
                lambda results: (inner.judge(results).status, gaps_text(ds, "SWWAE-all",
                                                                    n)))


CLAIMS = [
    *[Claim(f"C + λU beats C alone at {n} labels ({ds})", beats_alone(ds, n),
            paper="Table 1: SWWAE-all 27.39 vs VGGNet 29.05% top-1 error")
      for ds in DATA for n in budgets],
    *[Claim(f"all six augmented networks beat C alone ({ds})",
            rule("each of the six above classifier alone in every seed (mean over "
                 "budgets)", all_beat(ds)),
            paper="Table 1: all six 1.3-1.7 points below VGGNet (single-crop)")
      for ds in DATA],
    Claim("known switches reconstruct better than fixed unpooling, more so deeper",
          rule("MSE known < fixed at every layer; fixed/known larger at the\n"
               f"{'':27}deepest layer than at the first; every dataset", switches_win),
          paper="§4.2, Fig. 5: SAE-first blurry from deep layers, SWWAE-first sharp"),
]
untested = {}
for ds, why in MISSING.items():
    text = f"the same on {ds} (closest to the paper's natural images)"
    CLAIMS.append(Claim(text, rule("the rules above, on this dataset",
                                   lambda _: (None, ""))))
    untested[text] = "not available here: run the paper profile with network"
results = Results([{k: v for k, v in r.items() if k not in ("classifier",
                                                             "reconstruction")}
                   for r in rows])
claims = judge(CLAIMS, results, untested=untested)
saved = aelab.study.save_run(rows=results, inversion=INVERSION, claims=claims,
                             report="\n\n".join([*TABLES, *LAMBDA_TABLES,
                                                 TRAIN_TABLE, INVERSION_TABLE]))
print(claims)

# %% [markdown]
# **Reading it honestly.** When we ran the classroom profile (MNIST and
# Fashion-MNIST, 3,000-image pools, 3 macro-layers of 8, 16 and 32 maps, 120
# steps of 32 images at every budget, 3 seeds), 1 of the 9 claims reproduced:
# * **C + λU did not beat C alone** at any budget by the rule. SWWAE-all
#   against the classifier alone: MNIST +1.3 points at 100 labels (seeds
#   +2.6, -1.2, +2.5), -0.7 at 300, -1.4 at 1000; Fashion-MNIST -1.2, +1.9,
#   -1.2. The spread over seeds (2-4 points) is larger than the gaps. The
#   paper's 1.7 points come from one run per arm on 50,000 validation images.
# * **Not all six helped**: their gaps, mean over budgets, run from -1.8 to
#   +0.4 points. The two "first" networks are the classifier alone within 0.3
#   points: their reconstruction reaches the encoder only through a_L.
# * **Not a better optimum here.** The paper saw *lower* training error with
#   the decoder. We see the opposite: SAE/SWWAE-all and -layerwise fit their
#   labels less well (MNIST, 1000 labels: 89.3-91.6% vs 93.0%), and the
#   losses were still falling in the last epoch (by 13% and 6%, medians). In
#   120 steps the reconstruction competes with C for the same updates.
# * **λ matters more than the variant.** λ = 10 wrecks the classifier (MNIST
#   55-63%); λ = 0.1 is the best augmented setting at 1000 labels: 89.6% on
#   MNIST (the classifier alone 89.8%), 70.0% on Fashion-MNIST (1.3 points
#   above it).
# * **Longer training changes the small-budget answer.** An earlier run of
#   this study with `steps=200` (then one network after another; about 10
#   minutes here) put SWWAE-all ahead at 100 labels in every seed: +2.9 points on MNIST (seeds +3.8, +4.1, +0.7) and +3.4 on
#   Fashion-MNIST (+5.6, +1.1, +3.5), the claim's rule passes there; at 300
#   and 1000 labels it still did not (one seed or more behind). Where the
#   auxiliary loss helps at this scale, it is with few labels, trained long
#   enough.
# * **Known switches reproduce** (§4.2): at every layer they redraw the image
#   better than fixed unpooling, and the gap grows with depth: MNIST 1.8x,
#   2.1x, 2.7x the MSE; Fashion-MNIST 1.1x, 1.0x, 1.9x (a tie at layer 2).
#   From a_3 (32 maps of 3×3) with its switches the digits come back at MSE
#   0.014, a fifth of the best constant image's 0.067; fixed unpooling gives
#   the blur of the grids above (0.038). The switches are information too:
#   *where* each maximum was, which is what pooling throws away.
# * The SAE networks (fixed unpooling) redraw the image poorly: SAE-first at
#   65% and 60% of the constant image's MSE, SAE-all at 75% and 81% (medians;
#   known switches: 14-49%). From a_3 fixed unpooling can only blur, as in
#   section 6; SAE-all's γ also weigh the inner layers up to 11x (MNIST) and
#   29x (Fashion-MNIST), so matching a_1 and a_2 dominates its U. None
#   stalled, but the 0.9 threshold is not far.
# * `fast` is a smoke test: a few steps of tiny networks, and its numbers
#   mean nothing. Run `classroom`, or `aelab run joint --profile classroom
#   --verify`.
#
# **Try next.** Train longer (`steps=200` or more in `SETTINGS`): does the
# gain at 100 labels grow, and does one appear at 1000? Give U the unlabeled
# pool too (the semi-supervised what-where autoencoder of Zhao et al.): the
# reconstruction then sees 3,000 images where C sees 100. Set every γ_l to 1:
# does SAE-all redraw better, and classify worse?
