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
# # 04 · Why does unsupervised pretraining help?
#
# *Paper: Dumitru Erhan, Yoshua Bengio, Aaron Courville, Pierre-Antoine
# Manzagol, Pascal Vincent & Samy Bengio (2010), "Why Does Unsupervised
# Pre-training Help Deep Learning?", JMLR 11.*
#
# **The question.** A deep network pretrained layer by layer as denoising
# autoencoders, then fine-tuned with the labels, generalises better than the
# same network trained from a random start. Two explanations compete:
# * **better optimisation**: pretraining starts the network near a deeper
#   minimum, so it reaches a *lower training* error;
# * **better regularisation**: pretraining puts the network in a region where
#   the training error is *no lower* (or higher), but the *test* error is
#   lower, and the networks that different random starts lead to agree more.
#
# **The paper's claims** (checked at the end):
# 1. pretraining acts as a regulariser: train NLL no lower, test NLL lower
#    (its Figure 1: 2 × 400 trajectories of log test NLL vs log train NLL);
# 2. pretraining lowers the variance across initialisations;
# 3. not all regularisers are equal: pretraining's advantage holds as the
#    training set grows, an L2 penalty's shrinks.
#
# **This notebook is the experiment**: the networks, the objectives (two of
# them you write), the greedy layer-wise loop, the protocol over depths ×
# arms × initialisations × training-set sizes, and the rules of the verdict.
# `aelab run erhan` executes this same text headless.

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
# Seed everything first.

# %%
import functools
import math
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import aelab
from aelab import metrics, plot, widgets
from aelab.exercises import answer, check, close
from aelab.splits import to_float
from aelab.study import (Claim, Gates, Results, combine, health_gate, judge, markdown,
                         paired_effect, plateau, rule)

aelab.seed_everything(0)

# %% [markdown]
# **Profile.** `fast` (seconds, tests) trains a handful of tiny networks for
# three epochs; `classroom` (minutes on 2 CPU cores) trains 10
# initialisations per arm of networks with 1, 2 and 3 hidden layers of 128
# units on 3,000 images of the embedded MNIST subset (1,000 more are held out
# for validation); `paper` trains 400 per arm, 1,000 units wide, on MNIST's
# 50,000 training images (10,000 for validation; a GPU).
#
# **The optimiser.** Every arm of the claims trains with the same Adam (lr
# 1e-3, batch 64, the same epochs). The paper used plain stochastic gradient
# descent; section 12 adds that arm (plain SGD, no momentum, and the paper's
# initialisation) and shows what it does to the networks that start at
# random. Trained networks are cached: re-running is quick.
#
# **Seeds.** One seed per initialisation, the same seeds in every arm, so that
# each comparison is paired: seed i with and without pretraining shares its
# output layer and its batch order. A verdict needs at least 5 paired seeds.
# `aelab run erhan --seeds 5-9` (or `AELAB_SEEDS=5-9`) replaces them: rerun the
# study on seeds nobody tuned on.

# %%
RUN_START = time.perf_counter()
PROFILE = aelab.get_profile()
SETTINGS = {
    "fast": dict(source="embedded", num_train=500, num_valid=200, num_test=200,
                 num_eval=200, depths=(1, 2), width=32, seeds=(0, 1, 2, 3, 4),
                 clf_epochs=3, ae_epochs=1, budgets=(100, 500), budget_depth=1,
                 budget_seeds=5, lr=1e-3, sgd_lr=0.1),
    "classroom": dict(source="embedded", num_train=3000, num_valid=1000,
                      num_test=1000, num_eval=1000, depths=(1, 2, 3), width=128,
                      seeds=tuple(range(10)), clf_epochs=30, ae_epochs=60,
                      budgets=(500, 1000, 2000, 3000), budget_depth=2, budget_seeds=10,
                      lr=1e-3, sgd_lr=0.1),
    # The paper: MNIST's 50,000 / 10,000 split, 2 x 400 initialisations per figure.
    "paper": dict(source=None, num_train=50000, num_valid=10000, num_test=10000,
                  num_eval=10000, depths=(1, 2, 3), width=1000,
                  seeds=tuple(range(400)), clf_epochs=50, ae_epochs=20,
                  budgets=(1000, 5000, 20000, 50000), budget_depth=3, budget_seeds=50,
                  lr=1e-3, sgd_lr=0.1),
}[PROFILE]
# lr: Adam's, for every arm of the claims; sgd_lr: the plain-SGD arm's (one
# value, not tuned: the paper chose its rates on a validation set).
# ae_epochs: each DAE trains until its loss reaches the plateau its gate asks
# for (section 15). On 3,000 images that takes about 60 epochs; at 20 every
# DAE was still falling, and every claim read INCONCLUSIVE on that gate alone.
LR, BATCH_SIZE = SETTINGS["lr"], 64
MASK = 0.25  # the share of inputs the denoising autoencoders set to 0
WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3)  # the L2 strengths section 11 tunes among
DEPTHS, WIDTH = SETTINGS["depths"], SETTINGS["width"]
SEEDS = aelab.profile.get_seeds(SETTINGS["seeds"])  # AELAB_SEEDS / --seeds win
INITS = len(SEEDS)  # one seed per initialisation, the same in every arm
print(PROFILE, SETTINGS, "seeds", SEEDS)
device = aelab.get_device()
print({"fast": "about a minute", "classroom": "minutes on 2 CPU cores (more when "
       "other jobs share them)", "paper": "hours: use a GPU"}[PROFILE]
      + " from a cold cache")

# %% [markdown]
# ## 1 · The data
#
# MNIST digits: a training set (a class-balanced order, so that the smaller
# training sets of section 11 are nested prefixes of it), a **validation**
# set (the next images of the same order, never trained on: section 11 tunes
# the L2 penalty on it) and a fixed test set. The training NLL is measured
# after every epoch on `num_eval` of the training images (the same ones for
# every network), the validation and test NLL on their sets.

# %%
train = aelab.load_dataset("mnist", "train", source=SETTINGS["source"])
test = aelab.load_dataset("mnist", "test", source=SETTINGS["source"], quiet=True)
splits = aelab.make_splits(train.y, seed=0)
NUM_VALID = min(SETTINGS["num_valid"], len(train) // 4)
NUM_TRAIN = min(SETTINGS["num_train"], len(train) - NUM_VALID)
SIZES = sorted({min(n, NUM_TRAIN) for n in SETTINGS["budgets"]})


def training_set(n):
    """The first n images of the class-balanced order (nested in n)."""
    idx = splits.labeled(n)
    return train.X[idx], train.y[idx]


X, y = training_set(NUM_TRAIN)
valid = splits.order[NUM_TRAIN:NUM_TRAIN + NUM_VALID]  # after every training set
X_valid, y_valid = train.X[valid], train.y[valid]
X_test, y_test = test.X[:SETTINGS["num_test"]], test.y[:SETTINGS["num_test"]]
print(f"train {len(X):,} images, validation {len(X_valid):,}, test {len(X_test):,}; "
      f"per class in train: {torch.bincount(y, minlength=10).tolist()}")

# %% [markdown]
# ## 2 · The network and its objective
#
# A fully connected network with `depth` hidden layers of sigmoid units, as in
# the paper, and a linear output layer whose 10 numbers are logits.

# %%
def mlp(depth, width):
    """784 -> width (sigmoid) -> ... -> 10 logits."""
    layers, d = [nn.Flatten()], 28 * 28  # 1x28x28 -> 784
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.Sigmoid()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, 10))


print(mlp(2, WIDTH))

# %% [markdown]
# The objective is the negative log-likelihood (NLL) of the labels, the
# cross-entropy of the logits. A network that learned nothing can still
# predict the class frequencies: its NLL is their entropy, the **best constant
# predictor**. A network whose training NLL ends near it has stalled.

# %%
def nll_loss(model, batch):
    X, y = batch
    return F.cross_entropy(model(X), y)


def constant_nll(y):
    """The NLL of predicting the class frequencies of y for every image."""
    p = torch.bincount(y, minlength=10).double() / len(y)
    return float(-(p[p > 0] * p[p > 0].log()).sum())


BASELINE_NLL = constant_nll(y)
print(f"best constant predictor: NLL {BASELINE_NLL:.3f} (ln 10 = {np.log(10):.3f})")

# %% [markdown]
# ## 3 · A denoising autoencoder, one layer
#
# Each hidden layer is pretrained as the encoder of a one-layer denoising
# autoencoder (DAE): its input is corrupted, and it learns to give back the
# *clean* input. The inputs (pixels, then the sigmoid codes of the layer
# below) lie in [0, 1], so the reconstruction error is the binary
# cross-entropy, and the decoder returns logits.

