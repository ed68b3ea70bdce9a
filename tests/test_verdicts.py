"""Paired effects, their intervals and health gates, on synthetic data whose
effect is known."""
import math

import numpy as np
import pytest

from aelab.study import Claim, Results, beats, judge
from aelab.verdicts import (INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTED, REPRODUCED,
                            Gates, combine, health_gate, paired_effect, plateau)


def synthetic(effect, seeds, noise, rng_seed=0):
    """Rows of two arms on the same seeds: B varies by subset (seed), A = B +
    effect + noise, in points."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for s in range(seeds):
        b = 70 + 5 * rng.standard_normal()
        a = b + effect + noise * rng.standard_normal()
        rows += [dict(method="A", budget=100, seed=s, accuracy=a / 100),
                 dict(method="B", budget=100, seed=s, accuracy=b / 100)]
    return Results(rows)


def test_one_point_over_ten_seeds_with_margin_half_reads_reproduced():
    claim = Claim("A beats B", beats("A", "B", margin=0.5))
    verdict, = judge([claim], synthetic(1.0, 10, noise=0.3))
    assert verdict.status == REPRODUCED


def test_no_effect_reads_not_reproduced_when_the_interval_is_narrow():
    # noise 0.2 over 10 seeds: the interval of the mean is about +-0.13 around 0,
    # wholly under the 0.5 margin, so the data say "no effect that matters"
    verdict, = judge([Claim("A beats B", beats("A", "B", margin=0.5))],
                     synthetic(0.0, 10, noise=0.2))
    assert verdict.status == NOT_REPRODUCED


def test_no_effect_reads_inconclusive_when_the_interval_is_wide():
    # noise 2 points over 5 seeds: the interval is several points wide and
    # reaches past the 0.5 margin, so 5 seeds cannot tell "none" from "some"
    verdict, = judge([Claim("A beats B", beats("A", "B", margin=0.5))],
                     synthetic(0.0, 5, noise=2.0))
    assert verdict.status == INCONCLUSIVE
    assert "straddles" in verdict.reason and "more seeds" in verdict.settle


def test_a_failed_gate_reads_inconclusive_never_not_reproduced():
    results = synthetic(0.0, 10, noise=0.2)  # NOT REPRODUCED on its own
    stalled = health_gate("A", 4, losses=[1.0, 0.8, 0.6, 0.4, 0.2])  # still falling
    verdict, = judge([Claim("A beats B", beats("A", "B", margin=0.5))], results,
                     gates=Gates([stalled]))
    assert verdict.status == INCONCLUSIVE and "A, seed 4" in verdict.reason
    assert "plateau" in verdict.settle


def test_the_interval_is_the_same_for_the_same_values_and_covers_the_mean():
    values = [0.3, 1.2, 0.8, 1.9, 0.4, 1.1]
    a, b = paired_effect(values, 0.5), paired_effect(values, 0.5)
    assert (a.low, a.high) == (b.low, b.high)
    assert a.low < np.mean(values) < a.high


def test_paired_effect_status_for_each_sense():
    tight = [1.0, 1.02, 0.98, 1.01, 0.99]
    assert paired_effect(tight, 0.5).status == REPRODUCED
    assert paired_effect(tight, 0.5, sense="below").status == NOT_REPRODUCED
    assert paired_effect(tight, 2.0, sense="below").status == REPRODUCED
    assert paired_effect(tight, 2.0, sense="within").status == REPRODUCED
    assert paired_effect(tight, 0.5, sense="within").status == NOT_REPRODUCED
    assert paired_effect([], 0.5).status == NOT_TESTED
    few = paired_effect([5.0, 5.1, 4.9], 0.5)
    assert few.status == INCONCLUSIVE and "at least 5" in few.settle()
    dropped = paired_effect([1.0, math.nan, 1.1, 0.9, 1.0, 1.05], 0.5)
    assert dropped.n == 5 and dropped.missing == 1 and "1 seed(s) missing" in str(dropped)


def test_paired_effect_refuses_what_it_cannot_judge():
    with pytest.raises(ValueError, match="sense"):
        paired_effect([1.0], sense="more")
    with pytest.raises(ValueError, match="margin"):
        paired_effect([1.0], margin=float("nan"))
    with pytest.raises(ValueError, match="positive"):
        paired_effect([1.0], margin=0, sense="within")


def test_combine_lets_any_not_reproduced_decide_an_and():
    assert combine([REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED]) == NOT_REPRODUCED
    assert combine([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([REPRODUCED, NOT_TESTED, INCONCLUSIVE]) == NOT_TESTED
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED


def test_plateau_tells_a_flat_tail_from_a_falling_one():
    flat = [1.0, 0.4, 0.2, 0.15, 0.149, 0.1485, 0.148, 0.1478]
    falling = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert plateau(flat)[0] and not plateau(falling)[0]
    near_zero = [1.0, 0.1, 0.01, 0.002, 0.0019, 0.0018, 0.00175, 0.0017]
    assert plateau(near_zero)[0]  # tiny steps near 0 are flat, though large relatively
    assert not plateau([1.0, math.nan, 0.5])[0]


def test_health_gate_checks_constant_image_chance_and_plateau():
    ok = health_gate("AE", 0, error=0.02, constant_error=0.07,
                     losses=[1, 0.5, 0.3, 0.3, 0.3, 0.3])
    assert ok.ok and set(ok.checks) == {"beats constant", "plateau"}
    dead = health_gate("AE", 1, error=0.069, constant_error=0.07)
    assert not dead.ok and "beats constant" in dead.failures()[0]
    chance = health_gate("probe", 0, accuracy=0.12, chance=0.1)
    assert not chance.ok
    table = str(Gates([ok, dead, chance]))
    assert "1 of 3 models passed" in table and "AE, seed 1" in table
    with pytest.raises(ValueError, match="needs losses"):
        health_gate("AE", 0)


def test_gates_summary_counts_each_arm_and_says_why_a_seed_failed():
    gates = Gates([health_gate("AE", s, error=0.02, constant_error=0.07) for s in range(3)]
                  + [health_gate("probe", 0, accuracy=0.9, chance=0.1),
                     health_gate("probe", 1, accuracy=0.11, chance=0.1)])
    text = gates.summary()
    assert "AE     3/3" in text and "probe  1/2" in text
    assert "seed 1 FAILED: beats chance: 11.0% vs chance 10.0%" in text
    assert text.endswith("4 of 5 models passed their gate")
    assert [g.model for g in gates.failures(["probe"])] == ["probe, seed 1"]
    assert gates.failures(["AE"]) == []


def test_an_inconclusive_line_says_its_own_reason():
    """Too few seeds, or a lesson rule's own why, is what the table says, not
    a blanket 'the interval straddles the margin'."""
    from aelab.study import Claim, Results, judge, rule

    few = paired_effect([1.0, 1.2, 0.9], 0.5)
    assert few.status == INCONCLUSIVE and "fewer than the 5" in few.reason()
    wide = paired_effect([3.0, -2.0, 4.0, -1.0, 0.5, 2.0], 0.5)
    assert wide.status == INCONCLUSIVE and wide.reason() == (
        "the 95% interval straddles the margin")
    results = Results([dict(method="a", budget=10, seed=0, accuracy=0.5)])
    table = judge([
        Claim("few seeds", rule("c", lambda r: (few, ""))),
        Claim("own why", rule("c", lambda r: (INCONCLUSIVE, "1 of 12 converged",
                                              "too few converged autoencoders"))),
    ], results)
    assert [v.reason for v in table] == [few.reason(), "too few converged autoencoders"]


def test_to_settle_lists_each_remedy_once_and_is_empty_when_nothing_is_open():
    from aelab.study import Claim, Results, judge, rule

    few = paired_effect([1.0, 1.2, 0.9], 0.5)
    results = Results([dict(method="a", budget=10, seed=0, accuracy=0.5)])
    table = judge([Claim("one", rule("c", lambda r: (few, ""))),
                   Claim("two", rule("c", lambda r: (few, "")))], results)
    assert table.to_settle() == f"* **To settle the inconclusive ones:** {few.settle()}."
    done = judge([Claim("yes", rule("c", lambda r: (True, "held")))], results)
    assert done.to_settle() == ""
