"""Ctrl-C keeps what finished: fit raises FitInterrupted (a KeyboardInterrupt,
so a loop of fits stops too) with the partial history; with cache=True the
finished epochs are saved, and the same fit, run again, resumes after them and
ends with the weights of a run that was never interrupted, bit for bit."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aelab.train
from aelab import utils
from aelab.checkpoint import FitInterrupted
from aelab.sweep import fit_many
from aelab.train import fit

NUM_EPOCHS = 6


def model():
    torch.manual_seed(0)  # dropout draws from torch's global generator: resumed too
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                         nn.Conv2d(4, 1, 3, padding=1))


def recon(model, batch):
    X, = batch
    return F.mse_loss(model(X), X)


X = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
SETTINGS = dict(num_epochs=NUM_EPOCHS, batch_size=16, device="cpu", quiet=True,
                test_data=(X[:8],), watch=X[:2])


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def uninterrupted():
    m = model()
    history = fit(m, (X,), recon, **SETTINGS)
    return weights(m), history


class StopAtStep:
    """A progress bar that raises KeyboardInterrupt at training step `step`,
    as Ctrl-C in the middle of an epoch does."""

    def __init__(self, step):
        self.step, self.done = step, 0

    def __call__(self, *args, initial=0, **kwargs):
        self.done = initial
        return self

    def update(self, n=1):
        self.done += n
        if self.done == self.step:
            raise KeyboardInterrupt

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def stop_after_epoch(epoch):
    def callback(model, e, history):
        if e == epoch:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("where", ["callback after epoch 3", "step 2 of epoch 5"])
def test_a_rerun_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(
        where, monkeypatch, capsys):
    reference, ref_history = uninterrupted()
    steps_per_epoch = 3  # 40 images at batch 16
    with pytest.raises(FitInterrupted) as stopped:
        if where.startswith("callback"):
            fit(model(), (X,), recon, cache=True, callback=stop_after_epoch(2),
                **SETTINGS)
        else:
            with monkeypatch.context() as m:
                m.setattr(aelab.train, "progress", StopAtStep(4 * steps_per_epoch + 2))
                fit(model(), (X,), recon, cache=True, **SETTINGS)
    assert isinstance(stopped.value, KeyboardInterrupt)  # a loop of fits stops too
    finished = 3 if where.startswith("callback") else 4
    partial = stopped.value.history
    assert partial.stopped == "interrupted"
    assert partial.train_loss == ref_history.train_loss[:len(partial.train_loss)]
    message = str(stopped.value)
    assert "\n" not in message and f"resume after epoch {finished}" in message
    assert len(list((utils.cache_dir() / "resume").glob("*.pt"))) == 1
    capsys.readouterr()

    resumed_model = model()
    history = fit(resumed_model, (X,), recon, cache=True, **SETTINGS)
    assert f"resuming after epoch {finished} of {NUM_EPOCHS}" in capsys.readouterr().out
    assert history.stopped == "completed" and not history.cached
    assert same(weights(resumed_model), reference)  # bitwise
    assert history.train_loss == ref_history.train_loss
    assert history.test_loss == ref_history.test_loss
    assert len(history.outputs) == NUM_EPOCHS  # a watched output per epoch
    assert all(torch.equal(a, b) for a, b in zip(history.outputs, ref_history.outputs,
                                                 strict=True))
    assert not list((utils.cache_dir() / "resume").glob("*.pt"))  # used up
    again = model()
    assert fit(again, (X,), recon, cache=True, **SETTINGS).cached
    assert same(weights(again), reference)


def test_ctrl_c_in_the_first_epoch_says_a_rerun_starts_over(monkeypatch):
    monkeypatch.setattr(aelab.train, "progress", StopAtStep(2))
    with pytest.raises(FitInterrupted, match="no epoch finished, so a rerun starts"):
        fit(model(), (X,), recon, cache=True, **SETTINGS)
    assert not (utils.cache_dir() / "resume").exists() or \
        not list((utils.cache_dir() / "resume").glob("*.pt"))


def test_without_cache_ctrl_c_keeps_the_trained_model_and_says_how_to_resume():
    m = model()
    before = weights(m)
    with pytest.raises(FitInterrupted, match="with cache=True a rerun would resume") \
            as stopped:
        fit(m, (X,), recon, callback=stop_after_epoch(1), **SETTINGS)
    assert len(stopped.value.history.train_loss) == 2
    assert not same(weights(m), before)  # what it learned stays in the model


def test_fit_many_interrupted_resumes_from_the_model_and_epoch_it_reached(monkeypatch):
    def models():
        return [model() for _ in range(3)]

    kw = dict(num_epochs=3, batch_size=16, device="cpu", quiet=True,
              strategy="sequential")
    reference = models()
    fit_many(reference, [(X,)] * 3, recon, **kw)
    # Ctrl-C in model 2 (index 1), in its third epoch
    with monkeypatch.context() as m:
        m.setattr(aelab.train, "progress", _StopInModel(model=2, step=2 * 3 + 1))
        with pytest.raises(KeyboardInterrupt):
            fit_many(models(), [(X,)] * 3, recon, cache=True, **kw)
    resumed = models()
    histories = fit_many(resumed, [(X,)] * 3, recon, cache=True, **kw)
    assert [h.cached for h in histories] == [True, False, False]
    for a, b in zip(resumed, reference, strict=True):
        assert same(weights(a), weights(b))


class _StopInModel:
    """progress() for fit: Ctrl-C at `step` of the `model`-th fit it bars."""

    def __init__(self, model, step):
        self.model, self.step, self.calls = model, step, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return StopAtStep(self.step if self.calls == self.model else -1)(**kwargs)