# %%
def dae(in_features, width):
    """Encoder (the layer we keep) and decoder of one layer."""
    return nn.Sequential(nn.Linear(in_features, width), nn.Sigmoid(),
                         nn.Linear(width, in_features))  # logits of the input


print(dae(28 * 28, WIDTH))

# %% [markdown]
# **Exercise 1.** Write the denoising objective. Corrupt the input with
# *masking noise*: set each input to 0 with probability `MASK` (keep the
# others as they are; `torch.rand_like(X) >= MASK` is True where an input
# survives). Then return the binary cross-entropy between the model's logits
# for the corrupted input and the **clean** input
# (`F.binary_cross_entropy_with_logits`). Every DAE below trains with it.

# %%
def denoising_loss(model, batch):
    X, = batch
    ...  # your code here: corrupt X into X_tilde, return one number


# %% [markdown]
# The check gives your function a probe that keeps what it was shown and
# returns fixed logits.

# %%
def check_denoising_loss(denoising_loss):
    ex = aelab.exercises  # the probes: gradients, untouched inputs, one fit step
    torch.manual_seed(0)
    X, logits = torch.rand(128, 200) * 0.9 + 0.05, torch.randn(128, 200)

    class Probe(nn.Module):  # returns fixed logits (times a weight, 1), notes X_in
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, X_in):
            self.seen = X_in
            return self.scale * logits.to(X_in.device, X_in.dtype)

    probe = Probe()

    def run(X=X):  # the student's loss, and what the model saw
        return answer(denoising_loss(probe, (X,))), probe.seen

    def masked_or_kept(seen):
        return (seen == X) | (seen == 0)

    def target_is_clean():
        loss, seen = run()
        return not close(loss, F.binary_cross_entropy_with_logits(logits, seen))

    def per_input():  # each image and each pixel masked on its own, not together
        dropped = (run()[1] == 0).float()
        return all(bool((share - MASK).abs().max() < 0.2)
                   for share in (dropped.mean(1), dropped.mean(0)))

    def trains(strategy):  # two DAEs in one fit_many, as train_daes trains them
        daes = [nn.Sequential(nn.Linear(200, 8), nn.Sigmoid(), nn.Linear(8, 200))
                for _ in range(2)]
        return ex.one_step(daes, [(X,)] * 2, denoising_loss, strategy=strategy)

    # No bfloat16 case: a GPU trains under bf16 autocast, where the logits are
    # bf16 but the BCE runs in float32; the ops that fail there on a float32
    # tensor made with torch.zeros (scatter, index_put) fail the float64 case too.
    snapshot = ex.Snapshot(X)  # before the first call
    return check("Exercise 1", [
        (run, "it must run on a model and a batch (X,) of 128 inputs"),
        (lambda: run()[0].dim() == 0, "return one number (a 0-d tensor, a mean)"),
        (snapshot.unchanged, "leave X as it is: X_tilde = X * mask is a new tensor "
         "(X[mask] = 0 would also change the target and the data)"),
        (lambda: not torch.equal(run()[1], X), "the model saw the clean X: corrupt "
         "it first, X_tilde = X * (torch.rand_like(X) >= MASK)"),
        (lambda: bool(masked_or_kept(run()[1]).all()), "masking noise sets "
         "some inputs to 0 and leaves the others unchanged (no added noise)"),
        (lambda: abs((run()[1] == 0).float().mean().item() - MASK) < 0.05,
         f"set a share MASK = {MASK} of the inputs to 0 (each with probability MASK)"),
        (per_input, "draw the mask for every input of every image "
         "(torch.rand_like(X)), not one decision per image or per pixel position"),
        (lambda: not close(run()[0], F.mse_loss(logits, X)), "use the binary "
         "cross-entropy, not the MSE: the inputs lie in [0, 1]"),
        (target_is_clean, "the target is the clean X, not the corrupted input"),
        (lambda: not close(run()[0], F.binary_cross_entropy_with_logits(X, logits)),
         "prediction and target are swapped: the model's logits come first, "
         "F.binary_cross_entropy_with_logits(model(X_tilde), X)"),
        (lambda: close(run()[0], F.binary_cross_entropy_with_logits(logits, X)),
         "return F.binary_cross_entropy_with_logits(model(X_tilde), X)"),
        (lambda: not ex.no_gradient(run()[0], probe), "no gradient reaches the "
         "model's weights: return the loss tensor itself (no .item(), .detach() "
         "or torch.tensor(...))"),
        (lambda: run(X.double())[0].dtype == torch.float64, "keep the input's "
         "dtype (float64 here): no .float(), no new tensors of a fixed dtype"),
        (lambda: trains("sequential"), "aelab.fit_many cannot train on it: return "
         "F.binary_cross_entropy_with_logits(model(X_tilde), X)"),
        # fit_many stacks the DAEs under vmap (batched on a CPU, vmap on a GPU)
        (lambda: trains("vmap"), "fit_many trains the DAEs stacked under vmap, "
         "which cannot branch on a tensor's value: no `if` on a tensor, no .item() "
         "(torch.where(cond, a, b) picks without branching)"),
        # after vmap: on the meta device an `if` on a tensor fails too
        (lambda: run(X.to("meta")), "make the mask on X's device: torch.rand_like(X), "
         "not torch.rand(X.shape) (that one is always on the CPU)"),
    ], done="masking noise in, the clean input as the target", code=denoising_loss)


check_denoising_loss(denoising_loss)

# %% [markdown]
# *Solution:*

# %% tags=["solution", "hide-cell"]
def denoising_loss(model, batch):
    X, = batch
    X_tilde = X * (torch.rand_like(X) >= MASK)  # masking noise
    return F.binary_cross_entropy_with_logits(model(X_tilde), X)


check_denoising_loss(denoising_loss)

# %% [markdown]
# ## 4 · Greedy layer-wise pretraining
#
# Layer 1 is a DAE trained on the pixels; layer 2 a DAE trained on the codes
# of layer 1 (frozen); and so on. Each initialisation (seed) gets its own
# stack: the DAEs of all seeds train together, one `fit_many` per layer.
#
# **Exercise 2.** Write the greedy loop. `train_daes(codes, width, layer)`
# trains one DAE per seed, DAE i on `codes[i]`, and returns them. For each
# width: train the layer's DAEs, keep each one's encoder layer (`dae[0]`) in
# its seed's stack, and replace each seed's codes by what that layer makes of
# them (`encode(layer, codes)`).

# %%
def encode(layer, codes):
    """The sigmoid codes a trained encoder layer gives its inputs."""
    with torch.no_grad():
        return torch.sigmoid(layer(codes))


def greedy_pretrain(X, widths, seeds, train_daes):
    """{seed: [encoder layer 1, layer 2, ...]}, each layer trained as a DAE on
    the codes of the layers below it."""
    codes = [X] * len(seeds)  # noqa: F841 - what the next layer learns from
    stacks = {seed: [] for seed in seeds}
    for layer, width in enumerate(widths):
        ...  # your code here
    return stacks


# %% [markdown]
# The check hands your loop a `train_daes` that trains nothing and notes what
# it was given.

