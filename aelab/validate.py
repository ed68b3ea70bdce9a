"""One-line checks of what a user passes in, run before torch sees it.

Each check names the argument, says what it got and what to pass instead, in
one line (no traceback text from inside torch), and returns the value in a
plain form (a float, an int). Environment settings (AELAB_*) are checked here
too, so a typo in one fails with the variable's name instead of a surprise.

    lr = positive("lr", lr, hint="e.g. 1e-3")
    num_epochs = count("num_epochs", num_epochs)
"""
from __future__ import annotations

import math
import os

PROFILES = ("fast", "classroom", "paper")
DEVICES = ("cpu", "cuda", "mps")
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _hint(hint: str) -> str:
    return f": {hint}" if hint else ""


def profile(value: str | None = None) -> str:
    """The run profile: value, else AELAB_PROFILE, else 'classroom' (no torch
    needed, so the command line can check it at once)."""
    if value is None and os.environ.get("AELAB_PROFILE"):
        raw = os.environ["AELAB_PROFILE"]
        if raw not in PROFILES:
            raise ValueError(f"AELAB_PROFILE={raw!r} is not a profile: use one of "
                             f"{', '.join(PROFILES)} (or unset it for classroom)")
        return raw
    value = value or "classroom"
    if value not in PROFILES:
        raise ValueError(f"unknown profile {value!r}: use one of {', '.join(PROFILES)} "
                         "(pass profile=... or set AELAB_PROFILE)")
    return value


def _float(name: str, value) -> float:
    """value as a float, or a TypeError that says what it was."""
    if isinstance(value, (str, bytes, bool)) or value is None \
            or not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {value!r} "
                        f"({type(value).__name__})")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor of many numbers
        raise TypeError(f"{name} must be one number, got a "
                        f"{type(value).__name__} of shape "
                        f"{tuple(getattr(value, 'shape', ()))}") from None


def number(name: str, value) -> float:
    """value as a float (NaN and inf allowed: a diverged run's loss is one)."""
    return _float(name, value)


def finite(name: str, value, hint: str = "") -> float:
    x = _float(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x}{_hint(hint)}")
    return x


def positive(name: str, value, hint: str = "") -> float:
    """A finite number > 0 (NaN and inf fail)."""
    x = _float(name, value)
    if not 0 < x < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {x}{_hint(hint)}")
    return x


def non_negative(name: str, value, hint: str = "") -> float:
    """A finite number >= 0 (NaN and inf fail)."""
    x = _float(name, value)
    if not 0 <= x < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {x}{_hint(hint)}")
    return x


def count(name: str, value, *, minimum: int | None = 0, hint: str = "") -> int:
    """A whole number >= minimum (3.0 is taken as 3; 2.5, NaN and inf fail)."""
    x = _float(name, value)
    if not math.isfinite(x) or x != int(x):
        raise ValueError(f"{name} must be a whole number, got {value!r}{_hint(hint)}")
    x = int(x)
    if minimum is not None and x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {x}{_hint(hint)}")
    return x


def choice(name: str, value, allowed, hint: str = ""):
    """value if it is one of `allowed`, else 'unknown NAME ...: use one of ...'."""
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"unknown {name} {value!r}: use one of {names}{_hint(hint)}")
    return value


def images(name: str, X, *, who: str = "", any_shape: bool = False):
    """X as a batch of images N x C x H x W (any_shape: or flat rows), float in
    [0, 1] or uint8, channels first."""
    import torch

    who = f"{who}: " if who else ""
    if not torch.is_tensor(X):
        raise TypeError(f"{who}{name} must be a tensor of images N x C x H x W, got "
                        f"{type(X).__name__}: convert it with torch.as_tensor(...)")
    if X.dim() != 4 and not any_shape:
        raise ValueError(f"{who}{name} must be images N x C x H x W, got shape "
                         f"{tuple(X.shape)}: reshape flat vectors with "
                         "X.view(-1, 1, H, W) (28 x 28 for MNIST)")
    if X.dim() == 4 and X.shape[-1] in (1, 3) and X.shape[1] not in (1, 3):
        raise ValueError(f"{who}{name} looks channel-last (N x H x W x C = "
                         f"{tuple(X.shape)}): pass X.permute(0, 3, 1, 2)")
    if not X.is_floating_point() and X.dtype != torch.uint8:
        raise ValueError(f"{who}{name} holds {str(X.dtype).replace('torch.', '')} "
                         "pixels: pass floats in [0, 1] (or uint8 in 0-255)")
    _unit_range(X, f"{who}{name}")
    return X


