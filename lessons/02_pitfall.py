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
# # 02 · The pitfall: does a better reconstruction mean better features?
#
# *Paper: Michele Alberti, Mathias Seuret, Rolf Ingold & Marcus Liwicki (2017),
# "A Pitfall of Unsupervised Pre-Training", NIPS 2017 workshop.*
#
# **The question.** An autoencoder is trained to *reconstruct* its input. We
# then throw the decoder away and use the encoder's code to *classify*. If one
# autoencoder reconstructs better than another, are its features better for
# classification?
#
# **The paper's claims** (checked at the end):
# 1. across many small stacked convolutional autoencoders (SCAEs) and several
#    datasets, reconstruction error and classifier accuracy show **no
#    consistent correlation**, whichever distance measures the error;
# 2. **fine-tuning** encoder and classifier together raises the accuracy while
#    it **worsens** the reconstruction (after retraining the decoder).
#
# It gives three reasons to distrust the reconstruction error as a measure of
# features: nothing says good-for-reconstruction is good-for-classification; an
# autoencoder can learn (nearly) the **identity** (perfect reconstruction,
# features no better than pixels); and the error depends on the **decoder**,
# which the classifier never uses. Sections 7 and 8 make the last two tangible.
#
# **The four phases** of the study, all written below: (a) train each
# autoencoder to reconstruct; (b) train a linear and an MLP classifier on its
# frozen features; (c) fine-tune encoder and classifier together; (d) retrain
# only the decoder on the fine-tuned encoder, to measure its reconstruction
# after fine-tuning.

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
import copy

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import aelab
from aelab import metrics, plot, widgets
from aelab.exercises import answer, check, close
from aelab.models import ConvAutoencoder, EncoderClassifier
from aelab.probes import frozen_features, train_probes
from aelab.splits import to_float
from aelab.study import Claim, judge, rule

aelab.seed_everything(0)

# %% [markdown]
# **Profile.** `fast` (seconds, tests) trains 5 autoencoders for 2 epochs;
# `classroom` (minutes on a laptop) the 12 of the study on MNIST and
# Fashion-MNIST; `paper` adds CIFAR-10 and SVHN when they can be downloaded.
# Trained models are cached: re-running is quick.

# %%
PROFILE = aelab.get_profile()
SETTINGS = {
    "fast": dict(datasets=("mnist", "fashion_mnist"), configs=5, pool_size=500,
                 num_test=200, labels=200, ae_epochs=2, ft_epochs=2, dec_epochs=1,
                 n_boot=200),
    "classroom": dict(datasets=("mnist", "fashion_mnist"), configs=12, pool_size=3000,
                      num_test=500, labels=1000, ae_epochs=35, ft_epochs=8,
                      dec_epochs=6, n_boot=2000),
    "paper": dict(datasets=("mnist", "fashion_mnist", "cifar10", "svhn"), configs=12,
                  pool_size=None, num_test=2000, labels=5000, ae_epochs=30,
                  ft_epochs=20, dec_epochs=15, n_boot=2000),
}[PROFILE]
print(PROFILE, SETTINGS)
device = aelab.get_device()

# %% [markdown]
# ## 1 · The data
#
# For each dataset: an unlabeled **pool** the autoencoders learn from, a
# class-balanced **labeled** subset of it for the classifiers, and a fixed
# **test** set. A dataset that cannot be loaded here (CIFAR-10 and SVHN need a
# download) is skipped, and its claims say NOT TESTED.

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
    pool = train.X[splits.pool]
    labeled = splits.labeled(SETTINGS["labels"])  # indices into the training set
    DATA[name] = dict(pool=pool, X=train.X[labeled], y=train.y[labeled],
                      X_test=test.X[:SETTINGS["num_test"]],
                      y_test=test.y[:SETTINGS["num_test"]])
    print(f"{name}: pool {len(pool):,}, labeled {len(labeled):,}, test "
          f"{SETTINGS['num_test']:,}  ({train.provenance.source})")
for name, why in MISSING.items():
    print(f"{name}: not available here ({why[:90]}...)")

# %% [markdown]
# ## 2 · A population of autoencoders
#
# The paper trained 10 SCAE configurations of up to 6 layers and at most 4,000
# parameters, varying widths, depth, activation and initialisation, but lists
# none of them. `alberti_configs()` holds 10 in that spirit; we add two more:
# an **over-complete** one (its 16×14×14 code has four times as many numbers
# as the image: it can come close to the identity) and one with sigmoids and a
# tiny initialisation (a likely staller, kept on purpose).

