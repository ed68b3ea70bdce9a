"""Training objectives, written out so that lessons can show them.

Each takes tensors (l1_weights takes a model) and returns a 0-dim tensor.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
             nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_warned_double_softmax = False


def reconstruction_loss(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every pixel of every image (F.mse_loss).

    barletta2024 writes J = 1/(2m) ||y - y_hat||^2 (m images, summed over
    pixels): that is this mean times pixels/2 (392 for 28x28), a constant
    factor. Alone it only rescales the gradient; next to a penalty such as
    lambda * l1 it changes what a given lambda means.
    """
    return F.mse_loss(X_hat, X)


def l1_activations(z: torch.Tensor) -> torch.Tensor:
    """Mean |z| over the code: the sparsity penalty barletta2024's CODE adds.

    Its TEXT (§4.1.1) writes lambda * ||w||, a penalty on the weights: that is
    l1_weights. The two are different regularisers; lessons should say which.
    """
    return z.abs().mean()


def l1_weights(model: nn.Module) -> torch.Tensor:
    """Sum of |w| over conv and linear weights, biases left out.

    This is the lambda * ||w|| that barletta2024's TEXT writes (§4.1.1); its
    code penalised the activations instead (l1_activations). Frozen layers
    count too.
    """
    terms = [m.weight.abs().sum() for m in model.modules() if isinstance(m, _WEIGHTED)]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def _looks_like_probabilities(logits: torch.Tensor) -> bool:
    if logits.numel() == 0:
        return False
    with torch.no_grad():
        in_range = (logits.min() >= 0) & (logits.max() <= 1)
        row_sums = logits.sum(dim=1 if logits.dim() > 1 else 0)
        looks = in_range & ((row_sums - 1).abs().max() <= 1e-3)
    try:
        return bool(looks)
    except RuntimeError:  # inside torch.func.vmap the value cannot be read: skip
        return False


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, *,
                  check: bool = True) -> torch.Tensor:
    """F.cross_entropy: log-softmax of the logits, then negative log-likelihood.

    If the "logits" already look like probabilities (all in [0, 1], rows summing
    to 1) it warns, once per session: a model ending in nn.Softmax gets softmax
    twice, its gradients shrink, and training crawls. barletta2024's code did
    this and then needed gradient clipping. Until it has warned, the check
    reads one number back from the device per call (check=False skips it;
    under torch.func.vmap it is skipped).
    """
    global _warned_double_softmax
    if check and not _warned_double_softmax and _looks_like_probabilities(logits):
        _warned_double_softmax = True
        warnings.warn(
            "cross_entropy got probabilities, not logits (every row is in [0, 1] "
            "and sums to 1): softmax was applied twice. Remove nn.Softmax from "
            "the model; cross_entropy applies it.", UserWarning, stacklevel=2)
    return F.cross_entropy(logits, y)


# The two objectives library code reuses, in fit's (model, batch) form. Lessons
# write their own out in full; these are for experiments and benchmarks.
def reconstruction_objective(model: nn.Module, batch) -> torch.Tensor:
    X, = batch
    return F.mse_loss(model(X), X)


def classification_objective(model: nn.Module, batch) -> torch.Tensor:
    X, y = batch
    return F.cross_entropy(model(X), y)
