"""fit_many's batched strategy (stacked nn.Linear weights) trains the models that
one `fit` after another trains, records what `fit` records, and resumes after
Ctrl-C from the chunks that finished."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aelab import batched, progress
from aelab.sweep import _choose, fit_many
from aelab.train import evaluate


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Sigmoid(),
                         nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def ce(model, batch):
    X, y = batch
    return F.cross_entropy(model(X), y)


@pytest.fixture
def sweep():
    """4 MLPs (the first with a frozen layer), their data (two models share one
    dataset), a test set."""
    g = torch.Generator().manual_seed(1)
    X = (torch.rand(3, 50, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    y = torch.randint(0, 3, (3, 50), generator=g)
    X_test = (torch.rand(30, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    y_test = torch.randint(0, 3, (30,), generator=g)
    torch.manual_seed(0)
    models = [mlp() for _ in range(4)]
    models[0][1].weight.requires_grad_(False)
    datas = [(X[0], y[0]), (X[1], y[1]), (X[2], y[2]), (X[2], y[2])]
    return models, datas, (X_test, y_test)


def histories_close(a, b):
    for x, z in zip(a, b, strict=True):
        assert (x.stopped, x.stalled) == (z.stopped, z.stalled)
        assert x.train_loss == pytest.approx(z.train_loss, rel=1e-5, abs=1e-6)
        assert x.test_loss == pytest.approx(z.test_loss, rel=1e-5, abs=1e-6)
        assert x.metrics.keys() == z.metrics.keys()
        for k in x.metrics:
            assert x.metrics[k] == pytest.approx(z.metrics[k], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("optimizer, weight_decay, clip_grad",
                         [("adam", 0.0, None), ("adam", 1e-2, 0.5), ("sgd", 1e-3, 0.2)])
def test_batched_trains_the_models_that_sequential_fit_trains(
        sweep, optimizer, weight_decay, clip_grad):
    models, datas, test = sweep
    a, b = copy.deepcopy(models), copy.deepcopy(models)
    kw = dict(num_epochs=4, batch_size=16, optimizer=optimizer, clip_grad=clip_grad,
              weight_decay=weight_decay, seeds=[3, 1, 4, 1], device="cpu",
              quiet=True, test_data=test, eval_data={"train_ce": datas[1]},
              metrics={"first_ce": lambda m: evaluate(m, datas[0], ce)})
    ha = fit_many(a, datas, ce, strategy="sequential", **kw)
    hb = fit_many(b, datas, ce, strategy="batched", **kw)
    histories_close(ha, hb)
    for m1, m2 in zip(a, b, strict=True):
        for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)
    assert torch.equal(b[0][1].weight, models[0][1].weight)  # frozen stays frozen
    assert not torch.equal(b[1][1].weight, models[1][1].weight)  # others trained
    # models 2 and 3 share data and seed but not their initial weights
    assert not torch.allclose(b[2][1].weight, b[3][1].weight)


def test_batched_records_every_epoch_as_fit_does(sweep):
    models, datas, test = sweep
    hs = fit_many(models[1:], datas[1:], ce, strategy="batched", num_epochs=3,
                  batch_size=16, device="cpu", quiet=True, test_data=test,
                  eval_data={"train_ce": datas[1]}, watch=test[0][:5])
    for h in hs:
        assert len(h.train_loss) == len(h.test_loss) == len(h.metrics["train_ce"]) == 3
        assert len(h.outputs) == 3 and h.outputs[0].shape == (5, 3)
        assert h.stopped == "completed" and h.num_images == 150 and h.seconds > 0
        # random labels: some of these barely learn; the flag follows the loss
        assert h.stalled == (min(h.train_loss) > 0.98 * h.train_loss[0])


def test_per_model_test_sets_give_per_model_test_losses(sweep):
    models, datas, _ = sweep
    a, b = copy.deepcopy(models[1:]), copy.deepcopy(models[1:])
    kw = dict(num_epochs=2, batch_size=16, device="cpu", quiet=True,
              test_data=datas[1:])
    histories_close(fit_many(a, datas[1:], ce, strategy="sequential", **kw),
                    fit_many(b, datas[1:], ce, strategy="batched", **kw))


def test_auto_stacks_linear_models_and_forks_workers_for_the_others_on_a_cpu(sweep):
    models, _, _ = sweep
    cpu = torch.device("cpu")
    assert _choose("auto", models, cpu, 64) == "batched"
    convs = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()) for _ in range(3)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _choose("auto", convs, cpu, 64) == "processes"
        assert _choose("auto", convs, cpu, 64, callback=print) == "sequential"
        torch.set_num_threads(1)  # one thread: no second core to give a worker
        assert _choose("auto", convs, cpu, 64) == "sequential"
    finally:
        torch.set_num_threads(threads)
    assert _choose("auto", models[:1], cpu, 64) == "sequential"
    with pytest.raises(ValueError, match="worker processes train on the CPU"):
        _choose("processes", convs, torch.device("cuda"), 64)
    with pytest.raises(ValueError, match="Conv2d.*not an nn.Linear.*sequential"):
        _choose("batched", convs, cpu, 64)
    with pytest.raises(ValueError, match="unknown strategy"):
        _choose("stacked", models, cpu, 64)


def test_linear_in_out_computes_what_linear_computes():
    torch.manual_seed(0)
    linear = nn.Linear(5, 3)
    swapped = batched.LinearInOut(linear)
    X = torch.randn(4, 5)
    assert isinstance(swapped, nn.Linear)
    assert torch.allclose(swapped(X), linear(X), atol=1e-6)
    assert torch.equal(swapped.weight, linear.weight)
    assert swapped(X[None]).shape == (1, 4, 3)  # more leading dimensions too
    model = nn.Sequential(linear, nn.ReLU())
    params = batched.stack([model, copy.deepcopy(model)])
    assert params["0.weight_t"].shape == (2, 5, 3)
    assert torch.equal(batched.unstack(params, 1, model)["0.weight"], linear.weight)


def test_a_diverging_model_stops_alone_and_the_others_finish(sweep, capsys):
    models, datas, _ = sweep
    models = copy.deepcopy(models[1:])
    with torch.no_grad():
        models[0][1].weight.fill_(float("nan"))
    reference = copy.deepcopy(models[1:])
    kw = dict(num_epochs=3, batch_size=16, device="cpu", quiet=True)
    hs = fit_many(models, datas[1:], ce, strategy="batched", seeds=[0, 1, 2], **kw)
    assert hs[0].stopped == "diverged" and len(hs[0].train_loss) == 1
    assert "model 0" in capsys.readouterr().out
    ref = fit_many(reference, datas[2:], ce, strategy="sequential", seeds=[1, 2], **kw)
    histories_close(hs[1:], ref)


def test_objectives_with_noise_get_their_own_noise_per_model():
    X = torch.rand(40, 10)

    def denoising(model, batch):
        X, = batch
        X_tilde = X * (torch.rand_like(X) > 0.25)  # masking noise
        return F.mse_loss(model(X_tilde), X)

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 4), nn.Sigmoid(), nn.Linear(4, 10))
    twins = [copy.deepcopy(net) for _ in range(2)]  # same weights, data and seed
    hs = fit_many(twins, [(X,)] * 2, denoising, strategy="batched", num_epochs=2,
                  batch_size=8, seeds=[0, 0], device="cpu", quiet=True)
    assert hs[0].train_loss != hs[1].train_loss  # the noise differs between them


def test_ctrl_c_keeps_the_finished_chunks_cached_and_a_rerun_resumes(
        sweep, tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path))
    models, datas, _ = sweep
    models, datas = models[1:] + [copy.deepcopy(models[1])], datas[1:] + [datas[1]]
    calls = []

    def interrupt_in_the_second_chunk(model, epoch, history):
        calls.append(epoch)
        if len(calls) > 2:  # chunk 1 (2 models, 1 epoch) has finished
            raise KeyboardInterrupt

    kw = dict(num_epochs=1, batch_size=16, device="cpu", quiet=True, cache=True,
              chunk=2, strategy="batched")
    with pytest.raises(KeyboardInterrupt):
        fit_many(copy.deepcopy(models), datas, ce,
                 callback=interrupt_in_the_second_chunk, **kw)
    hs = fit_many(copy.deepcopy(models), datas, ce, **kw)
    assert [h.cached for h in hs] == [True, True, False, False]
    assert all(h.stopped == "completed" for h in hs)


def test_fit_many_says_once_which_strategy_it_used_and_why_for_batchnorm(
        monkeypatch, capsys):
    from aelab import sweep

    monkeypatch.setattr(progress, "_said", set())
    bn = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                        nn.Linear(72, 3)) for _ in range(2)]
    assert "BatchNorm" in sweep._describe("vmap", bn)  # what a GPU would say
    assert "batched matmuls" in sweep._describe("batched", [mlp()])
    X = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 3, (8,))
    for _ in range(2):
        fit_many(bn, [(X, y)] * 2, ce, num_epochs=1, batch_size=4)
    said = capsys.readouterr().out
    expected = ("one model per worker process" if sweep._choose(
        "auto", bn, torch.device("cpu"), 4) == "processes" else "one model after another")
    assert said.count(f"fit_many on cpu: {expected}") == 1
