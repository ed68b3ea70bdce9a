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
    from IPython import get_ipython

    AELAB = "aelab @ git+https://github.com/aelab-course/aelab"
    get_ipython().system(f'pip install -q "{AELAB}"')

# %% [markdown]
# Seed everything first.

# %%
import functools
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
from aelab.study import Claim, Results, judge, rule

aelab.seed_everything(0)

# %% [markdown]
# **Profile.** `fast` (seconds, tests) trains a handful of tiny networks for
# two epochs; `classroom` (about 5 minutes on 2 CPU cores) trains 20
# initialisations per arm of networks with 1, 2 and 3 hidden layers of 128
# units on the embedded MNIST subset; `paper` trains 400 per arm, 1,000 units
# wide, on the full MNIST (a GPU). The same optimiser (Adam, lr 1e-3, batch
# 64) and the same number of epochs for every arm. Trained networks are
# cached: re-running is quick.

# %%
PROFILE = aelab.get_profile()
SETTINGS = {
    "fast": dict(source="embedded", num_train=500, num_test=200, num_eval=200,
                 depths=(1, 2), width=32, inits=4, num_epochs=2, pre_epochs=1,
                 sizes=(100, 250, 500), size_depth=1, size_inits=3),
    "classroom": dict(source="embedded", num_train=4000, num_test=1000, num_eval=1000,
                      depths=(1, 2, 3), width=128, inits=20, num_epochs=30,
                      pre_epochs=10, sizes=(500, 1000, 2000, 4000), size_depth=2,
                      size_inits=10),
    # The paper: all of MNIST, 2 x 400 initialisations per figure, plain SGD.
    "paper": dict(source=None, num_train=50000, num_test=10000, num_eval=10000,
                  depths=(1, 2, 3), width=1000, inits=400, num_epochs=50,
                  pre_epochs=20, sizes=(1000, 5000, 20000, 50000), size_depth=3,
                  size_inits=50),
}[PROFILE]
LR, BATCH_SIZE = 1e-3, 64
MASK = 0.25  # the share of inputs the denoising autoencoders set to 0
WEIGHT_DECAYS = {"L2 1e-4": 1e-4, "L2 1e-3": 1e-3}  # the L2 arms of section 10
DEPTHS, WIDTH, INITS = SETTINGS["depths"], SETTINGS["width"], SETTINGS["inits"]
SEEDS = list(range(INITS))  # one seed per initialisation, the same in every arm
print(PROFILE, SETTINGS)
device = aelab.get_device()
print({"fast": "about 20 s", "classroom": "about 5 minutes on 2 CPU cores",
       "paper": "hours: use a GPU"}[PROFILE] + " from a cold cache")

# %% [markdown]
# ## 1 · The data
#
# MNIST digits: a training set (a class-balanced subset, so that the smaller
# training sets of section 10 are nested prefixes of it) and a fixed test set.
# The training NLL is measured after every epoch on `num_eval` of the training
# images (the same ones for every network), the test NLL on the test set.

# %%
train = aelab.load_dataset("mnist", "train", source=SETTINGS["source"])
test = aelab.load_dataset("mnist", "test", source=SETTINGS["source"], quiet=True)
splits = aelab.make_splits(train.y, seed=0)
NUM_TRAIN = min(SETTINGS["num_train"], len(train))
SIZES = sorted({min(n, NUM_TRAIN) for n in SETTINGS["sizes"]})


def training_set(n):
    """The first n images of the class-balanced order (nested in n)."""
    idx = splits.labeled(n)
    return train.X[idx], train.y[idx]