# %%
def check_greedy(greedy_pretrain):
    ex = aelab.exercises  # the probes: untouched inputs, one fit_many per layer
    X, calls = torch.rand(6, 12), []

    def fake_train(codes, width, layer, steps=0):
        torch.manual_seed(layer)
        daes = [dae(c.shape[1], width) for c in codes]
        calls.append((list(codes), width, layer, daes))
        if steps:  # train for real, as the lesson's train_daes does
            ex.one_step(daes, [(c,) for c in codes], lambda m, batch: (
                F.binary_cross_entropy_with_logits(m(batch[0]), batch[0])))
        return daes

    def stacks(train=fake_train):
        calls.clear()
        out = greedy_pretrain(X, (5, 4, 3), [7, 8], train)
        return answer(out if calls else None)  # no layer trained: not answered yet

    def learns_from_codes():  # layer k + 1 got what layer k's encoder made
        stacks()
        for (below, _, _, daes), (given, _, _, _) in zip(calls, calls[1:]):
            for i, codes in enumerate(given):
                want = encode(daes[i][0], below[i])
                if codes.shape != want.shape or not torch.allclose(codes, want):
                    return False
        return True

    snapshot = ex.Snapshot(X)  # before the first call
    return check("Exercise 2", [
        (stacks, "it must run on 6 inputs, widths (5, 4, 3) and seeds [7, 8]"),
        (snapshot.unchanged, "leave X as it is: the next layer's codes are new "
         "tensors, codes[i] = encode(daes[i][0], codes[i])"),
        (lambda: sorted(stacks()) == [7, 8] and all(len(s) == 3 for s in
                                                    stacks().values()),
         "return {seed: [one layer per width]} for every seed"),
        (lambda: stacks() and [(c[1], c[2]) for c in calls] == [(5, 0), (4, 1), (3, 2)],
         "call train_daes(codes, width, layer) once per layer, in order"),
        (lambda: stacks() and all(torch.equal(c, X) for c in calls[0][0]),
         "the first layer learns from the inputs X"),
        (learns_from_codes,
         "each layer must learn from the codes of the layer below: "
         "codes[i] = encode(daes[i][0], codes[i])"),
        (lambda: stacks() and not any(c.requires_grad for call in calls
                                      for c in call[0]),
         "compute the codes with encode(daes[i][0], codes[i]): it runs under "
         "no_grad, so that the next layer does not train through this one"),
        (lambda: all(s[k] is calls[k][3][i][0] for i, s in enumerate(stacks().values())
                     for k in range(3)),
         "keep each DAE's encoder layer, daes[i][0], in its seed's stack"),
        (lambda: stacks(functools.partial(fake_train, steps=1)), "fit_many cannot "
         "train the next layer on these codes: make them with encode(...)"),
    ], done="each layer is a DAE trained on the codes of the one below",
        code=greedy_pretrain)


check_greedy(greedy_pretrain)

# %% tags=["solution", "hide-cell"]
def greedy_pretrain(X, widths, seeds, train_daes):
    """{seed: [encoder layer 1, layer 2, ...]}, each layer trained as a DAE on
    the codes of the layers below it."""
    codes = [X] * len(seeds)  # what the next layer learns from, per seed
    stacks = {seed: [] for seed in seeds}
    for layer, width in enumerate(widths):
        daes = train_daes(codes, width, layer)
        for i, (seed, d) in enumerate(zip(seeds, daes)):
            stacks[seed].append(d[0])
            codes[i] = encode(d[0], codes[i])
    return stacks


check_greedy(greedy_pretrain)

# %% [markdown]
# The real `train_daes`: DAE i of a layer starts from seed (seed, layer) and
# trains with your `denoising_loss`, the same optimiser, lr and batch size as
# the classifiers. Each DAE's history is kept: its health gate (section 15)
# asks that its loss beat the best constant reconstruction (each input's mean)
# and reach a plateau.

# %%
def constant_bce(codes):
    """The BCE of reconstructing every input by its mean over the images."""
    p = codes.mean(0, keepdim=True).clamp(1e-6, 1 - 1e-6)
    return float(F.binary_cross_entropy(p.expand_as(codes), codes))


DAE_FITS = {}  # (size, layer, seed) -> (History, the constant reconstruction's BCE)


def pretrain(X_images, seeds, num_layers, group=32):
    """Greedy pretraining of every seed's stack on these images, `group` seeds
    at a time (the codes of a group's seeds are in memory together)."""
    def train_daes(codes, width, layer, seeds):
        daes = []
        for seed, c in zip(seeds, codes):
            torch.manual_seed(10_000 * (layer + 1) + seed)
            daes.append(dae(c.shape[1], width))
        hs = aelab.fit_many(daes, [(c,) for c in codes], denoising_loss,
                            num_epochs=SETTINGS["ae_epochs"], lr=LR,
                            batch_size=BATCH_SIZE, seeds=seeds, cache=True,
                            desc=f"DAE layer {layer + 1}, {len(X_images)} images")
        for seed, c, h in zip(seeds, codes, hs):
            DAE_FITS[len(X_images), layer + 1, seed] = (h, constant_bce(c))
        return daes

    pixels = to_float(X_images).flatten(1)  # N x 784 in [0, 1]
    stacks = {}
    for k in range(0, len(seeds), group):
        chunk = seeds[k:k + group]
        stacks.update(greedy_pretrain(pixels, [WIDTH] * num_layers, chunk,
                                      functools.partial(train_daes, seeds=chunk)))
    return stacks


# %% [markdown]
# Every seed's stack, as deep as the deepest network; a shallower network
# takes the first layers of its seed's stack.

# %% tags=["nbval-ignore-output"]
check_denoising_loss(denoising_loss).require()  # stop here if Exercise 1 is not done
check_greedy(greedy_pretrain).require()  # and here if Exercise 2 is not done
start = time.perf_counter()
STACKS = {NUM_TRAIN: pretrain(X, SEEDS, max(DEPTHS))}
print(f"pretrained {len(SEEDS)} stacks of {max(DEPTHS)} layers in "
      f"{time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 5 · Predict before you run
#
# After the same number of epochs, which networks will have the **lower
# training NLL**: those started from pretraining or those started at random?
# Commit to an answer, run section 6, then press *Reveal*.

# %% tags=["nbval-ignore-output"]
def reveal(choice):
    if "ROW" not in globals():
        return "Run section 6 first, then press Reveal again."
    lines = []
    for d in DEPTHS:
        a, b = (np.median(final(d, NUM_TRAIN, arm, "train_nll")) for arm in ARMS)
        lines.append(f"{d} hidden layer(s): median train NLL without pretraining "
                     f"{a:.4f}, with {b:.4f}")
    return "\n".join(lines) + f"\nYou said: {choice}. Section 9 shows when it changes."


widgets.choice_checker("Lower training NLL at the end?",
                       ["with pretraining", "without pretraining", "about the same"],
                       reveal)

# %% [markdown]
# ## 6 · The protocol: depths × arms × initialisations
#
# For every depth and every seed, two networks: one from a random start
# (`torch.manual_seed(seed)`), one whose hidden layers are that seed's
# pretrained stack (its output layer is the random one of the same seed).
# Both then train on the labels with the same optimiser, epochs and batch
# order. `fit_many` trains all the initialisations of an arm at once
# (`strategy="auto"` stacks them into one batched network on a CPU). One
# tidy row per trained network.
#
# Each arm is a recipe: whether its hidden layers come from pretraining, its
# L2 penalty, its optimiser and learning rate, and its initialisation. The L2
# arms (section 11) add `weight_decay` to the same Adam: PyTorch's Adam adds
# `weight_decay × w` to each gradient, the gradient of an L2 penalty on every
# weight and bias. The plain-SGD arms are section 12's.

# %%
def paper_init(net):
    """The paper's initialisation: weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    biases 0. (PyTorch's default draws the weights from the same range, and the
    biases from it too.)"""
    for layer in net:
        if isinstance(layer, nn.Linear):
            bound = 1 / np.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)
    return net


ARMS = ("no pretraining", "pretraining")
SGD = dict(optimizer="plain-sgd", lr=SETTINGS["sgd_lr"], init=paper_init)
RECIPES = {"no pretraining": {}, "pretraining": dict(pretrained=True),
           **{f"L2 {wd:g}": dict(weight_decay=wd) for wd in WEIGHT_DECAYS},
           "no pretraining, plain SGD": SGD,
           "pretraining, plain SGD": dict(SGD, pretrained=True)}
RUNS = {}  # (depth, size, arm) -> {seed: History}
NETS = {}  # (depth, size, arm) -> {seed: trained network}
FIRST_LAYER = {}  # (depth, size, arm) -> the first seed's first layer before training


def train_arm(arm, depth, size, seeds):
    """Train one network per seed with the arm's recipe; keep them and their
    histories."""
    how = dict(pretrained=False, weight_decay=0.0, optimizer="adam", lr=LR,
               init=None) | RECIPES[arm]
    X_n, y_n = training_set(size)
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        net = mlp(depth, WIDTH)
        if how["init"] is not None:
            how["init"](net)
        if how["pretrained"]:
            for k, layer in enumerate(STACKS[size][seed][:depth]):
                net[1 + 2 * k].load_state_dict(layer.state_dict())
        nets.append(net)
    FIRST_LAYER[depth, size, arm] = nets[0][1].weight.detach().clone()
    num_eval = SETTINGS["num_eval"]
    # The same number of updates at every size: a smaller set gets more epochs
    # (section 11 says why).
    num_epochs = SETTINGS["clf_epochs"] * math.ceil(NUM_TRAIN / size)
    histories = aelab.fit_many(
        nets, [(X_n, y_n)] * len(nets), nll_loss, num_epochs=num_epochs,
        lr=how["lr"], batch_size=BATCH_SIZE, optimizer=how["optimizer"],
        weight_decay=how["weight_decay"], seeds=seeds, test_data=(X_test, y_test),
        eval_data={"train_nll": (X_n[:num_eval], y_n[:num_eval]),
                   "valid_nll": (X_valid, y_valid)},
        desc=f"{arm}, {depth} layer(s), {size} images", cache=True)
    RUNS[depth, size, arm] = dict(zip(seeds, histories))
    NETS[depth, size, arm] = dict(zip(seeds, nets))


