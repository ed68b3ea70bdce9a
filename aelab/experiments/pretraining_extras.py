"""Lesson 01's side experiments: the double softmax, and the exercise checks."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from aelab import metrics
from aelab.experiments.pretraining import sparse_loss
from aelab.models import ConvAutoencoder
from aelab.train import fit, predict


class SoftmaxHead(nn.Module):
    """barletta2024's classifier: frozen encoder, Linear, then nn.Softmax, fed
    to a cross-entropy that applies (log-)softmax a second time."""

    def __init__(self, encoder, num_features=196, num_classes=10, softmax=True):
        super().__init__()
        self.encoder = encoder.requires_grad_(False).eval()
        self.linear = nn.Linear(num_features, num_classes)
        self.softmax = softmax

    def forward(self, X):
        out = self.linear(self.encoder(X).flatten(1))
        return out.softmax(1) if self.softmax else out


def double_softmax_demo(encoder, X, y, X_test, y_test, *, num_epochs=30, seed=0,
                        quiet=True) -> dict:
    """Train three heads on the same frozen features: logits (correct), softmax
    then cross-entropy (the paper's code), and that plus clipping at 1 (the
    paper's fix). Returns {label: (History with 'grad_norm' and 'test_acc')}."""
    runs = {"logits -> cross-entropy": (False, None),
            "softmax -> cross-entropy (paper)": (True, None),
            "softmax -> cross-entropy + clip 1 (paper's fix)": (True, 1.0)}
    out = {}
    for label, (softmax, clip) in runs.items():
        torch.manual_seed(seed)
        model = SoftmaxHead(copy.deepcopy(encoder), softmax=softmax)
        norms = []

        def grad_norm(m, epoch, history, norms=norms):  # grads of the last step
            g = [p.grad.norm() for p in m.parameters() if p.grad is not None]
            norms.append(torch.stack(g).norm().item())

        def loss_fn(m, batch):
            Xb, yb = batch
            return F.cross_entropy(m(Xb), yb)  # what the paper's code did

        history = fit(model, (X, y), loss_fn, num_epochs=num_epochs, lr=1e-3,
                      batch_size=16, clip_grad=clip, seed=seed, quiet=quiet,
                      desc=label, callback=grad_norm,
                      metrics={"test_acc": lambda m: metrics.accuracy(
                          predict(m, X_test), y_test)})
        history.metrics["grad_norm"] = norms
        out[label] = history
    return out


def _ok(passed: bool, what: str, hint: str = "") -> bool:
    print(("✓ " if passed else "✗ ") + what + ("" if passed or not hint else f": {hint}"))
    return passed


def check_sparse_loss(student_fn) -> bool:
    """student_fn(model, batch, lam) must equal MSE + lam * mean |z|."""
    torch.manual_seed(0)
    model = ConvAutoencoder()
    X = torch.rand(8, 1, 28, 28)
    for lam in (0.0, 0.05):
        try:
            got = student_fn(model, (X,), lam)
        except Exception as err:  # noqa: BLE001 - students see what went wrong
            return _ok(False, "sparse loss", f"it raised {type(err).__name__}: {err}")
        if got is None:
            return _ok(False, "sparse loss", "it returns None: finish the function")
        want = sparse_loss("activations", lam)(model, (X,))
        if not torch.is_tensor(got) or got.dim() != 0:
            return _ok(False, "sparse loss", "return one number (a 0-d tensor)")
        if not torch.allclose(got, want, rtol=1e-4):
            hint = ("lam = 0 should give the plain MSE" if lam == 0 else
                    "add lam * the mean absolute value of z = model.encode(X)")
            return _ok(False, f"sparse loss (lam = {lam})", hint)
    return _ok(True, "sparse loss: MSE + lam * mean|z| matches the reference")


def check_freeze(student_fn) -> bool:
    """student_fn(encoder) must return the encoder with no trainable weights,
    in eval mode, unchanged by a training step of a head on top."""
    encoder = ConvAutoencoder().encoder
    before = copy.deepcopy(encoder.state_dict())
    try:
        frozen = student_fn(encoder)
    except Exception as err:  # noqa: BLE001
        return _ok(False, "freeze", f"it raised {type(err).__name__}: {err}")
    if frozen is None:
        return _ok(False, "freeze", "it returns None: return the encoder")
    if any(p.requires_grad for p in frozen.parameters()):
        return _ok(False, "freeze", "some parameters still have requires_grad=True")
    head = nn.Sequential(frozen, nn.Flatten(), nn.Linear(196, 10))
    opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    F.cross_entropy(head(torch.rand(4, 1, 28, 28)), torch.arange(4)).backward()
    opt.step()
    same = all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())
    return _ok(same, "freeze: the encoder's weights did not move during training",
               "they changed: freeze every parameter")