# %%
CONFIGS = {f"C{i + 1:02d}": cfg for i, cfg in enumerate(aelab.models.alberti_configs())}
CONFIGS["C11"] = dict(widths=(16,))  # over-complete: 16x14x14 code for 1x28x28
CONFIGS["C12"] = dict(widths=(4, 8), activation="sigmoid", pool="avg", init="normal")
if SETTINGS["configs"] < len(CONFIGS):  # the fast profile: a few, both traps kept
    keep = [*list(CONFIGS)[:SETTINGS["configs"] - 2], "C11", "C12"]
    CONFIGS = {k: CONFIGS[k] for k in keep}
CODE_SIZE = {}  # numbers per code, for a 1x28x28 image
for name, cfg in CONFIGS.items():
    model = ConvAutoencoder(**cfg)
    CODE_SIZE[name] = model.encode(torch.zeros(1, 1, 28, 28)).numel()
    print(f"{name}: {sum(p.numel() for p in model.parameters()):>5,} parameters, "
          f"code {CODE_SIZE[name]:>4} numbers  {cfg}")

# %% [markdown]
# ## 3 · Phase (a): train every autoencoder to reconstruct
#
# The objective, written out: mean squared error between the images and their
# reconstructions.

# %%
def reconstruction_loss(model, batch):
    X, = batch
    return F.mse_loss(model(X), X)


# %% [markdown]
# Every configuration on every dataset, with the same optimiser, epochs and
# batch size (a progress bar each, cached).

# %% tags=["nbval-ignore-output"]
AE = {}  # (dataset, config) -> (model, history)
for ds, d in DATA.items():
    for name, cfg in CONFIGS.items():
        torch.manual_seed(0)
        model = ConvAutoencoder(in_channels=d["pool"].shape[1], **cfg)
        history = aelab.fit(model, (d["pool"],), reconstruction_loss,
                            num_epochs=SETTINGS["ae_epochs"], lr=2e-3, batch_size=128,
                            test_data=(d["X_test"],), desc=f"(a) {ds} {name}",
                            cache=True)
        AE[ds, name] = (model, history)

# %% [markdown]
# **Did they train, and did they converge?** Each autoencoder against the best
# constant image (the mean test image), and the drop of its loss over the last
# epoch. Stalled autoencoders stay in the analysis, marked with a cross in the
# scatter plots: a model that reconstructs badly is a data point of the
# question too.

# %%
STALLED, IMPROVING = {}, []
for (ds, name), (model, history) in AE.items():
    X_test = DATA[ds]["X_test"]
    health = metrics.check_reconstruction(to_float(X_test), aelab.predict(model, X_test))
    STALLED[ds, name] = not health.ok
    last = history.train_loss[-2:] if len(history.train_loss) > 1 else [1, 1]
    drop = 1 - last[1] / last[0]
    if drop > 0.02:
        IMPROVING.append(f"{ds} {name}")
    print(f"{ds:<13} {name}: {health.message[:70]}  (last epoch: -{100 * drop:.1f}%)")
print(f"\n{sum(STALLED.values())} of {len(STALLED)} autoencoders stalled; they stay in.")
print(f"{len(IMPROVING)} of {len(AE)} still improved by more than 2% in their last "
      "epoch (not fully converged): " + (", ".join(IMPROVING) or "none"))

# %% [markdown]
# ## 4 · Five ways to measure a reconstruction
#
# The paper measured the reconstruction error with five distances, to show
# that the choice does not matter: Euclidean (EUC), scale-and-offset invariant
# (SOI), normalised correlation (NOC), the CIE94 colour difference (E94) and
# Mahalanobis (MA, with the pixel covariance of the pool).
#
# **Exercise 1.** Write SOI: for each image, the Euclidean distance between
# `x` and the best affine copy `a * x_hat + b` of its reconstruction (the
# scalars `a`, `b` chosen per image by least squares). Hint: centre both
# images (subtract each image's mean); then `a = <xc, hc> / <hc, hc>` and the
# distance is `||xc - a hc||`. If `x_hat` is constant, `a = 0`. Return one
# distance per image.

# %%
def soi(X, X_hat):
    x, h = X.flatten(1).double(), X_hat.flatten(1).double()
    ...  # your code here: return a tensor with one distance per image


# %% [markdown]
# The check: a reconstruction that is an affine copy of the image must be at
# distance 0; otherwise the values must match a reference.