X, y = training_set(NUM_TRAIN)
X_test, y_test = test.X[:SETTINGS["num_test"]], test.y[:SETTINGS["num_test"]]
print(f"train {len(X):,} images, test {len(X_test):,}; per class in train: "
      f"{torch.bincount(y, minlength=10).tolist()}")

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

    snapshot = ex.Snapshot(X)  # before the first call
    daes = [nn.Sequential(nn.Linear(200, 8), nn.Sigmoid(), nn.Linear(8, 200))
            for _ in range(2)]
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
        (lambda: close(run()[0], F.binary_cross_entropy_with_logits(logits, X)),
         "return F.binary_cross_entropy_with_logits(model(X_tilde), X)"),
        (lambda: not ex.no_gradient(run()[0], probe), "no gradient reaches the "
         "model's weights: return the loss tensor itself (no .item(), .detach() "
         "or torch.tensor(...))"),
        (lambda: run(X.double())[0].dtype == torch.float64, "keep the input's "
         "dtype (float64 here): no .float(), no new tensors of a fixed dtype"),
        (lambda: run(X.to("meta")), "make the mask on X's device: torch.rand_like(X), "
         "not torch.rand(X.shape) (that one is always on the CPU)"),
        (lambda: ex.one_step(daes, [(X,)] * 2, denoising_loss),
         "aelab.fit_many cannot train on it: return "
         "F.binary_cross_entropy_with_logits(model(X_tilde), X)"),
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
# the classifiers. A DAE whose loss ends near the best constant reconstruction
# (each input's mean) has stalled; we count those.

# %%
def constant_bce(codes):
    """The BCE of reconstructing every input by its mean over the images."""
    p = codes.mean(0, keepdim=True).clamp(1e-6, 1 - 1e-6)
    return float(F.binary_cross_entropy(p.expand_as(codes), codes))


DAE_STALLED = []  # (size, layer, seed) of stalled DAEs


def pretrain(X_images, seeds, num_layers, group=32):
    """Greedy pretraining of every seed's stack on these images, `group` seeds
    at a time (the codes of a group's seeds are in memory together)."""
    def train_daes(codes, width, layer, seeds):
        daes = []
        for seed, c in zip(seeds, codes):
            torch.manual_seed(10_000 * (layer + 1) + seed)
            daes.append(dae(c.shape[1], width))
        hs = aelab.fit_many(daes, [(c,) for c in codes], denoising_loss,
                            num_epochs=SETTINGS["pre_epochs"], lr=LR,
                            batch_size=BATCH_SIZE, seeds=seeds, cache=True,
                            desc=f"DAE layer {layer + 1}, {len(X_images)} images")
        for seed, c, h in zip(seeds, codes, hs):
            if h.train_loss[-1] > 0.9 * constant_bce(c) or h.stalled:
                DAE_STALLED.append((len(X_images), layer + 1, seed))
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
      f"{time.perf_counter() - start:.0f} s; stalled DAEs: {len(DAE_STALLED)}")

# %% [markdown]
# ## 5 · Predict before you run
#
# After the same number of epochs, which networks will have the **lower
# training NLL**: those started from pretraining or those started at random?
# Commit to an answer, run section 6, then press *Reveal*.

# %% tags=["nbval-ignore-output"]
def reveal(choice):
    if "FINAL" not in globals():
        return "Run section 6 first, then press Reveal again."
    lines = []
    for d in DEPTHS:
        a, b = (np.median(FINAL[d, NUM_TRAIN, arm]["train_nll"]) for arm in ARMS)
        lines.append(f"{d} hidden layer(s): median train NLL without pretraining "
                     f"{a:.4f}, with {b:.4f}")
    return "\n".join(lines) + f"\nYou said: {choice}."


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

# %%
ARMS = ("no pretraining", "pretraining")
RUNS = {}  # (depth, size, arm) -> {seed: History}
NETS = {}  # (depth, size, arm) -> {seed: trained network}
FIRST_LAYER = {}  # (depth, size, arm) -> seed 0's first layer before training


