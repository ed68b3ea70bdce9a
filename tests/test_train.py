import copy
import os
import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aelab.probes import train_probes
from aelab.sweep import fit_many
from aelab.train import History, evaluate, fit, predict
from aelab.utils import atomic_save, cache_path, cached, config_hash, get_profile


def tiny_ae():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Upsample(scale_factor=2), nn.Conv2d(4, 1, 3, padding=1))


def tiny_classifier():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))


def recon(model, batch):
    X, = batch
    return F.mse_loss(model(X), X)


def ce(model, batch):
    X, y = batch
    return F.cross_entropy(model(X), y)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(64, 1, 8, 8, generator=g) * 255).to(torch.uint8)


def test_fit_reduces_the_loss_and_records_every_epoch(images):
    h = fit(tiny_ae(), (images,), recon, num_epochs=15, lr=1e-2, batch_size=16,
            test_data=(images,), device="cpu", quiet=True,
            metrics={"mse": lambda m: evaluate(m, (images,), recon)})
    assert len(h.train_loss) == len(h.test_loss) == len(h.metrics["mse"]) == 15
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.stopped == "completed" and h.problem() == "" and h.images_per_s > 0


def test_two_fits_with_the_same_seed_are_identical(images):
    a = fit(tiny_ae(), (images,), recon, num_epochs=3, seed=7, batch_size=16,
            device="cpu", quiet=True)
    b = fit(tiny_ae(), (images,), recon, num_epochs=3, seed=7, batch_size=16,
            device="cpu", quiet=True)
    c = fit(tiny_ae(), (images,), recon, num_epochs=3, seed=8, batch_size=16,
            device="cpu", quiet=True)
    assert a.train_loss == b.train_loss and a.train_loss != c.train_loss


def test_a_diverging_loss_stops_with_a_message(images, capsys):
    def explode(model, batch):
        return recon(model, batch) * float("nan")
    h = fit(tiny_ae(), (images,), explode, num_epochs=5, device="cpu", quiet=True)
    assert h.stopped == "diverged" and len(h.train_loss) == 1
    assert "clip_grad" in h.message and "clip_grad" in capsys.readouterr().out


def test_ctrl_c_stops_with_one_line_and_carries_the_partial_history(images):
    def interrupt(model, epoch, history):
        if epoch == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as stopped:  # a loop over fits stops too
        fit(tiny_ae(), (images,), recon, num_epochs=10, device="cpu", quiet=True,
            callback=interrupt)
    h = stopped.value.history
    assert h.stopped == "interrupted" and len(h.train_loss) == 2
    assert "interrupted after 2 of 10 epochs" in str(stopped.value)
    assert "\n" not in str(stopped.value)


def test_a_stuck_model_is_flagged():
    h = History(train_loss=[0.10, 0.0999, 0.0998])
    assert "stuck" in h.problem() and h.stalled
    assert History.from_dict(h.to_dict()) == h


def test_bad_arguments_are_refused(images):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        fit(tiny_ae(), (images,), recon, lr=0, device="cpu")
    frozen = tiny_ae().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, (images,), recon, device="cpu")
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")


def test_predict_matches_a_direct_call(images):
    model = tiny_ae().eval()
    direct = model(images.float() / 255)
    assert torch.allclose(predict(model, images, batch_size=10), direct, atol=1e-6)