# %%
def check_soi(soi):
    ex = aelab.exercises  # the probes: untouched inputs
    g = torch.Generator().manual_seed(0)
    X, X_hat = torch.rand(6, 1, 8, 8, generator=g), torch.rand(6, 1, 8, 8, generator=g)
    X += torch.arange(6.0).view(6, 1, 1, 1) / 4  # each image its own brightness
    got = lambda a, b: answer(soi(a, b))  # noqa: E731
    ref = metrics.scale_offset_invariant
    X64, X_hat64 = X.double(), X_hat.double()  # .double() returns these themselves
    X3 = torch.rand(6, 3, 5, 5, generator=g)  # another shape: colour, 5x5
    snapshot = ex.Snapshot(X64, X_hat64)
    return check("Exercise 1", [
        (lambda: got(X, X_hat), "it must run on two batches of 6 images, 1x8x8"),
        (lambda: torch.is_tensor(got(X, X_hat)) and got(X, X_hat).shape == (6,),
         "return a tensor with one distance per image (shape [N])"),
        (lambda: got(X64, X_hat64) is not None and snapshot.unchanged(), "leave X "
         "and X_hat as they are: no in-place -= or sub_() on them (with float64 "
         "inputs .double() does not copy)"),
        (lambda: close(got(X64, 3 * X64 + 0.5), torch.zeros(6), atol=1e-6),
         "an affine copy a*x + b of the image must be at distance 0: fit a and b"),
        (lambda: not close(got(X, X_hat), metrics.euclidean(X, X_hat)),
         "that is the plain Euclidean distance: centre the images and scale x_hat"),
        (lambda: not close(got(X, X_hat), ref(X_hat, X)), "you scaled x to fit "
         "x_hat: scale the reconstruction, a * x_hat + b, to fit the image x"),
        (lambda: close(got(X, X_hat), ref(X, X_hat)), "the values differ from the "
         "least-squares fit: centre each image by its own mean (x.mean(1, "
         "keepdim=True)), then a = <xc, hc> / <hc, hc>"),
        (lambda: close(got(X, torch.full_like(X, 0.3)),
                       (X - X.mean((1, 2, 3), keepdim=True)).flatten(1).norm(dim=1)),
         "a constant x_hat cannot be scaled: use a = 0 there (no division by 0)"),
        (lambda: close(got(X3, X3.flip(0)), ref(X3, X3.flip(0))), "it must work "
         "for any image shape (3x5x5 here): flatten with X.flatten(1), no fixed "
         "sizes"),
        (lambda: close(got(X.bfloat16(), X_hat.bfloat16()), ref(X, X_hat),
                       rtol=2e-2), "it must work for bfloat16 images too: compute "
         "in x and h, the float64 copies the first line makes"),
    ], done="SOI matches the least-squares distance, constant images included",
        code=soi)


check_soi(soi)

# %% [markdown]
# *Solution:*

# %% tags=["solution", "hide-cell"]
def soi(X, X_hat):
    x, h = X.flatten(1).double(), X_hat.flatten(1).double()
    xc, hc = x - x.mean(1, keepdim=True), h - h.mean(1, keepdim=True)
    hh = (hc * hc).sum(1)
    a = torch.where(hh > 1e-12, (xc * hc).sum(1) / hh.clamp_min(1e-12), 0.0)
    return (xc - a[:, None] * hc).norm(dim=1)


check_soi(soi)

# %% [markdown]
# The five distances; your `soi` is one of them. Each returns one value per
# test image; a model's error is the mean over its test images.

# %%
check_soi(soi).require()  # stop here if Exercise 1 is not done
PRECISION = {ds: metrics.fit_precision(to_float(d["pool"])) for ds, d in DATA.items()}
DISTANCES = {
    "EUC": lambda X, X_hat, ds: metrics.euclidean(X, X_hat),
    "SOI": lambda X, X_hat, ds: soi(X, X_hat),
    "NOC": lambda X, X_hat, ds: metrics.normalized_correlation(X, X_hat),
    "E94": lambda X, X_hat, ds: metrics.e94(X, X_hat),
    "MA": lambda X, X_hat, ds: metrics.mahalanobis(X, X_hat, PRECISION[ds]),
}


def errors(model, ds):
    """The mean of every distance over the test images of `ds`."""
    X = to_float(DATA[ds]["X_test"])
    X_hat = aelab.predict(model, DATA[ds]["X_test"]).clamp(0, 1)
    return {k: dist(X, X_hat, ds).mean().item() for k, dist in DISTANCES.items()}


# %% [markdown]
# ## 5 · Phase (b): classifiers on the frozen features
#
# On each frozen encoder, two classifiers trained on the same labeled images:
# a linear one (LL: multinomial logistic regression) and an MLP (NN: 3 fully
# connected layers, 256 hidden units), full batch, to convergence. Raw pixels
# get the same two classifiers: the baseline any feature must beat.

# %% tags=["nbval-ignore-output"]
HEADS = ("linear", "mlp")


