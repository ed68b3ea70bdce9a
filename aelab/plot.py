"""Figures people would rather look at than read: image grids, curves, matrices.

matplotlib only. Every function returns the Figure (so the CLI can save it)
and takes an optional `ax` where a single panel makes sense.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def _images(X) -> np.ndarray:
    """Tensor/array (N, C, H, W) uint8 or float -> float array (N, H, W[, 3]) in [0,1]."""
    X = torch.as_tensor(X).detach().cpu()
    X = X.float() / 255 if X.dtype == torch.uint8 else X.float()
    X = X.clamp(0, 1)
    return X[:, 0].numpy() if X.shape[1] == 1 else X.permute(0, 2, 3, 1).numpy()


def image_grid(rows: dict, *, titles=None, scale: float = 1.0, suptitle: str = ""):
    """One row of images per entry of `rows` ({label: images}), same columns."""
    labels = list(rows)
    arrays = [_images(rows[k]) for k in labels]
    ncols = max(len(a) for a in arrays)
    fig, axes = plt.subplots(len(labels), ncols, squeeze=False,
                             figsize=(scale * ncols * 0.9, scale * len(labels) * 0.95))
    for r, (label, arr) in enumerate(zip(labels, arrays)):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(arr):
                ax.imshow(arr[c], cmap="gray", vmin=0, vmax=1)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(str(titles[c]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict, *, ax=None, log: bool = True, title: str = "Loss"):
    """Train (solid) and test (dashed) loss per epoch for {label: History}."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = np.arange(1, len(h.train_loss) + 1)
        ax.plot(epochs, h.train_loss, color=color, label=f"{label} train")
        if h.test_loss:
            ax.plot(epochs, h.test_loss, "--", color=color, label=f"{label} test")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax.figure


def budget_curves(curves: dict, *, ax=None, reference: dict | None = None,
                  title: str = "Test accuracy vs number of labels"):
    """Mean line and min-max band over seeds. curves: {method: (sizes, acc[seeds, sizes])}.
    reference: {method: value} drawn as dotted horizontal lines (e.g. a paper's means)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (label, (sizes, acc)) in enumerate(curves.items()):
        acc = np.asarray(acc, dtype=float) * 100
        mean = acc.mean(0)
        ax.plot(sizes, mean, "o-", color=f"C{i}", ms=3, label=label)
        if acc.shape[0] > 1:
            ax.fill_between(sizes, acc.min(0), acc.max(0), color=f"C{i}", alpha=0.18)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, ls=":", lw=1, color="gray")
        ax.annotate(label, (ax.get_xlim()[0], value), fontsize=7, color="gray",
                    va="bottom")
    ax.set_xscale("log"), ax.set_xlabel("labeled training images (log scale)")
    ax.set_ylabel("test accuracy (%)"), ax.set_title(title)
    ax.grid(alpha=0.3), ax.legend(fontsize=8, loc="lower right")
    ax.figure.tight_layout()
    return ax.figure


def confusion(matrix, *, classes=None, ax=None, title: str = "Confusion matrix"):
    """Rows are true classes, columns predictions; each cell shows its count."""
    matrix = np.asarray(matrix)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.imshow(matrix, cmap="Blues")
    n = len(matrix)
    classes = classes or [str(i) for i in range(n)]
    ax.set_xticks(range(n), classes, fontsize=7, rotation=45)
    ax.set_yticks(range(n), classes, fontsize=7)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def history_panels(histories: dict, panels: dict, *, logy=(), figsize=None):
    """One panel per entry of `panels` ({title: key}), one line per run of
    `histories` ({label: History}), against the epoch. A key is "train_loss",
    "test_loss" or the name of a metric the run recorded; titles in `logy` get
    a log scale."""
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=figsize or (4 * len(panels), 3.2))
    for ax, (title, key) in zip(axes[0], panels.items()):
        for i, (label, h) in enumerate(histories.items()):
            values = getattr(h, key) if key in ("train_loss", "test_loss") \
                else h.metrics.get(key, [])
            ax.plot(np.arange(1, len(values) + 1), values, color=f"C{i}", label=label)
        ax.set_title(title), ax.set_xlabel("epoch")
        if title in logy:
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def correlation_scatter(x, y, *, labels=None, highlight=None, marked=(), ax=None,
                        xlabel: str = "", ylabel: str = "", title: str = ""):
    """One point per item (x[i], y[i]); `highlight` (an index) drawn large and
    red, indices in `marked` drawn as crosses (e.g. stalled models)."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    plain = [i for i in range(len(x)) if i not in set(marked)]
    ax.scatter(x[plain], y[plain], s=22, color="C0", label="models")
    if marked:
        m = list(marked)
        ax.scatter(x[m], y[m], s=40, marker="x", color="C3", label="stalled")
    if highlight is not None:
        ax.scatter([x[highlight]], [y[highlight]], s=120, facecolors="none",
                   edgecolors="red", linewidths=2)
        if labels is not None:
            ax.annotate(str(labels[highlight]), (x[highlight], y[highlight]),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if marked:
        ax.legend(fontsize=7)
    if own:  # a panel of someone else's figure keeps its layout
        ax.figure.tight_layout()
    return ax.figure
