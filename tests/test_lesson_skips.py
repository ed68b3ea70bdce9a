"""Lesson 03 (skips): its exercise checks catch the usual wrong answers, and
`aelab run skips` prints the per-layer, few-label and claims tables."""
import json
from pathlib import Path

import jupytext
import pytest
from lesson_runs import shared_run
from test_lesson_run import lesson_namespace

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


def test_small_decoder_check_catches_wrong_upsampling_channels_and_layers(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(SKIPS, "check_small_decoder",
                          small_decoder=lambda *args, **kw: None)
    check, nn = ns["check_small_decoder"], ns["nn"]

    def stack(channels, downsamplings, num_layers, width, out_channels, kernel=3):
        layers, c = [], channels
        for i in range(num_layers):
            up = i >= num_layers - downsamplings
            layers += [nn.ConvTranspose2d(c, width, kernel, stride=2 if up else 1,
                                          padding=1, output_padding=int(up)), nn.ReLU()]
            c = width
        return nn.Sequential(*layers, nn.Conv2d(c, out_channels, 3, padding=1))

    def one_conv(channels, downsamplings, *, num_layers, width=8, out_channels=1):
        return nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1))

    def grey_only(channels, downsamplings, *, num_layers, width=8, out_channels=1):
        return stack(channels, downsamplings, num_layers, width, 1)

    def one_per_halving(channels, downsamplings, *, num_layers, width=8,
                        out_channels=1):  # the parameters then grow with depth
        return stack(channels, downsamplings, downsamplings, width, out_channels)

    def right(channels, downsamplings, *, num_layers, width=8, out_channels=1):
        return stack(channels, downsamplings, num_layers, width, out_channels)

    def linear(channels, downsamplings, *, num_layers, width=8, out_channels=1):
        return nn.Sequential(*[m for m in stack(channels, downsamplings, num_layers,
                                                width, out_channels)
                               if not isinstance(m, nn.ReLU)])

    built = {}

    def shared(channels, downsamplings, *, num_layers, width=8, out_channels=1):
        key = (channels, downsamplings, num_layers, width, out_channels)
        if key not in built:  # one decoder reused: every layer would train it
            built[key] = stack(*key)
        return built[key]

    assert "ConvTranspose2d" in check(one_conv).message
    assert "nn.ReLU()" in check(linear).message
    assert "share weights" in check(shared).message
    assert "out_channels" in check(grey_only).message
    assert "only the strides change" in check(one_per_halving).message
    assert check(right).ok


@pytest.mark.slow  # 20 s of training
def test_eval_mode_agrees_with_training_after_long_training(monkeypatch):
    """The BatchNorm bug of issue 29: with a bias before each BatchNorm and the
    running averages of training, this autoencoder (seed 0) read its training
    images 7x worse in eval mode than its last training loss."""
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(SKIPS, "extra_repr")  # the cell of class SkipAutoencoder
    torch, F, corrupt = ns["torch"], ns["F"], ns["corrupt"]
    X = ns["aelab"].load_dataset("mnist", "train", quiet=True).X[:512]

    def loss_fn(model, batch):
        return F.mse_loss(model(corrupt(batch[0], "small_blocks", 0.25)), batch[0])

    for skips, epochs in ((True, 60), (False, 10)):
        torch.manual_seed(0)
        model = ns["SkipAutoencoder"](width=4, depth=4, skips=skips)
        history = ns["aelab"].fit(model, (X,), loss_fn, num_epochs=epochs, lr=5e-3,
                                  batch_size=64, device="cpu", quiet=True)
        torch.manual_seed(0)
        error = ns["aelab"].evaluate(model, (X,), loss_fn)
        assert abs(error / history.train_loss[-1] - 1) < 0.10, (skips, error,
                                                                 history.train_loss[-1])