start = time.perf_counter()
for depth in DEPTHS:
    for arm in ARMS:
        train_arm(arm, depth, NUM_TRAIN, SEEDS)
print(f"trained {len(DEPTHS) * len(ARMS) * len(SEEDS)} networks in "
      f"{time.perf_counter() - start:.0f} s")

# %% [markdown]
# The final-epoch numbers of every network: train NLL (on the `num_eval`
# training images), validation and test NLL, test error, and whether it
# stalled (its train NLL stayed above 90% of the best constant predictor's,
# or barely moved). `final(...)` gives one column of an arm, seed by seed;
# `curves(...)` an arm's NLL after every epoch.

# %%
rows, ROW = [], {}  # ROW[depth, size, arm, seed]: that network's row


def collect(depth, size, arm):
    """One row per network of (depth, size, arm)."""
    for seed, h in RUNS[depth, size, arm].items():
        net = NETS[depth, size, arm][seed]
        error = 1 - metrics.accuracy(aelab.predict(net, X_test), y_test)
        row = dict(method=f"{arm}, {depth} layer(s)", budget=size, seed=seed, arm=arm,
                   depth=depth, train_nll=h.metrics["train_nll"][-1],
                   test_nll=h.test_loss[-1], test_error=error,
                   valid_nll=h.metrics["valid_nll"][-1],
                   stalled=h.stalled or h.metrics["train_nll"][-1] > 0.9 * BASELINE_NLL)
        rows.append(row)
        ROW[depth, size, arm, seed] = row


def final(depth, size, arm, key, seeds=None):
    """One final-epoch column of an arm, in the order of `seeds` (all it ran)."""
    seeds = list(RUNS[depth, size, arm]) if seeds is None else seeds
    return np.array([ROW[depth, size, arm, s][key] for s in seeds], dtype=float)


def curves(depth, size, arm, seeds=None):
    """{'train_nll', 'test_nll'}: seeds x epochs arrays of an arm."""
    runs = RUNS[depth, size, arm]
    seeds = list(runs) if seeds is None else seeds
    return {"train_nll": np.array([runs[s].metrics["train_nll"] for s in seeds]),
            "test_nll": np.array([runs[s].test_loss for s in seeds])}


for depth in DEPTHS:
    for arm in ARMS:
        collect(depth, NUM_TRAIN, arm)
stalled = [r for r in rows if r["stalled"]]
print(f"{len(rows) - len(stalled)} of {len(rows)} networks trained (train NLL below "
      f"90% of the constant predictor's {BASELINE_NLL:.2f}); stalled: "
      + (", ".join(f"{r['method']} seed {r['seed']}" for r in stalled) or "none"))

# %% [markdown]
# ## 7 · Figure 1, rebuilt
#
# Each line is one initialisation: its log test NLL against its log train NLL
# after every epoch. Training runs from right (high train NLL, the first
# epoch) to left; a line that turns *up* as it goes left is overfitting.
# Blue: from a random start; red: from pretraining. The dots mark the last
# epoch.

# %% alt="The paper's Figure 1 rebuilt: log test NLL against log train NLL over the epochs, one thin line per initialisation, blue without pretraining and red with, one panel per depth."
COLORS = {"no pretraining": "C0", "pretraining": "C3", "L2 (tuned)": "C2",
          "no pretraining, plain SGD": "C9", "pretraining, plain SGD": "C1",
          **{f"L2 {wd:g}": f"C{4 + k}" for k, wd in enumerate(WEIGHT_DECAYS)}}


def figure1(ax, depth, size, arms, shown):
    """Trajectories of the first `shown` seeds of each arm on one panel."""
    for arm in arms:
        runs = list(RUNS.get((depth, size, arm), {}).values())[:shown]
        for k, h in enumerate(runs):
            ax.plot(h.metrics["train_nll"], h.test_loss, color=COLORS[arm], lw=0.7,
                    alpha=0.5, label=arm if k == 0 else None)
            ax.plot(h.metrics["train_nll"][-1], h.test_loss[-1], "o", ms=2.5,
                    color=COLORS[arm])
    ax.set_xscale("log"), ax.set_yscale("log")
    for axis, shown in ((ax.xaxis, "25"), (ax.yaxis, "2345")):  # 0.2, not 2x10^-1
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(ticker.FuncFormatter(
            lambda v, _, shown=shown: f"{v:g}" if f"{v:.0e}"[0] in shown else ""))
    ax.set_xlabel("train NLL (log)"), ax.set_ylabel("test NLL (log)")
    ax.set_title(f"{depth} hidden layer(s), {size} training images", fontsize=9)
    ax.legend(fontsize=7), ax.grid(alpha=0.3, which="both")


fig, axes = plt.subplots(1, len(DEPTHS), figsize=(4.2 * len(DEPTHS), 3.6),
                         squeeze=False)
for ax, depth in zip(axes[0], DEPTHS):
    figure1(ax, depth, NUM_TRAIN, ARMS, INITS)
fig.tight_layout()

# %% [markdown]
# ## 8 · The final epoch: distributions and spread
#
# Every network's final train NLL, test NLL and test error, per depth and arm
# (each dot one initialisation, the box its quartiles), then the same as a
# table: median [interquartile range] (min-max).

# %% alt="Three panels of dots and boxes per depth and arm: final train NLL, final test NLL and final test error, each dot one initialisation."
def spread(v, scale=1.0, digits=3):
    """'median [first-third quartile]' and '(min-max)' of v * scale."""
    q1, med, q3 = np.percentile(v * scale, [25, 50, 75])
    low, high = (v * scale).min(), (v * scale).max()
    return (f"{med:.{digits}f} [{q1:.{digits}f}-{q3:.{digits}f}]",
            f"({low:.{digits}f}-{high:.{digits}f})")


COLUMNS = {"train_nll": "train NLL", "test_nll": "test NLL",
           "test_error": "test error (%)"}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, (key, label) in zip(axes, COLUMNS.items()):
    for j, depth in enumerate(DEPTHS):
        for k, arm in enumerate(ARMS):
            v = final(depth, NUM_TRAIN, arm, key) * (100 if key == "test_error" else 1)
            x = 3 * j + k
            ax.boxplot([v], positions=[x], widths=0.7, showfliers=False)
            jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(v))
            ax.scatter(x + jitter, v, s=6, color=COLORS[arm], alpha=0.7,
                       label=arm if j == 0 else None)
    ax.set_xticks([3 * j + 0.5 for j in range(len(DEPTHS))],
                  [f"{d} layer(s)" for d in DEPTHS])
    ax.set_title(label), ax.grid(alpha=0.3)
    if key != "test_error":
        ax.set_yscale("log")
axes[0].legend(fontsize=7)
fig.tight_layout()
TABLE = [f"{'':15} {'train NLL':^23} {'test NLL':^23} {'test error (%)':^23}"]
for depth in DEPTHS:
    TABLE.append(f"{depth} hidden layer(s)")
    for arm in ARMS:
        cells = [spread(final(depth, NUM_TRAIN, arm, "train_nll"), 1, 4),
                 spread(final(depth, NUM_TRAIN, arm, "test_nll")),
                 spread(final(depth, NUM_TRAIN, arm, "test_error"), 100, 2)]
        for k, label in enumerate((arm, "")):
            TABLE.append(f"{label:15} " + " ".join(f"{c[k]:^23}" for c in cells))
TABLE = "\n".join(TABLE)
print(f"final epoch, {INITS} initialisations per arm: median [IQR] (min-max)")
print(TABLE)

# %% [markdown]
# ## 9 · When does training stop? The trajectories, epoch by epoch
#
# Figure 1's question, "does the pretrained network end at a higher train NLL
# and a lower test NLL?", depends on when "the end" is: the train curves of
# the two arms can cross late. So the verdict (section 16) judges the
# regulariser claim at three stopping points, a third of the way, two thirds
# and the end, and the tables below give every epoch.
#
# **The margins of the verdict**, written here before the numbers below: the
# smallest differences that matter.
# * NLL, train or test: **5%**, measured as 100 × the log of the ratio of the
#   two arms' NLL, seed by seed (what Figure 1's log axes show; 5 is about a
#   5% lower NLL).
# * Variance across initialisations (section 10): **10%** of the variance
#   without pretraining.
# * Test error (section 11): **0.25 points**.