def _unit_range(X, what: str) -> None:
    """Float pixels must lie in [0, 1]; a little past it (a reconstruction's
    overshoot) is let through, 0-255 or [-1, 1] pixels are not."""
    # Read on the CPU only: on a GPU it would stall every training step whose
    # objective corrupts its batch (no sync inside the step).
    if not X.is_floating_point() or X.device.type != "cpu" or not X.numel():
        return
    try:
        low, high = float(X.detach().min()), float(X.detach().max())
    except RuntimeError:  # under vmap (fit_many's stacked models) values are hidden
        return
    if high > 1.5:
        raise ValueError(f"{what} holds float pixels up to {high:.4g}, but float images "
                         "lie in [0, 1]: divide 0-255 pixels by 255 (X / 255), or pass "
                         "them as uint8")
    if low < -0.5:
        raise ValueError(f"{what} holds float pixels down to {low:.4g}, but float images "
                         "lie in [0, 1]: rescale them, e.g. (X + 1) / 2 for [-1, 1]")


def data(data, what: str = "the training data", desc: str = "fit", *,
         allow_empty: bool = False, check_values: bool = True) -> None:
    """One line unless data is a Loader or tensor(s) of one length, with at
    least one row (unless allow_empty) and no NaN/inf (unless not check_values)."""
    import torch

    if hasattr(data, "tensors") and hasattr(data, "batch_size"):  # a Loader
        tensors = data.tensors
    else:
        tensors = (data,) if torch.is_tensor(data) else data
        if hasattr(data, "X") and hasattr(data, "y"):  # an ImageData
            raise TypeError(f"{desc}: {what} is an {type(data).__name__}: pass (d.X,) "
                            "to train an autoencoder, or (d.X, d.y) for a classifier")
        if (not isinstance(tensors, (tuple, list)) or not tensors
                or not all(torch.is_tensor(t) and t.dim() > 0 for t in tensors)):
            raise TypeError(f"{desc}: {what} must be a tensor, a tuple of tensors "
                            f"(X, y) or a Loader, got {type(data).__name__}: convert "
                            "arrays with torch.as_tensor(...)")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) > 1:
        raise ValueError(f"{desc}: {what} holds tensors of different lengths "
                         f"{lengths}: pass one label per image (X and y of one length)")
    if lengths[0] == 0 and not allow_empty:
        raise ValueError(f"{desc}: {what} is empty (0 images): pass at least one "
                         "image, e.g. a larger label budget or pool")
    for t in tensors if check_values else ():
        if t.is_floating_point() and not torch.isfinite(t).all():
            rows = (~torch.isfinite(t)).reshape(len(t), -1).any(1).sum().item()
            raise ValueError(f"{desc}: {what} holds NaN or inf values ({rows} of "
                             f"{len(t)} rows): drop those rows or clean them with "
                             "torch.nan_to_num(...)")


def one_line(text: str) -> str:
    """The first line of text (for messages that quote another error)."""
    return (str(text).strip().splitlines() or [""])[0]


def flag(var: str) -> bool:
    """An on/off environment setting: 1/true/yes/on or 0/false/no/off (unset: off)."""
    raw = os.environ.get(var, "")
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{var}={raw!r} is not an on/off setting: use {var}=1 to turn "
                     f"it on, or unset it (or {var}=0)")


def env_choice(var: str, allowed, default: str) -> str:
    """An environment setting that must be one of `allowed` (unset: default)."""
    raw = os.environ.get(var)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ValueError(f"{var}={raw!r} is not a known setting: use one of "
                         f"{', '.join(allowed)}, or unset it")
    return raw


def device_name(device, *, from_env: bool = False) -> tuple[str, str]:
    """One line unless `device` is cpu, cuda, cuda:N or mps (whether this
    machine has it is utils.check_device's job); else (how it was asked for,
    how to fix it), for that check's messages."""
    asked = f"AELAB_DEVICE={device!s}" if from_env else f"device {str(device)!r}"
    fix = ("unset AELAB_DEVICE to let aelab pick" if from_env
           else "pass device=None to let aelab pick")
    kind, _, index = str(device).partition(":")
    if kind not in DEVICES or (index and not index.isdigit()):
        raise ValueError(f"unknown {asked}: use one of {', '.join(DEVICES)}, or {fix}")
    return asked, fix


