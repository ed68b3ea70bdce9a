"""The table of bad inputs: what a new user gets wrong, and the one line each
gets. tests/test_bad_inputs.py runs every case; tools/reliability_table.py
writes the table of docs/RELIABILITY.md from the same cases (a test checks the
doc quotes each case's message exactly).

A case is (id, where, bad input, callable(tmp), expected exception or None,
regex). With an exception the callable must raise it with a one-line message
from inside aelab (not torch); with None it must print exactly one line (a
warning), keep what was computed and return.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import random
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import aelab
from aelab import (cli, corrupt, data, device, metrics, models, probes, splits, study,
                   utils, verdicts, widgets)
from aelab.train import evaluate, fit, predict
from aelab.sweep import fit_many
from aelab.utils import cache_path, cached

ROOT = Path(__file__).resolve().parent.parent
AELAB_DIR = ROOT / "aelab"
NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Case:
    id: str
    where: str  # API, CLI, env, file, widget
    bad: str  # the bad input, in words
    run: Callable
    raises: type | None  # None: one warning line, and the work goes on
    match: str


class CLIFailed(Exception):
    """The `aelab` command exited non-zero; the message is what it printed."""


# ---- helpers -----------------------------------------------------------------

def tiny_ae():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(2, 1, 3, padding=1))


def recon(model, batch):
    X, = batch
    return F.mse_loss(model(X), X)


def images(n=8, c=1, size=8):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))


def train_many(n=2, on=None, **kw):
    """fit_many of n tiny AEs, stacked (strategy batched), kw overriding."""
    kw = {**dict(num_epochs=1, device="cpu", quiet=True, strategy="batched"), **kw}
    return fit_many([tiny_ae() for _ in range(n)], [(images(),) if on is None else on] * n,
                    recon, **kw)


def train(model=None, on=None, **kw):
    """fit a tiny AE on 8 images for one epoch on the CPU, kw overriding."""
    kw = {**dict(num_epochs=1, device="cpu", quiet=True), **kw}
    return fit(model or tiny_ae(), (images(),) if on is None else on, recon, **kw)


@contextlib.contextmanager
def env(**values):
    """Set (a value) or unset (None) environment variables for a moment."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def with_env(fn, **values):
    def run(tmp):
        with env(**values):
            return fn(tmp)
    return run


def without_gpus(fn):
    """fn on a machine (as torch sees it) with no CUDA GPU and no Apple GPU."""
    def run(tmp):
        with mock.patch.object(torch.cuda, "is_available", lambda: False), \
                mock.patch.object(device, "_mps_available", lambda: False):
            return fn(tmp)
    return run


def a_file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("not a folder")
    return path


def aelab_cli(*args, **values):
    """`aelab ARGS` in this process (cli.main), with env values set."""
    def run(tmp):
        err = io.StringIO()
        with env(**values), contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(io.StringIO()):
            code = cli.main([str(a).replace("TMP", str(tmp)) for a in args])
        if code:
            raise CLIFailed(err.getvalue().strip())
    return run


def aelab_process(*args, **values):
    """`python -m aelab.cli ARGS` in a fresh process, as a user runs it."""
    def run(tmp):
        environ = {**os.environ, "PYTHONPATH": str(ROOT), **values}
        result = subprocess.run([sys.executable, "-m", "aelab.cli", *args], cwd=tmp,
                                env=environ, capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode:
            raise CLIFailed(result.stderr.strip())
    return run


def disk_full():
    """Every fsync says the disk is full (where a full disk shows up)."""
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return mock.patch("os.fsync", side_effect=error)


# ---- cases that take a few steps ---------------------------------------------

def fake_mnist(folder, n=12):
    """torchvision-format MNIST files (n images per split) under folder/MNIST/raw."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        pixels = np.arange(n * 28 * 28, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
            + pixels.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(i % 10 for i in range(n)))
    return raw


def truncated_data_file(tmp):
    """A data folder whose MNIST train images were cut short: one warning, and
    both splits come from the next source (the embedded subset)."""
    raw = fake_mnist(tmp / "data")
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with env(AELAB_DATA=str(tmp / "data")):
        train, test = (data.load_dataset("mnist", s, quiet=True) for s in ("train", "test"))
    assert train.provenance.source == test.provenance.source == "embedded"


def lessons_copy(tmp, *names):
    """Some of the lessons (their .py) copied into TMP/lessons."""
    folder = tmp / "lessons"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes((ROOT / "lessons" / name).read_bytes())
    return folder


def student_into(where):
    """`aelab student TMP/lessons DEST`, DEST chosen by `where` from the lessons
    folder; the lessons must come out byte-identical whatever happens."""
    def run(tmp):
        folder = lessons_copy(tmp, "01_pretraining.py")
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        try:
            aelab_cli("student", "TMP/lessons", where)(tmp)
        finally:
            assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    return run


def student_broken_header(tmp):
    folder = lessons_copy(tmp)
    (folder / "01_broken.py").write_text("# ---\n# jupyter:\n#   kernelspec: [unclosed\n"
                                         "# ---\n\n# %%\nprint(1)\n")
    aelab_cli("student", "TMP/lessons", "TMP/student")(tmp)


def student_over_solutions(tmp):
    lessons_copy(tmp, "01_pretraining.py")
    (tmp / "dest").mkdir()
    (tmp / "dest" / "01_pretraining.py").write_bytes(
        (ROOT / "lessons" / "01_pretraining.py").read_bytes())
    aelab_cli("student", "TMP/lessons", "TMP/dest")(tmp)


class TupleCode(torch.nn.Module):
    """An encoder that returns (code, skip features), as a U-Net's does."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x), x


def truncated_cache(tmp):
    config = dict(case="truncated")
    cached(config, lambda: {"w": torch.arange(3.0)})
    path = cache_path(config)
    path.write_bytes(path.read_bytes()[:20])  # a write cut short (old version, crash)
    result = cached(config, lambda: {"w": torch.arange(3.0)})
    assert torch.equal(result["w"], torch.arange(3.0))
    torch.load(path, weights_only=True)  # rewritten whole


def corrupt_fit_cache(tmp):
    train(cache=True)
    for path in (utils.cache_dir() / "fit").glob("*.pt"):
        path.write_bytes(random.Random(0).randbytes(200))  # junk, the same each run
    history = train(cache=True)
    assert not history.cached and history.stopped == "completed"


def corrupt_checkpoint(tmp):
    def stop(model, epoch, history):
        raise KeyboardInterrupt
    with contextlib.suppress(KeyboardInterrupt), \
            contextlib.redirect_stdout(io.StringIO()):
        train(num_epochs=3, cache=True, callback=stop)
    (checkpoint,) = (utils.cache_dir() / "resume").glob("*.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    history = train(num_epochs=3, cache=True)
    assert len(history.train_loss) == 3  # trained from the start


def pickle_payload(tmp):
    class Payload:
        def __reduce__(self):
            return (print, ("the payload ran",))
    config = dict(case="payload")
    path = cache_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": Payload()}, path)
    assert cached(config, lambda: {"x": torch.ones(1)})["x"].sum() == 1


def full_disk_cached(tmp):
    with disk_full():
        result = cached(dict(case="full"), lambda: {"w": torch.ones(3)})
    assert result["w"].sum() == 3  # the result is kept
    folder = utils.cache_dir() / "run"
    assert not list(folder.glob("*")), list(folder.iterdir())  # no partial file


def full_disk_fit(tmp):
    model = tiny_ae()
    before = [p.detach().clone() for p in model.parameters()]
    with disk_full():
        history = train(model=model, num_epochs=2, cache=True)
    assert history.stopped == "completed" and len(history.train_loss) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not list((utils.cache_dir() / "fit").glob("*"))


def embedded(tmp, damage):
    folder = tmp / "data"
    folder.mkdir()
    for entry in data.EMBEDDED.values():
        (folder / entry["file"]).write_bytes((data.embedded_dir() / entry["file"])
                                             .read_bytes())
    damage(folder / data.EMBEDDED["mnist"]["file"])
    with mock.patch.object(data, "embedded_dir", lambda: folder):
        data.load_dataset("mnist", source="embedded", quiet=True)


def flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0xFF
    path.write_bytes(bytes(raw))


def save_run_to(out):
    def run(tmp):
        with env(AELAB_OUT=str(out(tmp))):
            study.save_run(report="text")
    return run


def widget_callback_error(tmp):
    def draw(x):
        raise ValueError(f"no picture for x = {x}\nsecond line")
    import ipywidgets as W
    slider = W.IntSlider(value=1)
    widgets.interactive(draw, x=slider)


def slider_to(box, value):
    """Set the FloatSlider among a widget's controls (its first row) to value."""
    import ipywidgets as W
    (slider,) = [c for c in box.children[0].children if isinstance(c, W.FloatSlider)]
    slider.value = value


def probes_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 4, generator=g), torch.arange(20) % 2


def train_probes(**kw):
    F_, y = probes_data()
    args = dict(subsets=[torch.arange(10)], device="cpu")
    args.update(kw)
    return probes.train_probes(args.pop("F", F_), args.pop("y", y), **args)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def train_mlps(**kw):
    """fit_many of two tiny MLPs on probes_data(), stacked (batched), kw overriding."""
    F_, y = probes_data()
    kw = {**dict(num_epochs=1, device="cpu", quiet=True, strategy="batched"), **kw}
    return fit_many([mlp(), mlp()], [(F_, y)] * 2,
                    lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]), **kw)


