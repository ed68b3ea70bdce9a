"""Lesson 03 (skips): its exercise checks catch the usual wrong answers, and
`aelab run skips` prints the per-layer, few-label and claims tables."""
import json
from pathlib import Path

import pytest
from test_lesson_run import aelab, lesson_namespace

SKIPS = Path(__file__).resolve().parent.parent / "lessons" / "03_skips.py"


def test_denoising_loss_check_catches_the_usual_mistakes(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(SKIPS, "check_denoising_loss",
                          denoising_loss=lambda kind, level: None)
    check, F, corrupt = ns["check_denoising_loss"], ns["F"], ns["corrupt"]

    def placeholder(kind, level):
        def loss_fn(model, batch):
            X, = batch
            ...  # your code here
        return loss_fn

    def clean_input(kind, level):  # a plain autoencoder: nothing to denoise
        return lambda model, batch: F.mse_loss(model(batch[0]), batch[0])

    def noisy_target(kind, level):  # compares with the corrupted image
        def loss_fn(model, batch):
            X_tilde = corrupt(batch[0], kind, level)
            return F.mse_loss(model(X_tilde), X_tilde)
        return loss_fn

    def fixed_kind(kind, level):
        return lambda model, batch: F.mse_loss(
            model(corrupt(batch[0], "small_blocks", 0.25)), batch[0])

    def right(kind, level):
        return lambda model, batch: F.mse_loss(model(corrupt(batch[0], kind, level)),
                                               batch[0])

    assert not check(placeholder).answered
    assert "corrupt X first" in check(clean_input).message
    assert "corrupt X first" in check(noisy_target).message  # identity: loss 0
    assert "the kind and level you were given" in check(fixed_kind).message
    assert check(right).ok
    with pytest.raises(ns["aelab"].exercises.ExerciseNotDone, match="Exercise 1"):
        check(clean_input).require()


def test_small_decoder_check_catches_wrong_upsampling_and_channels(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(SKIPS, "check_small_decoder",
                          small_decoder=lambda *args, **kw: None)
    check, nn = ns["check_small_decoder"], ns["nn"]

    def one_conv(channels, downsamplings, *, width=8, out_channels=1):
        return nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1))

    def grey_only(channels, downsamplings, *, width=8, out_channels=1):
        layers, c = [], channels
        for _ in range(downsamplings):
            layers += [nn.ConvTranspose2d(c, width, 4, stride=2, padding=1), nn.ReLU()]
            c = width
        return nn.Sequential(*layers, nn.Conv2d(c, 1, 3, padding=1))

    def right(channels, downsamplings, *, width=8, out_channels=1):
        layers, c = [], channels
        for _ in range(downsamplings):
            layers += [nn.ConvTranspose2d(c, width, 4, stride=2, padding=1), nn.ReLU()]
            c = width
        return nn.Sequential(*layers, nn.Conv2d(c, out_channels, 3, padding=1))

    assert "ConvTranspose2d" in check(one_conv).message
    assert "out_channels" in check(grey_only).message
    assert check(right).ok


def test_run_skips_prints_layer_table_for_three_networks_and_claims(tmp_path):
    out = tmp_path / "out"
    result = aelab("run", "skips", "--profile", "fast", "--verify", "--out", out,
                   cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = (out / "report.txt").read_text()
    for name in ("skips", "no skips", "supervised", "pixels"):
        assert f" {name} " in report
    assert "per-layer probes" in report and "denoising PSNR" in report
    layers = json.loads((out / "layers.json").read_text())
    assert {r["network"] for r in layers} == {"skips", "no skips", "supervised"}
    assert "pretraining with skips beats pretraining without" in result.stdout