def test_gate_compares_eval_mode_with_training_mode_on_the_same_weights(monkeypatch):
    """The gate's eval = training check (error_in_mode): a trained BatchNorm
    autoencoder and classifier read the same in both modes (a classifier that
    improved within its last epoch included), and running statistics that do
    not fit the data are caught."""
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(SKIPS, "extra_repr")  # the cell of class SkipAutoencoder
    torch, F, corrupt, aelab = ns["torch"], ns["F"], ns["corrupt"], ns["aelab"]
    ns.update(SETTINGS=dict(batch_size=64), device=torch.device("cpu"), NETS={})
    code = [c.source for c in jupytext.read(SKIPS).cells if c.cell_type == "code"]
    exec(next(s for s in code if "def error_in_mode(" in s), ns)  # noqa: S102
    error_in_mode = ns["error_in_mode"]
    mnist = aelab.load_dataset("mnist", "train", quiet=True)
    X, y = mnist.X[:512], mnist.y[:512]

    def denoise(model, batch):
        return F.mse_loss(model(corrupt(batch[0], "small_blocks", 0.25)), batch[0])

    def classify(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    torch.manual_seed(0)
    ae = ns["SkipAutoencoder"](width=4, depth=4, skips=True)
    aelab.fit(ae, (X,), denoise, num_epochs=4, lr=5e-3, batch_size=64, device="cpu",
              quiet=True)
    torch.manual_seed(0)
    clf = ns["EncoderClassifier"](ns["SkipAutoencoder"](width=4, depth=4).encoder,
                                  freeze=False)
    history = aelab.fit(clf, (X, y), classify, num_epochs=6, lr=5e-3, batch_size=64,
                        device="cpu", quiet=True)
    for model, data, loss in ((ae, (X,), denoise), (clf, (X, y), classify)):
        errors = [error_in_mode(model, data, loss, train_mode=mode, seed=3)
                  for mode in (False, True)]
        assert abs(errors[0] / errors[1] - 1) < 0.10, errors
    assert error_in_mode(clf, (X, y), classify, train_mode=False, seed=3) \
        < 0.9 * history.train_loss[-1]  # why the last training loss is no reference
    for m in ae.modules():
        if isinstance(m, ns["nn"].BatchNorm2d):
            m.running_var.mul_(50.0)  # statistics that do not fit the data
    before = [b.clone() for b in ae.buffers()]
    errors = [error_in_mode(ae, (X,), denoise, train_mode=mode, seed=3)
              for mode in (False, True)]
    assert errors[0] / errors[1] > 1.5, errors
    after = list(ae.buffers())  # the train-mode pass ran on a copy
    assert len(after) == len(before) and all(map(torch.equal, before, after))



def test_a_denoising_race_that_neither_network_wins_over_its_input_is_inconclusive():
    """psnr_gap judges skips - no skips only where some network denoises: at a
    corruption both make worse than the input, the claim is INCONCLUSIVE."""
    code = [c.source for c in jupytext.read(SKIPS).cells if c.cell_type == "code"]
    ns = lesson_namespace(SKIPS, "extra_repr")
    seeds = list(range(6))
    ns.update(DB=0.5, SEEDS=seeds)
    cell = next(s for s in code if "def psnr_gap(" in s)
    start = cell.index("def psnr_gap(")  # the function alone: the cell judges too
    exec(cell[start:cell.index("\n\n\ndef ", start)], ns)  # noqa: S102
    ns["psnr_gain"] = lambda ds, name, s, c: (ns["PSNR"][(ds, name, s, *c)]
                                              - ns["PSNR"][(ds, "input", s, *c)])
    noise = ("gaussian", 0.3)
    for inputs, status in ((25.0, "INCONCLUSIVE"), (15.0, "REPRODUCED")):
        ns["PSNR"] = {}
        for s in seeds:  # skips beat no skips by 2 dB, both at 20 dB or so
            ns["PSNR"].update({("mnist", "skips", s, *noise): 21.0 + 0.1 * s,
                               ("mnist", "no skips", s, *noise): 19.0 + 0.1 * s,
                               ("mnist", "input", s, *noise): inputs})
        answer, measured, *why = ns["psnr_gap"]("mnist", noise)(None)
        assert ns["aelab"].study.as_status(answer) == status, (inputs, measured)
        assert ("neither network denoises" in " ".join(why)) == (status != "REPRODUCED")
        assert "gain over the input" in measured


def skip_autoencoder():
    """The lesson's SkipAutoencoder (its cell, run alone) and torch."""
    ns = lesson_namespace(SKIPS, "extra_repr")  # the cell of class SkipAutoencoder
    return ns["SkipAutoencoder"], ns["torch"]


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_skip_autoencoder_shapes(depth):
    SkipAutoencoder, torch = skip_autoencoder()
    for channels, size in [(1, 28), (3, 32)]:
        ae = SkipAutoencoder(in_channels=channels, depth=depth, width=16)
        X = torch.rand(2, channels, size, size)
        assert ae(X).shape == X.shape
        assert ae(X.contiguous(memory_format=torch.channels_last)).shape == X.shape
        feats = ae.layers(X)
        assert len(feats) == depth and all((f >= 0).all() for f in feats)  # ReLUs
        assert torch.equal(feats[-1], ae.encode(X))
        assert feats[-1].shape[1] == 16 * 2 ** (depth // 2)  # width doubles per stride
    assert [f.shape[-1] for f in SkipAutoencoder(depth=6).layers(
        torch.rand(1, 1, 28, 28))] == [28, 14, 14, 7, 7, 4]
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in ae.modules())


def test_no_bias_before_batchnorm_only_in_the_last_layer():
    SkipAutoencoder, torch = skip_autoencoder()
    ae = SkipAutoencoder(depth=6)
    convs = [m for m in ae.modules() if isinstance(m, (torch.nn.Conv2d,
                                                       torch.nn.ConvTranspose2d))]
    assert [m.bias is not None for m in convs] == [False] * 11 + [True]


def count_skip_additions(ae, X):
    added = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: added.append(
        args[2] is not None)) for layer in ae.decoder]
    ae(X)
    for h in hooks:
        h.remove()
    return sum(added)


