"""Seeded splits and a device-resident batch loader.

A label budget study needs three things fixed in advance: an unlabeled pool
for pretraining, labeled subsets of growing size, and a test set that neither
ever touches. Labeled subsets are *nested* (the 100-label set contains the
50-label set), so a bigger budget only ever adds labels: the curve then
measures the budget, not a new random draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from aelab import validate
from aelab.data import DataError


def stratified_order(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A permutation of range(len(y)) that cycles through the classes.

    Each class is shuffled (seeded); the order then takes one of each class in
    turn, so every prefix is as class-balanced as it can be. Prefixes of this
    order are the nested, stratified labeled subsets.
    """
    y = torch.as_tensor(y).cpu()
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(y)
    turn = torch.randperm(len(classes), generator=g)  # the order classes take turns in
    key = torch.empty(len(y), dtype=torch.long)
    for c, t in zip(classes, turn):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        key[idx] = torch.arange(len(idx)) * len(classes) + t  # unique keys
    return torch.argsort(key)


@dataclass
class Splits:
    """Indices into a train split: the pool, and nested labeled subsets."""

    pool: torch.Tensor  # every train index (pretraining sees images, never labels)
    order: torch.Tensor  # stratified order of the pool; labeled(n) = order[:n]
    seed: int

    def labeled(self, n: int) -> torch.Tensor:
        n = validate.count("labeled size", n, hint="e.g. labeled(100)")
        if n < 1 or n > len(self.order):
            raise DataError(f"labeled size {n} is outside 1..{len(self.order)} "
                            f"(the pool has {len(self.order)} images): ask for fewer labels "
                            "or use a larger dataset")
        return self.order[:n]


def make_splits(y_train: torch.Tensor, *, seed: int = 0, pool_size: int | None = None
                ) -> Splits:
    """Splits of a train set. The test set is the dataset's own test split, so it
    never overlaps the pool or any labeled subset. pool_size caps the pool
    (a stratified subset), e.g. for the fast profile."""
    try:
        y_train = torch.as_tensor(y_train)
    except (TypeError, ValueError, RuntimeError):
        y_train = None
    if y_train is None or y_train.dim() != 1 or len(y_train) == 0:
        got = "no tensor" if y_train is None else f"shape {tuple(y_train.shape)}"
        raise DataError(f"make_splits needs the train labels y, a non-empty 1-D "
                        f"tensor; got {got}: pass e.g. load_dataset('mnist').y")
    order = stratified_order(y_train, seed)
    if pool_size is not None:
        pool_size = validate.count("pool_size", pool_size, minimum=1,
                                   hint="pass None for the whole train split")
        if pool_size > len(order):
            raise DataError(f"pool_size {pool_size} is larger than the {len(order)} "
                            "training images: lower it")
        order = order[:pool_size]
    return Splits(pool=torch.sort(order).values, order=order, seed=seed)


def to_float(X: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0,1], channels_last (faster convolutions on CPU and GPU)."""
    if X.dtype == torch.uint8:
        X = X.float().div_(255)
    return X.contiguous(memory_format=torch.channels_last) if X.dim() == 4 else X


class Loader:
    """Batches by index slices of a randperm over tensors already on the device.

    The dataset is moved to the device once (as uint8: 4x smaller than float);
    each batch is one gather plus a cast. No workers, no per-sample Python, so
    it is fast in notebooks and identical on CPU and GPU. Iterating yields
    tuples (X, y, ...) with images as float channels_last.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int = 128,
                 shuffle: bool = True, drop_last: bool = False,
                 device: torch.device | str | None = None, seed: int = 0):
        if not tensors:
            raise ValueError("Loader needs at least one tensor, e.g. Loader(X, y)")
        batch_size = validate.count("batch_size", batch_size, minimum=1,
                                    hint="e.g. 128")
        validate.data(tensors, "the data", "Loader", allow_empty=True,
                      check_values=False)
        self.device = torch.device(device) if device is not None else tensors[0].device
        self.tensors = tuple(t.to(self.device) for t in tensors)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __len__(self) -> int:
        n, b = len(self.tensors[0]), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def num_samples(self) -> int:
        return len(self.tensors[0])

    def __iter__(self):
        n = self.num_samples
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            perm = torch.arange(n, device=self.device)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = perm[start:start + self.batch_size]
            yield tuple(to_float(t[idx]) if t.dtype == torch.uint8 else t[idx]
                        for t in self.tensors)
