"""A generic training loop: `fit(model, data, loss_fn) -> History`.

Nothing here knows about autoencoders. The objective is the `loss_fn(model,
batch)` you pass in, so a lesson shows it in full:

    def loss_fn(model, batch):
        X, = batch
        return F.mse_loss(model(X), X)

What the loop does for you: moves data and model to the device once, batches
by index slices (aelab.splits.Loader), keeps the running loss on the device
(one sync per epoch, not per step), uses channels_last and, on CUDA only, bf16
autocast; shows one tqdm bar (which says so early if the run will take over a
minute); stops on a NaN/inf loss with a message that says what to try; after
the last epoch, sets BatchNorm's running statistics from the final weights
(recalibrate_batchnorm), so eval mode agrees with training. Bad
settings or data are one line before anything runs (aelab.validate).

Ctrl-C raises FitInterrupted (a KeyboardInterrupt: a loop over fits stops
too) carrying the partial history; the model keeps what it learned. With
cache=True the finished epochs are saved first and the same fit, run again,
resumes after them and ends with the same weights (aelab.checkpoint).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from aelab import checkpoint, validate
from aelab.checkpoint import FitInterrupted
from aelab.splits import Loader, to_float
from aelab.utils import (cache_path, fingerprint, get_device, progress, save_or_warn,
                         training_device, unreadable)

# "sgd" has momentum 0.9; "plain-sgd" has none (the SGD of older papers)
OPTIMIZERS = ("adam", "sgd", "plain-sgd")

LossFn = Callable[[nn.Module, tuple], torch.Tensor]


@dataclass
class History:
    """Per-epoch record of one run. `stopped` is 'completed', 'interrupted' or
    'diverged'; `message` says why when it is not 'completed'."""

    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    num_images: int = 0
    stopped: str = "completed"
    message: str = ""
    outputs: list = field(default_factory=list)  # model(watch) after each epoch
    cached: bool = False  # loaded from the cache instead of trained

    @property
    def images_per_s(self) -> float:
        return self.num_images / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)

    @property
    def stalled(self) -> bool:
        """True when the model did not train (see `problem`)."""
        return bool(self.problem())

    def check(self, min_drop: float = 0.02) -> str:
        """Old name of `problem` (a check that returned a truthy text when
        something was wrong read backwards); kept for old notebooks."""
        import warnings

        warnings.warn("History.check() is now History.problem(): '' when the model "
                      "trained, else what went wrong", DeprecationWarning, stacklevel=2)
        return self.problem(min_drop)

    def problem(self, min_drop: float = 0.02) -> str:
        """What went wrong in training, in one line, or '' if nothing did: the
        training loss went down by at least `min_drop` (relative) and did not
        diverge."""
        if self.stopped == "diverged":
            return self.message
        if len(self.train_loss) < 2:
            return ""
        first, last = self.train_loss[0], min(self.train_loss)
        if last > first * (1 - min_drop):
            return (f"the training loss barely moved ({first:.4g} -> {last:.4g}): the "
                    "model may be stuck; try a higher lr, more epochs or another seed")
        return ""


def as_loader(data, *, batch_size: int, shuffle: bool, device, seed: int = 0) -> Loader:
    """A Loader from a Loader, a tensor, or a tuple of tensors."""
    if isinstance(data, Loader):
        return data
    tensors = (data,) if torch.is_tensor(data) else tuple(data)
    return Loader(*tensors, batch_size=batch_size, shuffle=shuffle, device=device, seed=seed)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere (measured slower on this CPU). For
    the tiny barletta AE on an H100 it was within 2% of fp32/TF32 (801k vs 784k
    images/s at batch 16384): channels_last is the measured win (2.6x there)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def evaluate(model: nn.Module, data, loss_fn: LossFn, *, batch_size: int = 1024,
             device=None) -> float:
    """Mean of loss_fn over `data` (eval mode, no gradients)."""
    batch_size = validate.count("batch_size", batch_size, minimum=1)
    validate.data(data, "the data", "evaluate")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = as_loader(data, batch_size=batch_size, shuffle=False, device=device)
    was_training = model.training
    model.eval()
    total, count = torch.zeros((), device=device), 0
    with autocast(device):
        for batch in loader:
            total += loss_fn(model, batch).float() * len(batch[0])
            count += len(batch[0])
    model.train(was_training)
    return (total / max(count, 1)).item()


@torch.no_grad()
def predict(model: nn.Module | Callable, X: torch.Tensor, *, batch_size: int = 1024,
            device=None) -> torch.Tensor:
    """model(X) in eval mode, in batches, returned on the CPU as float32. A model
    that returns several outputs (a tuple or list, nested: logits and
    reconstructions) gets the same structure back, each tensor concatenated."""
    batch_size = validate.count("batch_size", batch_size, minimum=1)
    if not torch.is_tensor(X) or X.dim() == 0 or len(X) == 0:
        got = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
        raise ValueError(f"predict: X must be a non-empty tensor of inputs, got {got}")
    if device is None:
        device = next(model.parameters()).device if isinstance(model, nn.Module) \
            else get_device()
    device = torch.device(device)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    outs = []
    with autocast(device):
        for start in range(0, len(X), batch_size):
            xb = to_float(X[start:start + batch_size].to(device))
            outs.append(_on_cpu(model(xb)))
    if isinstance(model, nn.Module):
        model.train(was_training)
    return _concat(outs)


def _on_cpu(out):
    """float32 CPU copies of a tensor, or of the tensors of a (nested) tuple/list."""
    return out.float().cpu() if torch.is_tensor(out) else type(out)(map(_on_cpu, out))


def _concat(outs: list):
    """torch.cat over batches, element by element for (nested) tuples/lists."""
    if torch.is_tensor(outs[0]):
        return torch.cat(outs)
    return type(outs[0])(_concat([o[i] for o in outs]) for i in range(len(outs[0])))


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, *,
                   fused: bool | None = None):
    """fused=True: one kernel per step for all parameters (fit_many's stacked
    strategies ask for it); None leaves PyTorch's default."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay,
                               fused=fused)
    if name == "plain-sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.0, weight_decay=weight_decay,
                               fused=fused)
    raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def _batchnorms(model: nn.Module) -> list:
    """The BatchNorm layers that keep running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader, loss_fn: LossFn, device) -> int:
    """Re-estimate the running mean and variance of every BatchNorm layer that
    trains (a frozen one is left alone) for the final weights: one pass of
    loss_fn over the training data in train mode, no gradients, the statistics
    a plain average over its batches. Returns how many layers it set.

    Why: the running averages kept during training (momentum 0.1) trail
    weights that are still moving, and a network whose units sit just below a
    ReLU's threshold on a constant background (MNIST's black pixels) can read
    several times worse in eval mode than in training with them."""
    model.train()
    norms = [m for m in _batchnorms(model) if m.training]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over the batches
    if norms:
        with autocast(device):
            for batch in loader:
                loss_fn(model, batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)


def fit_key(model: nn.Module, data, loss_fn, **settings) -> dict:
    """What determines a training run, as a cache key: the model's structure and
    initial weights, the data, the objective's source code, the settings."""
    if _batchnorms(model):  # runs stored before fit recalibrated BatchNorm differ
        settings["batchnorm"] = "recalibrated"
    return dict(kind="fit", model=fingerprint(model), data=fingerprint(data),
                loss_fn=fingerprint(loss_fn),
                settings={k: fingerprint(v) for k, v in sorted(settings.items())})