def test_skips_false_removes_internal_skips_only():
    SkipAutoencoder, torch = skip_autoencoder()
    torch.manual_seed(0)
    X = torch.rand(2, 1, 28, 28)
    full = SkipAutoencoder(depth=6).eval()
    no_skips = SkipAutoencoder(depth=6, skips=False).eval()
    no_skips.load_state_dict(full.state_dict())  # same weights, different wiring
    assert count_skip_additions(full, X) == 3  # a_2, a_4 and the input
    assert count_skip_additions(no_skips, X) == 1  # the input only
    assert not torch.allclose(full(X), no_skips(X))
    no_input = SkipAutoencoder(depth=6, input_skip=False).eval()
    no_input.load_state_dict(full.state_dict())
    assert torch.allclose(full(X) - no_input(X), X, atol=1e-6)  # X_hat = out + X


def test_skip_wiring_is_part_of_the_cache_key():
    from aelab.train import fit_key
    SkipAutoencoder, torch = skip_autoencoder()

    def loss_fn(model, batch):
        return model(batch[0]).mean()

    X = torch.rand(2, 1, 28, 28)
    keys = []
    for skips in (True, False):
        torch.manual_seed(0)  # the same weights: only the wiring differs
        keys.append(fit_key(SkipAutoencoder(skips=skips), (X,), loss_fn))
    assert keys[0]["model"] != keys[1]["model"]


def test_skip_autoencoder_overfits_one_batch():
    SkipAutoencoder, torch = skip_autoencoder()
    torch.manual_seed(0)
    X = torch.rand(8, 1, 28, 28)
    ae = SkipAutoencoder(width=8, depth=4, input_skip=False)  # no shortcut X -> X_hat
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        loss = ((ae(X) - X) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_per_layer_decoders_have_nearly_equal_parameter_counts(monkeypatch):
    """Fig. 3's decoders: the same layers for every encoder layer, the hidden
    width chosen so that every one has (within 10%) the deepest one's count."""
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(SKIPS, "check_small_decoder",
                          small_decoder=lambda *args, **kw: None)
    solution = next(c.source for c in jupytext.read(SKIPS).cells
                    if "solution" in c.metadata.get("tags", []) and
                    "def small_decoder(" in c.source)
    matched = next(c.source for c in jupytext.read(SKIPS).cells
                   if "def matched_decoder(" in c.source)
    for src in (solution, matched):
        exec(compile(src, str(SKIPS), "exec"), ns)  # noqa: S102
    target = ns["num_params"](ns["small_decoder"](64, 0, num_layers=3, width=6))
    counts = [ns["num_params"](ns["matched_decoder"](c, k, 3, target, 1))
              for c, k in ((8, 0), (16, 1), (32, 2), (64, 3))]
    assert all(abs(n / target - 1) < 0.10 for n in counts), (target, counts)


@pytest.mark.slow
def test_run_skips_prints_layer_table_for_four_networks_gates_and_claims():
    run = shared_run("skips")
    out, verified = run.out, run.verified()
    assert not run.ok(), run.ok()
    report = (out / "report.txt").read_text()
    for name in ("skips", "no skips", "supervised", "pixels"):
        assert f" {name} " in report
    assert "per-layer probes" in report and "denoising PSNR" in report
    layers = json.loads((out / "layers.json").read_text())
    assert {r["network"] for r in layers} == {"skips", "no skips", "supervised",
                                              "untrained"}
    assert {"flattened", "pooled", "psnr"} <= set(layers[0])
    for claim in ("pretraining with skips beats pretraining without",
                  "Gaussian σ = 0.3", "discard more detail"):
        assert claim in verified
    assert "eval = training" in verified and "Gates" in report
