"""Lesson 05 (joint): its exercise checks catch the usual wrong answers, and
`aelab run joint` prints the accuracy, lambda, inversion and claims tables."""
import json
from pathlib import Path

import pytest
from test_lesson_run import aelab, lesson_namespace

JOINT = Path(__file__).resolve().parent.parent / "lessons" / "05_joint.py"


def test_unpool_check_catches_fixed_nearest_and_unsized_unpooling(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(JOINT, "check_unpool",
                          unpool_with_switches=lambda *args: None)
    check, F, nn, FixedUnpool = ns["check_unpool"], ns["F"], ns["nn"], ns["FixedUnpool"]

    def placeholder(X, switches, output_size):
        ...  # your code here

    def fixed(X, switches, output_size):
        return FixedUnpool()(X, output_size=output_size)

    def nearest(X, switches, output_size):
        return F.interpolate(X, size=tuple(output_size), mode="nearest")

    def no_output_size(X, switches, output_size):
        return nn.MaxUnpool2d(2)(X, switches)

    def right(X, switches, output_size):
        return nn.MaxUnpool2d(2)(X, switches, output_size=output_size)

    assert not check(placeholder).answered
    assert "fixed unpooling" in check(fixed).message
    assert "one value per pooled window" in check(nearest).message
    assert "use output_size" in check(no_output_size).message
    assert check(right).ok
    with pytest.raises(ns["aelab"].exercises.ExerciseNotDone, match="Exercise 1"):
        check(fixed).require()


def test_joint_loss_check_catches_missing_terms_sums_and_weights(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(JOINT, "check_joint_loss", joint_loss=lambda *args: None)
    check, F = ns["check_joint_loss"], ns["F"]

    def placeholder(logits, y, recons, lam, gammas):
        ...  # your code here

    def ce_only(logits, y, recons, lam, gammas):
        return F.cross_entropy(logits, y)

    def lam_on_c(logits, y, recons, lam, gammas):
        U = sum(g * F.mse_loss(p, t) for g, (t, p) in zip(gammas, recons))
        return lam * F.cross_entropy(logits, y) + U

    def summed(logits, y, recons, lam, gammas):
        U = sum(g * F.mse_loss(p, t, reduction="sum") for g, (t, p) in zip(gammas,
                                                                           recons))
        return F.cross_entropy(logits, y) + lam * U

    def first_pair(logits, y, recons, lam, gammas):
        t, p = recons[0]
        return F.cross_entropy(logits, y) + lam * gammas[0] * F.mse_loss(p, t)

    def no_gammas(logits, y, recons, lam, gammas):
        return F.cross_entropy(logits, y) + lam * sum(F.mse_loss(p, t)
                                                      for t, p in recons)

    def right(logits, y, recons, lam, gammas):
        U = sum(g * F.mse_loss(p, t) for g, (t, p) in zip(gammas, recons))
        return F.cross_entropy(logits, y) + lam * U

    assert not check(placeholder).answered
    assert "mean squared error" in check(ce_only).message
    assert "cross-entropy alone" in check(lam_on_c).message
    assert "mean squared error" in check(summed).message
    assert "every (target, prediction) pair" in check(first_pair).message
    assert "gammas[l]" in check(no_gammas).message
    assert check(right).ok


def test_run_joint_prints_accuracy_lambda_and_inversion_tables_and_claims(tmp_path):
    out = tmp_path / "out"
    result = aelab("run", "joint", "--profile", "fast", "--verify", "--out", out,
                   cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = (out / "report.txt").read_text()
    for arm in ("classifier alone", "SAE-first", "SAE-all", "SAE-layerwise",
                "SWWAE-first", "SWWAE-all", "SWWAE-layerwise", "SWWAE-all λ=10"):
        assert f"\n{arm} " in report
    assert "inversion: test MSE" in report and "best constant image" in report
    inversion = json.loads((out / "inversion.json").read_text())
    assert {r["unpool"] for r in inversion} == {"known switches", "fixed"}
    assert {r["layer"] for r in inversion} == {1, 2}
    rows = json.loads((out / "rows.json").read_text())["rows"]
    assert {r["lam"] for r in rows} == {0.0, 1.0, 10.0}
    assert "C + λU beats C alone at 50 labels (mnist)" in result.stdout
    assert "known switches reconstruct better than fixed unpooling" in result.stdout
