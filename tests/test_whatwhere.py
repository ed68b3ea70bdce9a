"""Switch unpooling, the augmented classifier's cache identity, the inverter,
and predict / fit_many on a model that returns logits and reconstructions."""
import pytest
import torch
from torch import nn

import aelab
from aelab.losses import joint_loss
from aelab.utils import fingerprint
from aelab.whatwhere import (FixedUnpool, MacroLayerAE, SwitchMaxPool, SwitchUnpool,
                             inverter)


def test_switch_unpool_matches_max_unpool2d_also_for_odd_sizes_and_channels_last():
    torch.manual_seed(0)
    for X, size in [(torch.rand(2, 3, 6, 6), (6, 6)), (torch.rand(2, 3, 7, 7), (7, 7)),
                    (torch.rand(2, 4, 8, 8).to(memory_format=torch.channels_last),
                     (8, 8))]:
        out, idx = SwitchMaxPool()(X)
        want = nn.MaxUnpool2d(2)(out, idx, output_size=size)
        assert torch.equal(SwitchUnpool()(out, idx, output_size=size), want)


def test_switch_unpool_gradient_reaches_only_the_pooled_values():
    X = torch.rand(1, 1, 4, 4)
    out, idx = SwitchMaxPool()(X)
    out.requires_grad_(True)
    SwitchUnpool()(out, idx).sum().backward()
    assert torch.equal(out.grad, torch.ones_like(out))


def test_modes_with_the_same_weights_get_different_cache_keys():
    torch.manual_seed(0)
    models = {}
    for mode in ("first", "all", "layerwise"):
        for unpool in ("switches", "fixed"):
            torch.manual_seed(0)
            models[mode, unpool] = MacroLayerAE(widths=(4, 8), mode=mode, unpool=unpool)
    first = models["first", "switches"].state_dict()
    for m in models.values():  # the same initial weights whatever the variant
        assert all(torch.equal(v, first[k]) for k, v in m.state_dict().items())
    assert len({fingerprint(m) for m in models.values()}) == len(models)


def test_inverter_copies_and_freezes_the_first_layers_and_decodes_the_image():
    torch.manual_seed(0)
    model = MacroLayerAE(widths=(4, 8, 8), mode="all", unpool="fixed")
    X = torch.rand(3, 1, 28, 28)
    for depth in (1, 2, 3):
        net = inverter(model, depth, unpool="switches")
        assert len(net.encoder) == depth and net.mode == "first"
        assert isinstance(net.unpool, SwitchUnpool)
        assert torch.equal(net.encode(X), model.layers(X)[depth - 1])
        trainable = {n for n, p in net.named_parameters() if p.requires_grad}
        assert trainable and all(n.startswith("decoder.") for n in trainable)
        logits, [(target, X_hat)] = net(X)
        assert torch.equal(target, X) and X_hat.shape == X.shape
    assert isinstance(inverter(model, 2, unpool="fixed").unpool, FixedUnpool)
    with pytest.raises(ValueError, match="depth must be 1..3"):
        inverter(model, 4)


def test_predict_keeps_the_structure_of_several_outputs_over_batches():
    torch.manual_seed(0)
    model = MacroLayerAE(widths=(4, 8), mode="all")
    X = torch.rand(10, 1, 28, 28)
    logits, recons = aelab.predict(model, X, batch_size=3)
    with torch.no_grad():
        want_logits, want_recons = model(X)
    assert isinstance(recons, list) and len(recons) == 2
    assert torch.allclose(logits, want_logits, atol=1e-5)
    for (t, p), (wt, wp) in zip(recons, want_recons):
        assert t.shape == wt.shape and torch.allclose(p, wp, atol=1e-5)
    assert aelab.predict(lambda xb: model(xb)[0], X).shape == (10, 10)


@pytest.mark.parametrize("strategy", ["sequential", "vmap"])
def test_fit_many_trains_augmented_classifiers_with_the_joint_loss(strategy):
    torch.manual_seed(0)
    X, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    models = [MacroLayerAE(widths=(4, 8), mode=m, unpool=u)
              for m, u in (("all", "switches"), ("all", "fixed"))]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]

    def loss_fn(model, batch):
        Xb, yb = batch
        logits, recons = model(Xb)
        return joint_loss(logits, yb, recons, weight=1.0)

    hs = aelab.fit_many(models, [(X, y)] * 2, loss_fn, strategy=strategy,
                        num_epochs=3, batch_size=8, lr=3e-3, quiet=True,
                        watch=X[:4])
    for m, h, b in zip(models, hs, before):
        assert h.train_loss[-1] < h.train_loss[0]
        assert not torch.equal(m.decoder[0][0].weight.cpu(), b["decoder.0.0.weight"])
        logits, recons = h.outputs[-1]
        assert logits.shape == (4, 10) and recons[0][1].shape == (4, 1, 28, 28)


def test_an_unpool_module_passed_in_is_the_one_the_decoder_uses():
    class Doubled(SwitchUnpool):
        def forward(self, X, indices, output_size=None):
            return 2 * super().forward(X, indices, output_size)

    torch.manual_seed(0)
    plain = MacroLayerAE(widths=(4, 8), mode="layerwise", unpool="switches")
    torch.manual_seed(0)
    doubled = MacroLayerAE(widths=(4, 8), mode="layerwise", unpool=Doubled())
    X = torch.rand(2, 1, 28, 28)
    (_, [(_, a), _]), (_, [(_, b), _]) = plain(X), doubled(X)
    assert not torch.allclose(a, b) and "Doubled" in repr(doubled)
    with pytest.raises(ValueError):
        MacroLayerAE(unpool="nearest")