def results(**row):
    """Results of methods a and b over seeds 0-2, each row updated by `row`."""
    return study.Results([{**dict(method=m, budget=10, seed=s, accuracy=0.5), **row}
                          for m in "ab" for s in range(3)])


def exercise(*cases):
    aelab.exercises.check("E", list(cases)).require()


LABELS = torch.arange(100) % 10

CASES = [
    # ---- API: training settings
    Case("fit-lr-nan", "API", "fit(lr=nan)", lambda t: train(lr=NAN),
         ValueError, r"^lr must be a finite number > 0, got nan"),
    Case("fit-lr-inf", "API", "fit(lr=inf)", lambda t: train(lr=INF),
         ValueError, r"^lr must be a finite number > 0, got inf"),
    Case("fit-lr-zero", "API", "fit(lr=0)", lambda t: train(lr=0),
         ValueError, r"^lr must be a finite number > 0, got 0"),
    Case("fit-lr-negative", "API", "fit(lr=-1e-3)", lambda t: train(lr=-1e-3),
         ValueError, r"^lr must be a finite number > 0, got -0.001"),
    Case("fit-lr-text", "API", "fit(lr='1e-3')", lambda t: train(lr="1e-3"),
         TypeError, r"^lr must be a number, got '1e-3' \(str\)"),
    Case("fit-num-epochs-negative", "API", "fit(num_epochs=-1)",
         lambda t: train(num_epochs=-1), ValueError, r"^num_epochs must be >= 0"),
    Case("fit-num-epochs-fraction", "API", "fit(num_epochs=2.5)",
         lambda t: train(num_epochs=2.5), ValueError,
         r"num_epochs must be a whole number"),
    Case("fit-num-epochs-nan", "API", "fit(num_epochs=nan)",
         lambda t: train(num_epochs=NAN), ValueError,
         r"num_epochs must be a whole number"),
    Case("fit-batch-size-zero", "API", "fit(batch_size=0)",
         lambda t: train(batch_size=0), ValueError, r"^batch_size must be >= 1, got 0"),
    Case("fit-batch-size-fraction", "API", "fit(batch_size=12.5)",
         lambda t: train(batch_size=12.5), ValueError,
         r"batch_size must be a whole number"),
    Case("fit-weight-decay-negative", "API", "fit(weight_decay=-0.1)",
         lambda t: train(weight_decay=-0.1), ValueError,
         r"^weight_decay must be a finite number >= 0, got -0.1"),
    Case("fit-weight-decay-nan", "API", "fit(weight_decay=nan)",
         lambda t: train(weight_decay=NAN), ValueError,
         r"^weight_decay must be a finite number >= 0, got nan"),
    Case("fit-clip-grad-zero", "API", "fit(clip_grad=0)", lambda t: train(clip_grad=0),
         ValueError, r"^clip_grad must be a finite number > 0"),
    Case("fit-optimizer-unknown", "API", "fit(optimizer='adamw')",
         lambda t: train(optimizer="adamw"), ValueError,
         r"^unknown optimizer 'adamw': use one of 'adam', 'sgd'"),
    Case("fit-seed-fraction", "API", "fit(seed=0.5)", lambda t: train(seed=0.5),
         ValueError, r"^seed must be a whole number"),
    Case("fit-many-lr-negative", "API", "fit_many(strategy='batched', lr=-1)",
         lambda t: train_many(lr=-1), ValueError, r"^lr must be a finite number > 0"),
    Case("fit-many-lr-text", "API", "fit_many(strategy='batched', lr='1e-3')",
         lambda t: train_many(lr="1e-3"), TypeError, r"^lr must be a number, got '1e-3'"),
    Case("fit-many-num-epochs-fraction", "API", "fit_many(num_epochs=2.5)",
         lambda t: train_many(num_epochs=2.5), ValueError,
         r"^num_epochs must be a whole number"),
    Case("fit-many-data-empty", "API", "fit_many on 0 images",
         lambda t: train_many(on=(images(0),)), ValueError,
         r"^fit_many: datas\[0\] is empty \(0 images\)"),
    Case("fit-many-seeds-short", "API", "fit_many of 3 models with seeds=[0, 1]",
         lambda t: train_many(3, seeds=[0, 1]), ValueError,
         r"^fit_many needs one seed per model: got 2 seeds for 3 models"),
    # ---- API: data
    Case("fit-data-empty", "API", "fit on 0 images", lambda t: train(on=(images(0),)),
         ValueError, r"^fit: the training data is empty \(0 images\)"),
    Case("fit-data-mismatched", "API", "fit on 8 images and 5 labels",
         lambda t: train(on=(images(), torch.zeros(5))), ValueError,
         r"^fit: the training data holds tensors of different lengths \[8, 5\]"),
    Case("fit-data-nan-pixels", "API", "fit on images holding NaN",
         lambda t: train(on=(images().index_fill_(0, torch.tensor([3]), NAN),)),
         ValueError, r"holds NaN or inf values \(1 of 8 rows\)"),
    Case("fit-data-numpy", "API", "fit on a numpy array",
         lambda t: train(on=np.zeros((8, 1, 8, 8), np.float32)), TypeError,
         r"must be a tensor, a tuple of tensors \(X, y\) or a Loader, got ndarray"),
    Case("fit-data-imagedata", "API", "fit on load_dataset(...) itself",
         lambda t: train(on=data.load_dataset("mnist", "test", source="embedded",
                                                quiet=True)),
         TypeError, r"is an ImageData: pass \(d.X,\)"),
    Case("fit-test-data-empty", "API", "fit(test_data=0 images)",
         lambda t: train(test_data=(images(0),)), ValueError, r"test_data is empty"),
    Case("loader-mismatched", "API", "Loader(X of 8, y of 3)",
         lambda t: splits.Loader(images(), torch.zeros(3)), ValueError,
         r"^Loader: the data holds tensors of different lengths \[8, 3\]"),
    Case("predict-empty", "API", "predict(model, 0 images)",
         lambda t: predict(tiny_ae(), images(0)), ValueError,
         r"^predict: X must be a non-empty tensor"),
    Case("evaluate-batch-size-zero", "API", "evaluate(batch_size=0)",
         lambda t: evaluate(tiny_ae(), (images(),), recon, batch_size=0), ValueError,
         r"^batch_size must be >= 1"),
    Case("model-flat-vectors", "API", "ConvAutoencoder fed flat 784-vectors",
         lambda t: train(model=models.ConvAutoencoder(), on=(torch.rand(8, 784),)),
         ValueError,
         r"ConvAutoencoder takes images N x 1 x H x W; got shape \(8, 784\)"),
    Case("model-wrong-channels", "API", "ConvAutoencoder fed 3-channel images",
         lambda t: train(model=models.ConvAutoencoder(), on=(images(c=3, size=28),)),
         ValueError, r"got shape \(8, 3, 28, 28\).*in_channels=3"),
    # ---- API: devices
    Case("fit-device-unknown", "API", "fit(device='tpu')",
         lambda t: train(device="tpu"),
         ValueError, r"^unknown device 'tpu': use one of cpu, cuda, mps"),
    Case("fit-device-cuda-missing", "API", "fit(device='cuda') without a GPU",
         without_gpus(lambda t: train(device="cuda")), ValueError,
         r"^device 'cuda' was asked for, but this machine has no CUDA GPU"),
    Case("get-device-cuda-index", "API", "get_device('cuda:x')",
         lambda t: utils.get_device("cuda:x"), ValueError, r"^unknown device 'cuda:x'"),
    # ---- API: corruptions
    Case("noise-std-nan", "API", "gaussian_noise(X, nan)",
         lambda t: corrupt.gaussian_noise(images(), NAN), ValueError,
         r"^noise_std must be a finite number >= 0, got nan"),
    Case("noise-std-negative", "API", "gaussian_noise(X, -0.1)",
         lambda t: corrupt.gaussian_noise(images(), -0.1), ValueError,
         r"^noise_std must be a finite number >= 0, got -0.1"),
    Case("corrupt-level-inf", "API", "corrupt(X, 'gaussian', inf)",
         lambda t: corrupt.corrupt(images(), "gaussian", INF), ValueError,
         r"^noise level must be a finite number >= 0, got inf"),
    Case("corrupt-kind-unknown", "API", "corrupt(X, 'salt')",
         lambda t: corrupt.corrupt(images(), "salt"), ValueError,
         r"^unknown corruption 'salt': use one of 'none', 'gaussian'"),
    Case("corrupt-flat-vectors", "API", "corrupt(flat vectors, 'big_block')",
         lambda t: corrupt.corrupt(torch.rand(8, 784), "big_block"), ValueError,
         r"^corrupt: X must be images N x C x H x W, got shape \(8, 784\)"),
    Case("corrupt-block-level-over-one", "API", "corrupt(X, 'big_block', 25)",
         lambda t: corrupt.corrupt(images(), "big_block", 25), ValueError,
         r"^corrupt: big_block's level is the share of the image masked, so at most 1"),
    Case("corrupt-channel-last", "API", "corrupt(N x H x W x 1 images)",
         lambda t: corrupt.corrupt(images().permute(0, 2, 3, 1), "gaussian"), ValueError,
         r"^corrupt: X looks channel-last"),
    Case("psnr-0-255-images", "API", "psnr(0-255 images, data_range=1)",
         lambda t: metrics.psnr(images() * 255, images() * 250), ValueError,
         r"^psnr: the images reach 25\d(\.\d+)? but data_range is 1"),
    Case("pca-other-width", "API", "pca(X of 8 values, Y of 9, k=2)",
         lambda t: probes.pca(torch.rand(20, 8), torch.rand(5, 9), k=2), ValueError,
         r"^pca: set 0 has 9 values per row but the fit set has 8"),
    Case("block-size-too-big", "API", "block_mask(8x8 images, block_size=14)",
         lambda t: corrupt.block_mask(images(), block_size=14), ValueError,
         r"^block_size 14 is larger than the 8x8 image"),
    Case("num-blocks-fraction", "API", "block_mask(num_blocks=1.5)",
         lambda t: corrupt.block_mask(images(), num_blocks=1.5, block_size=2),
         ValueError, r"^num_blocks must be a whole number"),
    # ---- API: splits and label budgets
    Case("labeled-zero", "API", "splits.labeled(0)",
         lambda t: splits.make_splits(LABELS).labeled(0), aelab.data.DataError,
         r"^labeled size 0 is outside 1\.\.100"),
    Case("labeled-over-pool", "API", "splits.labeled(101) of a 100-image pool",
         lambda t: splits.make_splits(LABELS).labeled(101), aelab.data.DataError,
         r"^labeled size 101 is outside 1\.\.100 \(the pool has 100 images\)"),
    Case("labeled-over-capped-pool", "API", "labeled(60) of pool_size=50",
         lambda t: splits.make_splits(LABELS, pool_size=50).labeled(60),
         aelab.data.DataError, r"^labeled size 60 is outside 1\.\.50"),
    Case("pool-size-zero", "API", "make_splits(pool_size=0)",
         lambda t: splits.make_splits(LABELS, pool_size=0), ValueError,
         r"^pool_size must be >= 1, got 0"),
    Case("pool-size-over-train", "API", "make_splits(pool_size=101) of 100 labels",
         lambda t: splits.make_splits(LABELS, pool_size=101), aelab.data.DataError,
         r"^pool_size 101 is larger than the 100 training images"),
    Case("splits-no-labels", "API", "make_splits(empty y)",
         lambda t: splits.make_splits(torch.zeros(0)), aelab.data.DataError,
         r"^make_splits needs the train labels y, a non-empty 1-D tensor"),
    # ---- API: names
    Case("dataset-unknown", "API", "load_dataset('mnits')",
         lambda t: aelab.load_dataset("mnits"), aelab.data.DataError,
         r"^unknown dataset 'mnits': use one of mnist, fashion_mnist"),
    Case("split-unknown", "API", "load_dataset('mnist', 'val')",
         lambda t: aelab.load_dataset("mnist", "val"), aelab.data.DataError,
         r"^unknown split 'val': use 'train' or 'test'"),
    Case("source-unknown", "API", "load_dataset('mnist', source='web')",
         lambda t: aelab.load_dataset("mnist", source="web"), aelab.data.DataError,
         r"^unknown source 'web': use one of data_dir, debian, download, embedded"),
    Case("profile-unknown", "API", "get_profile('huge')",
         lambda t: aelab.get_profile("huge"), ValueError,
         r"^unknown profile 'huge': use one of fast, classroom, paper"),
    # ---- API: probes
    Case("probes-lr-nan", "API", "train_probes(lr=nan)", lambda t: train_probes(lr=NAN),
         ValueError, r"^lr must be a finite number > 0, got nan"),
    Case("probes-weight-decay-negative", "API", "train_probes(weight_decay=-1)",
         lambda t: train_probes(weight_decay=-1), ValueError,
         r"^weight_decay must be a finite number >= 0, got -1"),
    Case("probes-num-steps-zero", "API", "train_probes(num_steps=0)",
         lambda t: train_probes(num_steps=0), ValueError, r"^num_steps must be >= 1"),
    Case("probes-subset-outside-pool", "API", "train_probes(subset index 40 of 20)",
         lambda t: train_probes(subsets=[torch.arange(41)]), ValueError,
         r"^train_probes: subset 0 holds indices outside 0\.\.19"),
    Case("probes-label-over-num-classes", "API", "train_probes(label 5, num_classes=3)",
         lambda t: train_probes(y=torch.arange(20) % 6, num_classes=3), ValueError,
         r"^train_probes: y holds class 5 but num_classes=3"),
    Case("probes-single-class", "API", "train_probes(a subset of one class)",
         lambda t: train_probes(subsets=[torch.arange(0, 20, 2)]), ValueError,
         r"^train_probes: subset 0 holds a single class \(0\)"),
    Case("results-row-lacks-seed", "API", "Results([{method, budget, accuracy}])",
         lambda t: study.Results([dict(method="a", budget=10, accuracy=0.9)]), ValueError,
         r"^Results row 0 lacks \['seed'\]: every row needs method, budget, seed"),
    Case("results-text-values", "API", "Results(rows read back from results.csv as text)",
         lambda t: study.Results([dict(method="a", budget="10", seed="0",
                                       accuracy="0.9")]), ValueError,
         r"^Results row 0: accuracy='0\.9' is text \(read back from a CSV\?\)"),
    Case("results-all-nan", "API", "Results where every accuracy of a method is NaN",
         lambda t: study.Results([dict(method="a", budget=10, seed=0, accuracy=NAN)]),
         ValueError, r"^every accuracy of \['a'\] is NaN or infinite"),
    Case("rule-rival-on-other-seeds", "API", "beats('a', 'b') with b run on other seeds",
         lambda t: study.beats("a", "b").judge(study.Results(
             [dict(method=m, budget=10, seed=s + 5 * (m == "b"), accuracy=0.9)
              for m in "ab" for s in range(5)])), ValueError,
         r"^'a' ran seeds \[0, 1, 2, 3, 4\] and 'b' seeds \[5, 6, 7, 8, 9\]: a paired"),
    Case("rule-margin-nan", "API", "beats('a', 'b', margin=nan)",
         lambda t: study.beats("a", "b", margin=NAN), ValueError,
         r"^margin must be a finite number, got nan"),
    Case("rule-within-negative", "API", "within('a', 'b', -1)",
         lambda t: study.within("a", "b", -1), ValueError,
         r"^within's points must be a finite number >= 0, got -1"),
    Case("judge-not-a-claim", "API", "judge([('text', rule)], results)",
         lambda t: study.judge([("x", study.beats("a", "b"))], None), ValueError,
         r"^judge takes a list of Claim\(text, rule\); got tuple"),
    Case("effect-margin-nan", "API", "paired_effect(values, margin=nan)",
         lambda t: verdicts.paired_effect([1, 2, 3], NAN), ValueError,
         r"^margin=nan must be a finite number in the claim's unit"),
    Case("effect-sense-unknown", "API", "paired_effect(values, 0, sense='up')",
         lambda t: verdicts.paired_effect([1, 2, 3], 0, sense="up"), ValueError,
         r"^sense='up' is not one of"),
    Case("gate-nothing-measured", "API", "health_gate('AE', 0) with no measurement",
         lambda t: verdicts.health_gate("AE", 0), ValueError,
         r"^health_gate needs losses, error and constant_error, or accuracy and chance"),
    Case("plateau-last-over-one", "API", "plateau(losses, last=2)",
         lambda t: verdicts.plateau([3, 2, 1], last=2), ValueError,
         r"^plateau: last=2 and max_drop=0\.05 are shares between 0 and 1"),
    Case("seeds-empty", "API", "parse_seeds('')",
         lambda t: aelab.profile.parse_seeds(""), ValueError, r"^seeds '' is empty"),
    Case("seeds-twice", "API", "parse_seeds('1-3,2')",
         lambda t: aelab.profile.parse_seeds("1-3,2"), ValueError,
         r"^seeds '1-3,2' names a seed twice"),
    Case("fit-many-strategy-unknown", "API", "fit_many(strategy='fast')",
         lambda t: train_many(strategy="fast"), ValueError,
         r"^unknown strategy 'fast': use one of auto, sequential, processes, batched, "
         "vmap"),
    Case("fit-many-objectives-count", "API", "fit_many(3 models, loss_fn=[one objective])",
         lambda t: fit_many([tiny_ae() for _ in range(3)], [(images(),)] * 3, [recon],
                            num_epochs=1, device="cpu", quiet=True), ValueError,
         r"^fit_many needs one objective, or a list of one per model: got 1 for 3"),
    Case("frozen-features-tuple-code", "API", "frozen_features(an encoder returning a tuple)",
         lambda t: probes.frozen_features(TupleCode().requires_grad_(False), images()),
         ValueError, r"^frozen_features: the encoder returned a tuple, not one tensor"),
    Case("frozen-features-wrong-shape", "API",
         "frozen_features(a 1-channel encoder, 3-channel images)",
         lambda t: probes.frozen_features(TupleCode().conv.requires_grad_(False),
                                          images(c=3)), ValueError,
         r"^frozen_features: the encoder cannot take X of shape \(8, 3, 8, 8\)"),
    Case("frozen-features-numpy-x", "API", "frozen_features(encoder, a numpy array)",
         lambda t: probes.frozen_features(TupleCode().conv.requires_grad_(False),
                                          images().numpy()), ValueError,
         r"^frozen_features: X must be a non-empty tensor of images .*got a ndarray"),
    Case("frozen-features-empty-x", "API", "frozen_features(encoder, zero images)",
         lambda t: probes.frozen_features(TupleCode().conv.requires_grad_(False),
                                          images()[:0]), ValueError,
         r"^frozen_features: X must be a non-empty tensor .*shape \(0, 1, 8, 8\)"),
    Case("frozen-features-function", "API", "frozen_features(lambda x: x, X)",
         lambda t: probes.frozen_features(lambda x: x, images()), ValueError,
         r"^frozen_features: the encoder must be a torch module or a method of one"),
    Case("probes-head-unknown", "API", "train_probes(head='cnn')",
         lambda t: train_probes(head="cnn"), ValueError, r"^unknown head 'cnn'"),
    # ---- API: the newer ones (exercise checks, fit_many, probes, metrics, claims)
    Case("check-many-truth-values", "API",
         "check('E', [(lambda: torch.tensor([1., 2.]) == 0, 'h')])",
         lambda t: exercise((lambda: torch.tensor([1., 2.]) == 0, "h")),
         aelab.exercises.ExerciseNotDone,
         r"^E does not pass its check yet: h \(case 1 gave 2 truth values, not one: "
         r"end it with \.all\(\) or \.any\(\)\)"),
    Case("check-numpy-truth-values", "API", "a check case returning a numpy bool array",
         lambda t: exercise((lambda: np.array([1, 2]) > 0, "h")),
         aelab.exercises.ExerciseNotDone, r"\(case 1 gave 2 truth values, not one"),
    Case("check-case-gives-none", "API", "a check case returning None",
         lambda t: exercise((lambda: None, "h")), aelab.exercises.ExerciseNotDone,
         r"^E does not pass its check yet: h \(case 1 gave None, not True or False"),
    Case("check-case-not-a-pair", "API", "check('E', [lambda: True]) (no hint)",
         lambda t: aelab.exercises.check("E", [lambda: True]), TypeError,
         r"^check 'E': cases must be a list of \(test, hint\) pairs"),
    Case("check-cases-one-pair", "API", "check('E', (True, 'h')) (not in a list)",
         lambda t: aelab.exercises.check("E", (True, "h")), TypeError,
         r"^check 'E': cases must be a list of \(test, hint\) pairs"),
    Case("fit-many-seeds-fraction", "API", "fit_many(strategy='batched', seeds=[0.5, 1])",
         lambda t: train_mlps(seeds=[0.5, 1]), ValueError,
         r"^seeds\[0\] must be a whole number, got 0\.5"),
    Case("fit-many-test-data-empty", "API", "fit_many(strategy='batched', test_data=0 rows)",
         lambda t: train_mlps(test_data=(torch.rand(0, 4), torch.zeros(0).long())),
         ValueError, r"^fit_many: test_data is empty \(0 images\)"),
    Case("fit-many-test-data-nan", "API", "fit_many(strategy='batched', test_data with NaN)",
         lambda t: train_mlps(test_data=(torch.full((4, 4), NAN), torch.zeros(4).long())),
         ValueError, r"^fit_many: test_data holds NaN or inf values \(4 of 4 rows\)"),
    Case("fit-many-watch-width", "API", "fit_many(strategy='batched', watch 5 wide, "
         "models 4 wide)", lambda t: train_mlps(watch=torch.rand(3, 5)), ValueError,
         r"^fit_many: watch holds inputs of shape \(5,\) but the models train on "
         r"\(4,\)"),
    Case("fit-many-chunk-zero", "API", "fit_many(chunk=0)",
         lambda t: train_mlps(chunk=0), ValueError, r"^chunk must be >= 1, got 0"),
    Case("fit-many-eval-data-tuple", "API", "fit_many(eval_data=(X,))",
         lambda t: train_mlps(eval_data=(images(),)), TypeError,
         r"^fit_many: eval_data must be a dict \{name: dataset\}, got tuple"),
    Case("probes-features-numpy", "API", "train_probes(features as a numpy array)",
         lambda t: train_probes(F=probes_data()[0].numpy()), TypeError,
         r"^train_probes: feats must be a tensor N x D, got ndarray"),
    Case("probes-subsets-numbers", "API", "train_probes(subsets=[0, 1, 2])",
         lambda t: train_probes(subsets=[0, 1, 2]), TypeError,
         r"^train_probes: subset 0 is 0 \(int\), not a list of indices"),
    Case("probes-subsets-tensor", "API", "train_probes(subsets=torch.arange(10))",
         lambda t: train_probes(subsets=torch.arange(10)), TypeError,
         r"^train_probes: subsets must be a list of index sets, one per head, got one "
         r"Tensor"),
    Case("probes-seed-fraction", "API", "train_probes(seed=0.5)",
         lambda t: train_probes(seed=0.5), ValueError, r"^seed must be a whole number"),
    Case("probes-one-hot-labels", "API", "train_probes(one-hot y)",
         lambda t: train_probes(y=F.one_hot(probes_data()[1])), ValueError,
         r"^train_probes: y must hold one class index .* \(one-hot labels: pass "
         r"y\.argmax\(1\)\)"),
    Case("probes-subset-mask", "API", "train_probes(a True/False mask as a subset)",
         lambda t: train_probes(subsets=[torch.arange(20) < 10]), ValueError,
         r"^train_probes: subset 0 is a mask of True/False: pass its indices"),
    Case("pca-k-fraction", "API", "pca(X, X, k=2.5)",
         lambda t: probes.pca(torch.rand(20, 8), torch.rand(5, 8), k=2.5), ValueError,
         r"^k must be a whole number, got 2\.5"),
    Case("pca-k-text", "API", "pca(X, X, k='2')",
         lambda t: probes.pca(torch.rand(20, 8), torch.rand(5, 8), k="2"), TypeError,
         r"^k must be a number, got '2' \(str\)"),
    Case("pca-nan", "API", "pca(X holding NaN, X, k=2)",
         lambda t: probes.pca(torch.full((20, 8), NAN), torch.rand(5, 8), k=2),
         ValueError, r"^pca: X_fit holds NaN or inf values"),
    Case("pca-empty", "API", "pca(X of 0 rows, X, k=2)",
         lambda t: probes.pca(torch.rand(0, 8), torch.rand(5, 8), k=2), ValueError,
         r"^pca: X_fit is empty \(0 images\)"),
    Case("pca-no-sets", "API", "pca(X, k=2) (nothing to project)",
         lambda t: probes.pca(torch.rand(20, 8), k=2), ValueError,
         r"^pca: no sets to project: pass them after the fit set"),
    Case("corrupt-0-255-floats", "API", "corrupt(float images in 0-255, 'gaussian')",
         lambda t: corrupt.corrupt(images() * 255, "gaussian"), ValueError,
         r"^corrupt: X holds float pixels up to 25\d(\.\d+)?, but float images lie in "
         r"\[0, 1\]: divide 0-255 pixels by 255"),
    Case("noise-channel-last-uint8", "API", "gaussian_noise(uint8 N x H x W x 1 images)",
         lambda t: corrupt.gaussian_noise(
             (images() * 255).to(torch.uint8).permute(0, 2, 3, 1), 0.3), ValueError,
         r"^gaussian_noise: X looks channel-last"),
    Case("noise-0-255-floats", "API", "gaussian_noise(float images in 0-255)",
         lambda t: corrupt.gaussian_noise(images() * 255, 0.3), ValueError,
         r"^gaussian_noise: X holds float pixels up to 25\d"),
    Case("psnr-0-255-reconstruction", "API", "psnr(X in [0, 1], X_hat in 0-255)",
         lambda t: metrics.psnr(images(), images() * 255), ValueError,
         r"^psnr: X_hat reaches 25\d(\.\d+)? but data_range is 1"),
    Case("psnr-range-too-wide", "API", "psnr(images in [0, 1], data_range=255)",
         lambda t: metrics.psnr(images(), images() * 0.9, data_range=255), ValueError,
         r"^psnr: data_range is 255 but the images only reach"),
    Case("psnr-empty", "API", "psnr(0 images, 0 images)",
         lambda t: metrics.psnr(images(0), images(0)), ValueError,
         r"^psnr: X is empty \(shape \(0, 1, 8, 8\)\)"),
    Case("psnr-lists", "API", "psnr(a list, a list)",
         lambda t: metrics.psnr([0.1, 0.2], [0.1, 0.3]), TypeError,
         r"^psnr: X must be a tensor \(or array\) of images, got list"),
    Case("psnr-reduction-unknown", "API", "psnr(X, X_hat, reduction='sum')",
         lambda t: metrics.psnr(images(), images(), reduction="sum"), ValueError,
         r"^unknown reduction 'sum': use one of 'mean', 'none', 'pooled'"),
    Case("rule-budgets-one-number", "API", "beats('a', 'b', budgets=100)",
         lambda t: study.beats("a", "b", budgets=100).judge(results()), ValueError,
         r"^budgets must be a \(low, high\) range of label budgets"),
    Case("rule-budgets-one-element", "API", "beats('a', 'b', budgets=(100,))",
         lambda t: study.beats("a", "b", budgets=(100,)), ValueError,
         r"^budgets must be a \(low, high\) range .* got \(100,\)"),
    Case("judge-one-claim", "API", "judge(Claim(...), results) (not a list)",
         lambda t: study.judge(study.Claim("x", study.beats("a", "b")), results()),
         TypeError, r"^judge takes a list of Claim\(text, rule\); got Claim"),
    Case("judge-rows-not-results", "API", "judge([Claim(..., beats(...))], rows)",
         lambda t: study.judge([study.Claim("x", study.beats("a", "b"))],
                               results().rows), TypeError,
         r"^beats, best, within and at_least judge a Results table, got list"),
    Case("claim-rule-as-text", "API", "Claim('x', 'a beats b')",
         lambda t: study.Claim("x", "a beats b"), TypeError,
         r"^Claim takes its text, then a rule such as beats\('A', 'B'\); got str"),
    Case("results-method-none", "API", "Results(rows with method=None)",
         lambda t: results(method=None), ValueError,
         r"^Results row 0: method=None must name the method"),
    Case("results-budget-none", "API", "Results(rows with budget=None)",
         lambda t: results(budget=None), TypeError,
         r"^Results row 0: budget must be a number, got None"),
    Case("results-duplicate-run", "API", "Results(the same method, budget and seed twice)",
         lambda t: study.Results([dict(method="a", budget=10, seed=0, accuracy=0.5)] * 2),
         ValueError, r"^Results rows 0 and 1 are both method='a', budget=10, seed=0"),
    Case("results-accuracy-percent", "API", "Results(accuracy=87.0, a percentage)",
         lambda t: results(accuracy=87.0), ValueError,
         r"^Results row 0: accuracy=87\.0 is over 1, but accuracies are fractions here"),
    Case("rule-fn-returns-bool", "API", "rule('c', lambda r: True)",
         lambda t: study.rule("c", lambda r: True).judge(results()), TypeError,
         r"^rule 'c': its function returned bool True, not \(answer, what was "
         r"measured\)"),
    Case("at-least-threshold-text", "API", "at_least('a', 'high')",
         lambda t: study.at_least("a", "high"), TypeError,
         r"^at_least's threshold must be a number, got 'high'"),
    Case("gate-losses-text", "API", "health_gate('a', 0, losses='0.5,0.4')",
         lambda t: verdicts.health_gate("a", 0, losses="0.5,0.4"), TypeError,
         r"^losses must be a list of numbers, e\.g\. history\.train_loss"),
    Case("gate-accuracy-text", "API", "health_gate('a', 0, accuracy='0.9', chance=0.1)",
         lambda t: verdicts.health_gate("a", 0, accuracy="0.9", chance=0.1), TypeError,
         r"^health_gate's accuracy must be a number, got '0\.9'"),
    # ---- environment variables
    Case("env-device-tpu", "env", "AELAB_DEVICE=tpu",
         with_env(lambda t: utils.get_device(), AELAB_DEVICE="tpu"), ValueError,
         r"^unknown AELAB_DEVICE=tpu: use one of cpu, cuda, mps, "
         r"or unset AELAB_DEVICE"),
    Case("env-device-cuda-missing", "env", "AELAB_DEVICE=cuda without a GPU",
         with_env(without_gpus(lambda t: utils.get_device()), AELAB_DEVICE="cuda"),
         ValueError,
         r"^AELAB_DEVICE=cuda was asked for, but this machine has no CUDA GPU"),
    Case("env-device-mps-missing", "env", "AELAB_DEVICE=mps without an Apple GPU",
         with_env(without_gpus(lambda t: utils.get_device()), AELAB_DEVICE="mps"),
         ValueError,
         r"^AELAB_DEVICE=mps was asked for, but this machine has no Apple GPU"),
    Case("env-profile-nonsense", "env", "AELAB_PROFILE=nonsense",
         with_env(lambda t: aelab.get_profile(), AELAB_PROFILE="nonsense"), ValueError,
         r"^AELAB_PROFILE='nonsense' is not a profile: use one of fast, classroom"),
    Case("env-seeds-nonsense", "env", "AELAB_SEEDS=5-x",
         with_env(lambda t: aelab.profile.get_seeds((0, 1, 2)), AELAB_SEEDS="5-x"),
         ValueError, r"^AELAB_SEEDS: seeds '5-x': '5-x' is not a whole number"),
    Case("env-data-is-a-file", "env", "AELAB_DATA pointing at a file",
         lambda t: with_env(lambda t: aelab.load_dataset("mnist"),
                            AELAB_DATA=a_file(t))(t), aelab.data.DataError,
         r"^the data folder TMP/a-file \(AELAB_DATA\) is a file, not a folder"),
    Case("env-cache-is-a-file", "env", "AELAB_CACHE pointing at a file",
         lambda t: with_env(lambda t: cached({"a": 1}, lambda: 1),
                            AELAB_CACHE=a_file(t))(t), ValueError,
         r"^AELAB_CACHE=TMP/a-file is a file, not a folder"),
    Case("env-out-unwritable", "env", "AELAB_OUT inside a file (unwritable)",
         save_run_to(lambda t: a_file(t) / "out"), ValueError,
         r"^cannot write the run's tables to AELAB_OUT=TMP/a-file/out "
         r"\(Not a directory"),
    Case("env-progress-unknown", "env", "AELAB_PROGRESS=line (a typo)",
         with_env(lambda t: train(quiet=False), AELAB_PROGRESS="line"), ValueError,
         r"^AELAB_PROGRESS='line' is not a known setting: use one of lines, bar"),
    Case("env-offline-unknown", "env", "AELAB_OFFLINE=maybe",
         with_env(lambda t: data.is_online(), AELAB_OFFLINE="maybe"), ValueError,
         r"^AELAB_OFFLINE='maybe' is not an on/off setting: use AELAB_OFFLINE=1"),
    Case("env-no-cache-unknown", "env", "AELAB_NO_CACHE=please",
         with_env(lambda t: cached({"a": 1}, lambda: 1), AELAB_NO_CACHE="please"),
         ValueError, r"^AELAB_NO_CACHE='please' is not an on/off setting"),
    Case("env-malloc-unknown", "env", "AELAB_MALLOC=fast",
         with_env(lambda t: train(), AELAB_MALLOC="fast"), ValueError,
         r"^AELAB_MALLOC='fast' is not a known setting: use one of tuned, default"),
    # ---- the command line
    Case("cli-run-unknown-lesson", "CLI", "aelab run no-such-lesson",
         aelab_cli("run", "no-such-lesson", "--out", "TMP/out"), CLIFailed,
         r"^aelab run: no lesson called 'no-such-lesson': use one of tour"),
    Case("cli-run-profile-env", "CLI", "AELAB_PROFILE=huge aelab run tour",
         aelab_cli("run", "tour", "--out", "TMP/out", AELAB_PROFILE="huge"), CLIFailed,
         r"^aelab: AELAB_PROFILE='huge' is not a profile"),
    Case("cli-run-seeds-backwards", "CLI", "aelab run tour --seeds 9-5",
         aelab_cli("run", "tour", "--out", "TMP/out", "--seeds", "9-5"), CLIFailed,
         r"^aelab: --seeds: seeds '9-5': '9-5' must run upwards"),
    Case("cli-run-out-unwritable", "CLI", "aelab run tour --out inside a file",
         lambda t: aelab_cli("run", "tour", "--profile", "fast", "--out",
                             a_file(t) / "out")(t), CLIFailed,
         r"^aelab run: cannot write to --out TMP/a-file/out: Not a directory"),
    Case("cli-student-into-its-source", "CLI", "aelab student lessons lessons",
         student_into("TMP/lessons"), CLIFailed,
         r"^aelab: the student copies would go into TMP/lessons, which is \(inside\) "
         r"the lessons folder"),
    Case("cli-student-inside-its-source", "CLI", "aelab student lessons lessons/student",
         student_into("TMP/lessons/student"), CLIFailed,
         r"^aelab: the student copies would go into TMP/lessons/student, which is"),
    Case("cli-student-broken-header", "CLI", "aelab student on a lesson whose header is "
         "broken YAML", student_broken_header, CLIFailed,
         r"^aelab: TMP/lessons/01_broken\.py is not a readable jupytext lesson"),
    Case("cli-student-over-solutions", "CLI", "aelab student into a folder holding the "
         "instructor's lesson", student_over_solutions, CLIFailed,
         r"^aelab: TMP/dest/01_pretraining\.py holds solution cells"),
    Case("cli-run-timeout-negative", "CLI", "aelab run tour --timeout -5",
         aelab_cli("run", "tour", "--timeout", "-5", "--out", "TMP/out"), CLIFailed,
         r"^aelab: --timeout must be a finite number > 0, got -5"),
    Case("cli-run-device-env", "CLI", "AELAB_DEVICE=tpu aelab run tour",
         aelab_cli("run", "tour", "--profile", "fast", "--out", "TMP/out",
                   AELAB_DEVICE="tpu"), CLIFailed, r"^aelab: unknown AELAB_DEVICE=tpu"),
    Case("cli-student-missing", "CLI", "aelab student no-such-folder out",
         aelab_cli("student", "TMP/no-such-folder", "TMP/out"), CLIFailed,
         r"^aelab: TMP/no-such-folder does not exist"),
    Case("cli-cache-import-missing", "CLI", "aelab cache import no-such.zip",
         aelab_cli("cache", "import", "TMP/no-such.zip"), CLIFailed,
         r"^aelab: TMP/no-such\.zip: no such file \(give the zip that `aelab cache "
         r"export` wrote"),
    Case("cli-cache-import-not-a-zip", "CLI", "aelab cache import notes.zip (a text file)",
         lambda t: (a_file(t).rename(t / "notes.zip"),
                    aelab_cli("cache", "import", "TMP/notes.zip")(t)), CLIFailed,
         r"^aelab: TMP/notes\.zip is not a zip file"),
    Case("cli-cache-export-empty", "CLI", "aelab cache export class.zip, nothing cached",
         lambda t: aelab_cli("cache", "export", "TMP/class.zip",
                             AELAB_CACHE=t / "empty")(t),
         CLIFailed, r"^aelab: the cache TMP/empty holds no entries to export"),
    Case("cli-cache-export-not-zip", "CLI", "aelab cache export class.tar",
         aelab_cli("cache", "export", "TMP/class.tar"), CLIFailed,
         r"^aelab: TMP/class\.tar: the export is a zip file: give a name ending in \.zip"),
    Case("cli-data-dir-is-a-file", "CLI", "AELAB_DATA=<a file> aelab data",
         lambda t: aelab_cli("data", AELAB_DATA=a_file(t))(t), CLIFailed,
         r"^aelab: the data folder TMP/a-file \(AELAB_DATA\) is a file"),
    Case("cli-process-device-tpu", "CLI", "AELAB_DEVICE=tpu aelab run tour (a process)",
         aelab_process("run", "tour", "--profile", "fast", "--out", "out",
                       AELAB_DEVICE="tpu"), CLIFailed,
         r"^aelab: unknown AELAB_DEVICE=tpu"),
    # ---- files
    Case("file-cache-truncated", "file", "a truncated cache file", truncated_cache,
         None,
         r"^aelab: cache file [0-9a-f]+\.pt is unreadable \(\w+\); recomputing it$"),
    Case("file-fit-cache-corrupt", "file", "a fit cache entry of random bytes",
         corrupt_fit_cache, None, r"^aelab: cache file [0-9a-f]+\.pt is unreadable"),
    Case("file-checkpoint-truncated", "file", "a truncated resume checkpoint",
         corrupt_checkpoint, None, r"^aelab: cache file [0-9a-f]+\.pt is unreadable"),
    Case("file-cache-pickle-payload", "file", "a cache file carrying a pickle payload",
         pickle_payload, None,
         r"^aelab: cache file [0-9a-f]+\.pt was refused: it holds"),
    Case("file-disk-full-cached", "file", "a full disk while cached() writes",
         full_disk_cached, None,
         r"^aelab: could not write cache file [0-9a-f]+\.pt "
         r"\(No space left on device\); the result is kept but not cached"),
    Case("file-disk-full-fit", "file", "a full disk while fit(cache=True) writes",
         full_disk_fit, None,
         r"^aelab: could not write cache file [0-9a-f]+\.pt "
         r"\(No space left on device\)"),
    Case("file-data-dir-truncated", "file", "a truncated MNIST file in AELAB_DATA",
         truncated_data_file, None,
         r"^aelab: mnist in the data folder is damaged: TMP/data/MNIST/raw/"
         r"train-images-idx3-ubyte \(sha256 [0-9a-f]{12}\.\.\.\): 5,000 bytes where "
         r"its header needs 9,424; using the next source for both splits"),
    Case("file-embedded-checksum", "file",
         "an embedded data file with one byte changed",
         lambda t: embedded(t, flip_a_byte), aelab.data.DataError,
         r"^embedded file TMP/data/mnist-5k\.npz fails its sha256 check"),
    Case("file-embedded-missing", "file", "an embedded data file deleted",
         lambda t: embedded(t, Path.unlink), aelab.data.DataError,
         r"^embedded file TMP/data/mnist-5k\.npz is missing"),
    # ---- widgets: an error inside a widget is one line in its output area
    Case("widget-callback-error", "widget", "a draw function that raises",
         widget_callback_error, None, r"^ValueError: no picture for x = 1$"),
    Case("widget-corruption-flat", "widget", "corruption_explorer(flat vectors)",
         lambda t: widgets.corruption_explorer(torch.rand(8, 784)), None,
         r"^ValueError: corrupt: X must be images N x C x H x W, got shape \(8, 784\)"),
    Case("widget-corruption-level-nan", "widget", "the level slider set to NaN",
         lambda t: slider_to(widgets.corruption_explorer(images()), NAN), None,
         r"^ValueError: noise level must be a finite number >= 0, got nan"),
]


