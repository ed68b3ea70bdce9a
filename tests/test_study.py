"""Results and claims tables, the rules a lesson's verdict applies, and the
exercise checks."""
import json

import numpy as np
import pytest
import torch

from aelab import exercises
from aelab.study import (INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTED, REPRODUCED, Claim,
                         Gates, Results, at_least, beats, best, health_gate, judge,
                         save_run, within)


def rows_for(means: dict, budgets=(20, 100, 500), seeds=(0, 1, 2), spread=0.01):
    """Rows whose accuracy is means[method] + a per-seed offset."""
    return [dict(method=m, budget=n, seed=s, accuracy=v + spread * (s - 1))
            for m, v in means.items() for n in budgets for s in seeds]


def test_results_table_gives_mean_and_seed_band_per_method_and_budget():
    rows = [dict(method="A", budget=10, seed=s, accuracy=a)
            for s, a in enumerate([0.5, 0.7, 0.6])]
    rows += [dict(method="B", budget=10, seed=s, accuracy=0.4) for s in range(3)]
    table = Results(rows).table()
    a = next(r for r in table if r["method"] == "A")
    assert a["mean"] == pytest.approx(60) and (a["low"], a["high"]) == (50, 70)
    assert a["seeds"] == 3
    winner, = Results(rows).winners()
    assert winner["best"] == "A" and winner["gap"] == pytest.approx(20)
    assert "60.0 [50-70]" in str(Results(rows))


def test_results_values_are_seeds_by_budgets_within_a_range():
    results = Results(rows_for({"A": 0.5}))
    budgets, v = results.values("A", (200, 1000))
    assert budgets == [500] and v.shape == (3, 1)
    with pytest.raises(KeyError, match="no results for method 'Z'"):
        results.values("Z")
    with pytest.raises(ValueError, match="lacks"):
        Results([dict(method="A", seed=0, accuracy=1.0)])


def test_results_save_writes_the_tidy_rows_and_the_table(tmp_path):
    rows = rows_for({"A": 0.5, "B": 0.6})
    Results(rows).save(tmp_path)
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0] == "method,budget,seed,accuracy" and len(lines) == 1 + len(rows)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["table"]) == 6 and saved["winners"][0]["best"] == "B"


def paired_rows(gaps, base=0.7, budgets=(100, 500), rival="B", method="A"):
    """A's accuracy = B's + gaps[seed] points, B varying a lot between seeds
    (as subsets do), so only a paired comparison sees the gap clearly."""
    rows = []
    for s, g in enumerate(gaps):
        b = base + 0.05 * np.sin(3.0 * s)
        for n in budgets:
            rows += [dict(method=rival, budget=n, seed=s, accuracy=b),
                     dict(method=method, budget=n, seed=s, accuracy=b + g / 100)]
    return rows


def test_beats_judges_the_paired_interval_against_the_margin():
    rng = np.random.default_rng(0)
    clear = Results(paired_rows(1.0 + 0.3 * rng.standard_normal(10)))
    found = beats("A", "B", margin=0.5).judge(clear)
    assert found.status == REPRODUCED and "over 10 seeds" in found.measured
    assert beats("A", "B", margin=3).judge(clear).status == NOT_REPRODUCED
    # a mean win with one seed far behind: the interval reaches below the margin
    shaky = Results(paired_rows([2.0, 2.5, 1.8, -4.0, 2.2, 0.1]))
    found = beats("A", "B", margin=0.5).judge(shaky)
    assert found.status == INCONCLUSIVE and "more seeds" in found.settle
    assert "(5/6 > 0)" in found.measured  # sign counts shown, deciding nothing


def test_a_rival_run_on_other_seeds_is_refused_in_one_line():
    rows = [dict(method="A", budget=10, seed=s, accuracy=0.8) for s in (0, 1)]
    rows += [dict(method="B", budget=10, seed=s, accuracy=0.7) for s in (5, 6)]
    with pytest.raises(ValueError, match="same seeds in both arms"):
        beats("A", "B").judge(Results(rows))