def _sweep_inputs():
    g = torch.Generator().manual_seed(1)
    X = (torch.rand(4, 48, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    y = torch.randint(0, 3, (4, 48), generator=g)
    torch.manual_seed(0)
    models = [tiny_classifier() for _ in range(4)]
    models[0][1].weight.requires_grad_(False)  # one model with a frozen layer
    return models, [(X[i], y[i]) for i in range(4)]


def test_vmap_and_sequential_sweeps_agree():
    models, datas = _sweep_inputs()
    a, b = copy.deepcopy(models), copy.deepcopy(models)
    kw = dict(num_epochs=3, batch_size=16, clip_grad=0.5, device="cpu", quiet=True)
    ha = fit_many(a, list(datas), ce, strategy="sequential", **kw)
    hb = fit_many(b, list(datas), ce, strategy="vmap", **kw)
    for x, z in zip(ha, hb, strict=True):
        assert x.train_loss == pytest.approx(z.train_loss, rel=1e-5)
    for m1, m2 in zip(a, b, strict=True):
        for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)
    assert torch.equal(a[0][1].weight, models[0][1].weight)  # frozen stays frozen
    assert not torch.equal(a[1][1].weight, models[1][1].weight)  # others trained
    with pytest.raises(ValueError, match="one dataset per model"):
        fit_many(a, datas[:2], ce)


def test_batched_probes_learn_separable_labels_and_not_random_ones():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(400, 10, generator=g)
    y = (feats[:, 0] > 0).long() + 2 * (feats[:, 1] > 0).long()
    noise = torch.randint(0, 4, (400,), generator=g)
    subsets = [torch.arange(100), torch.arange(300)]
    good = train_probes(feats, y, subsets, device="cpu")
    bad = train_probes(feats, noise, subsets, device="cpu")
    test = slice(300, 400)
    acc = (good.predict(feats[test]) == y[test]).float().mean(1)
    chance = (bad.predict(feats[test]) == noise[test]).float().mean(1)
    assert (acc > 0.85).all() and (chance < 0.45).all()


def test_cache_reloads_without_recomputing_and_survives_truncation():
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3.0), "loss": [0.5, 0.25]}

    config = {"model": "tiny", "seed": 0}
    first = cached(config, compute)
    second = cached(config, compute)
    assert len(calls) == 1 and torch.equal(first["w"], second["w"])
    path = cache_path(config)
    path.write_bytes(path.read_bytes()[:20])  # an interrupted write
    third = cached(config, compute)
    assert len(calls) == 2 and third["loss"] == [0.5, 0.25]
    assert config_hash(config) != config_hash({**config, "seed": 1})


def test_atomic_save_leaves_no_partial_file(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        atomic_save({"x": Unpicklable()}, tmp_path / "a.pt")
    assert list(tmp_path.iterdir()) == []


def test_evaluate_and_predict_accept_a_device_name(images):
    model = tiny_ae()
    assert predict(model, images, device="cpu").shape == images.shape
    assert evaluate(model, (images,), recon, device="cpu") > 0


FAULTS_PER_STEP = """
import resource, sys, torch
from aelab.models import ConvAutoencoder
from aelab.train import fit
from aelab.losses import reconstruction_objective
faults = []
def count(model, epoch, history):
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
X = (torch.rand(1024, 1, 28, 28) * 255).to(torch.uint8)
fit(ConvAutoencoder(), (X,), reconstruction_objective, num_epochs=6, batch_size=256,
    device="cpu", quiet=True, callback=count)
print((faults[-1] - faults[1]) / (4 * 1024 // 256))  # epochs 3 to 6: warm
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux")
                         and platform.libc_ver()[0] == "glibc"), reason="glibc only")
def test_cpu_training_steps_do_not_page_fault():
    """With glibc's defaults a step of this AE usually maps and faults in fresh
    pages for its activations (measured 1,700-9,300 faults a step in 7 of 8
    fresh processes; glibc's adaptive threshold sometimes avoids it), which cost
    a third of the CPU step time. aelab's fit keeps the buffers."""
    env = {**os.environ, "AELAB_MALLOC": "tuned"}
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], env=env, text=True,
                         capture_output=True, check=True).stdout
    tuned = float(out.split()[-1])
    # Measured tuned: 0 in most processes, up to 200 (a rare heap growth).
    assert tuned < 1000, f"{tuned:.0f} page faults per step with the allocator tuned"


def test_the_allocator_tuning_can_be_switched_off():
    code = "import aelab.utils as u; print(u.tune_cpu_allocator())"
    def tuned(malloc):
        env = {**os.environ, "AELAB_MALLOC": malloc}
        return subprocess.run([sys.executable, "-c", code], env=env, text=True,
                              capture_output=True, check=True).stdout.strip()
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tuned("default") == "False"
    assert tuned("tuned") == str(glibc)


def test_fit_with_cache_loads_the_finished_run_instead_of_training(images):
    torch.manual_seed(0)
    first = tiny_ae()
    h1 = fit(first, (images,), recon, num_epochs=2, quiet=True, cache=True, seed=1)
    torch.manual_seed(0)
    again = tiny_ae()
    h2 = fit(again, (images,), recon, num_epochs=2, quiet=True, cache=True, seed=1,
             callback=lambda *a: pytest.fail("a cached run must not train"))
    assert h2.cached and not h1.cached and h2.train_loss == h1.train_loss
    for p, q in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)


