"""fit_many's "processes" strategy (aelab.workers): one fit per model in forked
worker processes trains what one fit after another trains, BatchNorm included,
stops a diverging model alone, raises the objective's own error, caches what it
trains, and stops cleanly on Ctrl-C so that a rerun resumes."""
import copy
import multiprocessing
import os
import signal
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aelab import workers
from aelab.sweep import fit_many

pytestmark = pytest.mark.skipif(bool(workers.unavailable()),
                                reason=workers.unavailable() or "workers available")


def conv_bn():
    # no bias before BatchNorm: its gradient is zero up to rounding, which Adam
    # scales up to full steps, so one thread or two would walk it apart
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                         nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def ce(model, batch):
    X, y = batch
    return F.cross_entropy(model(X), y)


@pytest.fixture
def nets():
    g = torch.Generator().manual_seed(0)
    datas = [((torch.rand(48, 1, 8, 8, generator=g) * 255).to(torch.uint8),
              torch.randint(0, 3, (48,), generator=g)) for _ in range(3)]
    torch.manual_seed(0)
    return [conv_bn() for _ in range(3)], datas


def test_workers_return_results_print_output_and_raise_the_jobs_own_error(capsys):
    got = {}

    def job(k):
        print(f"job {k} says hello")
        return {"k": k, "x": torch.full((2,), float(k))}

    workers.run([lambda k=k: job(k) for k in range(3)], workers=2,
                on_result=lambda k, v: got.update({k: v}))
    assert sorted(got) == [0, 1, 2] and torch.equal(got[2]["x"], torch.tensor([2., 2.]))
    out = capsys.readouterr().out
    assert all(f"job {k} says hello" in out for k in range(3))

    def bad():
        raise ZeroDivisionError("the job's own message")
    with pytest.raises(ZeroDivisionError, match="the job's own message") as err:
        workers.run([bad, bad], workers=2, on_result=lambda k, v: None)
    assert "Traceback" in "".join(err.value.__notes__)  # the child's traceback
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("optimizer, clip_grad", [("adam", None), ("sgd", 0.5)])
def test_processes_train_what_one_fit_after_another_trains_batchnorm_included(
        nets, optimizer, clip_grad):
    models, datas = nets
    a, b = copy.deepcopy(models), copy.deepcopy(models)
    kw = dict(num_epochs=3, batch_size=16, seeds=[3, 1, 4], device="cpu", quiet=True,
              optimizer=optimizer, clip_grad=clip_grad, test_data=datas[0],
              watch=datas[0][0][:4])
    ha = fit_many(a, datas, ce, strategy="sequential", **kw)
    hb = fit_many(b, datas, ce, strategy="processes", **kw)
    for x, z in zip(ha, hb, strict=True):
        assert x.stopped == z.stopped == "completed"
        assert x.train_loss == pytest.approx(z.train_loss, rel=1e-4)
        assert x.test_loss == pytest.approx(z.test_loss, rel=1e-4)
        assert len(z.outputs) == 3 and torch.allclose(x.outputs[-1], z.outputs[-1],
                                                      atol=1e-4)
    for m1, m2, m0 in zip(a, b, models, strict=True):
        s1, s2 = m1.state_dict(), m2.state_dict()
        for k in s1:  # weights and each model's own BatchNorm running statistics
            assert torch.allclose(s1[k].float(), s2[k].float(), atol=1e-4), k
        assert not torch.equal(s2["1.running_mean"], m0.state_dict()["1.running_mean"])
        assert not m2.training  # handed back in eval mode, as fit leaves a model
    assert not torch.allclose(b[0][1].running_mean, b[1][1].running_mean)


def test_processes_stop_a_diverging_model_alone(nets, capsys):
    models, datas = nets
    with torch.no_grad():
        models[1][0].weight.fill_(float("nan"))
    hs = fit_many(models, datas, ce, strategy="processes", num_epochs=2, batch_size=16,
                  device="cpu", quiet=True)
    assert [h.stopped for h in hs] == ["completed", "diverged", "completed"]
    assert "the loss became nan" in capsys.readouterr().out  # printed by the worker


def test_processes_raise_the_objectives_own_error(nets):
    models, datas = nets

    def broken(model, batch):
        raise TypeError("my objective is wrong")
    with pytest.raises(TypeError, match="my objective is wrong"):
        fit_many(models, datas, broken, strategy="processes", num_epochs=1,
                 device="cpu", quiet=True)
    assert multiprocessing.active_children() == []


def test_per_model_objectives_train_each_model_with_its_own(nets):
    models, datas = nets
    a, b = copy.deepcopy(models[:2]), copy.deepcopy(models[:2])

    def scaled(model, batch):
        return 2 * ce(model, batch)
    kw = dict(num_epochs=1, batch_size=16, device="cpu", quiet=True, seeds=[0, 1])
    h_list = fit_many(a, datas[:2], [ce, scaled], strategy="processes", **kw)
    h_one = fit_many(b, datas[:2], ce, strategy="processes", **kw)
    assert h_list[0].train_loss == pytest.approx(h_one[0].train_loss, rel=1e-5)
    assert h_list[1].train_loss[0] > 1.5 * h_one[1].train_loss[0]
    with pytest.raises(ValueError, match="one objective, or a list of one per model"):
        fit_many(models, datas, [ce], num_epochs=1, device="cpu", quiet=True)


def test_processes_cache_what_they_train_under_fits_own_key(nets, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path))
    models, datas = nets
    kw = dict(num_epochs=1, batch_size=16, device="cpu", quiet=True, cache=True)
    first = fit_many(copy.deepcopy(models), datas, ce, strategy="processes", **kw)
    again = copy.deepcopy(models)
    hs = fit_many(again, datas, ce, strategy="sequential", **kw)  # the same entries
    assert [h.cached for h in first] == [False] * 3 and all(h.cached for h in hs)
    assert [h.train_loss for h in hs] == [h.train_loss for h in first]


def test_ctrl_c_stops_the_workers_and_a_rerun_resumes_to_the_same_weights(
        nets, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path))
    models, datas = nets

    def slow(model, batch):
        time.sleep(0.02)  # 3 steps an epoch: about 0.1 s an epoch
        return ce(model, batch)
    kw = dict(num_epochs=20, batch_size=16, device="cpu", quiet=True, cache=True,
              strategy="processes")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_many(copy.deepcopy(models), datas, slow, **kw)
    finally:
        timer.cancel()
    assert multiprocessing.active_children() == []
    assert "interrupted" in capsys.readouterr().out
    resumed = copy.deepcopy(models)
    fit_many(resumed, datas, slow, **kw)
    assert "resuming after epoch" in capsys.readouterr().out
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "fresh"))
    whole = copy.deepcopy(models)
    fit_many(whole, datas, slow, **kw)
    for m1, m2 in zip(resumed, whole, strict=True):
        for p, q in zip(m1.state_dict().values(), m2.state_dict().values()):
            assert torch.allclose(p.float(), q.float(), atol=1e-6)
