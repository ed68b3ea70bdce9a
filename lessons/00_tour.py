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
# # 00 · A five-minute tour
#
# This notebook shows you the tools the later lessons use: which machine you are
# on, where the images come from, what "corrupting" an image means, and a tiny
# autoencoder that learns to redraw digits in about a minute.
#
# **How to use the lessons.** Run the cells from top to bottom
# (Shift+Enter). Text cells say *why* before each code cell says *how*.
# Anything slow shows a progress bar and can be stopped with the ■ button:
# the model keeps the weights it has, and a cached run (`cache=True`) resumes
# from its last finished epoch when you run the cell again.

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
# **Seed first.** Every lesson starts by fixing the random seeds, so that
# running it twice gives the same pictures and numbers.

# %%
import torch
import torch.nn.functional as F

import aelab
from aelab import metrics, plot, widgets
from aelab.exercises import answer, check, close

aelab.seed_everything(0)

# %% [markdown]
# **Pick a profile.** The same lesson runs at three sizes: `fast` (seconds,
# used by the automatic tests), `classroom` (a few minutes on a laptop, the
# default) and `paper` (a GPU, the papers' full protocol). Change it here or
# set the environment variable `AELAB_PROFILE` before starting JupyterLab.

# %%
PROFILE = aelab.get_profile()  # "fast" | "classroom" | "paper"
SETTINGS = {
    "fast":      dict(pool_size=1000, ae_epochs=3),
    "classroom": dict(pool_size=4000, ae_epochs=40),
    "paper":     dict(pool_size=60000, ae_epochs=20),
}[PROFILE]
print(PROFILE, SETTINGS)

# %% [markdown]
# ## 1 · Your machine
#
# aelab uses a GPU when there is one (CUDA, or Apple's MPS) and the CPU
# otherwise. It tells you once which one it picked.

# %%
device = aelab.get_device()

# %% [markdown]
# ## 2 · The data
#
# aelab looks for images in this order: a data folder of yours, Debian's
# Fashion-MNIST package, a download (when you are online), and finally small
# subsets of *real* MNIST and Fashion-MNIST that ship inside the repository.
# Each dataset carries a **provenance** record: where it came from, how many
# images, and a checksum. If you are on the embedded subset, aelab says so:
# your numbers will then differ from the papers'.

# %%
train = aelab.load_dataset("mnist", "train")
print(train.provenance)

# %% [markdown]
# `aelab data` on the command line (or the table below) lists what this machine
# can load without a network.

# %%
for row in aelab.data.available():
    if row["num_images"]:
        print(f"{row['name']:<14} {row['split']:<5} {row['num_images']:>7,}  "
              f"from {row['source']}")

# %% [markdown]
# The images are stored as bytes (`uint8`, 0–255), one channel of 28×28 pixels.
# Here are the first sixteen with their labels.

# %% alt="The first sixteen MNIST training digits in a row, each titled with its label."
fig = plot.image_grid({"MNIST": train.X[:16]}, titles=train.y[:16].tolist())

# %% [markdown]
# ## 3 · Corrupting images
#
# A *denoising* autoencoder gets a damaged image and must output the clean one
# (dong2017 §3.2). Three kinds of damage: Gaussian noise on every pixel, one
# big masked block, or many small masked blocks. Try the controls: which
# images could *you* still read?

# %% tags=["nbval-ignore-output"]
widgets.corruption_explorer(train.X[:8])

# %% [markdown]
# The same three corruptions side by side (a static copy of the widget, for
# printed or exported notebooks):

# %% alt="Eight MNIST digits in four rows: clean, with Gaussian noise of standard deviation 0.3, with one big masked block, and with many small masked blocks."
X8 = train.X[:8].float() / 255
g = torch.Generator().manual_seed(0)
fig = plot.image_grid({
    "clean": X8,
    "gaussian 0.3": aelab.corrupt.corrupt(X8, "gaussian", 0.3, generator=g),
    "one big block": aelab.corrupt.corrupt(X8, "big_block", 0.25, generator=g),
    "small blocks": aelab.corrupt.corrupt(X8, "small_blocks", 0.25, generator=g),
})

# %% [markdown]
# ## 4 · A tiny autoencoder
#
# An autoencoder squeezes each image through a narrow middle (the *code* `z`)
# and then tries to redraw it. This one is barletta2024's: two convolutions with
# pooling shrink 1×28×28 pixels to a 4×7×7 code (196 numbers, a quarter of the
# 784 pixels), and the decoder mirrors it back up.

# %%
model = aelab.models.ConvAutoencoder()
print(model)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# The objective is written here, not hidden in the library.
#
# **Exercise.** Write `reconstruction_loss`: the mean squared difference
# between each image `X` and its reconstruction `X_hat = model(X)` (one number
# for the whole batch; `F.mse_loss` computes it). The training cell below
# trains with exactly this function.

# %%
def reconstruction_loss(model, batch):
    X, = batch
    ...  # your code here: return one number


# %% [markdown]
# The check compares your function with the mean squared error on a few
# random images, and says what to fix if it differs.

