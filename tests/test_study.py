"""Results and claims tables, the rules a lesson's verdict applies, and the
exercise checks."""
import json

import numpy as np
import pytest
import torch

from aelab import exercises
from aelab.study import (NOT_REPRODUCED, NOT_TESTED, REPRODUCED, Claim, Results,
                         at_least, beats, best, judge, save_run, within)


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


def test_beats_must_hold_in_every_seed_not_only_on_average():
    # A is ahead on average but behind in seed 0
    rows = rows_for({"A": 0.6, "B": 0.55}, seeds=(1, 2))
    rows += [dict(method="A", budget=n, seed=0, accuracy=0.50) for n in (20, 100, 500)]
    rows += [dict(method="B", budget=n, seed=0, accuracy=0.54) for n in (20, 100, 500)]
    ok, measured = beats("A", "B").judge(Results(rows))
    assert ok is False and "seeds -4.0" in measured
    ok, _ = beats("A", "B").judge(Results(rows_for({"A": 0.6, "B": 0.55})))
    assert ok is True
    ok, _ = beats("A", "B", margin=10).judge(Results(rows_for({"A": 0.6, "B": 0.55})))
    assert ok is False  # 5 points is not more than a 10-point margin


def test_at_least_uses_the_worst_budget_in_range():
    rows = rows_for({"A": 0.9}, budgets=(100, 500))
    rows += [dict(method="A", budget=20, seed=s, accuracy=0.3) for s in range(3)]
    results = Results(rows)
    assert at_least("A", 80).judge(results)[0] is False  # 20 labels: 30%
    assert at_least("A", 80, budgets=(100, 1000)).judge(results)[0] is True
    assert at_least("A", 80, budgets=(2000, 5000)).judge(results)[0] is None


def test_best_within_and_their_conjunction():
    results = Results(rows_for({"A": 0.8, "B": 0.7, "C": 0.75}))
    assert best("A").judge(results)[0] is True
    assert best("B").judge(results)[0] is False
    assert best("B", among=["B", "Z"]).judge(results)[0] is None  # nothing to rank
    assert within("C", "A", 6).judge(results)[0] is True
    assert within("B", "A", 6).judge(results)[0] is False
    both = at_least("A", 50) & within("B", "A", 6)
    assert both.judge(results)[0] is False and " and " in both.criterion


def test_judge_marks_each_claim_and_applies_the_rule_to_the_paper(tmp_path):
    results = Results(rows_for({"A": 0.8, "B": 0.7}))
    paper = Results([dict(method="A", budget=100, seed=0, accuracy=0.6),
                     dict(method="B", budget=100, seed=0, accuracy=0.65)])
    claims = judge([Claim("A beats B", beats("A", "B")),
                    Claim("B beats A", beats("B", "A"), paper="said in the text"),
                    Claim("A beats Z", beats("A", "Z")),
                    Claim("offline", at_least("A", 0))],
                   results, paper=paper, untested={"offline": "CIFAR-10 is offline"})
    assert [v.status for v in claims] == [REPRODUCED, NOT_REPRODUCED, NOT_TESTED,
                                          NOT_TESTED]
    assert claims[0].paper.startswith("no: A vs B: -5.0")
    assert claims[1].paper == "said in the text"
    assert claims[3].measured == "CIFAR-10 is offline"
    assert claims.counts() == {REPRODUCED: 1, NOT_REPRODUCED: 1, NOT_TESTED: 2}
    saved = json.loads(claims.save(tmp_path).read_text())
    assert saved[0]["criterion"] == "A above B by more than 0 in every seed (mean " \
                                    "over budgets)"


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
