"""Lesson 02 (pitfall): its rules and controls do what the verdict cell says,
on synthetic data with a known answer, and its exercise checks catch the
usual wrong answers."""
from pathlib import Path

import numpy as np
import pytest
import torch
from test_lesson_run import lesson_namespace

from aelab.models import ConvAutoencoder
from aelab.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, paired_effect

PITFALL = Path(__file__).resolve().parent.parent / "lessons" / "02_pitfall.py"
ALBERTI_CONFIGS = lesson_namespace(PITFALL, "alberti_configs")["alberti_configs"]()


def test_alberti_configs_are_small_and_reconstruct():
    assert len(ALBERTI_CONFIGS) == 10
    assert len({repr(sorted(c.items())) for c in ALBERTI_CONFIGS}) == 10
    assert max(len(c["widths"]) for c in ALBERTI_CONFIGS) == 6
    for cfg in ALBERTI_CONFIGS:
        for channels, size in [(1, 28), (3, 32)]:
            ae = ConvAutoencoder(in_channels=channels, **cfg)
            assert sum(p.numel() for p in ae.parameters()) <= 4000, cfg
            X = torch.rand(2, channels, size, size)
            assert ae(X).shape == X.shape, cfg


@pytest.fixture
def rules(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    return lesson_namespace(PITFALL, "correlates_consistently")


def r_effect(values):
    return paired_effect(values, 0.5, sense="within")


TIGHT_STRONG = [-0.92, -0.9, -0.88, -0.91, -0.89]  # |r| clearly above 0.5
TIGHT_NONE = [0.05, -0.02, 0.0, 0.03, -0.04]  # |r| clearly below 0.5
WIDE = [-0.9, 0.1, -0.6, 0.3, -0.8]  # straddles -0.5


def test_a_strong_r_on_the_same_side_in_every_dataset_is_a_consistent_correlation(
        rules):
    cell = rules["correlates_consistently"]
    assert cell([r_effect(TIGHT_STRONG), r_effect(TIGHT_STRONG)]) == NOT_REPRODUCED


def test_no_correlation_in_one_dataset_or_opposite_sides_is_not_consistent(rules):
    cell = rules["correlates_consistently"]
    assert cell([r_effect(TIGHT_STRONG), r_effect(TIGHT_NONE)]) == REPRODUCED
    opposite = [-r for r in TIGHT_STRONG]
    assert cell([r_effect(TIGHT_STRONG), r_effect(opposite)]) == REPRODUCED


def test_a_wide_interval_or_one_dataset_leaves_the_cell_undecided(rules):
    cell = rules["correlates_consistently"]
    assert cell([r_effect(TIGHT_STRONG), r_effect(WIDE)]) == INCONCLUSIVE
    assert cell([r_effect(TIGHT_STRONG)]) == INCONCLUSIVE  # consistency needs two
    assert cell([r_effect(TIGHT_STRONG[:2]), r_effect(TIGHT_STRONG[:2])]) \
        == INCONCLUSIVE  # two seeds are too few for a verdict


def test_lowest_error_gap_is_zero_when_the_lowest_error_config_is_the_best(rules):
    gap = rules["lowest_error_gap"]
    acc = {"A": [90.0, 91, 90, 89, 90], "B": [80.0, 81, 79, 80, 80]}
    err = {"A": [1.0] * 5, "B": [2.0] * 5}
    effect, lowest = gap(acc, err, 1.0)
    assert lowest == "A" and effect.mean == 0 and effect.status == NOT_REPRODUCED


def test_lowest_error_gap_finds_a_more_accurate_config(rules):
    gap = rules["lowest_error_gap"]
    acc = {"A": [80.0, 81, 79, 80, 80], "B": [90.0, 91, 89, 92, 90]}
    err = {"A": [1.0] * 5, "B": [2.0] * 5}
    effect, lowest = gap(acc, err, 1.0)
    assert lowest == "A" and effect.status == REPRODUCED
    assert effect.mean == pytest.approx(10.4)


def test_lowest_error_gap_chooses_the_best_config_on_the_other_seeds(rules):
    """B wins one seed by luck: chosen on that same seed it would show a gap of
    +10; chosen on the others, A is the best, and the gap is 0."""
    gap = rules["lowest_error_gap"]
    acc = {"A": [80.0] * 5, "B": [90.0, 70, 70, 70, 70]}
    err = {"A": [1.0] * 5, "B": [2.0] * 5}
    effect, _ = gap(acc, err, 1.0)
    assert effect.values == (0.0,) * 5


def test_lowest_error_gap_is_not_fooled_by_many_equal_configs(rules):
    rng = np.random.default_rng(0)
    acc = {f"C{i}": list(80 + rng.normal(0, 1, 10)) for i in range(10)}
    err = {f"C{i}": [float(i)] * 10 for i in range(10)}
    effect, _ = rules["lowest_error_gap"](acc, err, 1.0)
    assert effect.status != REPRODUCED


def test_any_cell_needs_one_reproduced_and_never_invents_one(rules):
    any_cell = rules["any_cell"]
    assert any_cell([NOT_REPRODUCED, REPRODUCED]) == REPRODUCED
    assert any_cell([NOT_REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert any_cell([NOT_REPRODUCED, NOT_REPRODUCED]) == NOT_REPRODUCED
    assert any_cell([]) == INCONCLUSIVE


def test_ledoit_wolf_shrinkage_matches_scikit_learn(monkeypatch):
    covariance = pytest.importorskip("sklearn.covariance")
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ledoit_wolf = lesson_namespace(PITFALL, "ledoit_wolf")["ledoit_wolf"]
    g = torch.Generator().manual_seed(0)
    for n, p in [(50, 20), (300, 40)]:
        X = torch.randn(n, p, generator=g) @ torch.randn(p, p, generator=g) * 0.1
        expected = covariance.ledoit_wolf_shrinkage(X.double().numpy())
        assert ledoit_wolf(X) == pytest.approx(expected, rel=1e-6)
    assert ledoit_wolf(torch.ones(10, 4)) == 1.0  # no spread: all identity


def test_eta_squared_is_one_for_separated_groups_and_small_for_noise(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    eta = lesson_namespace(PITFALL, "eta_squared")["eta_squared"]
    assert eta({"a": [1.0, 1.0], "b": [2.0, 2.0]}) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert eta({k: list(rng.normal(0, 1, 50)) for k in "abcd"}) < 0.1
    assert np.isnan(eta({"a": [1.0, 1.0], "b": [1.0, 1.0]}))


def test_a_folded_head_on_raw_features_equals_the_head_on_standardised_ones(
        monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(PITFALL, "make_head")
    torch.manual_seed(0)
    F_raw = torch.rand(16, 12) * 5 + 2
    mean, std = F_raw.mean(0), F_raw.std()
    for kind in ("linear", "mlp"):
        head = ns["make_head"](kind, 12)
        expected = head((F_raw - mean) / std)
        folded = ns["fold"](head, mean, std)
        assert torch.allclose(folded(F_raw), expected, atol=1e-5)


def test_head_only_control_trains_the_head_as_fine_tuning_would_on_a_frozen_encoder(
        monkeypatch):
    """(c0) on the frozen code and (c) with the encoder frozen are the same
    training: so (c) minus (c0) measures only the encoder's change."""
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(PITFALL, "make_head")
    aelab, copy = ns["aelab"], ns["copy"]
    torch.manual_seed(0)
    ae = ns["ConvAutoencoder"](widths=(4,))
    X, y = torch.rand(40, 1, 28, 28), torch.randint(0, 10, (40,))
    encoder = ns["freeze"](copy.deepcopy(ae.encoder))
    features = encoder(X).flatten(1).detach()
    head = ns["make_head"]("linear", features.shape[1])
    control = copy.deepcopy(head)
    net = ns["EncoderClassifier"](copy.deepcopy(encoder), head="linear", freeze=True)
    net.head = copy.deepcopy(head)
    settings = dict(num_epochs=3, lr=1e-2, batch_size=8, seeds=[7], quiet=True)
    loss = ns["classification_loss"]
    aelab.fit_many([control], [(features, y)], loss, **settings)
    aelab.fit_many([net], [(X, y)], loss, **settings)
    assert not torch.allclose(control[1].weight, head[1].weight)  # it trained
    assert torch.allclose(control[1].weight, net.head[1].weight, atol=1e-5)


def test_soi_check_catches_the_usual_mistakes(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(PITFALL, "check_soi", soi=lambda X, X_hat: None)
    check, metrics = ns["check_soi"], ns["metrics"]

    def plain(X, X_hat):
        return metrics.euclidean(X, X_hat)

    def no_offset(X, X_hat):  # scales but does not centre
        x, h = X.flatten(1).double(), X_hat.flatten(1).double()
        a = (x * h).sum(1) / (h * h).sum(1)
        return (x - a[:, None] * h).norm(dim=1)

    assert not check(lambda X, X_hat: None).answered
    assert not check(plain).ok
    assert not check(no_offset).ok
    assert check(metrics.scale_offset_invariant).ok


def test_decoder_only_check_catches_an_unfrozen_encoder(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(PITFALL, "check_decoder_only",
                          decoder_only=lambda autoencoder, encoder: None)
    check, copy = ns["check_decoder_only"], ns["copy"]

    def unfrozen(autoencoder, encoder):
        new = copy.deepcopy(autoencoder)
        new.encoder = copy.deepcopy(encoder)
        return new

    def right(autoencoder, encoder):
        new = copy.deepcopy(autoencoder)
        new.encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
        return new

    assert "freeze the encoder" in check(unfrozen).message
    assert check(right).ok