def _run_key(model, data, loss_fn, *, device, num_epochs=10, lr=1e-3, batch_size=128,
             optimizer="adam", weight_decay=0.0, test_data=None, metrics=None,
             clip_grad=None, seed=0, watch=None) -> dict:
    """fit's cache key for these arguments (fit's own defaults)."""
    return fit_key(model, data, loss_fn, num_epochs=num_epochs, lr=lr,
                   batch_size=batch_size, optimizer=optimizer,
                   weight_decay=weight_decay, test_data=test_data, metrics=metrics,
                   clip_grad=clip_grad, seed=seed, watch=watch, device=device.type)


def cached_fit(model: nn.Module, data, loss_fn, *, device, quiet=True, desc="fit",
               callback=None, cache=True, **settings) -> History | None:
    """What fit(model, data, loss_fn, cache=True, **settings) would load from
    the cache without training, loaded into `model`; None if it would train."""
    device = training_device(device)
    return load_fitted(model, _run_key(model, data, loss_fn, device=device, **settings),
                       device)


def load_fitted(model: nn.Module, key: dict, device) -> History | None:
    """The cached result of `key` loaded into `model`, or None."""
    path = cache_path(key, "fit")
    if not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
    except Exception as err:  # noqa: BLE001 - an unreadable entry is retrained
        print(unreadable(path, err), flush=True)
        return None
    model.to(device, memory_format=torch.channels_last).eval()
    history = History.from_dict(saved["history"])
    history.cached = True
    return history


