"""A run expected to take more than a minute says so once, early, with the
estimate and how to get a quicker one; a short run says nothing. The clock
is faked, so the tests do not depend on this machine's speed."""
import torch
import torch.nn.functional as F
from torch import nn

from aelab import progress
from aelab.train import fit


class Clock:
    """time for aelab.utils: every perf_counter() call is `step` s later."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def perf_counter(self):
        self.now += self.step
        return self.now


def tiny_fit(**kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1))
    X = torch.rand(80, 1, 8, 8)
    return fit(model, (X,), lambda m, b: F.mse_loss(m(b[0]), b[0]), num_epochs=3,
               batch_size=8, device="cpu", desc="tiny autoencoder", **kw)  # 30 steps


def test_the_notice_says_the_estimate_and_the_faster_profile(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "classroom")
    line = progress.long_run_notice("sweep", 150)
    assert line.startswith("aelab: sweep will take about 2 min on this machine")
    assert "AELAB_PROFILE=fast" in line and "--profile fast" in line
    assert "\n" not in line
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    assert "already the fast profile" in progress.long_run_notice("sweep", 4000)
    assert "about 67 min" in progress.long_run_notice("sweep", 4000)
    assert "about 1.5 h" in progress.long_run_notice("sweep", 5400)
    assert progress.long_run_notice("sweep", 59) is None


def test_a_fit_expected_to_take_over_a_minute_announces_itself_once(monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("AELAB_PROFILE", "classroom")
    monkeypatch.setattr(progress, "time", Clock(step=3.0))  # 3 s a step: 90 s in all
    tiny_fit()
    lines = [s for s in capsys.readouterr().out.splitlines() if "will take" in s]
    assert len(lines) == 1, lines
    assert lines[0].startswith("aelab: tiny autoencoder will take about 2 min")
    assert "30 steps at 3 s each" in lines[0] and "--profile fast" in lines[0]


def test_a_short_fit_and_a_quiet_one_say_nothing(monkeypatch, capsys):
    monkeypatch.setattr(progress, "time", Clock(step=1.0))  # 30 s in all
    tiny_fit()
    monkeypatch.setattr(progress, "time", Clock(step=10.0))  # long, but quiet=True
    tiny_fit(quiet=True)
    assert "will take" not in capsys.readouterr().out


def test_a_sweep_bar_over_models_announces_after_its_first_model(monkeypatch, capsys):
    monkeypatch.setattr(progress, "time", Clock(step=20.0))  # 20 s a model, 12 models
    for _ in progress.progress(range(12), desc="12 networks", unit="model"):
        pass
    out = capsys.readouterr().out
    assert out.count("will take") == 1
    assert "12 networks will take about 4 min" in out and "12 models" in out
