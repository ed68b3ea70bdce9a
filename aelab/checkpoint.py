"""Resumable training: what `fit(cache=True)` keeps when Ctrl-C stops it.

At the end of every finished epoch a cached fit takes a snapshot in memory
(weights, optimizer state, the batch order's and torch's random state, the
history so far). Ctrl-C writes the last snapshot to the cache, beside the
entry the finished run will get, and re-raises as FitInterrupted (a
KeyboardInterrupt that carries the partial history). The same fit, run again,
starts from that snapshot and ends with the weights an uninterrupted run gets,
bit for bit on a CPU: nothing random is drawn differently.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from aelab.utils import cache_path, save_or_warn, unreadable


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during `fit`. `history` is the partial history; the model keeps
    the weights it had. IPython shows the one-line message, not a traceback."""

    def __init__(self, message: str, history):
        super().__init__(message)
        self.history = history

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mKeyboardInterrupt\x1b[0m: {self}"]


def _cpu(obj):
    """obj with every tensor moved to the CPU (dicts, lists, tuples inside)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def snapshot(model: nn.Module, opt, loader, history) -> dict:
    """Everything a rerun needs to continue after this epoch, as copies (on
    the device: no sync; moved to the CPU only if it is saved)."""
    return dict(
        epoch=len(history.train_loss),
        state={k: v.detach().clone() for k, v in model.state_dict().items()},
        optim=copy.deepcopy(opt.state_dict()),
        loader_rng=loader.generator.get_state(),
        rng=torch.get_rng_state(),
        cuda_rng=(torch.cuda.get_rng_state_all() if torch.cuda.is_initialized()
                  else []),
        history=history.to_dict())


def path(key: dict):
    return cache_path(key, "resume")


def save(snap: dict, key: dict) -> bool:
    return save_or_warn(_cpu(snap), path(key))


def discard(key: dict) -> None:
    path(key).unlink(missing_ok=True)


def load(model: nn.Module, opt, loader, key: dict) -> dict | None:
    """Put the saved snapshot of `key` into model, optimizer, loader and torch's
    random state; return its history (a dict), or None if there is none. An
    unreadable snapshot is reported in one line and training starts over."""
    file = path(key)
    if not file.exists():
        return None
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        saved = torch.load(file, weights_only=True, map_location="cpu")
        model.load_state_dict(saved["state"])
        opt.load_state_dict(saved["optim"])
        loader.generator.set_state(saved["loader_rng"])
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        return saved["history"]
    except Exception as err:  # noqa: BLE001 - an unusable snapshot means start over
        model.load_state_dict(initial)
        opt.state.clear()
        print(unreadable(file, err), flush=True)
        return None


def interrupted(desc, history, num_epochs, key, snap, first) -> str:
    """The one line Ctrl-C gets in `fit`; with a cache key, the last finished
    epoch's snapshot is saved first, so the same fit resumes after it."""
    done = f"{desc}: interrupted after {len(history.train_loss)} of {num_epochs} epochs"
    kept = ("the model keeps what it learned; the partial history is the exception's "
            ".history (in a notebook: sys.last_value.history)")
    if key is None:
        return f"{done}; {kept}; with cache=True a rerun would resume instead"
    if snap is not None and save(snap, key):
        first = snap["epoch"]
    if first:
        return f"{done}; {kept}; run the same fit again to resume after epoch {first}"
    return f"{done}; {kept}; no epoch finished, so a rerun starts over"