def probes(encode, ds):
    """A linear and an MLP head trained on features encode(X) of the labeled
    images: {head: (test accuracy, the head as a module)}."""
    d = DATA[ds]
    F_train, F_test = encode(d["X"]), encode(d["X_test"])
    out = {}
    for head in HEADS:
        trained = train_probes(F_train, d["y"], [torch.arange(len(F_train))],
                               head=head, num_classes=10, num_steps=300)
        out[head] = (metrics.accuracy(trained.predict(F_test)[0], d["y_test"]),
                     trained.module(0))
    return out


def probe_accuracy(encode, ds):
    return {head: acc for head, (acc, _) in probes(encode, ds).items()}


def freeze(encoder):
    return encoder.requires_grad_(False).eval()


PIXELS = {ds: probe_accuracy(lambda X: to_float(X).flatten(1), ds) for ds in DATA}
BEFORE = {}  # (dataset, config) -> {"errors": {...}, "linear": acc, "mlp": acc}
HEAD = {}  # (dataset, config, head) -> the trained head, where phase (c) starts
for (ds, name), (model, _) in AE.items():
    encoder = freeze(copy.deepcopy(model.encoder))
    trained = probes(lambda X: frozen_features(encoder, X), ds)
    BEFORE[ds, name] = dict(errors=errors(model, ds),
                            **{head: acc for head, (acc, _) in trained.items()})
    HEAD.update({(ds, name, head): h for head, (_, h) in trained.items()})
for ds in DATA:
    print(f"{ds}: pixels linear {100 * PIXELS[ds]['linear']:.1f}%, "
          f"MLP {100 * PIXELS[ds]['mlp']:.1f}%")

# %% [markdown]
# ## 6 · Phases (c) and (d): fine-tune, then retrain the decoder
#
# (c) Each encoder, unfrozen, is trained further together with the head that
# phase (b) trained on its features (cross-entropy, written out below), so
# the fine-tuning starts where (b) ended. (d) The fine-tuned encoder is then
# frozen and only the decoder is retrained to reconstruct, so that the
# reconstruction error after fine-tuning can be compared with the one before.
#
# **A control the paper does not describe.** Retraining a decoder for a few
# more epochs improves the reconstruction by itself, whatever happened to the
# encoder. So we also retrain each decoder, for the same epochs, on the
# *original* frozen encoder, (d0), and judge the fine-tuning claim by (d)
# against (d0): the only difference between the two is the fine-tuning.

# %%
def classification_loss(model, batch):
    X, y = batch
    return F.cross_entropy(model(X), y)


# %% [markdown]
# **Exercise 2.** Write phase (d)'s set-up: given the pretrained autoencoder
# and a fine-tuned encoder, return a copy of the autoencoder whose encoder is
# the fine-tuned one, frozen (no gradients, eval mode), and whose decoder can
# still learn. Leave the inputs unchanged (work on copies).

# %%
def decoder_only(autoencoder, encoder):
    ...  # your code here: return the new autoencoder


# %% [markdown]
# The check looks at which weights can learn, and whether the inputs were left
# alone.

# %%
def check_decoder_only(decoder_only):
    ex = aelab.exercises  # the probes: untouched inputs, frozen, one fit step
    torch.manual_seed(0)
    ae, tuned = ConvAutoencoder(), ConvAutoencoder().encoder
    before = copy.deepcopy(tuned.state_dict())
    out = lambda: answer(decoder_only(ae, tuned))  # noqa: E731
    snapshot = ex.Snapshot(ae, tuned)  # before the first call

    def one_step():  # phase (d): the decoder learns, the encoder stays put
        new = out()
        enc, dec = (copy.deepcopy(m.state_dict()) for m in (new.encoder, new.decoder))
        ex.one_step(new, (torch.rand(8, 1, 28, 28),),
                    lambda m, batch: F.mse_loss(m(batch[0]), batch[0]))
        moved = lambda old, m: any(not torch.equal(old[k], v)  # noqa: E731
                                   for k, v in m.state_dict().items())
        return not moved(enc, new.encoder) and moved(dec, new.decoder)

    return check("Exercise 2", [
        (out, "it must run on an autoencoder and an encoder, and return the new "
         "autoencoder"),
        (lambda: isinstance(out(), ConvAutoencoder), "return an autoencoder (a copy "
         "of the one given, with the new encoder)"),
        (snapshot.unchanged, "leave the autoencoder and the "
         "encoder you were given as they are: copy.deepcopy both, change the copies"),
        (lambda: out() is not ae and out().encoder is not tuned,
         "work on copies: copy.deepcopy the autoencoder and the encoder"),
        (lambda: all(torch.equal(before[k], v) for k, v in
                     out().encoder.state_dict().items()),
         "its encoder must hold the fine-tuned encoder's weights"),
        (lambda: not any(p.requires_grad for p in out().encoder.parameters()),
         "freeze the encoder: requires_grad_(False) on its parameters"),
        (lambda: ex.frozen(out().encoder), "put the encoder in eval mode too: "
         "call .eval() on it"),
        (lambda: ex.trainable(out().decoder),
         "the decoder must still learn: leave its requires_grad on"),
        (one_step, "in a training step the encoder must stay put and the decoder "
         "learn: freeze the encoder only"),
    ], done="a frozen fine-tuned encoder under a decoder that learns",
        code=decoder_only)