def train_arm(arm, depth, size, seeds):
    """Train one network per seed; keep them and their histories. An L2 arm
    starts at random and adds its weight decay to the same Adam."""
    X_n, y_n = training_set(size)
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        net = mlp(depth, WIDTH)
        if arm == "pretraining":
            for k, layer in enumerate(STACKS[size][seed][:depth]):
                net[1 + 2 * k].load_state_dict(layer.state_dict())
        nets.append(net)
    FIRST_LAYER[depth, size, arm] = nets[0][1].weight.detach().clone()
    num_eval = SETTINGS["num_eval"]
    histories = aelab.fit_many(
        nets, [(X_n, y_n)] * len(nets), nll_loss, num_epochs=SETTINGS["num_epochs"],
        lr=LR, batch_size=BATCH_SIZE, weight_decay=WEIGHT_DECAYS.get(arm, 0.0),
        seeds=seeds, test_data=(X_test, y_test),
        eval_data={"train_nll": (X_n[:num_eval], y_n[:num_eval])},
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
# training images), test NLL, test error, and whether it stalled (its train
# NLL stayed above 90% of the best constant predictor's, or barely moved).

# %%
rows, FINAL = [], {}


def collect(depth, size, arm):
    """One row per network of (depth, size, arm); FINAL[...] the columns."""
    out = {k: [] for k in ("train_nll", "test_nll", "test_error", "stalled")}
    for seed, h in RUNS[depth, size, arm].items():
        net = NETS[depth, size, arm][seed]
        error = 1 - metrics.accuracy(aelab.predict(net, X_test), y_test)
        row = dict(method=f"{arm}, {depth} layer(s)", budget=size, seed=seed, arm=arm,
                   depth=depth, train_nll=h.metrics["train_nll"][-1],
                   test_nll=h.test_loss[-1], test_error=error,
                   stalled=h.stalled or h.metrics["train_nll"][-1] > 0.9 * BASELINE_NLL)
        rows.append(row)
        for k in out:
            out[k].append(row[k])
    FINAL[depth, size, arm] = {k: np.array(v) for k, v in out.items()}


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

# %%
COLORS = {"no pretraining": "C0", "pretraining": "C3", "L2 1e-4": "C2",
          "L2 1e-3": "C8"}


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

# %%
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
            v = FINAL[depth, NUM_TRAIN, arm][key] * (100 if key == "test_error" else 1)
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
        f = FINAL[depth, NUM_TRAIN, arm]
        cells = [spread(f["train_nll"], 1, 4), spread(f["test_nll"]),
                 spread(f["test_error"], 100, 2)]
        for k, label in enumerate((arm, "")):
            TABLE.append(f"{label:15} " + " ".join(f"{c[k]:^23}" for c in cells))
TABLE = "\n".join(TABLE)
print(f"final epoch, {INITS} initialisations per arm: median [IQR] (min-max)")
print(TABLE)

# %% [markdown]
# ## 9 · Do different initialisations agree?
#
# Give the trained networks of an arm the same test images: how much do their
# predicted probabilities differ between initialisations? Per test image, the
# variance over initialisations of each class's probability, summed over the
# classes; then the mean over the test images. The interval resamples the
# initialisations (bootstrap, 2,000 draws; the same draws in both arms, since
# seed i of one arm shares its output layer and batch order with seed i of
# the other).

# %%
def probabilities(depth, size, arm):
    """inits x test images x classes."""
    return torch.stack([aelab.predict(net, X_test).softmax(1)
                        for net in NETS[depth, size, arm].values()])


def output_variance(P):
    return P.var(0).sum(1).mean().item()


def bootstrap_variance(P, n_boot=2000, seed=0):
    """output_variance of n_boot resamples (with replacement) of the inits.
    Exact, from the inits' Gram matrix: a resample that takes init i c_i times
    has sum over outputs of its variance (sum_i c_i G_ii - c G c / n) / (n - 1)."""
    n, flat = len(P), P.flatten(1).double()
    G = flat @ flat.T  # inits x inits
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n, (n_boot, n), generator=g)
    C = torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, n, dtype=torch.float64))  # times each init drawn
    total = (C * G.diagonal()).sum(1) - ((C @ G) * C).sum(1) / n
    return (total / (n - 1) / P.shape[1]).numpy()  # mean over the test images


VARIANCE, PROBS = {}, {}  # depth -> {arm: (variance, bootstrap draws)}; outputs
for depth in DEPTHS:
    VARIANCE[depth] = {}
    for arm in ARMS:
        P = PROBS[depth, arm] = probabilities(depth, NUM_TRAIN, arm)
        VARIANCE[depth][arm] = (output_variance(P), bootstrap_variance(P))
    (a, boot_a), (b, boot_b) = VARIANCE[depth].values()
    low, high = np.percentile(boot_b / np.maximum(boot_a, 1e-300), [2.5, 97.5])
    print(f"{depth} layer(s): variance across initialisations, without pretraining "
          f"{a:.2e}, with {b:.2e}; ratio with/without {b / a:.2f} "
          f"[95% interval {low:.2f}-{high:.2f}]")