def test_every_budget_judges_each_budget_not_their_mean():
    rows = paired_rows([3.0, 3.2, 2.9, 3.1, 3.0], budgets=(100,))
    rows += paired_rows([-1.0, -1.1, -0.9, -1.0, -1.2], budgets=(500,))
    results = Results(rows)
    assert beats("A", "B", margin=0.5).judge(results).status == REPRODUCED  # mean +1
    found = beats("A", "B", margin=0.5, every_budget=True).judge(results)
    assert found.status == NOT_REPRODUCED and "at 500" in found.measured


def test_at_least_needs_every_budget_in_range_above_the_threshold():
    rows = rows_for({"A": 0.9}, budgets=(100, 500), seeds=range(5))
    rows += [dict(method="A", budget=20, seed=s, accuracy=0.3) for s in range(5)]
    results = Results(rows)
    assert at_least("A", 80).judge(results).status == NOT_REPRODUCED  # 20 labels: 30%
    assert at_least("A", 80, budgets=(100, 1000)).judge(results).status == REPRODUCED
    assert at_least("A", 80, budgets=(2000, 5000)).judge(results).status == NOT_TESTED


def test_too_few_seeds_give_no_verdict_whatever_the_gap():
    results = Results(rows_for({"A": 0.9, "B": 0.5}))  # 3 seeds, 40 points apart
    found = beats("A", "B", margin=1).judge(results)
    assert found.status == INCONCLUSIVE and "at least 5" in found.settle


def test_best_and_within_one_and_two_sided():
    results = Results(rows_for({"A": 0.8, "B": 0.7, "C": 0.75}, seeds=range(6)))
    assert best("A", margin=1).judge(results).status == REPRODUCED
    assert best("B", margin=1).judge(results).status == NOT_REPRODUCED
    assert best("B", among=["B", "Z"]).judge(results).status == NOT_TESTED
    assert within("C", "A", 6).judge(results).status == REPRODUCED   # 5 below, one-sided
    assert within("B", "A", 6).judge(results).status == NOT_REPRODUCED  # 10 below
    assert within("A", "C", 6).judge(results).status == REPRODUCED   # above is fine
    assert within("A", "C", 6, two_sided=True).judge(results).status == REPRODUCED
    assert within("A", "B", 6, two_sided=True).judge(results).status == NOT_REPRODUCED
    both = at_least("A", 50) & within("B", "A", 6)
    assert both.judge(results).status == NOT_REPRODUCED and " and " in both.criterion
    assert set(both.arms) == {"A", "B"}


def test_judge_marks_each_claim_and_applies_the_rule_to_the_paper(tmp_path):
    results = Results(rows_for({"A": 0.8, "B": 0.7}, seeds=range(5)))
    paper = Results([dict(method="A", budget=100, seed=0, accuracy=0.6),
                     dict(method="B", budget=100, seed=0, accuracy=0.65)])
    claims = judge([Claim("A beats B", beats("A", "B", margin=1)),
                    Claim("B beats A", beats("B", "A"), paper="said in the text"),
                    Claim("A beats Z", beats("A", "Z")),
                    Claim("offline", at_least("A", 0))],
                   results, paper=paper, untested={"offline": "CIFAR-10 is offline"})
    assert [v.status for v in claims] == [REPRODUCED, NOT_REPRODUCED, NOT_TESTED,
                                          NOT_TESTED]
    assert claims[0].paper.startswith("no: vs B: -5.00 points (one value)")
    assert claims[1].paper == "said in the text"
    assert claims[3].measured == "CIFAR-10 is offline"
    assert claims.counts() == {REPRODUCED: 1, NOT_REPRODUCED: 1, INCONCLUSIVE: 0,
                               NOT_TESTED: 2}
    saved = json.loads(claims.save(tmp_path).read_text())
    assert saved[0]["criterion"] == claims[0].criterion
    assert "A minus B" in saved[0]["criterion"] and "above 1" in saved[0]["criterion"]