check_decoder_only(decoder_only)

# %% tags=["solution", "hide-cell"]
def decoder_only(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    new.encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
    return new


check_decoder_only(decoder_only)

# %% [markdown]
# Phases (c) and (d) for every dataset, configuration and head. All the
# fine-tuning runs of a dataset go through `fit_many` (the many-model path).

# %% tags=["nbval-ignore-output"]
check_decoder_only(decoder_only).require()  # stop here if Exercise 2 is not done
AFTER = {}  # (dataset, config, head) -> {"errors": {...}, "accuracy": acc}
TUNED = {}  # (dataset, config, head) -> retrained autoencoder, for the pictures
CONTROL = {}  # (dataset, config) -> errors after (d0): the decoder retrained alone
for ds, d in DATA.items():
    for name in CONFIGS:
        ae = decoder_only(AE[ds, name][0], AE[ds, name][0].encoder)
        aelab.fit(ae, (d["pool"],), reconstruction_loss,
                  num_epochs=SETTINGS["dec_epochs"], lr=2e-3, batch_size=128,
                  desc=f"(d0) {ds} {name}", cache=True, quiet=True)
        CONTROL[ds, name] = errors(ae, ds)
    runs, nets = [], []
    for name in CONFIGS:
        for head in HEADS:
            torch.manual_seed(0)
            encoder = copy.deepcopy(AE[ds, name][0].encoder)
            net = EncoderClassifier(encoder, head=head, freeze=False,
                                    in_shape=tuple(d["X"].shape[1:]))
            net.head = copy.deepcopy(HEAD[ds, name, head])  # start from (b)
            runs.append((name, head))
            nets.append(net)
    aelab.fit_many(nets, [(d["X"], d["y"])] * len(nets), classification_loss,
                   num_epochs=SETTINGS["ft_epochs"], lr=1e-3, batch_size=64,
                   desc=f"(c) {ds}: {len(nets)} fine-tunings", cache=True)
    for (name, head), net in zip(runs, nets):
        accuracy = metrics.accuracy(aelab.predict(net, d["X_test"]), d["y_test"])
        ae = decoder_only(AE[ds, name][0], net.encoder)
        aelab.fit(ae, (d["pool"],), reconstruction_loss,
                  num_epochs=SETTINGS["dec_epochs"], lr=2e-3, batch_size=128,
                  desc=f"(d) {ds} {name} {head}", cache=True, quiet=True)
        AFTER[ds, name, head] = dict(errors=errors(ae, ds), accuracy=accuracy)
        TUNED[ds, name, head] = ae

# %% [markdown]
# One tidy row per (dataset, configuration, phase, classifier): its accuracy
# and its five reconstruction errors.

# %%
rows = []
for (ds, name), b in BEFORE.items():
    for head in HEADS:
        a = AFTER[ds, name, head]
        rows.append(dict(dataset=ds, config=name, phase="before", classifier=head,
                         accuracy=b[head], stalled=STALLED[ds, name], **b["errors"]))
        rows.append(dict(dataset=ds, config=name, phase="after", classifier=head,
                         accuracy=a["accuracy"], stalled=STALLED[ds, name],
                         **a["errors"]))
print(f"{len(rows)} rows, e.g. {rows[0]}")

# %% [markdown]
# ## 7 · Reconstruction error against accuracy
#
# For each dataset, distance, classifier and phase: Pearson and Spearman r
# between the configurations' errors and their accuracies, each with a 95%
# bootstrap confidence interval (the configurations resampled). With only a
# dozen points the intervals are wide: an r of 0.3 tells little. A *negative*
# r is what the folk wisdom predicts (lower error, higher accuracy).

# %%
def select(ds, phase, head):
    return [r for r in rows if (r["dataset"], r["phase"], r["classifier"])
            == (ds, phase, head)]


CORRELATIONS = {}  # (dataset, distance, classifier, phase, method) -> Correlation
for ds in DATA:
    for k in DISTANCES:
        for head in HEADS:
            for phase in ("before", "after"):
                sel = select(ds, phase, head)
                for method in ("pearson", "spearman"):
                    CORRELATIONS[ds, k, head, phase, method] = metrics.correlation(
                        [r[k] for r in sel], [r["accuracy"] for r in sel],
                        method=method, n_boot=SETTINGS["n_boot"])

# %% [markdown]
# The paper's Table 1, in small: Pearson r [95% CI] per cell, before and after
# fine-tuning (LL: linear classifier, NN: the MLP).

# %%
def cell(c):
    return "   undefined   " if np.isnan(c.r) else f"{c.r:+.2f} [{c.low:+.2f},{c.high:+.2f}]"


lines = []
for method in ("pearson", "spearman"):
    lines.append(f"{method} r between reconstruction error and accuracy, "
                 "[95% bootstrap CI]")
    lines.append(f"{'':23}" + "".join(f" {k:^19}" for k in DISTANCES))
    for ds in DATA:
        for head, short in (("mlp", "NN"), ("linear", "LL")):
            for phase in ("before", "after"):
                lines.append(f"{ds:<13} {short} {phase:<6}" + "".join(
                    f" {cell(CORRELATIONS[ds, k, head, phase, method]):>19}"
                    for k in DISTANCES))
    lines.append("")
TABLE_1 = "\n".join(lines)
print(TABLE_1)


# %% [markdown]
# Scatter plots before fine-tuning, one per dataset and distance (linear
# classifier): each point an autoencoder, crosses the stalled ones.

# %%
fig, axes = plt.subplots(len(DATA), len(DISTANCES), squeeze=False,
                         figsize=(3.1 * len(DISTANCES), 2.8 * len(DATA)))
for i, ds in enumerate(DATA):
    sel = select(ds, "before", "linear")
    for j, k in enumerate(DISTANCES):
        c = CORRELATIONS[ds, k, "linear", "before", "pearson"]
        plot.correlation_scatter([r[k] for r in sel], [100 * r["accuracy"] for r in sel],
                                 marked=[n for n, r in enumerate(sel) if r["stalled"]],
                                 ax=axes[i, j], xlabel=f"{k} error",
                                 ylabel=f"{ds} accuracy (%)" if j == 0 else "",
                                 title=f"r = {c.r:+.2f} [{c.low:+.2f}, {c.high:+.2f}]")
fig.tight_layout()

# %% [markdown]
# **What drives the correlation?** Two checks we decided on before running:
# the same Pearson r without the stalled autoencoders (they stay in the rule
# above, this only shows how much they weigh), and the Spearman r between the
# code size (how many numbers the encoder keeps) and each of error and
# accuracy: a code of 4 numbers can neither redraw a digit nor separate ten
# classes, which links the two through a third cause.

# %%
for ds in DATA:
    sel = [r for r in select(ds, "before", "linear") if not r["stalled"]]
    if len(sel) >= 3:
        r_kept = {k: metrics.correlation([r[k] for r in sel],
                                         [r["accuracy"] for r in sel],
                                         n_boot=SETTINGS["n_boot"]) for k in DISTANCES}
        print(f"{ds}, linear, before, without the {len(CONFIGS) - len(sel)} stalled: "
              + ", ".join(f"{k} {c.r:+.2f} [{c.low:+.2f},{c.high:+.2f}]"
                          for k, c in r_kept.items()))
    else:
        print(f"{ds}: only {len(sel)} autoencoders did not stall: too few for an r")
    sel = select(ds, "before", "linear")
    size = [CODE_SIZE[r["config"]] for r in sel]
    print(f"{'':>13} code size vs EUC error: Spearman "
          f"{metrics.correlation(size, [r['EUC'] for r in sel], method='spearman').r:+.2f}"
          f"; vs accuracy: {metrics.correlation(size, [r['accuracy'] for r in sel], method='spearman').r:+.2f}")

# %% [markdown]
# **Explore.** Pick a configuration to see its reconstructions before and
# after fine-tuning, and its point (red circle) in the scatter; switch the
# distance, the classifier and the phase to redraw the scatter and its r.

# %% tags=["nbval-ignore-output"]
def explore(dataset, config, distance, classifier, phase):
    sel = select(dataset, phase, classifier)
    c = CORRELATIONS[dataset, distance, classifier, phase, "pearson"]
    fig = plt.figure(figsize=(9, 3.4))
    ax = fig.add_axes([0.07, 0.15, 0.4, 0.72])
    plot.correlation_scatter([r[distance] for r in sel],
                             [100 * r["accuracy"] for r in sel],
                             labels=[r["config"] for r in sel],
                             highlight=list(CONFIGS).index(config),
                             marked=[n for n, r in enumerate(sel) if r["stalled"]],
                             ax=ax, xlabel=f"{distance} error", ylabel="accuracy (%)",
                             title=f"{dataset}, {classifier}, {phase}: r = {c.r:+.2f}")
    X = DATA[dataset]["X_test"][:6]
    shown = [to_float(X), aelab.predict(AE[dataset, config][0], X),
             aelab.predict(TUNED[dataset, config, classifier], X)]
    for row, (images, label) in enumerate(zip(shown, ("input", "(a) before",
                                                      "(d) after"))):
        for col in range(6):
            axi = fig.add_axes([0.52 + col * 0.077, 0.62 - row * 0.27, 0.075, 0.25])
            axi.imshow(images[col, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1)
            axi.set_xticks([]), axi.set_yticks([])
            if col == 0:
                axi.set_ylabel(label, fontsize=7)
    return fig


widgets.interactive(
    explore,
    dataset=W.Dropdown(options=list(DATA), description="dataset"),
    config=W.Dropdown(options=list(CONFIGS), description="config"),
    distance=W.Dropdown(options=list(DISTANCES), description="distance"),
    classifier=W.Dropdown(options=list(HEADS), description="classifier"),
    phase=W.Dropdown(options=["before", "after"], description="phase"))

# %% [markdown]
# ## 8 · Trap 1: the autoencoder that learns the identity
#
# C11's code is over-complete: 3,136 numbers for a 784-pixel image. Nothing
# forces it to compress, so it can reconstruct almost perfectly by passing the
# pixels through. Where does it rank in reconstruction, and are its features
# better than the pixels themselves? (The paper's argument says: no better.
# A ReLU and a max-pool are not quite the identity, so look at the numbers
# before agreeing.)

# %%
for ds in DATA:
    ranked = sorted(CONFIGS, key=lambda n: BEFORE[ds, n]["errors"]["EUC"])
    b = BEFORE[ds, "C11"]
    print(f"{ds}: C11 has the #{ranked.index('C11') + 1} lowest EUC error of "
          f"{len(ranked)} ({b['errors']['EUC']:.2f}; best {ranked[0]} "
          f"{BEFORE[ds, ranked[0]]['errors']['EUC']:.2f}); linear accuracy "
          f"{100 * b['linear']:.1f}% vs pixels {100 * PIXELS[ds]['linear']:.1f}%, "
          f"MLP {100 * b['mlp']:.1f}% vs pixels {100 * PIXELS[ds]['mlp']:.1f}%")

# %% [markdown]
# ## 9 · Trap 2: one encoder, two decoders
#
# The reconstruction error measures the encoder *and* the decoder. Keep one
# frozen encoder (C01's, MNIST) and train two decoders on it: the mirrored one
# and a weak one with a single channel per layer. The features, and so the
# classifiers' accuracy, are the same; the reconstruction errors are not.

# %% tags=["nbval-ignore-output"]
ds = next(iter(DATA))
encoder = freeze(copy.deepcopy(AE[ds, "C01"][0].encoder))
TWO = {}
for label, widths in (("mirrored decoder", None), ("weak decoder (1, 1)", (1, 1))):
    torch.manual_seed(0)
    ae = ConvAutoencoder(**CONFIGS["C01"], decoder_widths=widths)
    ae.encoder = copy.deepcopy(encoder)
    history = aelab.fit(ae, (DATA[ds]["pool"],), reconstruction_loss,
                        num_epochs=SETTINGS["ae_epochs"], lr=2e-3, batch_size=128,
                        desc=label, cache=True)
    TWO[label] = dict(model=ae, errors=errors(ae, ds),
                      **probe_accuracy(lambda X, e=ae.encoder: frozen_features(e, X), ds))
for label, t in TWO.items():
    print(f"{label:<20} EUC {t['errors']['EUC']:.2f}  SOI {t['errors']['SOI']:.2f}  "
          f"linear {100 * t['linear']:.1f}%  MLP {100 * t['mlp']:.1f}%")

# %% [markdown]
# The same test digits through both decoders:

# %%
X = DATA[ds]["X_test"][:8]
fig = plot.image_grid({"input": X, **{k: aelab.predict(t["model"], X).clamp(0, 1)
                                      for k, t in TWO.items()}})

# %% [markdown]
# ## 10 · The verdict
#
# The rules, written before looking at the numbers:
#
# * **No consistent correlation.** A (distance, classifier) pair correlates
#   *consistently* if its Pearson CI, before fine-tuning, excludes 0 on the
#   same side in every dataset. The claim holds if no pair does. One claim per
#   distance, so you can see whether the choice of distance matters.
# * **Fine-tuning raises accuracy and worsens reconstruction.** Over all
#   (dataset, configuration, classifier): accuracy after (c) above before (b)
#   in at least `SHARE` of them, and the EUC error after (d) above the
#   control (d0) in at least `SHARE` of them.

# %%
SHARE = 0.75


def consistent(distance):
    """(True if no classifier correlates consistently across datasets, text)."""
    if len(DATA) < 2:
        return None, "needs two datasets"
    verdicts, parts = [], []
    for head in HEADS:
        cs = [CORRELATIONS[ds, distance, head, "before", "pearson"] for ds in DATA]
        sides = {np.sign(c.low) for c in cs if c.low > 0 or c.high < 0}
        excluded = sum(c.low > 0 or c.high < 0 for c in cs)
        verdicts.append(excluded == len(cs) and len(sides) == 1)
        parts.append(f"{head}: r " + ", ".join(f"{c.r:+.2f}" for c in cs)
                     + f" ({excluded} of {len(cs)} CIs exclude 0)")
    return not any(verdicts), "; ".join(parts)


def fine_tuning_effect(_):
    keys = list(AFTER)
    up = [AFTER[k]["accuracy"] > BEFORE[k[:2]][k[2]] for k in keys]
    worse = [AFTER[k]["errors"]["EUC"] > CONTROL[k[:2]]["EUC"] for k in keys]
    gain = np.median([AFTER[k]["accuracy"] - BEFORE[k[:2]][k[2]] for k in keys])
    change = np.median([AFTER[k]["errors"]["EUC"] / CONTROL[k[:2]]["EUC"] - 1
                        for k in keys])
    return (np.mean(up) >= SHARE and np.mean(worse) >= SHARE,
            f"accuracy up in {sum(up)} of {len(keys)} (median {100 * gain:+.1f} "
            f"points); EUC error after (d) above (d0) in {sum(worse)} of "
            f"{len(keys)} (median {100 * change:+.0f}%)")


CLAIMS = [
    *[Claim(f"no consistent correlation between {k} reconstruction error and "
            "accuracy (before fine-tuning)",
            rule(f"no classifier has a Pearson CI excluding 0 on the same side in "
                 f"every dataset ({k})", lambda _, k=k: consistent(k)),
            paper="Table 1: no pattern or general trend")
      for k in DISTANCES],
    Claim("fine-tuning raises accuracy and worsens reconstruction",
          rule(f"accuracy (c) > (b) and EUC (d) > (d0) in >= {SHARE:.0%} of "
               "dataset x configuration x classifier", fine_tuning_effect),
          paper="Fig. 3: both the accuracy and the reconstruction error rise"),
]
untested = {}
if MISSING:  # the paper's other datasets, not loadable here
    text = f"the same holds on {', '.join(MISSING)}"
    CLAIMS.append(Claim(text, rule("the rules above, on these datasets",
                                   lambda _: (None, ""))))
    untested[text] = "not available here: run the paper profile with network"
claims = judge(CLAIMS, rows, untested=untested)
print(claims)
aelab.study.save_run(rows=rows, claims=claims, report=TABLE_1, correlations=[
    dict(dataset=ds, distance=k, classifier=head, phase=phase, method=m,
         r=c.r, low=c.low, high=c.high, n=c.n)
    for (ds, k, head, phase, m), c in CORRELATIONS.items()])

# %% [markdown]
# **Reading it honestly.**
# * When we ran the classroom profile (12 configurations, MNIST and
#   Fashion-MNIST subsets, 35 epochs), the claim did **not** reproduce: lower
#   error went with higher accuracy, Pearson r between -0.84 and -0.99 for
#   EUC, SOI, NOC and E94, every CI below 0; only Mahalanobis, whose CIs are
#   widest, left room for no correlation (one dataset of two). Fine-tuning
#   raised the accuracy in 33 of 48 runs (median +0.4 points) and left the
#   reconstruction about as good as the control (d0) (worse in 31 of 48,
#   median +0%).
# * The check above names a likely reason: the code size. Our population runs
#   from 4 to 3,136 numbers per code, and a tiny code hurts both tasks at
#   once. The paper's 10 configurations are not listed; if they were more
#   alike, their errors and accuracies may simply have varied less. A rule
#   judged on a population says something about that population.
# * The traps hold in part: two decoders on one encoder give different errors
#   and identical accuracy (trap 2, by construction), but the over-complete
#   C11 was a little *better* than the pixels, not "no better" (trap 1).
# * With a dozen configurations a confidence interval for r is wide; "no
#   consistent correlation" is also what too few points look like.
# * `fast` is a smoke test: 2 epochs do not converge, and its numbers mean
#   nothing. Run `classroom`, or `aelab run pitfall --profile classroom --verify`.
#
# **Try next.** Add the pixels as a 13th "configuration" (error 0, accuracy
# PIXELS): where does it sit in the scatter? Train C11 twice as long: does its
# error keep falling while its accuracy stays?