def test_the_next_model_gets_the_same_weights_whether_fit_trained_or_loaded(images):
    """A warm rerun must build what a cold run builds: after fit and fit_many
    the global generator is where it was before them, trained or cached."""
    from aelab import fit_many

    def after(train):
        torch.manual_seed(0)
        model = tiny_ae()
        train(model)
        return torch.rand(3), tiny_ae().state_dict()

    for train in (lambda m: fit(m, (images,), recon, num_epochs=2, quiet=True,
                                cache=True, seed=1),
                  lambda m: fit_many([m], [(images,)], recon, num_epochs=2, quiet=True,
                                     cache=True, seeds=[1])):
        cold, warm = after(train), after(train)  # the second loads from the cache
        torch.manual_seed(0)
        tiny_ae()
        untouched = torch.rand(3)
        assert torch.equal(cold[0], warm[0]) and torch.equal(cold[0], untouched)
        for name, value in cold[1].items():
            assert torch.equal(value, warm[1][name]), name


def test_fit_cache_key_changes_with_the_objective_and_the_initial_weights(images):
    def recon_l1(model, batch):
        X, = batch
        return F.l1_loss(model(X), X)

    def fresh(shift=0.0):
        model = tiny_ae()  # always the same initial weights...
        with torch.no_grad():
            model[0].bias.add_(shift)  # ...unless shifted
        return model

    fit(fresh(), (images,), recon, num_epochs=1, quiet=True, cache=True)
    assert not fit(fresh(), (images,), recon_l1, num_epochs=1, quiet=True,
                   cache=True).cached  # another objective
    assert not fit(fresh(0.1), (images,), recon, num_epochs=1, quiet=True,
                   cache=True).cached  # other initial weights
    assert not fit(fresh(), (images[:8],), recon, num_epochs=1, quiet=True,
                   cache=True).cached  # other data
    assert fit(fresh(), (images,), recon, num_epochs=1, quiet=True, cache=True).cached


def test_an_interrupted_fit_is_not_cached_as_finished(images):
    def interrupt(model, epoch, history):
        raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt) as stopped:
        fit(tiny_ae(), (images,), recon, num_epochs=3, quiet=True, cache=True,
            callback=interrupt)
    assert stopped.value.history.stopped == "interrupted"
    torch.manual_seed(0)
    assert not fit(tiny_ae(), (images,), recon, num_epochs=3, quiet=True,
                   cache=True).cached


def test_fit_keeps_the_outputs_of_watched_inputs_every_epoch(images):
    h = fit(tiny_ae(), (images,), recon, num_epochs=3, quiet=True, watch=images[:4])
    assert len(h.outputs) == 3 and h.outputs[0].shape == (4, 1, 8, 8)
    assert not torch.equal(h.outputs[0], h.outputs[-1])


def test_fit_refuses_empty_data_and_nan_hyperparameters(images):
    with pytest.raises(ValueError, match="training data is empty"):
        fit(tiny_ae(), (images[:0],), recon, quiet=True)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        fit(tiny_ae(), (images,), recon, lr=float("nan"), quiet=True)


def test_fit_many_with_cache_trains_only_the_models_not_cached_yet():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (32,), generator=g)

    def ce(model, batch):
        Xb, yb = batch
        return F.cross_entropy(model(Xb), yb)

    def models(k):
        torch.manual_seed(0)
        return [tiny_classifier() for _ in range(k)]

    fit_many(models(2), [(X, y)] * 2, ce, num_epochs=1, quiet=True, cache=True)
    hs = fit_many(models(3), [(X, y)] * 3, ce, num_epochs=1, quiet=True, cache=True)
    assert [h.cached for h in hs] == [True, True, False]


def test_plain_sgd_has_no_momentum_and_sgd_keeps_its_momentum():
    from aelab.train import make_optimizer
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer("plain-sgd", params, 0.1).defaults["momentum"] == 0.0
    assert make_optimizer("sgd", params, 0.1).defaults["momentum"] == 0.9
