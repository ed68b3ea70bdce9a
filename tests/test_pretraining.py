import pytest
import torch
import torch.nn.functional as F

from aelab.experiments import pretraining as P
from aelab.experiments import pretraining_extras as extras
from aelab.experiments import pretraining_report as report

TINY = dict(source="embedded", pool_size=300, fashion_pool_size=300, ae_epochs=2,
            sizes=(20, 60), seeds=(0, 1), clf_epochs=2, min_steps=4, batch_size=32,
            ae_batch_size=64)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(P.PROFILES, "tiny", TINY)
    monkeypatch.setattr(P, "get_profile", lambda profile=None: profile)
    calls = []
    real = P.fit_many

    def spy(models, datas, *args, **kwargs):
        calls.append(len(models))
        return real(models, datas, *args, **kwargs)

    monkeypatch.setattr(P, "fit_many", spy)
    return calls


def test_the_study_covers_every_method_budget_and_seed(tiny, tmp_path):
    study = P.run("tiny", quiet=True)
    methods = set(P.PROBE_ARMS) | set(P.TRAINED_ARMS)
    assert set(study.methods) == methods
    assert len(study.rows) == len(methods) * 2 * 2
    # the trained arms go through the many-model path: one call per budget,
    # each with every (arm, seed) model of that budget
    assert tiny == [len(P.TRAINED_ARMS) * 2] * 2
    sizes, acc = study.accuracy("pixels (logistic)")
    assert sizes == [20, 60] and acc.shape == (2, 2)
    assert (acc > 0.3).all()  # logistic regression on 20+ MNIST labels beats chance
    claims = report.verdict(study)
    assert len(claims) == 5
    assert {c.status for c in claims} <= {"REPRODUCED", "NOT REPRODUCED", "NOT TESTED"}
    assert claims[0].status == "NOT TESTED"  # no budget in 160..1000 here
    path = report.write(study, tmp_path / "out", study.pretrained["AE"]["snapshots"][0])
    for name in ("results.csv", "results.json", "budget.png", "confusion.png"):
        assert (path / name).stat().st_size > 0
    # a second run is served from the cache: no training at all
    tiny.clear()
    again = P.run("tiny", quiet=True)
    assert tiny == [] and again.rows == study.rows


def test_nested_budgets_only_add_labels(tiny):
    study = P.run("tiny", quiet=True)
    for ae in study.pretrained.values():
        assert ae["snapshots"].shape[0] == TINY["ae_epochs"]  # one per epoch


def test_exercise_checks_reject_wrong_answers_and_accept_right_ones(capsys):
    def unfinished(model, batch, lam):
        X, = batch

    def mse_only(model, batch, lam):
        X, = batch
        return F.mse_loss(model(X), X)

    def right(model, batch, lam):
        X, = batch
        z = model.encode(X)
        return F.mse_loss(model.decoder(z), X) + lam * z.abs().mean()

    assert not extras.check_sparse_loss(unfinished)
    assert not extras.check_sparse_loss(mse_only)
    assert extras.check_sparse_loss(right)
    assert not extras.check_freeze(lambda enc: enc)

    def freeze(enc):
        return enc.requires_grad_(False)

    assert extras.check_freeze(freeze)
    out = capsys.readouterr().out
    assert out.count("✗") == 3 and out.count("✓") == 2


def test_double_softmax_outputs_probabilities_and_the_demo_runs():
    torch.manual_seed(0)
    enc = P.ConvAutoencoder().encoder
    X = (torch.rand(64, 1, 28, 28) * 255).to(torch.uint8)
    y = torch.randint(0, 10, (64,))
    head = extras.SoftmaxHead(enc)
    p = head(X.float() / 255)
    assert torch.allclose(p.sum(1), torch.ones(64)) and (p >= 0).all()
    demo = extras.double_softmax_demo(enc, X, y, X, y, num_epochs=2)
    assert len(demo) == 3
    for h in demo.values():
        assert len(h.metrics["grad_norm"]) == 2 and len(h.metrics["test_acc"]) == 2
