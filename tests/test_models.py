"""Shapes, overfitting one batch, and the details lessons rely on (CPU, fast)."""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aelab import losses
from aelab.losses import (cross_entropy, l1_activations, l1_weights,
                          reconstruction_loss)
from aelab.models import ConvAutoencoder, EncoderClassifier, SmallCNN


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train fastest on one thread (and don't fight other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(n=8, channels=1, size=28, seed=0):
    """Smooth random blobs in [0, 1]: structured, unlike white noise."""
    torch.manual_seed(seed)
    low = torch.rand(n, channels, 7, 7)
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False)


def channels_last(X):
    return X.contiguous(memory_format=torch.channels_last)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def fit(model, loss_fn, steps=200, lr=1e-2):
    """Adam on one batch; returns (first loss, last loss)."""
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for _ in range(steps):
        loss = loss_fn(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    return history[0], history[-1]


# ---- ConvAutoencoder (barletta2024, alberti2017) ---------------------------------

def test_conv_autoencoder_default_is_barletta2024():
    ae = ConvAutoencoder()
    convs = [m for m in ae.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 8), (8, 4), (4, 4), (4, 8), (8, 1)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in ae.encoder) == 2
    assert isinstance(ae.decoder[-1], nn.Conv2d)  # no output activation
    assert n_params(ae) == 80 + 292 + 148 + 296 + 73
    X = images(4)
    assert ae.encode(X).shape == (4, 4, 7, 7)


