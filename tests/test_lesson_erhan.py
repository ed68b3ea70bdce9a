"""Lesson 04 (erhan): its exercise checks catch the usual wrong answers, its
rules (stopping points, equal train NLL, the paired variance drop, the sizes)
judge synthetic data with a known answer, and `aelab run erhan` on seeds that
do not start at 0 writes the figures, the tidy rows and the six claims."""
import ast
import json
from pathlib import Path

import jupytext
import numpy as np
import pytest
import torch
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


def lesson_functions(*names, **given) -> dict:
    """The lesson's import cells, then only the named top-level functions (found
    in whichever code cell defines them), with `given` as their globals."""
    ns, code = dict(given), [c.source for c in jupytext.read(ERHAN).cells
                             if c.cell_type == "code"]
    seed = next(i for i, src in enumerate(code) if "seed_everything(" in src)
    for src in code[:seed + 1]:
        exec(compile(src, str(ERHAN), "exec"), ns)  # noqa: S102
    for src in code:
        body = [node for node in ast.parse(src).body
                if isinstance(node, ast.FunctionDef) and node.name in names]
        exec(compile(ast.Module(body, []), str(ERHAN), "exec"), ns)  # noqa: S102
    missing = [n for n in names if n not in ns]
    assert not missing, f"the lesson no longer defines {missing}"
    return ns


def test_test_nll_at_interpolates_on_log_axes_where_the_train_nll_first_gets_there():
    at = lesson_functions("test_nll_at")["test_nll_at"]
    train, test = np.array([1.0, 0.5, 0.25, 0.3]), np.array([2.0, 1.0, 1.5, 9.0])
    assert at(train, test, 0.5) == pytest.approx(1.0)
    assert at(train, test, np.sqrt(0.5 * 0.25)) == pytest.approx(np.sqrt(1.5))
    assert at(train, test, 3.0) == pytest.approx(2.0)  # starts below: the first epoch


def test_crossings_name_the_epochs_where_the_median_train_curves_swap():
    ns = lesson_functions("crossings", "describe_crossing")
    ns["MEDIANS"] = {(1, "pretraining"): {"train_nll": np.array([1, .5, .2, .1])},
                     (1, "no pretraining"): {"train_nll": np.array([.9, .6, .3, .05])}}
    assert ns["crossings"](1)[1] == [2, 4]
    said = ns["describe_crossing"](1)
    assert "cross at epoch 2, 4" in said and "from epoch 4 on, no pretraining's" in said
    ns["MEDIANS"][1, "no pretraining"]["train_nll"] = np.array([2, 1, .5, .3])
    assert "never cross: pretraining's is lower" in ns["describe_crossing"](1)


def test_the_per_seed_variance_drop_averages_to_the_drop_in_variance():
    ns = lesson_functions("output_variance", "distances", "variance_drop")
    torch.manual_seed(0)
    P_a = torch.rand(6, 50, 10).softmax(2)
    P_b = 0.5 * P_a + 0.5 * P_a.mean(0)  # half the spread: a quarter of the variance
    ns.update(ARMS=("a", "b"), VAR_MARGIN=10.0, PROBS={(1, "a"): P_a, (1, "b"): P_b})
    n, var = len(P_a), ns["output_variance"]
    assert ns["distances"](P_a).mean() * n / (n - 1) == pytest.approx(var(P_a), rel=1e-5)
    effect = ns["variance_drop"](1)
    assert effect.n == 6 and effect.mean == pytest.approx(75.0, rel=1e-4)
    assert effect.status == "REPRODUCED"


def test_the_sizes_rule_needs_l2s_gain_to_shrink_and_pretrainings_to_hold():
    ns = lesson_functions("decide", "not_all_equal")
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.1, 10)  # noqa: E731 - ten paired seeds
    ns.update(SIZES=[500, 3000], SIZE_MARGIN=0.25)
    ns["GAINS"] = {"pretraining": {500: 1 + noise(), 3000: 1 + noise()},
                   "L2 (tuned)": {500: 2 + noise(), 3000: noise()}}
    effect, measured = ns["not_all_equal"](None)
    assert effect.status == "REPRODUCED" and "minus at 500" in measured
    ns["GAINS"]["L2 (tuned)"][3000] = 2 + noise()  # L2 helps as much at every size
    assert ns["not_all_equal"](None)[0].status == "NOT REPRODUCED"
    ns["GAINS"]["pretraining"][3000] = 1 + rng.normal(0, 3, 10)  # too noisy to tell
    assert ns["not_all_equal"](None)[0].status == "NOT REPRODUCED"  # 'and': L2 decides
    ns["GAINS"]["L2 (tuned)"][3000] = noise()
    assert ns["not_all_equal"](None)[0].status == "INCONCLUSIVE"


def test_run_erhan_on_seeds_that_do_not_start_at_0_writes_figures_rows_and_claims(
        tmp_path):
    out = tmp_path / "out"
    result = aelab("run", "erhan", "--profile", "fast", "--verify", "--seeds", "3-7",
                   "--out", out, cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    assert (out / "04_erhan.ipynb").stat().st_size > 0
    assert len(list((out / "figures").glob("*.png"))) >= 5
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.startswith("method,budget,seed,arm,depth,train_nll,test_nll")
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == 6 and all(c["criterion"] and c["measured"] for c in claims)
    assert sum("stopped at" in c["claim"] for c in claims) == 3  # 1/3, 2/3, the end
    assert "pretraining lowers the variance" in result.stdout
    assert "median [IQR]" in result.stdout  # the final-epoch table, in the report
    assert "median train curves" in result.stdout  # where the train curves cross
    assert "seeds 3, 4, 5, 6, 7" in result.stdout
    assert (out / "trajectories.txt").read_text().count("<-") >= 2 * 2  # stops marked