# %% [markdown]
# The same per test image: each point one test image, its variance without
# pretraining (x) against with (y). Points under the diagonal are images on
# which the pretrained networks agree more.

# %%
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
# ## 10 · Does the effect hold as the training set grows?
#
# At one depth, the two arms and two L2 arms (weight decay 1e-4 and 1e-3 in
# the same Adam, no pretraining) at several training-set sizes. At each size
# the pretraining sees only that size's images. The same epochs at every size
# (so a smaller set gets fewer updates, as in the paper's comparison at a
# fixed number of passes). Runs shared with section 6 (the largest size) come
# from the cache.

# %% tags=["nbval-ignore-output"]
SIZE_DEPTH = SETTINGS["size_depth"]
SIZE_SEEDS = SEEDS[:SETTINGS["size_inits"]]
SIZE_ARMS = (*ARMS, *WEIGHT_DECAYS)
start = time.perf_counter()
for size in SIZES:
    if size not in STACKS:
        STACKS[size] = pretrain(training_set(size)[0], SIZE_SEEDS, SIZE_DEPTH)
    for arm in SIZE_ARMS:
        if (SIZE_DEPTH, size, arm) not in RUNS:  # not trained in section 6
            train_arm(arm, SIZE_DEPTH, size, SIZE_SEEDS)
            collect(SIZE_DEPTH, size, arm)
print(f"training-set sizes done in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# Test error per size and arm: median and interquartile band over the
# initialisations.

# %%
SIZE_TABLE = {(n, arm): FINAL[SIZE_DEPTH, n, arm]["test_error"][:len(SIZE_SEEDS)]
              for n in SIZES for arm in SIZE_ARMS}  # the same seeds at every size
fig, ax = plt.subplots(figsize=(6, 3.8))
for arm in SIZE_ARMS:
    errors = np.array([100 * SIZE_TABLE[n, arm] for n in SIZES])
    q1, med, q3 = np.percentile(errors, [25, 50, 75], axis=1)
    ax.plot(SIZES, med, "o-", ms=3, color=COLORS[arm], label=arm)
    ax.fill_between(SIZES, q1, q3, color=COLORS[arm], alpha=0.15)
ax.set_xscale("log"), ax.set_xlabel("training images (log scale)")
ax.set_xticks(SIZES, [str(n) for n in SIZES]), ax.minorticks_off()
ax.set_ylabel("test error (%)"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
ax.set_title(f"{SIZE_DEPTH} hidden layer(s), {len(SIZE_SEEDS)} initialisations per arm")
fig.tight_layout()
GAINS = {arm: {n: float(np.median(100 * SIZE_TABLE[n, "no pretraining"])
                        - np.median(100 * SIZE_TABLE[n, arm])) for n in SIZES}
         for arm in SIZE_ARMS if arm != "no pretraining"}
print("gain in test error over no pretraining (points, medians), per size:")
for arm, g in GAINS.items():
    print(f"  {arm:<12} " + "  ".join(f"{n}: {v:+.2f}" for n, v in g.items()))

# %% [markdown]
# ## 11 · What the first layer learned
#
# Sixteen first-layer filters of seed 0's deepest network, each the 784
# weights of one hidden unit shown as a 28×28 image (scaled to its own
# range): at its random start, after pretraining (the DAE's encoder), and
# after fine-tuning; and the random start after training without pretraining.

# %%
def filters(weight, k=16):
    w = weight[:k].reshape(k, 1, 28, 28)
    low = w.amin((1, 2, 3), keepdim=True)
    return (w - low) / (w.amax((1, 2, 3), keepdim=True) - low + 1e-12)


deep = max(DEPTHS)
fig = plot.image_grid({
    "random start": filters(FIRST_LAYER[deep, NUM_TRAIN, "no pretraining"]),
    "trained, no pretraining": filters(NETS[deep, NUM_TRAIN, "no pretraining"][0][1]
                                       .weight.detach()),
    "after pretraining": filters(STACKS[NUM_TRAIN][0][0].weight.detach()),
    "after fine-tuning": filters(NETS[deep, NUM_TRAIN, "pretraining"][0][1]
                                 .weight.detach()),
}, scale=0.8)

# %% [markdown]
# ## 12 · Explore the cached runs
#
# Pick the depth and the training-set size, how many initialisations to
# draw, and which arms. (Depths other than the one of section 10 were only
# run on the full training set; L2 arms only in section 10.)

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
        v = 100 * FINAL[depth, size, arm]["test_error"][:shown]
        ax2.scatter(np.full(len(v), k) + np.linspace(-0.2, 0.2, len(v)), v, s=10,
                    color=COLORS[arm])
        ax2.hlines(np.median(v), k - 0.3, k + 0.3, color="k", lw=1)
        labels.append(f"{arm}\nmedian {np.median(v):.2f}")
    ax2.set_xticks(range(len(present)), labels, fontsize=7)
    ax2.set_ylabel("final test error (%)"), ax2.grid(alpha=0.3)
    runs = max(len(FINAL[depth, size, arm]["test_error"]) for arm in present)
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
       for arm in SIZE_ARMS})