def save_fitted(model: nn.Module, key: dict, history: History) -> None:
    """Cache a finished run (never an interrupted or diverged one). A failed
    write (a full disk) is one line; the trained model is kept."""
    if history.stopped == "completed":
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_or_warn(dict(state=state, history=history.to_dict()),
                     cache_path(key, "fit"))


def record_loss(history: History, train_loss: float, epoch: int, *, desc: str,
                lr: float) -> bool:
    """Append an epoch's training loss; False (and the history marked
    'diverged', with one line printed) if it is not finite. fit and fit_many
    share it, so a diverged model reads the same whichever trained it."""
    history.train_loss.append(train_loss)
    if math.isfinite(train_loss):
        return True
    history.stopped = "diverged"
    history.message = (f"{desc}: the loss became {train_loss} in epoch {epoch + 1}; "
                       f"training stopped. Lower lr (now {lr}), set clip_grad=1.0, or "
                       "check the inputs for NaNs")
    print(history.message, flush=True)
    return False


def record_extras(model: nn.Module, history: History, metrics, watch, device) -> None:
    """After an epoch: each metric of the model (eval mode), and its outputs on
    `watch`, into the history (fit and fit_many alike)."""
    if metrics:
        model.eval()
        for name, fn in metrics.items():
            history.metrics[name].append(float(fn(model)))
    if watch is not None:
        history.outputs.append(predict(model, watch, device=device))


def validate_settings(num_epochs, batch_size, lr, weight_decay, clip_grad,
                   optimizer) -> tuple[int, int]:
    """The training settings `fit` and `fit_many` share, checked before torch
    sees them (one line each); returns num_epochs and batch_size as ints."""
    num_epochs = validate.count("num_epochs", num_epochs, hint="e.g. 10")
    batch_size = validate.count("batch_size", batch_size, minimum=1, hint="e.g. 128")
    validate.positive("lr", lr, hint="e.g. 1e-3 for Adam")
    validate.non_negative("weight_decay", weight_decay, hint="use 0 for none")
    if clip_grad is not None:
        validate.positive("clip_grad", clip_grad,
                          hint="e.g. 1.0, or None for no clipping")
    validate.choice("optimizer", optimizer, OPTIMIZERS)
    return num_epochs, batch_size


def rng_neutral(train):
    """Run `train` (fit, fit_many) with the global random generators as they
    were before it, afterwards: the models a lesson builds next then get the
    same initial weights whether this call trained or loaded its models from
    the cache (a warm rerun must give what a cold run gives)."""
    import functools

    @functools.wraps(train)
    def wrapper(*args, **kwargs):
        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            return train(*args, **kwargs)
    return wrapper