def outcome(case: Case, tmp: Path) -> tuple[type | None, str, str]:
    """Run a case: (exception type or None, its message or the printed line,
    everything printed). Paths under tmp read TMP, so the doc can quote them."""
    out = io.StringIO()
    raised, message = None, ""
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(out))
        try:
            case.run(tmp)
        except Exception as err:  # noqa: BLE001 - the table says which is expected
            raised, message = err, str(err)
            _check_origin(case, err)
    printed = out.getvalue().replace(str(tmp), "TMP")
    if raised is None:
        message = printed.strip()
    return (type(raised) if raised else None,
            message.replace(str(tmp), "TMP"), printed)


def _check_origin(case: Case, err: Exception) -> None:
    """An exception must come from aelab's own code (or the CLI's exit code),
    raised before any torch function ran on the bad input."""
    if isinstance(err, CLIFailed):
        return
    frame = traceback.extract_tb(err.__traceback__)[-1]
    assert Path(frame.filename).resolve().is_relative_to(AELAB_DIR), (
        f"{case.id}: raised in {frame.filename}:{frame.lineno}, not by aelab")


def message_row(case: Case, message: str) -> str:
    name = case.raises.__name__ if case.raises else "prints one line, goes on"
    text = re.sub(r"[0-9a-f]{16}\.pt", "<hash>.pt", message).replace("|", "\\|")
    text = re.sub(r"use one of [\w, ]+ \(`aelab run --list`\)",  # lessons come and go
                  "use one of <the lessons> (`aelab run --list`)", text)
    return f"| `{case.id}` | {case.where} | {case.bad} | {name} | {text} |"