# %% [markdown]
# ## 13 · The verdict
#
# The rules, written before looking at the numbers; all on the final epoch.
#
# * **Regulariser.** At every depth, the median train NLL with pretraining is
#   no lower than without (within `TOLERANCE`, relative), and the median test
#   NLL with pretraining is lower than without.
# * **Variance.** At every depth, the output variance across initialisations
#   (section 9) is lower with pretraining, and the upper end of the 95%
#   bootstrap interval of the ratio with/without is below 1.
# * **Not all regularisers are equal.** Pretraining's gain in median test
#   error over no pretraining is positive at the largest size and at least
#   half its gain at the smallest size; each L2 arm's gain is smaller at the
#   largest size than at the smallest.

# %%
TOLERANCE = 0.05


def regulariser(_):
    ok, parts = True, []
    for d in DEPTHS:
        (tr_a, te_a), (tr_b, te_b) = [(np.median(FINAL[d, NUM_TRAIN, a]["train_nll"]),
                                       np.median(FINAL[d, NUM_TRAIN, a]["test_nll"]))
                                      for a in ARMS]
        ok = ok and tr_b >= tr_a * (1 - TOLERANCE) and te_b < te_a
        parts.append(f"{d} layer(s): train {tr_a:.4f} -> {tr_b:.4f}, test "
                     f"{te_a:.3f} -> {te_b:.3f}")
    return ok, "median NLL without -> with pretraining: " + "; ".join(parts)


def lower_variance(_):
    ok, parts = True, []
    for d in DEPTHS:
        (a, boot_a), (b, boot_b) = VARIANCE[d].values()
        high = np.percentile(boot_b / np.maximum(boot_a, 1e-300), 97.5)
        ok = ok and b < a and high < 1
        parts.append(f"{d} layer(s): ratio {b / a:.2f} (95% up to {high:.2f})")
    return ok, "variance with / without pretraining: " + "; ".join(parts)


def not_all_equal(_):
    small, large = SIZES[0], SIZES[-1]
    pre = GAINS["pretraining"]
    ok = pre[large] > 0 and pre[large] >= 0.5 * pre[small]
    ok = ok and all(GAINS[a][large] < GAINS[a][small] for a in WEIGHT_DECAYS)
    return ok, f"test-error gain (points) at {small} -> {large} images: " + "; ".join(
        f"{a} {g[small]:+.2f} -> {g[large]:+.2f}" for a, g in GAINS.items())