# %%
TEST_MARGIN = TRAIN_MARGIN = 5.0  # 100 x ln(ratio) of two NLLs, about percent
VAR_MARGIN = 10.0  # percent of the variance without pretraining
SIZE_MARGIN = 0.25  # points of test error
E = SETTINGS["clf_epochs"]
STOPS = {"a third of training": max(1, round(E / 3)),
         "two thirds of training": max(1, round(2 * E / 3)), "the end": E}
MEDIANS = {(d, arm): {k: np.median(v, axis=0) for k, v in
                      curves(d, NUM_TRAIN, arm).items()}
           for d in DEPTHS for arm in ARMS}  # (depth, arm) -> per-epoch medians


def crossings(depth):
    """The epochs at which the median train NLL of the two arms swap order."""
    gap = (MEDIANS[depth, "pretraining"]["train_nll"]
           - MEDIANS[depth, "no pretraining"]["train_nll"])
    sign = np.sign(gap)
    return gap, [e + 1 for e in range(1, len(gap)) if sign[e] != sign[e - 1]]


def describe_crossing(depth):
    gap, where = crossings(depth)

    def lower(epoch):
        return "pretraining's" if gap[epoch - 1] < 0 else "no pretraining's"
    if not where:
        return f"the median train curves never cross: {lower(1)} is lower at every epoch"
    return (f"the median train curves cross at epoch {', '.join(map(str, where))}; "
            f"from epoch {where[-1]} on, {lower(where[-1])} is lower")


at_stop = {e: name for name, e in STOPS.items()}
TRAJECTORIES = []
for d in DEPTHS:
    (a, b) = (MEDIANS[d, arm] for arm in ARMS)
    TRAJECTORIES += [f"{d} hidden layer(s): median NLL over {INITS} initialisations",
                     f"{'epoch':>5}  {'train, none':>11}  {'train, pre':>10}  "
                     f"{'test, none':>10}  {'test, pre':>9}"]
    for e in range(E):
        stop = f"  <- {at_stop[e + 1]}" if e + 1 in at_stop else ""
        TRAJECTORIES.append(f"{e + 1:>5}  {a['train_nll'][e]:>11.4f}  "
                            f"{b['train_nll'][e]:>10.4f}  {a['test_nll'][e]:>10.4f}  "
                            f"{b['test_nll'][e]:>9.4f}{stop}")
    TRAJECTORIES.append(f"  {describe_crossing(d)}\n")
TRAJECTORIES = "\n".join(TRAJECTORIES)
print(TRAJECTORIES)

# %% [markdown]
# The same medians as curves: train NLL solid, test NLL dashed, the three
# stopping points as grey lines.

# %% alt="Median train NLL (solid) and test NLL (dashed) against the epoch on a log scale, one panel per depth, one colour per arm, grey vertical lines at the three stopping points."
fig, axes = plt.subplots(1, len(DEPTHS), figsize=(4 * len(DEPTHS), 3.2),
                         squeeze=False)
for ax, d in zip(axes[0], DEPTHS):
    for arm in ARMS:
        epochs = np.arange(1, E + 1)
        ax.plot(epochs, MEDIANS[d, arm]["train_nll"], color=COLORS[arm], label=arm)
        ax.plot(epochs, MEDIANS[d, arm]["test_nll"], "--", color=COLORS[arm])
    for e in STOPS.values():
        ax.axvline(e, color="0.6", lw=0.8)
    ax.set_yscale("log"), ax.set_xlabel("epoch"), ax.set_ylabel("median NLL (log)")
    ax.set_title(f"{d} hidden layer(s)", fontsize=9), ax.grid(alpha=0.3)
