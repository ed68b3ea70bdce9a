"""The training loops on CUDA: bf16 autocast, vmapped sweeps, batched probes.

Skipped where there is no CUDA GPU (CI has none); benchmarks/run_gpu.sh runs
them on a lent one. Set AELAB_TEST_DEVICE=cpu to dry-run them here (the bf16
check is then skipped, as autocast is CUDA-only).
"""
import copy
import math
import os

import pytest
import torch

import aelab.sweep
import aelab.train
from aelab.data import load_dataset
from aelab.models import ConvAutoencoder, EncoderClassifier
from aelab.splits import make_splits
from aelab.probes import train_probes
from aelab.sweep import fit_many
from aelab.losses import classification_objective, reconstruction_objective
from aelab.train import fit, predict

DEVICE = os.environ.get("AELAB_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                reason="needs a CUDA GPU")


recon = reconstruction_objective
ce = classification_objective


@pytest.fixture(scope="module")
def mnist():
    train, test = (load_dataset("mnist", s, quiet=True) for s in ("train", "test"))
    return train.X, train.y, test.X, test.y


def test_fit_trains_barletta_ae_in_bf16_without_nans(mnist):
    torch.manual_seed(0)
    model = ConvAutoencoder()
    dtypes = set()
    model.encoder[0].register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    h = fit(model, (mnist[0][:2048],), recon, num_epochs=5, batch_size=128,
            device=DEVICE, quiet=True)
    assert h.stopped == "completed" and all(map(math.isfinite, h.train_loss))
    assert h.train_loss[-1] < 0.7 * h.train_loss[0], h.train_loss
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert next(model.parameters()).device.type == torch.device(DEVICE).type
    if DEVICE == "cuda":
        assert dtypes == {torch.bfloat16}  # convolutions ran under bf16 autocast


def _sweep(mnist, num_models=4, n=512):
    """Classifiers whose data differ in difficulty: model i has i/num_models of
    its labels shuffled, so their final losses differ widely (a mix-up of
    models or data between the two strategies could not hide)."""
    X, y = mnist[0], mnist[1]
    g = torch.Generator().manual_seed(0)
    datas = []
    for i in range(num_models):
        idx = torch.randperm(len(X), generator=g)[:n]
        labels = y[idx].clone()
        k = n * i // num_models
        labels[:k] = labels[:k][torch.randperm(k, generator=g)]
        datas.append((X[idx], labels))
    torch.manual_seed(0)
    models = [EncoderClassifier(ConvAutoencoder().encoder, freeze=False)
              for _ in range(num_models)]
    return models, datas


def _both(models, datas):
    def losses(strategy):
        hs = fit_many(copy.deepcopy(models), list(datas), ce, strategy=strategy,
                      num_epochs=3, batch_size=32, lr=5e-3, device=DEVICE, quiet=True)
        return [h.train_loss for h in hs]

    seq, vec = losses("sequential"), losses("vmap")
    gap = max(abs(a - b) / b for s, v in zip(seq, vec, strict=True)
              for a, b in zip(s, v, strict=True))
    finals = [[round(h[-1], 4) for h in hs] for hs in (seq, vec)]
    print(f"\nvmap vs sequential on {DEVICE}: largest relative gap {gap:.2e}; "
          f"final losses {finals[0]} vs {finals[1]}")
    return seq, vec


def test_vmap_matches_sequential_in_fp32(mnist, monkeypatch):
    """With autocast off and TF32 off both strategies do the same fp32 arithmetic
    up to summation order (one grouped convolution vs one per model). On an
    H100 the largest relative gap over 3 epochs was 2e-6; 1e-4 leaves room."""
    monkeypatch.setattr(aelab.train, "autocast", _no_autocast)
    monkeypatch.setattr(aelab.sweep, "autocast", _no_autocast)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    seq, vec = _both(*_sweep(mnist))
    for a, b in zip(seq, vec, strict=True):
        assert a == pytest.approx(b, rel=1e-4)


def _no_autocast(device):
    return torch.autocast("cpu", enabled=False)


def test_vmap_matches_sequential_under_bf16_autocast(mnist):
    """bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%) and the two
    strategies round in different places (different kernels), so equality is
    impossible, and training is non-convex, so the differences grow a little.
    On an H100 the largest relative gap over 3 epochs was 2.4e-3: each epoch's
    loss must agree within 2%, while the models' final losses differ from each
    other by far more than that."""
    seq, vec = _both(*_sweep(mnist))
    for a, b in zip(seq, vec, strict=True):
        assert a == pytest.approx(b, rel=2e-2)
    final = sorted(a[-1] for a in seq)
    assert final[-1] > 1.5 * final[0]  # the check above can tell models apart


def test_train_probes_on_the_gpu_match_the_cpu(mnist):
    X, y, Xte, yte = mnist
    torch.manual_seed(0)
    encoder = ConvAutoencoder().encoder
    feats, feats_te = (predict(encoder, Z).flatten(1) for Z in (X, Xte))
    subsets = [make_splits(y, seed=s).labeled(n) for s in (0, 1)
               for n in (50, 200, 1000)]
    accs = []
    for device in ("cpu", DEVICE):
        probes = train_probes(feats, y, subsets, device=device)
        accs.append((probes.predict(feats_te) == yte).float().mean(1))
    assert (accs[0] > 0.5).all(), accs[0]  # the probes learned something
    assert torch.allclose(accs[0], accs[1], atol=0.01), accs
