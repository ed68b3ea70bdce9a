import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import aelab.data as data
from aelab.corrupt import block_mask, corrupt, gaussian_noise
from aelab.data import DataError, load_dataset
from aelab.splits import Loader, make_splits, stratified_order, to_float


def test_embedded_mnist_is_real_and_reports_its_source(capsys):
    d = load_dataset("mnist", "train", source="embedded")
    assert d.X.shape == (4000, 1, 28, 28) and d.X.dtype == torch.uint8
    assert d.provenance.source == "embedded" and d.provenance.num_images == 4000
    assert torch.bincount(d.y).tolist() == [400] * 10
    # real digits, not noise: MNIST's mean intensity is ~0.13 and borders are empty
    assert 0.10 < d.X.float().mean().item() / 255 < 0.16
    assert d.X[:, :, 0, :].max() == 0
    assert "embedded" in repr(d)


def test_embedded_train_and_test_do_not_overlap():
    for name in ("mnist", "fashion_mnist"):
        tr = load_dataset(name, "train", source="embedded", quiet=True)
        te = load_dataset(name, "test", source="embedded", quiet=True)
        train_rows = {bytes(x) for x in tr.X.flatten(1).numpy()}
        assert not any(bytes(x) in train_rows for x in te.X.flatten(1).numpy())


def test_checksums_match_and_a_corrupt_file_is_refused(tmp_path, monkeypatch):
    d = load_dataset("fashion_mnist", "test", source="embedded", quiet=True)
    assert d.provenance.sha256 == load_dataset(
        "fashion_mnist", "test", source="embedded", quiet=True).provenance.sha256
    bad = tmp_path / "data"
    bad.mkdir()
    for entry in data.EMBEDDED.values():
        shutil.copy(data.embedded_dir() / entry["file"], bad / entry["file"])
    with open(bad / data.EMBEDDED["mnist"]["file"], "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    monkeypatch.setattr(data, "embedded_dir", lambda: bad)
    with pytest.raises(DataError, match="sha256.*git checkout data/"):
        load_dataset("mnist", "train", source="embedded")


@pytest.mark.parametrize("call, message", [
    (lambda: load_dataset("mnist-full"), "unknown dataset"),
    (lambda: load_dataset("mnist", "validation"), "unknown split"),
    (lambda: load_dataset("mnist", source="ftp"), "unknown source"),
    (lambda: load_dataset("cifar10", source="data_dir"), "AELAB_DATA"),
])
def test_bad_requests_get_one_line_errors(call, message):
    with pytest.raises(DataError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_debian_fashion_mnist_when_installed():
    if not data.DEBIAN_DIR.exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    d = load_dataset("fashion_mnist", "test", source="debian")
    assert d.X.shape == (10000, 1, 28, 28) and torch.bincount(d.y).tolist() == [1000] * 10


def test_stratified_order_is_balanced_seeded_and_a_permutation():
    y = torch.arange(10).repeat_interleave(50)
    order = stratified_order(y, seed=3)
    assert sorted(order.tolist()) == list(range(500))
    assert torch.bincount(y[order[:100]]).tolist() == [10] * 10
    assert torch.equal(order, stratified_order(y, seed=3))
    assert not torch.equal(order, stratified_order(y, seed=4))


def test_labeled_subsets_are_nested_stratified_and_bounded():
    y = load_dataset("mnist", "train", quiet=True).y
    splits = make_splits(y, seed=1)
    small, big = splits.labeled(50), splits.labeled(200)
    assert len(small) == 50 and len(big) == 200
    assert set(small.tolist()) <= set(big.tolist())
    assert torch.bincount(y[big], minlength=10).tolist() == [20] * 10
    assert set(big.tolist()) <= set(splits.pool.tolist())
    with pytest.raises(DataError, match="larger dataset|fewer labels"):
        splits.labeled(len(y) + 1)
    with pytest.raises(DataError, match="pool_size"):
        make_splits(y, pool_size=len(y) + 1)


def test_loader_covers_every_sample_once_per_epoch_as_float_channels_last():
    X = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).clone()
    y = torch.arange(10)
    loader = Loader(X, y, batch_size=4, seed=0)
    seen = torch.cat([yb for _, yb in loader])
    assert len(loader) == 3 and sorted(seen.tolist()) == list(range(10))
    Xb, yb = next(iter(loader))
    assert Xb.dtype == torch.float32 and Xb.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(Xb[:, 0, 0, 0] * 255, yb.float())  # images stay with labels
    assert len(Loader(X, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="different lengths"):
        Loader(X, y[:5])


def test_gaussian_noise_has_the_requested_std_and_clips():
    X = torch.full((64, 1, 28, 28), 0.5)
    noisy = gaussian_noise(X, 0.1, generator=torch.Generator().manual_seed(0))
    assert abs((noisy - X).std().item() - 0.1) < 0.005
    assert abs((noisy - X).mean().item()) < 0.005
    clipped = gaussian_noise(X, 5.0, generator=torch.Generator().manual_seed(0))
    assert clipped.min() >= 0 and clipped.max() <= 1
    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0"):
        gaussian_noise(X, -0.1)


def test_block_masks_hide_the_right_area():
    X = torch.ones(32, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    one = block_mask(X, num_blocks=1, block_size=14, generator=g)
    assert ((one == 0).flatten(1).sum(1) == 196).all()  # one 14x14 block per image
    many = block_mask(X, num_blocks=8, block_size=4, generator=g)
    hidden = (many == 0).flatten(1).sum(1).float()
    assert (hidden <= 128).all() and hidden.mean() > 64  # overlaps allowed
    assert torch.equal(X, torch.ones(32, 1, 28, 28))  # input untouched
    with pytest.raises(ValueError, match="larger than"):
        block_mask(X, block_size=29)
    for kind in ("none", "gaussian", "big_block", "small_blocks"):
        assert corrupt(X, kind, 0.25).shape == X.shape
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(X, "salt")
    with pytest.raises(ValueError, match=">= 0"):
        corrupt(X, "gaussian", -1)


def test_to_float_scales_uint8():
    X = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    assert to_float(X).flatten().tolist() == [0.0, 1.0]
    assert np.isclose(to_float(X.float() / 255).max().item(), 1.0)


def test_train_and_test_come_from_one_source_when_the_data_folder_lacks_a_split(
        tmp_path, monkeypatch):
    """A data folder with whole MNIST files serves both splits; with the test
    files gone, neither split comes from it (no full train set beside the
    embedded test set)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bad_inputs import fake_mnist

    raw = fake_mnist(tmp_path / "data")
    monkeypatch.setenv("AELAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("AELAB_OFFLINE", "1")
    both = [data.load_dataset("mnist", s, quiet=True) for s in ("train", "test")]
    assert [d.provenance.source for d in both] == ["data_dir", "data_dir"]
    assert [len(d.y) for d in both] == [12, 12]
    assert data.damaged_file("mnist") == ""
    for f in raw.glob("t10k-*"):
        f.unlink()
    both = [data.load_dataset("mnist", s, quiet=True) for s in ("train", "test")]
    assert [d.provenance.source for d in both] == ["embedded", "embedded"]