axes[0][0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## 10 · Do different initialisations agree?
#
# Give the trained networks of an arm the same test images: how much do their
# predicted probabilities differ between initialisations? Per test image, the
# variance over initialisations of each class's probability, summed over the
# classes; then the mean over the test images.
#
# That variance is a sum over the initialisations: each one's squared
# distance from its arm's mean prediction, × n/(n − 1). Seed i's distance
# without pretraining minus its distance with pretraining is a **paired**
# difference (seed i of both arms shares its output layer and batch order);
# their mean is the drop in variance, and its 95% bootstrap interval
# resamples the seeds, the same draws in both arms. Below: that drop as a
# share of the variance without pretraining, at every depth.

# %%
def probabilities(depth, size, arm):
    """inits x test images x classes, in the order of SEEDS."""
    return torch.stack([aelab.predict(NETS[depth, size, arm][s], X_test).softmax(1)
                        for s in SEEDS])


def output_variance(P):
    return P.var(0).sum(1).mean().item()


def distances(P):
    """Per initialisation: its squared distance from the mean prediction."""
    return ((P - P.mean(0)) ** 2).sum(2).mean(1).double().numpy()


def variance_drop(depth):
    """Per seed, 100 x (distance without - with) x n/(n-1) / variance without:
    their mean is the percent drop in variance."""
    P_a, P_b = PROBS[depth, ARMS[0]], PROBS[depth, ARMS[1]]
    n = len(P_a)
    drop = (distances(P_a) - distances(P_b)) * n / (n - 1)
    return paired_effect(100 * drop / output_variance(P_a), VAR_MARGIN, unit="%")


PROBS = {(d, arm): probabilities(d, NUM_TRAIN, arm) for d in DEPTHS for arm in ARMS}
VARIANCE = {d: variance_drop(d) for d in DEPTHS}
for d in DEPTHS:
    a, b = (output_variance(PROBS[d, arm]) for arm in ARMS)
    print(f"{d} layer(s): variance across initialisations without pretraining "
          f"{a:.2e}, with {b:.2e} (ratio {b / a:.2f}); drop: {VARIANCE[d]}")

# %% [markdown]
# The same per test image: each point one test image, its variance without
# pretraining (x) against with (y). Points under the diagonal are images on
# which the pretrained networks agree more.

# %% alt="One scatter panel per depth: each point a test image, its prediction variance across initialisations without pretraining (x) against with pretraining (y), with the diagonal drawn."
fig, axes = plt.subplots(1, len(DEPTHS), figsize=(3.6 * len(DEPTHS), 3.4),
                         squeeze=False)
for ax, depth in zip(axes[0], DEPTHS):
    v = [PROBS[depth, arm].var(0).sum(1) for arm in ARMS]
    top = max(float(v[0].max()), float(v[1].max()), 1e-6)
    ax.scatter(v[0], v[1], s=4, alpha=0.5)
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlabel("variance, no pretraining"), ax.set_ylabel("variance, pretraining")
    ax.set_title(f"{depth} layer(s)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## 11 · Does the effect hold as the training set grows? L2, tuned
#
# At one depth, no pretraining, pretraining, and an **L2 penalty** (no
# pretraining, `weight_decay` in the same Adam) at several training-set sizes.
# At each size the pretraining sees only that size's images. Every size gets
# about the same number of updates as section 6's networks (`clf_epochs` x
# `NUM_TRAIN` / size epochs): with the same epochs, a set a sixth the size
# gets a sixth of the updates, its networks are still learning when they are
# compared, and their gates say so. Runs shared with section 6 (the largest
# size) come from the cache.
#
# L2 gets a fair chance: at **each size**, each strength in `WEIGHT_DECAYS` is
# trained, and the one with the lowest mean validation NLL (the held-out
# images of section 1, never the test set) is that size's **L2 (tuned)**.
# Pretraining gets no such tuning.

# %% tags=["nbval-ignore-output"]
SIZE_DEPTH = SETTINGS["budget_depth"]
SIZE_SEEDS = list(SEEDS[:SETTINGS["budget_seeds"]])
L2_ARMS = [f"L2 {wd:g}" for wd in WEIGHT_DECAYS]
start = time.perf_counter()
for size in SIZES:
    if size not in STACKS:
        STACKS[size] = pretrain(training_set(size)[0], SIZE_SEEDS, SIZE_DEPTH)
    for arm in (*ARMS, *L2_ARMS):
        if (SIZE_DEPTH, size, arm) not in RUNS:  # not trained in section 6
            train_arm(arm, SIZE_DEPTH, size, SIZE_SEEDS)
            collect(SIZE_DEPTH, size, arm)
print(f"training-set sizes done in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# The strength each size chose, then the **gains** in test error over no
# pretraining (no pretraining's error minus the arm's, seed by seed, points:
# positive means the arm helped), with their paired 95% intervals.

# %%
VALID = {n: {arm: float(np.mean(final(SIZE_DEPTH, n, arm, "valid_nll", SIZE_SEEDS)))
             for arm in L2_ARMS} for n in SIZES}
TUNED = {n: min(VALID[n], key=VALID[n].get) for n in SIZES}  # size -> its L2 arm


def gain(size, arm):
    """Per seed (SIZE_SEEDS), points: no pretraining's test error minus arm's."""
    return 100 * (final(SIZE_DEPTH, size, "no pretraining", "test_error", SIZE_SEEDS)
                  - final(SIZE_DEPTH, size, arm, "test_error", SIZE_SEEDS))


GAINS = {"pretraining": {n: gain(n, "pretraining") for n in SIZES},
         "L2 (tuned)": {n: gain(n, TUNED[n]) for n in SIZES}}
SIZE_REPORT = [f"{SIZE_DEPTH} hidden layer(s), {len(SIZE_SEEDS)} seeds; mean "
               "validation NLL per L2 strength, and the gains in test error:"]
for n in SIZES:
    SIZE_REPORT.append(f"{n:>6} images: " + ", ".join(
        f"{arm} {v:.4f}" + (" (chosen)" if arm == TUNED[n] else "")
        for arm, v in VALID[n].items()))
    for arm, g in GAINS.items():
        SIZE_REPORT.append(f"{'':>14}{arm:<12} gain "
                           f"{paired_effect(g[n], SIZE_MARGIN, unit=' points')}")
SIZE_REPORT = "\n".join(SIZE_REPORT)
print(SIZE_REPORT)

# %% [markdown]
# Test error per size: median and interquartile band over the seeds.

# %% alt="Test error against the training-set size on a log axis: the median and interquartile band over seeds for each arm and for tuned L2."
fig, ax = plt.subplots(figsize=(6, 3.8))
for arm in (*ARMS, "L2 (tuned)"):
    errors = np.array([100 * final(SIZE_DEPTH, n, TUNED[n] if arm == "L2 (tuned)"
                                   else arm, "test_error", SIZE_SEEDS) for n in SIZES])
    q1, med, q3 = np.percentile(errors, [25, 50, 75], axis=1)
    ax.plot(SIZES, med, "o-", ms=3, color=COLORS[arm], label=arm)
    ax.fill_between(SIZES, q1, q3, color=COLORS[arm], alpha=0.15)
ax.set_xscale("log"), ax.set_xlabel("training images (log scale)")
ax.set_xticks(SIZES, [str(n) for n in SIZES]), ax.minorticks_off()
ax.set_ylabel("test error (%)"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
ax.set_title(f"{SIZE_DEPTH} hidden layer(s), {len(SIZE_SEEDS)} initialisations per arm")
fig.tight_layout()

# %% [markdown]
# ## 12 · Which optimiser? Plain SGD and the paper's initialisation
#
# The claims' arms all train with Adam. The paper trained with plain
# stochastic gradient descent (no momentum) from weights drawn from
# U(−1/√fan_in, 1/√fan_in). Sigmoid networks started that way can sit near
# chance under plain SGD for a long time: then "no pretraining" loses because
# it does not train, an *optimisation* effect, not a regularisation one. Here
# the deepest networks, both arms, with the `SGD` recipe of section 6 (its
# lr, `sgd_lr`, is one value, not tuned), and their median train NLL epoch by
# epoch beside Adam's. No claim rests on these arms.

# %% tags=["nbval-ignore-output"]
SGD_DEPTH = max(DEPTHS)
SGD_ARMS = ("no pretraining, plain SGD", "pretraining, plain SGD")
for arm in SGD_ARMS:
    train_arm(arm, SGD_DEPTH, NUM_TRAIN, SEEDS)
    collect(SGD_DEPTH, NUM_TRAIN, arm)

# %% [markdown]
# The median training NLL of every arm at the deepest depth, epoch by epoch:
# the Adam arms of the study beside the two plain-SGD arms, against the
# constant predictor's (a network that sits on that line has not started to
# learn).

# %% alt="Median training NLL against the epoch at the deepest depth, for the Adam arms and the plain-SGD arms, with a horizontal line at the constant predictor's NLL."
fig, ax = plt.subplots(figsize=(6, 3.6))
OPTIMISERS = {}  # arm -> (median final train NLL, stalled networks, test error)
for arm in (*ARMS, *SGD_ARMS):
    c = curves(SGD_DEPTH, NUM_TRAIN, arm)["train_nll"]
    ax.plot(np.arange(1, E + 1), np.median(c, axis=0), color=COLORS[arm], label=arm)
    OPTIMISERS[arm] = (float(np.median(c[:, -1])),
                       int(final(SGD_DEPTH, NUM_TRAIN, arm, "stalled").sum()),
                       float(np.median(100 * final(SGD_DEPTH, NUM_TRAIN, arm,
                                                   "test_error"))))
ax.axhline(BASELINE_NLL, color="k", ls=":", lw=0.8, label="constant predictor")
ax.set_yscale("log"), ax.set_xlabel("epoch"), ax.set_ylabel("median train NLL (log)")
ax.set_title(f"{SGD_DEPTH} hidden layer(s): Adam (lr {LR:g}) and plain SGD "
             f"(lr {SETTINGS['sgd_lr']:g})", fontsize=9)
ax.legend(fontsize=7), ax.grid(alpha=0.3)
fig.tight_layout()
for arm, (nll, dead, err) in OPTIMISERS.items():
    print(f"{arm:<26} median final train NLL {nll:.4f}, test error {err:.2f}%, "
          f"stalled {dead} of {INITS}")

# %% [markdown]
# ## 13 · What the first layer learned
#
# Sixteen first-layer filters of the first seed's deepest network, each the
# 784 weights of one hidden unit shown as a 28×28 image (scaled to its own
# range): at its random start, after pretraining (the DAE's encoder), and
# after fine-tuning; and the random start after training without pretraining.

# %% alt="Rows of sixteen first-layer filters drawn as 28 by 28 images: at the random start, trained without pretraining, after pretraining, and after fine-tuning."
def filters(weight, k=16):
    w = weight[:k].reshape(k, 1, 28, 28)
    low = w.amin((1, 2, 3), keepdim=True)
    return (w - low) / (w.amax((1, 2, 3), keepdim=True) - low + 1e-12)


deep, first = max(DEPTHS), SEEDS[0]
fig = plot.image_grid({
    "random start": filters(FIRST_LAYER[deep, NUM_TRAIN, "no pretraining"]),
    "trained, no pretraining": filters(NETS[deep, NUM_TRAIN, "no pretraining"][first][1]
                                       .weight.detach()),
    "after pretraining": filters(STACKS[NUM_TRAIN][first][0].weight.detach()),
    "after fine-tuning": filters(NETS[deep, NUM_TRAIN, "pretraining"][first][1]
                                 .weight.detach()),
}, scale=0.8)

# %% [markdown]
# ## 14 · Explore the cached runs
#
# Pick the depth and the training-set size, how many initialisations to
# draw, and which arms. (Depths other than the one of section 11 were only
# run on the full training set; L2 arms only in section 11, plain SGD only in
# section 12.)

# %% tags=["nbval-ignore-output"]
def explore(depth, size, shown, **arms):
    chosen = [a for a, on in arms.items() if on]
    present = [a for a in chosen if (depth, size, a) in RUNS]
    if not present:
        done = sorted({(d, n) for d, n, a in RUNS if a in chosen})
        fig, ax = plt.subplots(figsize=(10, 1.2))
        ax.axis("off")
        ax.text(0, 0.5, f"{depth} layer(s) at {size} images was not run for these "
                "arms; they were run at (layers, images) = "
                + ", ".join(map(str, done)), fontsize=9, wrap=True)
        return fig
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    figure1(ax1, depth, size, present, shown)
    labels = []
    for k, arm in enumerate(present):
        v = 100 * final(depth, size, arm, "test_error")[:shown]
        ax2.scatter(np.full(len(v), k) + np.linspace(-0.2, 0.2, len(v)), v, s=10,
                    color=COLORS[arm])
        ax2.hlines(np.median(v), k - 0.3, k + 0.3, color="k", lw=1)
        labels.append(f"{arm}\nmedian {np.median(v):.2f}")
    ax2.set_xticks(range(len(present)), labels, fontsize=7)
    ax2.set_ylabel("final test error (%)"), ax2.grid(alpha=0.3)
    runs = max(len(RUNS[depth, size, arm]) for arm in present)
    fig.suptitle(f"inits shown: the first {shown}, of the {runs} run at this "
                 "depth and size", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.86, wspace=0.22)
    return fig  # (fixed margins: tight_layout would cost a redraw per move)


box = dict(indent=False, layout=W.Layout(width="140px"))
widgets.interactive(
    explore,
    depth=W.Dropdown(options=list(DEPTHS), value=SIZE_DEPTH, description="depth"),
    size=W.SelectionSlider(options=SIZES, value=NUM_TRAIN, description="images"),
    shown=W.IntSlider(value=INITS, min=1, max=INITS, description="inits shown"),
    **{arm: W.Checkbox(value=arm in ARMS, description=arm, **box)
       for arm in (*ARMS, *L2_ARMS, *SGD_ARMS)})

# %% [markdown]
# ## 15 · Health gates
#
# Before a claim is judged, every network it rests on must have trained. A
# network passes its gate when
# * its final train NLL is under 90% of the best constant predictor's,
# * its test accuracy beats chance (the most common class) by 5 points, and
# * its training loss reached a **plateau**: over the last quarter of its
#   epochs it fell by less than 5% of its whole fall;
# * a pretrained network also needs each DAE of its stack to have passed the
#   same two checks on its own loss (beat the constant reconstruction,
#   plateau).
#
# A claim that rests on a network that failed reads INCONCLUSIVE, naming it:
# "not trained yet" is not evidence against the paper. The failed networks
# stay in every number above.

# %%
CHANCE = metrics.chance_accuracy(y_test)
GATE = dict(last=0.25, max_drop=0.05)  # the plateau's limits


def net_name(arm, depth, size):
    return f"{arm}, {depth} layer(s), {size} images"


def net_gate(depth, size, arm, seed):
    h, row = RUNS[depth, size, arm][seed], ROW[depth, size, arm, seed]
    gate = health_gate(net_name(arm, depth, size), seed, losses=h.train_loss,
                       accuracy=1 - row["test_error"], chance=CHANCE, **GATE)
    share = row["train_nll"] / BASELINE_NLL
    gate.checks["beats constant"] = (share < 0.9, f"train NLL {share:.0%} of the "
                                     "constant predictor's (limit 90%)")
    if RECIPES[arm].get("pretrained"):
        for layer in range(1, depth + 1):
            h_dae, constant = DAE_FITS[size, layer, seed]
            share = h_dae.train_loss[-1] / constant
            gate.checks[f"DAE {layer} beats constant"] = (
                share < 0.9, f"DAE {layer}: BCE {share:.0%} of the constant "
                "reconstruction's (limit 90%)")
            ok, text = plateau(h_dae.train_loss, **GATE)
            gate.checks[f"DAE {layer} plateau"] = (ok, f"DAE {layer}: {text}")
    return gate


gates = Gates(net_gate(d, n, arm, seed) for (d, n, arm), runs in RUNS.items()
              for seed in runs)
print(gates.summary())

# %% [markdown]
# ## 16 · The verdict
#
# Each claim is judged on **paired** effects: seed i without pretraining
# against seed i with it (the same output layer, the same batch order), over
# the seeds; the mean of those differences gets a 95% bootstrap interval,
# held against the margin of section 9:
# * the whole interval past the margin: **REPRODUCED**;
# * the whole interval short of it: **NOT REPRODUCED**;
# * the interval straddles it, fewer than 5 seeds, or a network it rests on
#   failed its gate: **INCONCLUSIVE** (the line says which, and what would
#   settle it).
#
# A claim "at every depth" needs every depth; its parts are joined with
# "and" (one NOT REPRODUCED part makes it NOT REPRODUCED).
#
# * **Regulariser, at a stopping point** (a third of training, two thirds, the
#   end; each is its own claim). At every depth: pretraining's test NLL is
#   lower by more than 5%, *and* its train NLL is not lower by more than 5%.
# * **Regulariser, at equal train NLL** (the robust form: it does not depend
#   on when training stops). At each depth, the lowest train NLL that every
#   network of both arms reached; each network's test NLL when its train NLL
#   first got there (interpolated between epochs on Figure 1's log axes).
#   Pretraining's test NLL there is lower by more than 5%, at every depth.
# * **Variance.** At every depth, pretraining lowers the variance across
#   initialisations (section 10) by more than 10%.
# * **Not all regularisers are equal** (section 11, in points of test error).
#   Pretraining's gain at the largest size exceeds 0.25; its gain at the
#   largest size is no more than 0.25 below its gain at the smallest; and the
#   tuned L2's gain at the smallest size exceeds its gain at the largest by
#   more than 0.25.

# %%
def log_ratio(a, b):
    """100 x ln(a / b), per seed: about the percent by which a exceeds b."""
    return 100 * np.log(np.asarray(a) / np.asarray(b))


def decide(parts):
    """Parts (label, Effect) joined with 'and': the Effect that decides, and
    what every part measured."""
    status = combine(e.status for _, e in parts)
    deciding = next(e for _, e in parts if e.status == status)
    return deciding, ";\n".join(f"{label}: {e}" for label, e in parts)


def stop_effects(depth, epoch):
    """(test NLL lower with pretraining, train NLL higher with it) at `epoch`."""
    none, pre = (curves(depth, NUM_TRAIN, arm, SEEDS) for arm in ARMS)
    k = epoch - 1
    return (paired_effect(log_ratio(none["test_nll"][:, k], pre["test_nll"][:, k]),
                          TEST_MARGIN, unit="%"),
            paired_effect(log_ratio(pre["train_nll"][:, k], none["train_nll"][:, k]),
                          -TRAIN_MARGIN, unit="%"))


def regulariser_at(epoch):
    def judge_it(_):
        parts = []
        for d in DEPTHS:
            test, train = stop_effects(d, epoch)
            parts += [(f"{d} layer(s), test NLL lower by", test),
                      (f"{d} layer(s), train NLL higher by", train)]
        return decide(parts)
    return judge_it


def test_nll_at(train_nll, test_nll, level):
    """Test NLL when the train NLL first reaches `level` (log-log interpolation
    between epochs; the first epoch's if it starts below)."""
    k = int(np.argmax(train_nll <= level))
    if k == 0:
        return float(test_nll[0])
    x = np.log(train_nll[k - 1:k + 1])
    w = (np.log(level) - x[0]) / (x[1] - x[0])
    return float(np.exp((1 - w) * np.log(test_nll[k - 1]) + w * np.log(test_nll[k])))


def equal_train(depth):
    """(the level, the paired effect of test NLL at that train NLL)."""
    arms = [curves(depth, NUM_TRAIN, arm, SEEDS) for arm in ARMS]
    level = max(float(c["train_nll"].min(1).max()) for c in arms)
    at = [[test_nll_at(tr, te, level) for tr, te in zip(c["train_nll"], c["test_nll"])]
          for c in arms]
    return level, paired_effect(log_ratio(at[0], at[1]), TEST_MARGIN, unit="%")


EQUAL = {d: equal_train(d) for d in DEPTHS}


def at_equal_train(_):
    return decide([(f"{d} layer(s), at train NLL {level:.4f}, test NLL lower by",
                    effect) for d, (level, effect) in EQUAL.items()])


def lower_variance(_):
    return decide([(f"{d} layer(s), variance lower by", VARIANCE[d]) for d in DEPTHS])


def not_all_equal(_):
    small, large = SIZES[0], SIZES[-1]
    pre, l2 = GAINS["pretraining"], GAINS["L2 (tuned)"]
    return decide([
        (f"pretraining's gain at {large}",
         paired_effect(pre[large], SIZE_MARGIN, unit=" points")),
        (f"pretraining's gain at {large} minus at {small}",
         paired_effect(pre[large] - pre[small], -SIZE_MARGIN, unit=" points")),
        (f"L2 (tuned)'s gain at {small} minus at {large}",
         paired_effect(l2[small] - l2[large], SIZE_MARGIN, unit=" points"))])


MAIN = [net_name(arm, d, NUM_TRAIN) for d in DEPTHS for arm in ARMS]
BY_SIZE = [net_name(arm, SIZE_DEPTH, n) for n in SIZES
           for arm in (*ARMS, TUNED[n])]
CLAIMS = [
    *[Claim(f"pretraining acts as a regulariser, stopped at {name} (epoch {epoch} of "
            f"{E}): train NLL no lower, test NLL lower",
            rule(f"at every depth, epoch {epoch}, per seed: 100 ln(test NLL without / "
                 f"with) > {TEST_MARGIN:g} and 100 ln(train NLL with / without) > "
                 f"-{TRAIN_MARGIN:g} (paired 95% intervals)", regulariser_at(epoch)),
            paper="Fig. 1 (2 x 400 initialisations): pretrained runs end at a higher "
                  "train NLL and a lower test NLL", models=MAIN)
      for name, epoch in STOPS.items()],
    Claim("pretraining gives a lower test NLL at equal train NLL",
          rule(f"at every depth, at the lowest train NLL every network reached: 100 "
               f"ln(test NLL without / with) > {TEST_MARGIN:g} (paired 95% interval)",
               at_equal_train),
          paper="Fig. 1: at the same train NLL the red (pretrained) trajectories lie "
                "below the blue", models=MAIN),
    Claim("pretraining lowers the variance across initialisations",
          rule(f"at every depth: variance of the test outputs across initialisations "
               f"lower with pretraining by > {VAR_MARGIN:g}% of without (paired "
               "bootstrap over the seeds)", lower_variance),
          paper="the pretrained networks' outputs vary less (its variance figure "
                "varies the order of the examples; here the initialisation varies)",
          models=MAIN),
    Claim("not all regularisers are equal: pretraining's gain holds as the training "
          "set grows, L2's shrinks",
          rule(f"test error, points, paired: pretraining's gain at the largest size > "
               f"{SIZE_MARGIN:g}; its gain there >= its gain at the smallest - "
               f"{SIZE_MARGIN:g}; L2 (tuned on validation)'s gain at the smallest > "
               f"its gain at the largest + {SIZE_MARGIN:g}", not_all_equal),
          paper="Fig. 2, online error on InfiniteMNIST: pretraining's advantage "
                "persists as the examples accumulate", models=BY_SIZE),
]
results = Results(rows, value="test_error", scale=100, unit="%")
claims = judge(CLAIMS, results, gates=gates)
by_size = Results([r for r in rows if r["depth"] == SIZE_DEPTH and r["arm"] in
                   (*ARMS, *L2_ARMS)], value="test_error", scale=100, unit="%")
REPORT = (f"{PROFILE} profile, seeds {', '.join(map(str, SEEDS))}; final epoch "
          f"{E}, {INITS} initialisations per arm: median [IQR] (min-max)\n{TABLE}\n\n"
          + "\n".join(f"{d} hidden layer(s): {describe_crossing(d)}" for d in DEPTHS)
          + f"\n\n{SIZE_REPORT}\n\ntest error at {SIZE_DEPTH} hidden layer(s), per "
          f"training-set size:\n{by_size}\n\nGates:\n{gates.summary()}")
aelab.study.save_run(results=results, claims=claims, report=REPORT,  # for --out
                     trajectories=TRAJECTORIES)
print(REPORT, end="\n\n")
print(claims)

# %% [markdown]
# **Reading it honestly.** What this run says, written by the cell below from
# this run's numbers (change a setting, and it says something else):

# %%
def interval(e, digits=1):
    return f"{e.mean:+.{digits}f} [{e.low:+.{digits}f}, {e.high:+.{digits}f}]"


status = {c.claim: v.status for c, v in zip(CLAIMS, claims)}
reading = [claims.reading(), "",
           f"* **Profile `{PROFILE}`, {INITS} initialisations per arm** (seeds "
           f"{', '.join(map(str, SEEDS))}), {NUM_TRAIN:,} training images, {E} epochs "
           f"of Adam" + (" (the paper: 50,000 images, plain SGD)." if NUM_TRAIN < 50_000
                         else ".")]
for d in DEPTHS:
    reading.append(f"* **{d} hidden layer(s):** {describe_crossing(d)}.")
for (name, epoch), claim in zip(STOPS.items(), CLAIMS):
    said = "; ".join(f"{d} layer(s): test NLL lower by {interval(test)}%, train NLL "
                     f"higher by {interval(train)}%"
                     for d in DEPTHS for test, train in [stop_effects(d, epoch)])
    reading.append(f"* **Stopped at {name} (epoch {epoch}): {status[claim.claim]}.** "
                   f"With pretraining, {said}.")
reading.append(f"* **At equal train NLL: {status[CLAIMS[len(STOPS)].claim]}.** "
               "Pretraining's test NLL lower by " + "; ".join(
                   f"{interval(e)}% ({d} layer(s))" for d, (_, e) in EQUAL.items())
               + ".")
reading.append(f"* **Variance: {status[CLAIMS[-2].claim]}.** The variance across "
               "initialisations fell with pretraining by " + "; ".join(
                   f"{interval(e, 0)}% ({d} layer(s))" for d, e in VARIANCE.items())
               + f" (the margin: {VAR_MARGIN:g}%).")
small, large = SIZES[0], SIZES[-1]
reading.append(
    f"* **Not all regularisers are equal: {status[CLAIMS[-1].claim]}.** Gains in test "
    f"error over no pretraining, points, at {small} -> {large} images: pretraining "
    f"{interval(paired_effect(GAINS['pretraining'][small]), 2)} -> "
    f"{interval(paired_effect(GAINS['pretraining'][large]), 2)}; L2 tuned on "
    f"validation ({TUNED[small]} -> {TUNED[large]}) "
    f"{interval(paired_effect(GAINS['L2 (tuned)'][small]), 2)} -> "
    f"{interval(paired_effect(GAINS['L2 (tuned)'][large]), 2)}.")
edge = sorted({TUNED[n] for n in SIZES} & {L2_ARMS[0], L2_ARMS[-1]})
if edge:
    reading.append(f"* **The L2 grid:** validation chose {', '.join(edge)}, an end of "
                   f"`WEIGHT_DECAYS` = {WEIGHT_DECAYS}, at some size: the best strength "
                   "may lie outside the grid (widen it and rerun).")
adam_dead = OPTIMISERS["no pretraining"][1]
sgd = {arm: OPTIMISERS[arm] for arm in SGD_ARMS}
sgd_none, sgd_pre = sgd.values()
if sgd_none[1] > adam_dead:
    meaning = ("plain SGD leaves more random starts untrained than Adam does. A "
               "comparison in which arm 'no pretraining' does not train measures "
               "optimisation, not regularisation: under plain SGD pretraining would "
               "win for a reason the regulariser claim is not about, which is why the "
               "claims' arms all use Adam.")
elif sgd_none[1]:
    meaning = ("both optimisers leave random starts untrained in this run (too few "
               "epochs?): no claim that rests on them can be judged (section 15).")
else:
    meaning = ("here the random starts train under plain SGD as well: the optimiser "
               "does not decide whether arm 'no pretraining' trains at all; it changes "
               "how far each arm gets in the same epochs.")
reading.append(
    f"* **The optimiser** ({SGD_DEPTH} hidden layers, section 12): with plain SGD (lr "
    f"{SETTINGS['sgd_lr']:g}) and the paper's initialisation, {sgd_none[1]} of {INITS} "
    f"random starts stalled (median final train NLL {sgd_none[0]:.3f}; the constant "
    f"predictor's is {BASELINE_NLL:.3f}) and {sgd_pre[1]} of {INITS} pretrained ones "
    f"({sgd_pre[0]:.3f}); with Adam, {adam_dead} random starts stalled. So {meaning}")
failed = [g for g in gates if not g.ok]
reading.append(f"* **Gates:** {len(gates) - len(failed)} of {len(gates)} networks "
               "passed" + ("." if not failed else
                           f"; claims that rest on the others read INCONCLUSIVE "
                           f"(section 15 names them)."))
if claims.to_settle():
    reading.append(claims.to_settle())
if PROFILE == "fast":
    reading.append("* `fast` is a smoke test (three epochs, tiny networks): its "
                   "verdicts mean nothing. Run `classroom` (`aelab run erhan --profile "
                   "classroom --verify`) or `paper` on a GPU.")
reading.append(f"* This run took {time.perf_counter() - RUN_START:.0f} s (cached "
               "networks load in seconds).")
markdown("\n".join(reading))

# %% [markdown]
# Beyond this run:
# * A verdict you can trust survives fresh seeds:
#   `aelab run erhan --profile classroom --seeds 5-9` reruns the study on
#   seeds nobody tuned on. A claim may move between REPRODUCED and
#   INCONCLUSIVE (where the data cannot decide); it should never flip to NOT
#   REPRODUCED.
# * The paper's Figure 1 has 400 initialisations per arm and all of MNIST; the
#   `paper` profile draws as many.
#
# **Try next.** Give the claims' arms the plain-SGD recipe
# (`RECIPES["no pretraining"] = SGD` and `RECIPES["pretraining"] = dict(SGD,
# pretrained=True)` in section 6): which verdicts move? Double `clf_epochs`:
# do the train curves cross? Set `MASK = 0` (an ordinary autoencoder). Add
# a strength to `WEIGHT_DECAYS`: does the tuned L2 change?