# %%
def check_reconstruction_loss(loss_fn):
    ex = aelab.exercises  # the probes: gradients, untouched inputs, one fit step
    torch.manual_seed(0)
    net, X = aelab.models.ConvAutoencoder(), torch.rand(4, 1, 28, 28)
    X_hat = net(X).detach()
    got = lambda: answer(loss_fn(net, (X,)))  # noqa: E731
    net64, X64 = aelab.models.ConvAutoencoder().double(), X.double()
    in_float64 = lambda: answer(loss_fn(net64, (X64,)))  # noqa: E731
    # No bfloat16 case: a GPU trains under bf16 autocast, where X_hat is bf16 but
    # F.mse_loss runs in float32; the ops that fail there on a float32 tensor
    # made with torch.zeros (scatter, index_put) fail the float64 case too.
    snapshot = ex.Snapshot(net, X)  # before the first call
    return check("Exercise", [
        (got, "it must run on a model and a batch (X,) of 4 images, 1x28x28 each"),
        (lambda: torch.is_tensor(got()), "return a tensor (what F.mse_loss gives), "
         "not a Python number: no .item() or float()"),
        (lambda: got().dim() == 0, "return one number for the batch (a mean): a "
         "0-d tensor"),
        (snapshot.unchanged, "leave X and the model as they are: "
         "compute X_hat = model(X) and change nothing in place"),
        (lambda: not close(got(), (X_hat - X).abs().mean()), "that is the mean "
         "ABSOLUTE error: square the differences instead"),
        (lambda: not close(got(), ((X_hat - X) ** 2).sum()), "that is the SUM of "
         "the squared errors: take their mean (F.mse_loss)"),
        (lambda: close(got(), ((X_hat - X) ** 2).mean()),
         "return the mean of (model(X) - X) ** 2"),
        (lambda: not ex.no_gradient(got(), net), "no gradient reaches the model's "
         "weights: return the loss tensor itself (no .item(), .detach() or "
         "torch.tensor(...))"),
        (lambda: in_float64().dtype == torch.float64 and close(
            in_float64(), ((net64(X64) - X64) ** 2).mean()),
         "keep the input's dtype (float64 here): no .float(), no new tensors of a "
         "fixed dtype"),
        (lambda: ex.one_step(aelab.models.ConvAutoencoder(), (X,), loss_fn),
         "aelab.fit cannot train on it: return F.mse_loss(model(X), X)"),
    ], done="the mean squared error between X and model(X)", code=loss_fn)


check_reconstruction_loss(reconstruction_loss)

# %% tags=["solution", "hide-cell"]
def reconstruction_loss(model, batch):
    X, = batch
    X_hat = model(X)
    return F.mse_loss(X_hat, X)


check_reconstruction_loss(reconstruction_loss)


# %% [markdown]
# `aelab.fit` runs the training loop (batches, device, progress bar) for the
# objective you give it. Watch the bar: on a laptop this takes about a minute
# in the classroom profile.

# %% tags=["nbval-ignore-output"]
check_reconstruction_loss(reconstruction_loss).require()  # the exercise first
X_train = train.X[:SETTINGS["pool_size"]]
test = aelab.load_dataset("mnist", "test")
history = aelab.fit(model, (X_train,), reconstruction_loss,
                    num_epochs=SETTINGS["ae_epochs"], lr=1e-3, batch_size=64,
                    test_data=(test.X,), desc="tiny autoencoder")
print(f"{history.images_per_s:,.0f} images/s on {device}")

# %% [markdown]
# ## 5 · Did it really learn?
#
# Two checks before believing any result. First the **loss curve**: it should
# fall and flatten, with the test loss (dashed) close to the training loss.

# %% alt="The tiny autoencoder's loss against the epoch: training loss solid, test loss dashed."
fig = plot.loss_curves({"autoencoder": history})

# %% [markdown]
# Second, **compare with the best constant image**. A tiny autoencoder can get
# stuck outputting the same blurry "average digit" for every input; that image
# already has a low error. A model that learned something must beat it clearly.

# %%
X_test = test.X[:512].float() / 255
X_hat = aelab.predict(model, test.X[:512])
health = metrics.reconstruction_health(X_test, X_hat)
print(health.message)
print(history.problem() or "The training loss went down.")

# %% [markdown]
# And look: top row the test digits, middle row what the autoencoder drew from
# its 196-number code, bottom row the best constant image it must beat.

# %% alt="Three rows of eight: test digits, the autoencoder's reconstructions of them, and the mean image, the best constant image it must beat."
mean_image = X_test.mean(0, keepdim=True).expand(8, -1, -1, -1)
fig = plot.image_grid({"input": X_test[:8], "reconstruction": X_hat[:8],
                       "mean image": mean_image})

# %% [markdown]
# ## Where next
#
# * **01 · Pretraining with few labels** (barletta2024): does an autoencoder
#   trained on unlabeled digits help a classifier that sees only 50 labels?
#
# Things to try here first: set `ae_epochs` to 1 and re-run sections 4–5 (does
# the check still pass?); replace `F.mse_loss` by `F.l1_loss`; train on
# `aelab.load_dataset("fashion_mnist", "train")`.
