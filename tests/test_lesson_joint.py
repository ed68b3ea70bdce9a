"""Lesson 05 (joint): its exercise checks catch the usual wrong answers, its own
rules judge what they say on synthetic data, and `aelab run joint` on fresh
seeds prints the accuracy, paired-gap, lambda, inversion, gate and claims tables."""
import ast
import json
from pathlib import Path

import jupytext
import numpy as np
import pytest
from test_lesson_run import aelab, lesson_namespace

from aelab.study import Results, beats

JOINT = Path(__file__).resolve().parent.parent / "lessons" / "05_joint.py"


def with_cell(ns: dict, define: str) -> dict:
    """Run the lesson's code cell that defines `define` in the namespace `ns`."""
    code = [c.source for c in jupytext.read(JOINT).cells if c.cell_type == "code"]
    src = next(s for s in code if f"class {define}(" in s or f"def {define}(" in s)
    exec(compile(src, str(JOINT), "exec"), ns)  # noqa: S102
    return ns


def test_unpool_check_catches_fixed_nearest_and_unsized_unpooling(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = with_cell(with_cell(lesson_namespace(JOINT, "check_unpool",
                                              unpool_with_switches=lambda *args: None),
                             "FixedUnpool"), "AugmentedNet")  # the net its probe trains
    check, F, nn, FixedUnpool = ns["check_unpool"], ns["F"], ns["nn"], ns["FixedUnpool"]

    def placeholder(X, switches, output_size):
        ...  # your code here

    def fixed(X, switches, output_size):
        return FixedUnpool()(X, switches, output_size)

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
    ns = with_cell(with_cell(lesson_namespace(JOINT, "check_joint_loss",
                                              joint_loss=lambda *args: None),
                             "FixedUnpool"), "AugmentedNet")  # the net its probe trains
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


def test_detached_targets_are_constants_and_the_variants_share_parameters(
        monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = with_cell(lesson_namespace(JOINT, "switch_pool"), "AugmentedNet")
    torch = ns["torch"]
    X = torch.rand(3, 1, 28, 28)
    for detach in (False, True):
        net = ns["AugmentedNet"](unpool=ns["FixedUnpool"](), mode="layerwise",
                                 widths=(4, 8), detach=detach)
        (image, _), (a_1, a_1_hat) = net(X)[1]
        assert not image.requires_grad  # the image is data either way
        assert a_1.requires_grad is not detach  # a detached target is a constant of U
        assert a_1_hat.requires_grad  # the prediction always trains
    names = {mode: [n for n, _ in ns["AugmentedNet"](unpool=ns["FixedUnpool"](),
                                                      mode=mode).named_parameters()]
             for mode in ("first", "all", "layerwise")}
    assert names["first"] == names["all"] == names["layerwise"]


def gap_rows(method, rival, gaps, value="accuracy", base=0.8):
    """Paired rows: method = rival + gap (seed by seed), one budget."""
    rows = []
    for seed, gap in enumerate(gaps, start=5):
        rows.append(dict(method=rival, budget=100, seed=seed, **{value: base}))
        rows.append(dict(method=method, budget=100, seed=seed, **{value: base + gap}))
    return rows


def test_on_judges_its_rule_on_its_own_table_not_the_accuracy(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(JOINT, "inversion_rule")
    rng = np.random.default_rng(0)
    accuracy = Results(gap_rows("SWWAE", "SAE", rng.normal(0, 0.002, 10)))
    errors = Results(gap_rows("SAE", "SWWAE", 20 + rng.normal(0, 1, 10),
                              value="recon_pct", base=40), value="recon_pct",
                     scale=1.0, unit="%")
    on = ns["On"](errors, beats("SAE", ["SWWAE"], margin=5.0), "image MSE")
    assert on.arms == ("SAE", "SWWAE") and on.criterion.startswith("image MSE: ")
    assert on.judge(accuracy).status == "REPRODUCED"  # judged on the errors
    assert beats("SAE", ["SWWAE"], margin=5.0).judge(accuracy).status \
        == "NOT REPRODUCED"


MARGINS = {"MARGIN", "SWITCH_MARGIN", "RECON_MARGIN", "INV_MARGIN", "DEEPER_MARGIN",
           "MODES", "AUGMENTED"}  # the names the claims cell reads from section 4


def lesson_claims(rows) -> dict:
    """{claim text: Claim} as the lesson's claims cell builds them from `rows`
    (one dataset, mnist): section 4's assignments of MARGINS, then that cell's
    statements up to `claims = judge(...)`; nothing trains, nothing is judged."""
    ns = lesson_namespace(JOINT, "inversion_rule")  # the imports, On and every
    ns.update(rows=rows, DATA={"mnist": None}, MISSING={}, WIDTHS=(4, 8),
              INVERT={"known switches": "SWWAE", "fixed": "SAE"})
    code = [c.source for c in jupytext.read(JOINT).cells if c.cell_type == "code"]

    def assigns(node, names):
        return isinstance(node, ast.Assign) and bool(
            names & {getattr(n, "id", None) for t in node.targets for n in ast.walk(t)})
    margins = ast.parse(next(s for s in code if "RECON_MARGIN = " in s)).body
    body = ast.parse(next(s for s in code if "CLAIMS, untested = " in s)).body
    upto = next(i for i, node in enumerate(body) if assigns(node, {"claims"}))
    statements = [n for n in margins if assigns(n, MARGINS)] + body[:upto]
    exec(compile(ast.Module(statements, []), str(JOINT), "exec"), ns)  # noqa: S102
    return {c.claim: c for c in ns["CLAIMS"]}


def joint_rows(switch_gain=0.0, all_gain=0.0, recon_gap=20.0, seeds=range(5, 15)):
    """Ten seeds of the six augmented arms (mnist, one budget): SWWAE's image
    MSE `recon_gap` points under SAE's, its accuracy `switch_gain` above SAE's,
    each -all's accuracy `all_gain` above its -first's, plus a little noise."""
    rng, rows = np.random.default_rng(0), []
    for seed in seeds:
        for kind in ("SAE", "SWWAE"):
            for mode in ("first", "all", "layerwise"):
                acc = 0.8 + (kind == "SWWAE") * switch_gain + (mode == "all") * all_gain
                recon = 40 - (kind == "SWWAE") * recon_gap
                rows.append(dict(method=f"{kind}-{mode} (mnist)", budget=100, seed=seed,
                                 accuracy=acc + rng.normal(0, 0.001),
                                 recon_pct=recon + rng.normal(0, 1),
                                 train_accuracy=0.9))
    return rows


@pytest.mark.parametrize("switch_gain, recon_gap, status", [
    pytest.param(0.0, 20.0, "REPRODUCED", id="mse-20-lower-same-accuracy"),
    pytest.param(0.03, 20.0, "NOT REPRODUCED", id="switches-add-3-points"),
    pytest.param(0.0, 0.0, "NOT REPRODUCED", id="mse-no-lower"),
])
def test_switches_rule_needs_a_lower_image_mse_and_accuracy_within_one_point(
        monkeypatch, switch_gain, recon_gap, status):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    rows = joint_rows(switch_gain=switch_gain, recon_gap=recon_gap)
    claim = lesson_claims(rows)["switches help the reconstruction, not the accuracy "
                                "(mnist)"]
    found = claim.rule.judge(Results(rows))
    assert found.status == status, found.measured
    assert found.measured.count("SWWAE-") >= 6  # image MSE and accuracy, each wiring


@pytest.mark.parametrize("all_gain, status", [
    pytest.param(0.02, "REPRODUCED", id="all-2-points-above-first"),
    pytest.param(0.0, "NOT REPRODUCED", id="no-gain"),
])
def test_all_beats_first_rule_needs_both_kinds_past_the_accuracy_margin(
        monkeypatch, all_gain, status):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    rows = joint_rows(all_gain=all_gain)
    claim = lesson_claims(rows)["the layer-wise loss regularises: -all beats -first "
                                "(mnist)"]
    found = claim.rule.judge(Results(rows))
    assert found.status == status, found.measured
    assert "vs SAE-first (mnist)" in found.measured
    assert "vs SWWAE-first (mnist)" in found.measured


@pytest.mark.parametrize("ratios, status", [
    ({1: 1.5, 2: 1.8, 3: 2.5}, "REPRODUCED"),  # better at every layer, more so deeper
    ({1: 1.5, 2: 1.0, 3: 2.5}, "NOT REPRODUCED"),  # a tie at layer 2
    ({1: 2.0, 2: 2.0, 3: 2.0}, "NOT REPRODUCED"),  # better, but not more so deeper
])
def test_inversion_rule_needs_every_layer_and_a_larger_gap_deeper(monkeypatch, ratios,
                                                                 status):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(JOINT, "inversion_rule")
    seeds = range(10, 20)
    noise = {k: np.random.default_rng(k).normal(0, 0.02, len(seeds)) for k in ratios}
    ns.update(WIDTHS=(8, 16, 32), INV_MARGIN=1.1, DEEPER_MARGIN=0.2,
              inversion_ratios=lambda ds, k: list(ratios[k] + noise[k]))
    found = ns["inversion_rule"]("mnist").judge(None)
    assert found.status == status, found.measured
    assert "layer 3 minus layer 1" in found.measured


def test_run_joint_on_fresh_seeds_prints_its_tables_gates_and_claims(tmp_path):
    out = tmp_path / "out"
    result = aelab("run", "joint", "--profile", "fast", "--verify", "--seeds", "3,4",
                   "--out", out, cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = (out / "report.txt").read_text()
    for arm in ("classifier alone", "SAE-first", "SAE-all", "SAE-layerwise",
                "SWWAE-first", "SWWAE-all", "SWWAE-layerwise", "SWWAE-all λ=10",
                "SWWAE-all, targets detached"):
        assert f"\n{arm} " in report
    assert "minus the classifier alone" in report and "pooled" in report
    assert "inversion: test MSE" in report and "best constant image" in report
    assert "Gates:" in report and "models passed their gate" in report
    inversion = json.loads((out / "inversion.json").read_text())
    assert {r["unpool"] for r in inversion} == {"known switches", "fixed"}
    assert {r["layer"] for r in inversion} == {1, 2}
    assert {r["seed"] for r in inversion} == {3, 4}
    rows = json.loads((out / "rows.json").read_text())["rows"]
    assert {r["lam"] for r in rows} == {0.0, 1.0, 10.0}
    assert {r["seed"] for r in rows} == {3, 4}
    claims = json.loads((out / "claims.json").read_text())
    texts = [c["claim"] for c in claims]
    assert "C + λU beats C alone: SWWAE-all over the classifier alone (mnist)" in texts
    assert any(t.startswith("switches help the reconstruction") for t in texts)
    assert any(t.startswith("known switches reconstruct better") for t in texts)
    # two seeds are too few for any verdict but NOT TESTED or INCONCLUSIVE
    assert {c["status"] for c in claims} <= {"INCONCLUSIVE", "NOT TESTED"}


# ---- the lesson's networks (defined in its cells, not in aelab) -------------------

@pytest.fixture(scope="module")
def lesson():
    """The lesson's namespace in the fast profile, run up to (not including) the
    first training cell: its networks, unpoolings, losses and exercise answers."""
    import os
    before = os.environ.get("AELAB_PROFILE")
    os.environ["AELAB_PROFILE"] = "fast"
    ns = {}
    try:
        for cell in jupytext.read(JOINT).cells:
            if cell.cell_type != "code":
                continue
            if "SUBSETS, CLASSIFIERS" in cell.source:
                break
            exec(compile(cell.source, str(JOINT), "exec"), ns)  # noqa: S102
    finally:
        if before is None:
            os.environ.pop("AELAB_PROFILE")
        else:
            os.environ["AELAB_PROFILE"] = before
    ns["torch"].set_num_threads(1)
    return ns


@pytest.mark.parametrize("kind", ["SAE", "SWWAE"])
@pytest.mark.parametrize("mode,pairs", [("first", 1), ("all", 3), ("layerwise", 3)])
def test_augmented_net_shapes(lesson, kind, mode, pairs):
    torch = lesson["torch"]
    net = lesson["augmented"](kind, mode, (1, 28, 28), widths=(4, 8, 8))
    X = torch.rand(2, 1, 28, 28)
    for inputs in (X, X.contiguous(memory_format=torch.channels_last)):
        logits, recons = net(inputs)
        assert logits.shape == (2, 10) and len(recons) == pairs
        assert torch.equal(recons[0][0], inputs)  # the first target is the image
        assert all(t.shape == p.shape for t, p in recons)
    rgb = lesson["augmented"](kind, mode, (3, 32, 32))
    logits, recons = rgb(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10) and recons[0][1].shape == (2, 3, 32, 32)


def test_known_switches_put_each_maximum_back_and_fixed_ones_at_the_top_left(lesson):
    torch = lesson["torch"]
    torch.manual_seed(0)
    X = torch.rand(2, 3, 7, 7)
    pooled, switches = lesson["switch_pool"](X)
    want = lesson["nn"].MaxUnpool2d(2)(pooled, switches, output_size=(7, 7))
    assert torch.equal(lesson["KnownSwitches"]()(pooled, switches, X.shape), want)
    fixed = lesson["FixedUnpool"]()(torch.arange(1.0, 5.0).reshape(1, 1, 2, 2), None,
                                    (4, 4))
    assert torch.equal(fixed, torch.tensor([[[[1.0, 0, 2, 0], [0, 0, 0, 0],
                                              [3, 0, 4, 0], [0, 0, 0, 0]]]]))


def test_layerwise_decodes_the_clean_activations(lesson):
    torch = lesson["torch"]
    X = torch.rand(2, 1, 28, 28)
    nets = {m: lesson["augmented"]("SWWAE", m, (1, 28, 28)) for m in ("all", "layerwise")}
    nets["layerwise"].load_state_dict(nets["all"].state_dict())
    for mode, net in nets.items():
        before = net(X)[1][0][1]
        with torch.no_grad():
            net.decoder[-1][0].weight.add_(1.0)  # f_L^dec only
        changed = not torch.allclose(before, net(X)[1][0][1])
        assert changed == (mode == "all")  # layerwise: â_0 = f_1^dec(a_1)


def test_variants_with_the_same_weights_get_different_cache_keys(lesson):
    from aelab.utils import fingerprint
    torch, nets = lesson["torch"], {}
    for kind in ("SAE", "SWWAE"):
        for mode in ("first", "all", "layerwise"):
            for detach in (False, True):
                torch.manual_seed(0)
                nets[kind, mode, detach] = lesson["augmented"](kind, mode, (1, 28, 28),
                                                               detach)
    first = nets["SAE", "first", False].state_dict()
    for net in nets.values():  # the same initial weights whatever the variant
        assert all(torch.equal(v, first[k]) for k, v in net.state_dict().items())
    assert len({fingerprint(net) for net in nets.values()}) == len(nets)


@pytest.mark.parametrize("kind,mode", [("SWWAE", "first"), ("SWWAE", "all"),
                                       ("SAE", "layerwise")])
def test_augmented_net_overfits_one_batch_with_the_joint_loss(lesson, kind, mode):
    torch = lesson["torch"]
    torch.manual_seed(0)
    X, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    net = lesson["augmented"](kind, mode, (1, 28, 28), widths=(8, 16))
    loss_fn = lesson["objective"](1.0, [1.0, 1.0])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = loss_fn(net, (X, y)).item()
    for _ in range(200):
        opt.zero_grad()
        loss_fn(net, (X, y)).backward()
        opt.step()
    assert loss_fn(net, (X, y)).item() < 0.2 * start
    assert (net.classify(X).argmax(1) == y).all()


def test_inverter_copies_and_freezes_the_first_layers_and_decodes_the_image(lesson):
    torch = lesson["torch"]
    torch.manual_seed(0)
    inverter = with_cell(dict(lesson), "inverter")["inverter"]
    classifier = lesson["augmented"]("SAE", "all", (1, 28, 28))
    X = torch.rand(3, 1, 28, 28)
    for depth in range(1, len(lesson["WIDTHS"]) + 1):
        net = inverter(classifier, depth, "SWWAE", (1, 28, 28))
        assert len(net.encoder) == depth and net.mode == "first"
        assert isinstance(net.unpool, lesson["KnownSwitches"])
        assert torch.equal(net.encode(X)[0][-1], classifier.encode(X)[0][depth])
        trainable = {n for n, p in net.named_parameters() if p.requires_grad}
        assert trainable and all(n.startswith("decoder.") for n in trainable)
        _, [(target, X_hat)] = net(X)
        assert torch.equal(target, X) and X_hat.shape == X.shape


@pytest.mark.parametrize("strategy", ["sequential", "vmap"])
def test_fit_many_trains_the_lessons_networks_and_keeps_frozen_parts(lesson, strategy):
    import aelab
    torch = lesson["torch"]
    torch.manual_seed(0)
    X, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    nets = [lesson["copy_of"](lesson["augmented"](kind, "all", (1, 28, 28)), kind, "all",
                              (1, 28, 28), train_only=("decoder",))
            for kind in ("SAE", "SWWAE")]
    before = [{k: v.clone() for k, v in n.state_dict().items()} for n in nets]
    hs = aelab.fit_many(nets, [(X, y)] * 2, lesson["objective"](1.0, [1.0, 1.0, 1.0]),
                        strategy=strategy, num_epochs=3, batch_size=8, lr=3e-3,
                        quiet=True)
    for net, h, b in zip(nets, hs, before):
        assert h.train_loss[-1] < h.train_loss[0]
        after = {k: v.cpu() for k, v in net.state_dict().items()}
        assert not torch.equal(after["decoder.0.0.weight"], b["decoder.0.0.weight"])
        assert torch.equal(after["encoder.0.0.weight"], b["encoder.0.0.weight"])
        assert torch.equal(after["classifier.1.weight"], b["classifier.1.weight"])


def test_predict_keeps_the_logits_and_reconstruction_pairs_over_batches(lesson):
    import aelab
    torch = lesson["torch"]
    torch.manual_seed(0)
    net = lesson["augmented"]("SWWAE", "all", (1, 28, 28), widths=(4, 8))
    X = torch.rand(10, 1, 28, 28)
    logits, recons = aelab.predict(net, X, batch_size=3)
    with torch.no_grad():
        want_logits, want_recons = net(X)
    assert isinstance(recons, list) and len(recons) == 2
    assert torch.allclose(logits, want_logits, atol=1e-5)
    for (t, p), (wt, wp) in zip(recons, want_recons):
        assert t.shape == wt.shape and torch.allclose(p, wp, atol=1e-5)
    assert aelab.predict(net.classify, X).shape == (10, 10)


def test_gate_reads_steps_on_one_objective_as_one_curve(monkeypatch):
    """A fine-tuning that starts where its decoder step left off is flat: read
    alone, 5% of its tiny fall would fail a finished network; read after step
    2 (the same C + λU), it passes. A curve still falling fails either way."""
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    import torch

    from aelab.train import History
    ns = lesson_namespace(JOINT, "curves_of", DATA={}, SEEDS=(7,),
                          SETTINGS=dict(budgets=(100,)), LAM=1.0, HISTORY={}, rows=[])
    ns["ARMS"] = {"classifier alone": None, "SWWAE-all": ("SWWAE", "all", 1.0, False),
                  "SWWAE-all λ=10": ("SWWAE", "all", 10.0, False)}
    ns["DATA"] = {"mnist": dict(y_test=torch.arange(100) % 10)}
    falling = list(np.linspace(1.0, 0.5, 12))
    flat_tail = [0.30, 0.2990, 0.2985, 0.2982, 0.2981, 0.2979]  # its fall: 0.002
    for arm, tail in [("classifier alone", flat_tail), ("SWWAE-all", flat_tail),
                      ("SWWAE-all λ=10", flat_tail)]:
        ns["HISTORY"]["mnist", 100, arm, 7] = {
            1: History(train_loss=[2.3, 0.8, 0.35, 0.31, 0.305, 0.302, 0.301, 0.30]),
            2: History(train_loss=[1.5, 0.6, 0.35, 0.31, 0.302, 0.30]),
            3: History(train_loss=tail)}
        ns["rows"].append(dict(dataset="mnist", arm=arm, seed=7, accuracy=0.9,
                               recon_ratio=0.3))
    alone = ns["arm_gate"]("mnist", "classifier alone", 7)
    assert alone.ok, alone.failures()
    assert set(alone.checks) >= {"step 1 plateau", "steps 1+3 (C) plateau"}
    joint = ns["arm_gate"]("mnist", "SWWAE-all", 7)
    assert joint.ok and "steps 2+3 (C + λU) plateau" in joint.checks
    other = ns["arm_gate"]("mnist", "SWWAE-all λ=10", 7)  # step 3 read alone
    assert not other.checks["step 3 plateau"][0]
    ns["HISTORY"]["mnist", 100, "SWWAE-all", 7][3] = History(train_loss=falling)
    assert not ns["arm_gate"]("mnist", "SWWAE-all", 7).ok