@pytest.mark.parametrize("pool", ["max", "avg", "stride"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_conv_autoencoder_returns_input_size(depth, pool):
    ae = ConvAutoencoder(widths=(4,) * depth, pool=pool)
    X = images(2)
    assert ae(X).shape == X.shape
    assert ae(channels_last(X)).shape == X.shape
    X3 = images(2, channels=3, size=32)
    assert ConvAutoencoder(in_channels=3, widths=(4,) * depth, pool=pool)(X3).shape \
        == X3.shape


def test_conv_autoencoder_options_and_bad_input():
    for act in ["relu", "tanh", "sigmoid", "leaky_relu", "elu"]:
        assert ConvAutoencoder(activation=act)(images(2)).shape == (2, 1, 28, 28)
    torch.manual_seed(0)
    w = ConvAutoencoder(widths=(64, 64), init="normal").encoder[3].weight
    assert abs(w.std().item() - 0.01) < 1e-3
    w = ConvAutoencoder(widths=(64, 64), init="orthogonal").encoder[3].weight
    rows = w.flatten(1)  # 64 x 576: orthonormal rows
    assert torch.allclose(rows @ rows.T, torch.eye(64), atol=1e-4)
    ae = ConvAutoencoder(init="kaiming")
    assert all((c.bias == 0).all() for c in ae.modules() if isinstance(c, nn.Conv2d))
    asym = ConvAutoencoder(widths=(8, 4), decoder_widths=(2, 3))
    convs = [c for c in asym.decoder if isinstance(c, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 3, 1]
    for bad in [dict(kernel_size=4), dict(widths=(2,) * 7), dict(activation="gelu"),
                dict(pool="min"), dict(init="zeros"), dict(decoder_widths=(4,))]:
        with pytest.raises(ValueError):
            ConvAutoencoder(**bad)
    with pytest.raises(ValueError, match="too small"):
        ConvAutoencoder(widths=(2,) * 5)(images(1))  # 28 -> 14 -> 7 -> 3 -> 1 -> ?


# ---- classifiers --------------------------------------------------------------

def bn_encoder(in_channels=1):
    """A conv + BatchNorm + ReLU encoder (lesson 03's kind), 2 layers, 16 maps."""
    return nn.Sequential(*(nn.Sequential(nn.Conv2d(c, 16, 3, s, padding=1),
                                         nn.BatchNorm2d(16), nn.ReLU())
                           for c, s in ((in_channels, 1), (16, 2))))


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_encoder_classifier_shapes(head):
    clf = EncoderClassifier(ConvAutoencoder().encoder, head=head, dropout=0.1)
    X = images(3)
    assert clf(X).shape == (3, 10) and clf(channels_last(X)).shape == (3, 10)
    assert clf.features(X).shape == (3, 4 * 7 * 7)
    n_linear = sum(isinstance(m, nn.Linear) for m in clf.head)
    assert n_linear == (1 if head == "linear" else 3)
    clf3 = EncoderClassifier(bn_encoder(3), head=head, in_shape=(3, 32, 32),
                             num_classes=4)
    assert clf3(images(2, 3, 32)).shape == (2, 4)
    assert clf3.num_features == 16 * 16 * 16


def test_freeze_really_freezes():
    encoder = bn_encoder()  # has BatchNorm: running stats must not move
    before = copy.deepcopy(encoder.state_dict())
    clf = EncoderClassifier(encoder, freeze=True)
    head_before = copy.deepcopy(clf.head.state_dict())
    clf.train()
    assert clf.training and clf.head.training
    assert not any(m.training for m in clf.encoder.modules())
    assert not any(p.requires_grad for p in clf.encoder.parameters())
    fit(clf, lambda m: cross_entropy(m(images()), torch.arange(8)), steps=3)
    for k, v in clf.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(clf.head[-1].weight, head_before["1.weight"])
    # and without freezing, the same step does move the encoder
    loose = EncoderClassifier(bn_encoder(), freeze=False)
    w0 = loose.encoder[0][0].weight.clone()
    fit(loose, lambda m: cross_entropy(m(images()), torch.arange(8)), steps=3)
    assert loose.encoder.training and not torch.equal(w0, loose.encoder[0][0].weight)


def test_small_cnn_is_barletta2024_baseline():
    cnn = SmallCNN()
    assert [type(m) for m in cnn.encoder] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d] * 2
    assert cnn.head[-1].in_features == 245 and isinstance(cnn.head[1], nn.Dropout)
    assert cnn(images(2)).shape == (2, 10)
    assert cnn(channels_last(images(2))).shape == (2, 10)
    assert cnn.features(images(2)).shape == (2, 245)
    assert SmallCNN(in_channels=3, in_size=32)(images(2, 3, 32)).shape == (2, 10)


@pytest.mark.parametrize("make", [
    lambda: EncoderClassifier(ConvAutoencoder().encoder),
    lambda: EncoderClassifier(ConvAutoencoder().encoder, head="mlp", hidden=64),
    lambda: SmallCNN(),
])
def test_classifiers_overfit_one_batch(make):
    torch.manual_seed(0)
    model, X, y = make(), images(), torch.arange(8)
    start, end = fit(model, lambda m: cross_entropy(m(X), y), steps=200)
    model.eval()
    assert end < 0.2 * start
    assert (model(X).argmax(1) == y).all()


def test_conv_autoencoder_overfits_one_batch():
    torch.manual_seed(0)
    X = images()
    start, end = fit(ConvAutoencoder(), lambda m: reconstruction_loss(m(X), X),
                     steps=300)
    assert end < 0.2 * start


# ---- losses ------------------------------------------------------------------------

def test_reconstruction_and_l1_losses():
    torch.manual_seed(0)
    X, X_hat, z = torch.rand(4, 1, 5, 5), torch.rand(4, 1, 5, 5), torch.randn(4, 7)
    assert torch.isclose(reconstruction_loss(X_hat, X), ((X_hat - X) ** 2).mean())
    assert torch.isclose(l1_activations(z), z.abs().sum() / z.numel())
    ae = ConvAutoencoder(init="xavier")
    hand = sum(p.double().abs().sum().item() for name, p in ae.named_parameters()
               if name.endswith("weight"))
    assert l1_weights(ae).item() == pytest.approx(hand, rel=1e-6)
    clf = EncoderClassifier(bn_encoder())  # BN weights excluded
    with torch.no_grad():
        clf.encoder[0][1].weight.fill_(100.0)
    hand = sum(m.weight.double().abs().sum().item() for m in clf.modules()
               if type(m) in (nn.Conv2d, nn.Linear))
    assert l1_weights(clf).item() == pytest.approx(hand, rel=1e-6)
    l1_weights(ae).backward()  # usable as a penalty
    assert ae.encoder[0].weight.grad is not None and ae.encoder[0].bias.grad is None


def test_cross_entropy_warns_once_on_probabilities(monkeypatch):
    monkeypatch.setattr(losses, "_warned_double_softmax", False)
    torch.manual_seed(0)
    logits, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning on real logits fails
        assert torch.isclose(cross_entropy(logits, y), F.cross_entropy(logits, y))
    probs = logits.softmax(1)
    with pytest.warns(UserWarning, match="softmax was applied twice"):
        cross_entropy(probs, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cross_entropy(probs, y)
    assert caught == []  # once per session


def test_losses_work_under_vmap():
    """aelab.sweep trains many models at once with torch.func.vmap."""
    torch.manual_seed(0)
    logits, y = torch.randn(3, 8, 10), torch.randint(0, 10, (3, 8))
    got = torch.func.vmap(cross_entropy)(logits, y)
    assert torch.allclose(got, torch.stack([F.cross_entropy(a, b)
                                            for a, b in zip(logits, y)]))


# every option of ConvAutoencoder: widths and depth, kernel, activations, poolings,
# upsamplings, initialisations, a decoder of its own widths
VARIANTS = [dict(widths=(8, 4)), dict(widths=(8,), kernel_size=5, activation="sigmoid"),
            dict(widths=(8, 16), decoder_widths=(2, 2), init="xavier"),
            dict(widths=(8, 8, 8), pool="avg", init="kaiming"),
            dict(widths=(6, 12, 6), activation="leaky_relu", pool="stride"),
            dict(widths=(4, 4, 4, 4, 4, 4), activation="elu", pool="stride",
                 upsample="bilinear", init="orthogonal")]


@pytest.mark.parametrize("config", VARIANTS)
def test_encode_then_decode_with_the_size_is_forward_for_every_config(config):
    torch.manual_seed(0)
    model = ConvAutoencoder(**config)
    X = torch.rand(2, 1, 28, 28)
    z = model.encode(X)
    assert torch.equal(model.decode(z, X.shape[-2:]), model(X))
    assert model(X).shape == X.shape


def test_conv_autoencoder_says_what_shape_it_needs():
    model = ConvAutoencoder()
    with pytest.raises(ValueError, match=r"N x 1 x H x W; got shape \(4, 784\)"):
        model(torch.rand(4, 784))
    with pytest.raises(ValueError, match="in_channels=3"):
        model(torch.rand(4, 3, 28, 28))


@pytest.mark.parametrize("level", [float("nan"), float("inf"), -0.1])
def test_corruption_levels_must_be_finite_and_non_negative(level):
    from aelab.corrupt import corrupt, gaussian_noise

    X = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="finite number >= 0"):
        gaussian_noise(X, level)
    with pytest.raises(ValueError, match="finite number >= 0"):
        corrupt(X, "big_block", level)