@rng_neutral
def fit(model: nn.Module, data, loss_fn: LossFn, *, num_epochs: int = 10,
        lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam",
        weight_decay: float = 0.0, test_data=None, metrics: dict | None = None,
        clip_grad: float | None = None, device=None, seed: int = 0,
        quiet: bool = False, desc: str = "fit", callback=None, watch=None,
        cache: bool = False) -> History:
    """Train `model` on `data` by minimising `loss_fn(model, batch)`.

    data / test_data: a Loader, or a tensor or tuple of tensors (uint8 images are
        made float in [0,1], channels_last, batch by batch on the device).
    metrics: {name: fn(model) -> float}, run after every epoch in eval mode.
    callback: fn(model, epoch, history), after every epoch.
    watch: inputs whose outputs model(watch) are kept after every epoch, in
        history.outputs (e.g. test images, for an epoch slider).
    cache: load the trained weights and history from the disk cache when this
        exact run (model and its initial weights, data, the source of loss_fn,
        settings) finished before; else train and store it. The callback runs
        only when it trains. An interrupted run is stored as a checkpoint of
        its finished epochs, from which the same fit, run again, resumes.
    """
    num_epochs, batch_size = validate_settings(num_epochs, batch_size, lr, weight_decay,
                                            clip_grad, optimizer)
    validate.count("seed", seed, minimum=None)
    validate.data(data, "the training data", desc)
    if test_data is not None:
        validate.data(test_data, "test_data", desc)
    device = training_device(device)
    key = None
    if cache:  # the key holds the initial weights: take it before training
        key = _run_key(model, data, loss_fn, num_epochs=num_epochs, lr=lr,
                       batch_size=batch_size, optimizer=optimizer,
                       weight_decay=weight_decay, test_data=test_data,
                       metrics=metrics, clip_grad=clip_grad, seed=seed, watch=watch,
                       device=device)
        history = load_fitted(model, key, device)
        if history is not None:
            return history
    torch.manual_seed(seed)
    loader = as_loader(data, batch_size=batch_size, shuffle=True, device=device, seed=seed)
    model.to(device, memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all frozen?)")
    opt = make_optimizer(optimizer, params, lr, weight_decay)
    history = History(metrics={name: [] for name in (metrics or {})})
    saved = checkpoint.load(model, opt, loader, key) if key is not None else None
    if saved is not None:
        history = History.from_dict(saved)
        print(f"{desc}: resuming after epoch {len(history.train_loss)} of {num_epochs} "
              "(the checkpoint an interrupted run left)", flush=True)
    first, before = len(history.train_loss), history.seconds
    bar = progress(total=num_epochs * len(loader), initial=first * len(loader),
                   desc=desc, disable=quiet, leave=False, unit="step", mininterval=0.5)
    start, snap, interrupted = time.perf_counter(), None, None
    try:
        for epoch in range(first, num_epochs):
            model.train()
            total, count = torch.zeros((), device=device), 0
            for batch in loader:
                with autocast(device):
                    loss = loss_fn(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip_grad is not None:
                    nn.utils.clip_grad_norm_(params, clip_grad)
                opt.step()
                total += loss.detach().float() * len(batch[0])
                count += len(batch[0])
                bar.update()
            history.num_images += count
            train_loss = (total / count).item()  # the one sync of the epoch
            if not record_loss(history, train_loss, epoch, desc=desc, lr=lr):
                break
            if test_data is not None:
                history.test_loss.append(evaluate(model, test_data, loss_fn, device=device))
            record_extras(model, history, metrics, watch, device)
            bar.set_postfix(epoch=epoch + 1, loss=f"{train_loss:.4g}", refresh=False)
            if key is not None:  # the epoch is finished: what a rerun resumes from
                history.seconds = before + time.perf_counter() - start
                snap = checkpoint.snapshot(model, opt, loader, history)
            if callback is not None:
                callback(model, epoch, history)
    except KeyboardInterrupt:
        history.stopped = "interrupted"
        history.message = checkpoint.interrupted(desc, history, num_epochs, key,
                                                 snap, first)
        interrupted = FitInterrupted(history.message, history)
    finally:
        bar.close()
        history.seconds = before + time.perf_counter() - start
        model.eval()
    if interrupted is not None:
        raise interrupted
    if history.stopped == "completed":  # eval mode must see the final weights' statistics
        recalibrate_batchnorm(model, loader, loss_fn, device)
    if key is not None:
        save_fitted(model, key, history)
        checkpoint.discard(key)
    return history

