"""Closed-form per-layer probes (dong2017 Fig. 3, alberti2017): how much class
information, and how much of the image, a layer's features keep.

Ridge regression, solved exactly in float64: no training loop, no learning
rate, so two probes differ only because their features differ.
"""
from __future__ import annotations

import torch

from aelab.metrics import _CONSTANT_TOL, _flat64, _labels, accuracy, mse


def _ridge_predict(F_train, T_train, F_test, alpha: float) -> torch.Tensor:
    """Ridge regression T ~ F W + t0 on standardised features; predict for F_test."""
    if alpha <= 0:
        raise ValueError("alpha must be > 0")
    F, G = _flat64(F_train), _flat64(F_test)
    mean, std = F.mean(0), F.std(0, correction=0)
    std = torch.where(std > _CONSTANT_TOL, std, 1.0)  # a dead unit becomes 0, not NaN
    F, G = (F - mean) / std, (G - mean) / std
    # Centred F and T make the intercept t0 = mean(T): it is not penalised.
    t0 = T_train.mean(0)
    T = T_train - t0
    N, D = F.shape
    if D <= N:  # primal: (F^T F + alpha I) W = F^T T, a D x D system
        W = torch.linalg.solve(F.T @ F + alpha * torch.eye(D, dtype=F.dtype), F.T @ T)
    else:  # dual: the same W = F^T (F F^T + alpha I)^-1 T, an N x N system
        W = F.T @ torch.linalg.solve(F @ F.T + alpha * torch.eye(N, dtype=F.dtype), T)
    return G @ W + t0


def ridge_probe_accuracy(F_train, y_train, F_test, y_test, *, alpha: float = 1.0,
                         num_classes: int | None = None) -> float:
    """Test accuracy of a linear probe: ridge regression onto one-hot targets."""
    y_train, y_test = _labels(y_train), _labels(y_test)
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    Y = torch.nn.functional.one_hot(y_train, num_classes).to(torch.float64)
    return accuracy(_ridge_predict(F_train, Y, F_test, alpha), y_test)


def ridge_decoder_mse(F_train, X_train, F_test, X_test, *, alpha: float = 1.0) -> float:
    """Test pixel MSE of a linear "small decoder" fitted from features to pixels."""
    X_hat = _ridge_predict(F_train, _flat64(X_train), F_test, alpha)
    return mse(_flat64(X_test), X_hat)


def _features(feature_fn, X, batch_size: int) -> list[torch.Tensor]:
    """feature_fn over X in chunks, without autograd; per layer a CPU [N, D]."""
    chunks = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            layers = feature_fn(X[start:start + batch_size])
            chunks.append([f.reshape(len(f), -1).cpu() for f in layers])
    return [torch.cat(layer) for layer in zip(*chunks)]


def layer_probes(feature_fn, X_train, y_train, X_test, y_test, *, alpha: float = 1.0,
                 batch_size: int = 1024) -> list[dict]:
    """A linear classifier probe and a linear decoder for every layer's features.

    feature_fn(X) returns a list of per-layer feature tensors [N, ...] (put the
    model in eval mode first; include X itself to get the raw-pixel baseline).
    "layer" is the index in that list. Costs O(N D) memory per layer: pool
    wide convolutional maps inside feature_fn.
    """
    train = _features(feature_fn, X_train, batch_size)
    test = _features(feature_fn, X_test, batch_size)
    return [{"layer": layer, "dim": F_train.shape[1],
             "probe_accuracy": ridge_probe_accuracy(F_train, y_train, F_test, y_test,
                                                    alpha=alpha),
             "decoder_mse": ridge_decoder_mse(F_train, X_train, F_test, X_test,
                                              alpha=alpha)}
            for layer, (F_train, F_test) in enumerate(zip(train, test))]
