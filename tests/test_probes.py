"""Heads on frozen features: extraction, PCA, batched linear and MLP probes."""
import pytest
import torch
from torch import nn

from aelab.models import ConvAutoencoder
from aelab.probes import frozen_features, pca, train_probes


def xor_data(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=g)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).long()  # not linearly separable
    return X, y


def test_mlp_probes_learn_xor_and_linear_probes_cannot():
    X, y = xor_data()
    subsets = [torch.arange(200), torch.arange(400)]
    test = slice(400, 600)
    mlp = train_probes(X, y, subsets, head="mlp", device="cpu")
    linear = train_probes(X, y, subsets, head="linear", device="cpu")
    acc_mlp = (mlp.predict(X[test]) == y[test]).float().mean(1)
    acc_lin = (linear.predict(X[test]) == y[test]).float().mean(1)
    assert (acc_mlp > 0.9).all() and (acc_lin < 0.7).all()
    assert mlp.logits(X[test]).shape == (2, 200, 2)


def test_batched_heads_equal_heads_trained_one_by_one():
    X, y = xor_data()
    subsets = [torch.arange(0, 100), torch.arange(100, 200), torch.arange(300)]
    together = train_probes(X, y, subsets, head="mlp", device="cpu", seed=3)
    logits = together.logits(X)
    # heads of one size train as one group: the first two share a group
    pair = train_probes(X, y, subsets[:2], head="mlp", device="cpu", seed=3)
    assert torch.allclose(pair.logits(X), logits[:2], atol=1e-5)


def test_probe_arguments_are_checked():
    X, y = xor_data(50)
    with pytest.raises(ValueError, match="unknown head 'deep'"):
        train_probes(X, y, [torch.arange(10)], head="deep")
    with pytest.raises(ValueError, match="N x D"):
        train_probes(X, y[:10], [torch.arange(10)])
    with pytest.raises(ValueError, match="non-empty"):
        train_probes(X, y, [torch.arange(0)])
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        train_probes(X, y, [torch.arange(10)], lr=float("nan"))


def test_frozen_features_refuses_an_encoder_that_can_still_learn():
    encoder = ConvAutoencoder().encoder
    X = torch.rand(5, 1, 28, 28)
    with pytest.raises(ValueError, match="still has 4 trainable parameters"):
        frozen_features(encoder, X)
    encoder.requires_grad_(False)
    feats = frozen_features(encoder, X)
    assert feats.shape == (5, 196)
    assert torch.allclose(feats, encoder(X).flatten(1), atol=1e-6)
    assert frozen_features(nn.Identity(), X).shape == (5, 784)  # no parameters


def test_pca_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.decomposition")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 12, generator=g) @ torch.randn(12, 12, generator=g)
    ours, = pca(X, X, k=4)
    ref = torch.as_tensor(sklearn.PCA(4).fit_transform(X.double().numpy())).float()
    # principal directions are defined up to sign
    assert torch.allclose(ours.abs(), ref.abs(), atol=1e-4)
    with pytest.raises(ValueError, match="k=20"):
        pca(X, X, k=20)


@pytest.mark.parametrize("head,scale", [("linear", "global"), ("mlp", "feature")])
def test_a_probe_as_a_module_gives_the_same_logits(head, scale):
    X, y = xor_data(300)
    X = X * 3 + 1  # not centred, not unit scale: the folding must undo both
    probes = train_probes(X, y, [torch.arange(100), torch.arange(200)], head=head,
                          scale=scale, device="cpu", num_steps=20)
    for k in range(2):
        module = probes.module(k)
        assert torch.allclose(module(X), probes.logits(X)[k], atol=1e-4)


def test_probes_keep_each_heads_loss_curve_and_training_accuracy():
    torch.manual_seed(0)
    F = torch.randn(200, 20)
    y = (F[:, 0] > 0).long()
    subsets = [torch.arange(50), torch.arange(100)]
    heads = train_probes(F, y, subsets, num_classes=2, num_steps=120)
    assert heads.losses.shape == (2, 120)
    assert torch.all(heads.losses[:, -1] < 0.5 * heads.losses[:, 0])  # they fit
    assert heads.train_accuracy.shape == (2,)
    predicted = heads.predict(F)
    for k, s in enumerate(subsets):  # the accuracy recorded is on the head's own labels
        own = (predicted[k, s] == y[s]).float().mean()
        assert float(heads.train_accuracy[k]) == pytest.approx(float(own), abs=1e-6)


def test_frozen_features_are_eval_mode_and_leave_the_running_statistics_alone():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    encoder.requires_grad_(False)
    encoder.train()
    X = torch.rand(16, 1, 28, 28) * 3 + 1  # far from the initial running mean 0
    before = encoder[1].running_mean.clone()
    feats = frozen_features(encoder, X)
    assert torch.equal(encoder[1].running_mean, before)
    assert encoder.training  # the caller's mode is restored
    encoder.eval()
    assert torch.allclose(feats, encoder(X).flatten(1), atol=1e-5)


def test_frozen_features_takes_a_bound_method_and_refuses_a_tuple_code():
    class AE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(784, 8)

        def encode(self, x):
            return self.enc(x.flatten(1))

        def forward(self, x):
            return self.encode(x), x

    model = AE().requires_grad_(False)
    X = torch.rand(5, 1, 28, 28)
    assert frozen_features(model.encode, X).shape == (5, 8)
    with pytest.raises(ValueError, match="returned a tuple, not one tensor"):
        frozen_features(model, X)
    with pytest.raises(ValueError, match="must be a torch module or a method of one"):
        frozen_features(lambda x: x, X)


def test_corrupt_takes_uint8_images_as_their_float_pixels():
    """uint8 pixels (0-255) are the same images as floats in [0, 1]: noise and
    masks give the same result (before, noise on uint8 came out almost all 1.0)."""
    from aelab.corrupt import corrupt

    X8 = (torch.rand(4, 1, 8, 8) * 255).to(torch.uint8)
    for kind in ("gaussian", "big_block", "small_blocks"):
        a = corrupt(X8, kind, 0.3, generator=torch.Generator().manual_seed(0))
        b = corrupt(X8.float() / 255, kind, 0.3, generator=torch.Generator().manual_seed(0))
        assert a.dtype == torch.float32 and torch.allclose(a, b), kind
