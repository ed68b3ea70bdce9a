"""Lesson 04 (erhan): its exercise checks catch the usual wrong answers, and
`aelab run erhan` writes the figures, the tidy rows and the three claims."""
import json
from pathlib import Path

import pytest
from test_lesson_run import aelab, lesson_namespace

ERHAN = Path(__file__).resolve().parent.parent / "lessons" / "04_erhan.py"


def test_denoising_loss_check_catches_the_usual_mistakes(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(ERHAN, "check_denoising_loss", MASK=0.25,
                          denoising_loss=lambda model, batch: None)
    check, F, torch = ns["check_denoising_loss"], ns["F"], ns["torch"]
    bce = F.binary_cross_entropy_with_logits

    def placeholder(model, batch):
        X, = batch
        ...  # your code here

    def clean_input(model, batch):  # an ordinary autoencoder
        return bce(model(batch[0]), batch[0])

    def added_noise(model, batch):
        X, = batch
        return bce(model(X + 0.1 * torch.randn_like(X)), X)

    def half_masked(model, batch):
        X, = batch
        return bce(model(X * (torch.rand_like(X) >= 0.5)), X)

    def squared_error(model, batch):
        X, = batch
        return F.mse_loss(model(X * (torch.rand_like(X) >= 0.25)), X)

    def noisy_target(model, batch):
        X, = batch
        X_tilde = X * (torch.rand_like(X) >= 0.25)
        return bce(model(X_tilde), X_tilde)

    def right(model, batch):
        X, = batch
        return bce(model(X * (torch.rand_like(X) >= 0.25)), X)

    assert not check(placeholder).answered
    assert "corrupt it first" in check(clean_input).message
    assert "no added noise" in check(added_noise).message
    assert "share MASK" in check(half_masked).message
    assert "not the MSE" in check(squared_error).message
    assert "clean X, not the corrupted" in check(noisy_target).message
    assert check(right).ok
    with pytest.raises(ns["aelab"].exercises.ExerciseNotDone, match="Exercise 1"):
        check(clean_input).require()


def test_greedy_check_catches_layers_that_skip_the_codes_below(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(ERHAN, "dae", WIDTH=8)
    ns = lesson_namespace(ERHAN, "encode", **ns)
    ns = lesson_namespace(ERHAN, "check_greedy", **ns)
    check, encode = ns["check_greedy"], ns["encode"]

    def placeholder(X, widths, seeds, train_daes):
        return {seed: [] for seed in seeds}  # the stub: nothing trained

    def all_on_pixels(X, widths, seeds, train_daes):
        stacks = {seed: [] for seed in seeds}
        for layer, width in enumerate(widths):
            for seed, d in zip(seeds, train_daes([X] * len(seeds), width, layer)):
                stacks[seed].append(d[0])
        return stacks

    def greedy(keep):  # the right loop, keeping keep(dae) in each stack
        def loop(X, widths, seeds, train_daes):
            codes, stacks = [X] * len(seeds), {seed: [] for seed in seeds}
            for layer, width in enumerate(widths):
                daes = train_daes(codes, width, layer)
                for i, (seed, d) in enumerate(zip(seeds, daes)):
                    stacks[seed].append(keep(d))
                    codes[i] = encode(d[0], codes[i])
            return stacks
        return loop

    whole_daes, right = greedy(lambda d: d), greedy(lambda d: d[0])

    assert not check(placeholder).answered
    assert "codes of the layer below" in check(all_on_pixels).message
    assert "encoder layer" in check(whole_daes).message
    assert check(right).ok


def test_run_erhan_writes_figures_rows_and_the_three_claims(tmp_path):
    out = tmp_path / "out"
    result = aelab("run", "erhan", "--profile", "fast", "--verify", "--out", out,
                   cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    assert (out / "04_erhan.ipynb").stat().st_size > 0
    assert len(list((out / "figures").glob("*.png"))) >= 5
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.startswith("method,budget,seed,arm,depth,train_nll,test_nll")
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == 3 and all(c["criterion"] and c["measured"] for c in claims)
    assert "pretraining lowers the variance" in result.stdout
    assert "median [IQR]" in result.stdout  # the final-epoch table, in the report