def test_a_failed_gate_reads_inconclusive_naming_the_model():
    results = Results(paired_rows([1.0, 1.2, 0.9, 1.1, 1.0, 1.05]))
    gates = Gates([health_gate("A", s, error=0.02, constant_error=0.06) for s in range(6)]
                  + [health_gate("B", 3, error=0.059, constant_error=0.06)])
    claim = Claim("A beats B", beats("A", "B", margin=0.5))
    verdict, = judge([claim], results)
    assert verdict.status == REPRODUCED
    verdict, = judge([claim], results, gates=gates)
    assert verdict.status == INCONCLUSIVE and "B, seed 3" in verdict.reason
    assert "beats constant" in verdict.settle
    # a gate on a model the claim does not rest on changes nothing
    other, = judge([Claim("A beats B", beats("A", "B", margin=0.5), models=("A",))],
                   results, gates=gates)
    assert other.status == REPRODUCED


def test_results_refuse_rows_a_student_could_plausibly_pass():
    good = dict(method="A", budget=10, seed=0, accuracy=0.5)
    with pytest.raises(ValueError, match="row 1 lacks"):
        Results([good, dict(method="A", budget=10, accuracy=0.5)])
    with pytest.raises(ValueError, match="is text"):
        Results([dict(good, accuracy="0.5")])  # read back from results.csv
    with pytest.raises(ValueError, match="NaN"):
        Results([dict(good, accuracy=float("nan"))])
    assert Results([dict(good, accuracy=np.float32(0.5))]).rows[0]["accuracy"] == 0.5


def test_a_lesson_rule_may_answer_with_an_effect():
    from aelab.study import paired_effect, rule
    r = rule("made up", lambda _: (paired_effect([1.0, 1.1, 0.9, 1.0, 1.2], 0.5), ""),
             arms=("A",))
    found = r.judge(None)
    assert found.status == REPRODUCED and "over 5 seeds" in found.measured
    assert rule("x", lambda _: (None, "offline")).judge(None).status == NOT_TESTED
    assert r.arms == ("A",)


def test_save_run_writes_only_under_aelab_run(tmp_path, monkeypatch):
    results = Results(rows_for({"A": 0.5}))
    monkeypatch.delenv("AELAB_OUT", raising=False)
    assert save_run(results=results) == []
    monkeypatch.setenv("AELAB_OUT", str(tmp_path / "out"))
    paths = save_run(results=results, extra={"n": np.int64(3)})
    assert sorted(p.name for p in paths) == ["extra.json", "results.csv"]
    assert json.loads((tmp_path / "out" / "extra.json").read_text()) == {"n": 3}


def test_exercise_check_gives_the_first_failing_hint():
    def square(x):
        return x * x

    def cases(fn):
        return exercises.check("Exercise 9", [
            (lambda: exercises.close(exercises.answer(fn(2.0)), 4.0), "square it"),
            (lambda: exercises.close(fn(torch.tensor(3.0)), 9.0), "tensors too")])

    assert cases(square).ok and str(cases(square)).startswith("✓ Exercise 9")
    wrong = cases(lambda x: x + x)
    assert not wrong.ok and wrong.answered and wrong.message == "tensors too"
    broken = cases(lambda x: x.nope)
    assert "it raised AttributeError" in broken.message
    unanswered = cases(lambda x: None)
    assert not unanswered.answered and "placeholder" in unanswered.message


def test_require_stops_with_one_line_naming_the_exercise():
    check = exercises.check("Exercise 2", [(False, "freeze every parameter")])
    with pytest.raises(exercises.ExerciseNotDone) as err:
        check.require()
    text = str(err.value)
    assert "\n" not in text and text.startswith("Exercise 2 does not pass")
    assert "freeze every parameter" in text
    rendered = err.value._render_traceback_()  # what IPython shows instead
    assert len(rendered) == 1 and "Exercise 2" in rendered[0]
    exercises.check("Exercise 2", [(True, "")]).require()  # passes silently
