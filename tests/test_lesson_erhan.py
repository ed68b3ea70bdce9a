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


def given_curves(none, pre):
    """The lesson's `curves(depth, size, arm, seeds)`, answering these arrays."""
    return lambda depth, size, arm, seeds=None: pre if arm == "pretraining" else none


SPREAD = np.linspace(-2, 2, 10)  # ten paired seeds, about a mean


def stop_curves(train_higher, test_lower, stop, epochs=4):
    """Ten seeds' curves: at epoch `stop` pretraining's train NLL is higher by
    `train_higher` and its test NLL lower by `test_lower` (100 ln ratio, per
    seed); at every other epoch the reverse (train lower, test higher by 10)."""
    rng = np.random.default_rng(0)
    none = {"train_nll": np.geomspace(1, .1, epochs) * rng.uniform(.9, 1.1, (10, 1)),
            "test_nll": np.geomspace(1, .5, epochs) * rng.uniform(.9, 1.1, (10, 1))}
    train, test = np.full((10, epochs), -10.0), np.full((10, epochs), -10.0)
    train[:, stop - 1], test[:, stop - 1] = train_higher, test_lower
    return given_curves(none, {"train_nll": none["train_nll"] * np.exp(train / 100),
                               "test_nll": none["test_nll"] * np.exp(-test / 100)})


@pytest.mark.parametrize("train_higher, test_lower, status", [
    pytest.param(10 + SPREAD, 15 + SPREAD, "REPRODUCED", id="regulariser"),
    pytest.param(-10 + SPREAD, -15 + SPREAD, "NOT REPRODUCED", id="reverse"),
    pytest.param(-10 + SPREAD, 15 + SPREAD, "NOT REPRODUCED", id="train-lower"),
    pytest.param(10 + SPREAD, 5 + 2 * SPREAD, "INCONCLUSIVE", id="straddles-margin"),
])
def test_regulariser_at_a_stop_reads_that_epochs_train_and_test_nll_against_margins(
        train_higher, test_lower, status):
    ns = lesson_functions("log_ratio", "decide", "stop_effects", "regulariser_at")
    ns.update(ARMS=("no pretraining", "pretraining"), DEPTHS=(1, 2), NUM_TRAIN=500,
              SEEDS=list(range(3, 13)), TEST_MARGIN=5.0, TRAIN_MARGIN=5.0,
              curves=stop_curves(train_higher, test_lower, stop=2))
    effect, measured = ns["regulariser_at"](2)(None)
    assert effect.status == status, measured
    assert effect.n == 10 and "2 layer(s), train NLL higher by" in measured
    assert ns["regulariser_at"](3)(None)[0].status == "NOT REPRODUCED"  # the reverse


@pytest.mark.parametrize("lower_by, status", [
    pytest.param(20 + SPREAD, "REPRODUCED", id="lower-by-20"),
    pytest.param(SPREAD, "NOT REPRODUCED", id="no-lower"),
])
def test_equal_train_compares_test_nll_where_both_arms_first_reach_the_same_train_nll(
        lower_by, status):
    ns = lesson_functions("log_ratio", "decide", "test_nll_at", "equal_train",
                          "at_equal_train")
    # the lowest train NLL both arms reach is 0.25 (pretraining's last epoch):
    # there the test NLL is 0.5 without pretraining (epoch 3) and 0.5 lower by
    # `lower_by` with it; the last epochs (0.9 against 0.5) must not be compared
    none = {"train_nll": np.tile([1, .5, .25, .125], (10, 1)),
            "test_nll": np.tile([1, .6, .5, .9], (10, 1))}
    pre = {"train_nll": np.tile([1, .7, .5, .25], (10, 1)),
           "test_nll": np.outer(np.exp(-lower_by / 100), [1, .7, .6, .5])}
    ns.update(ARMS=("no pretraining", "pretraining"), DEPTHS=(1, 2), NUM_TRAIN=500,
              SEEDS=list(range(3, 13)), TEST_MARGIN=5.0, curves=given_curves(none, pre))
    ns["EQUAL"] = {d: ns["equal_train"](d) for d in ns["DEPTHS"]}  # as the lesson
    effect, measured = ns["at_equal_train"](None)
    assert effect.status == status, measured
    assert effect.mean == pytest.approx(np.mean(lower_by), abs=1e-9)
    assert "2 layer(s), at train NLL 0.2500, test NLL lower by" in measured


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