CLAIMS = [
    Claim("pretraining acts as a regulariser: train NLL no lower, test NLL lower",
          rule(f"at every depth: median train NLL with pretraining >= "
               f"{1 - TOLERANCE:g} x without, median test NLL with < without",
               regulariser),
          paper="Fig. 1 (2 x 400 initialisations): pretrained runs end at a higher "
                "train NLL and a lower test NLL"),
    Claim("pretraining lowers the variance across initialisations",
          rule("at every depth: variance of the test outputs across "
               "initialisations lower with pretraining, 95% bootstrap ratio < 1",
               lower_variance),
          paper="the pretrained networks' outputs vary less (its variance figure "
                "varies the order of the examples; here the initialisation varies)"),
    Claim("not all regularisers are equal: pretraining's gain holds as the training "
          "set grows, L2's shrinks",
          rule("pretraining's test-error gain > 0 at the largest size and >= half "
               "its gain at the smallest; each L2 arm's gain smaller at the largest",
               not_all_equal),
          paper="Fig. 2, online error on InfiniteMNIST: pretraining's advantage "
                "persists as the examples accumulate"),
]
results = Results(rows, value="test_error", scale=100, unit="%")
claims = judge(CLAIMS, results)
by_size = Results([r for r in rows if r["depth"] == SIZE_DEPTH], value="test_error",
                  scale=100, unit="%")
REPORT = (f"{PROFILE} profile; final epoch {SETTINGS['num_epochs']}, {INITS} "
          f"initialisations per arm: median [IQR] (min-max)\n{TABLE}\n\n"
          f"test error at {SIZE_DEPTH} hidden layer(s), per training-set size "
          f"({len(SIZE_SEEDS)} seeds; {INITS} at {NUM_TRAIN} for the first two):\n"
          f"{by_size}")
aelab.study.save_run(results=results, claims=claims, report=REPORT)  # for --out
print(REPORT, end="\n\n")
print(claims)

# %% [markdown]
# **Reading it honestly.**
# * When we ran the classroom profile (20 initialisations per arm, 30 epochs,
#   4,000 training images; 4 min 36 s from a cold cache on 2 CPU cores), none
#   of the three claims reproduced. Pretraining lowered the median **test**
#   NLL at every depth (0.243 -> 0.222, 0.243 -> 0.223, 0.297 -> 0.251 for 1,
#   2, 3 hidden layers) and the test error (6.70 -> 6.45%, 6.60 -> 6.10%,
#   7.25 -> 6.25%), most with 3 layers, where the random starts overfit (their
#   lines in Figure 1 turn up at the end). That half of the regulariser
#   reading holds.
# * The other half does not: pretraining also lowered the **train** NLL
#   (0.066 -> 0.062, 0.034 -> 0.023, 0.021 -> 0.010). After 30 epochs of Adam
#   the pretrained networks were further along, which is what the
#   *optimisation* explanation predicts, so claim 1 is NOT REPRODUCED here.
#   The paper trained on all of MNIST, with many more updates; whether the
#   random starts overtake on the training set with more epochs is the first
#   thing to try.
# * The outputs of different initialisations agreed more after pretraining
#   only with 3 hidden layers (variance ratio 0.63, 95% interval 0.57-0.71);
#   with 1 and 2 they agreed *less* (1.19 and 1.33). The rule asks for every
#   depth: NOT REPRODUCED.
# * Pretraining's gain in test error grew from -0.2 points at 500 images to
#   +0.2 to +0.55 from 1,000 on (pretraining on 500 images helped nothing),
#   but neither L2 arm ever helped much (1e-4: -0.2 to +0.15; 1e-3 hurt at
#   every size), so "L2's gain shrinks" has no gain to shrink: NOT
#   REPRODUCED, and this comparison says little: neither strength was tuned
#   (on held-out data, say), so L2 had no fair chance.
# * No network and no DAE stalled in that run (a stalled one would stay in
#   every number above; section 6 names them). With 20 initialisations an
#   interquartile range is a rough thing; the `paper` profile draws 400.
# * `fast` is a smoke test (two epochs, tiny networks): its verdicts mean
#   nothing. Run `classroom` (`aelab run erhan --profile classroom --verify`)
#   or `paper` on a GPU.
#
# **Try next.** Train with `optimizer="sgd"` (the paper's plain SGD) in
# `train_arm`; double `num_epochs`; set `MASK = 0` (an ordinary autoencoder).
# Which conclusions move?