def environment() -> None:
    """Check the AELAB_* settings that need no torch (`aelab run` does, before
    it starts a kernel; it sets AELAB_PROFILE itself): one line for the first
    that is wrong."""
    flag("AELAB_OFFLINE")
    flag("AELAB_NO_CACHE")
    env_choice("AELAB_PROGRESS", ("lines", "bar"), "bar")
    env_choice("AELAB_MALLOC", ("tuned", "default"), "tuned")
    if os.environ.get("AELAB_DEVICE"):
        device_name(os.environ["AELAB_DEVICE"], from_env=True)
    from aelab.profile import get_seeds  # AELAB_SEEDS, if set, must parse

    get_seeds(())
    for var in ("AELAB_DATA", "AELAB_CACHE"):
        path = os.environ.get(var)
        if path and os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{var}={path} is a file, not a folder: point it at a "
                             "folder (or unset it)")


def probe_data(feats, y, subsets, num_classes) -> None:
    """train_probes' inputs, one line for what would fail inside torch: features
    N x D without NaN, one class index per row, a list of index sets inside
    the features' rows, each holding two classes or more."""
    import torch

    who = "train_probes"
    if not torch.is_tensor(feats):
        raise TypeError(f"{who}: feats must be a tensor N x D, got "
                        f"{type(feats).__name__}: convert it with torch.as_tensor(...)")
    y = torch.as_tensor(y)
    if feats.dim() != 2 or len(feats) != len(y):
        raise ValueError(f"{who} needs features N x D and N labels; got "
                         f"{tuple(feats.shape)} and {tuple(y.shape)}")
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool or (
            y.numel() and y.min() < 0):
        raise ValueError(f"{who}: y must hold one class index 0, 1, 2, ... per row; got "
                         f"{str(y.dtype).replace('torch.', '')} of shape "
                         f"{tuple(y.shape)} (one-hot labels: pass y.argmax(1))")
    if not isinstance(subsets, (list, tuple)):
        raise TypeError(f"{who}: subsets must be a list of index sets, one per head, "
                        f"got one {type(subsets).__name__}: pass [subset] for one head")
    for k, s in enumerate(subsets):
        if not isinstance(s, (list, tuple, range)) and getattr(s, "ndim", 0) != 1:
            what = (f"a {type(s).__name__} of shape {tuple(s.shape)}"
                    if hasattr(s, "shape") else f"{s!r} ({type(s).__name__})")
            raise TypeError(f"{who}: subset {k} is {what}, not a list of indices: "
                            "subsets holds one index set per head, e.g. "
                            "[torch.arange(10)] for one head")
    if not subsets or any(len(s) == 0 for s in subsets):
        raise ValueError(f"{who} needs at least one non-empty labeled subset")
    if feats.is_floating_point() and not torch.isfinite(feats).all():
        raise ValueError(f"{who}: the features hold NaN or inf values: check the "
                         "encoder (did its training diverge?)")
    for k, s in enumerate(map(torch.as_tensor, subsets)):
        if s.dtype == torch.bool:
            raise ValueError(f"{who}: subset {k} is a mask of True/False: pass its "
                             "indices, mask.nonzero().squeeze(1)")
        if s.is_floating_point() or s.min() < 0 or s.max() >= len(feats):
            raise ValueError(f"{who}: subset {k} holds indices outside "
                             f"0..{len(feats) - 1} (the features have {len(feats)} "
                             "rows): index into the pool the features were computed on")
        if torch.unique(y[s]).numel() < 2:
            raise ValueError(f"{who}: subset {k} holds a single class ({y[s][0].item()}):"
                             " a head needs at least two classes to learn; draw a "
                             "stratified subset")
    if num_classes is not None and y.max() >= count("num_classes", num_classes,
                                                     minimum=2):
        raise ValueError(f"{who}: y holds class {y.max().item()} but "
                         f"num_classes={num_classes}: raise num_classes or pass None")
