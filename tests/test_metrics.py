"""aelab.metrics against reference implementations (sklearn, scipy, skimage)."""
import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import sklearn.metrics
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.preprocessing import StandardScaler
import torch
from skimage import color
from skimage.metrics import peak_signal_noise_ratio

from aelab import metrics, probes

TOL = 1e-6


@pytest.fixture
def images():
    """A batch of random images and noisy reconstructions, float64 in [0, 1]."""
    torch.manual_seed(0)
    X = torch.rand(6, 3, 8, 8, dtype=torch.float64)
    X_hat = (X + 0.1 * torch.randn_like(X)).clamp(0, 1)
    return X, X_hat


def _rows(X):
    return X.reshape(len(X), -1).numpy()


# ---------------------------------------------------------------- classification
def test_accuracy_and_confusion_match_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (200,), generator=g)
    logits = torch.randn(200, 4, generator=g)
    logits[:100] += 3 * torch.nn.functional.one_hot(y[:100], 4)  # half are right
    pred = logits.argmax(1)
    assert metrics.accuracy(logits, y) == pytest.approx(
        sklearn.metrics.accuracy_score(y, pred), abs=TOL)
    assert metrics.accuracy(pred, y) == metrics.accuracy(logits, y)
    cm = metrics.confusion_matrix(y, pred, num_classes=5)  # class 4 never occurs
    expected = sklearn.metrics.confusion_matrix(y, pred, labels=range(5))
    assert cm.dtype == torch.long and np.array_equal(cm.numpy(), expected)


def test_chance_accuracy_is_majority_share():
    y = torch.tensor([0, 1, 1, 2, 1, 0, 1, 1])
    assert metrics.chance_accuracy(y) == pytest.approx(5 / 8)


def test_bad_inputs_get_clear_messages(images):
    X, X_hat = images
    with pytest.raises(ValueError, match="shape"):
        metrics.euclidean(X, X_hat[:, :1])
    with pytest.raises(ValueError, match="precision"):
        metrics.RECONSTRUCTION_DISTANCES["MA"](X, X_hat)
    with pytest.raises(ValueError, match="labels"):
        metrics.accuracy(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        metrics.mse(X, X_hat, reduction="sum")


# ---------------------------------------------------------------- pixel errors
def test_mse_and_psnr_match_numpy_and_skimage(images):
    X, X_hat = images
    per_image = metrics.mse(X, X_hat, reduction="none")
    assert np.allclose(per_image, ((_rows(X) - _rows(X_hat)) ** 2).mean(1), atol=TOL)
    assert metrics.mse(X, X_hat) == pytest.approx(per_image.mean().item(), abs=TOL)
    for data_range in (1.0, 2.0):
        ours = metrics.psnr(X, X_hat, data_range=data_range, reduction="none")
        ref = [peak_signal_noise_ratio(x.numpy(), x_hat.numpy(), data_range=data_range)
               for x, x_hat in zip(X, X_hat)]
        assert np.allclose(ours, ref, atol=TOL)
    assert metrics.psnr(X, X_hat) == pytest.approx(np.mean(
        [peak_signal_noise_ratio(x.numpy(), h.numpy(), data_range=1.0)
         for x, h in zip(X, X_hat)]), abs=TOL)


def test_pooled_psnr_is_skimage_psnr_of_the_whole_set_and_finite_with_exact_images(
        images):
    X, X_hat = images
    assert metrics.psnr(X, X_hat, reduction="pooled") == pytest.approx(
        peak_signal_noise_ratio(X.numpy(), X_hat.numpy(), data_range=1.0), abs=TOL)
    exact = X_hat.clone()
    exact[0] = X[0]  # one image reproduced exactly: the per-image mean is inf
    assert metrics.psnr(X, exact) == float("inf")
    assert np.isfinite(metrics.psnr(X, exact, reduction="pooled"))


# ---------------------------------------------------------------- five distances
def test_euclidean_matches_numpy_and_scipy(images):
    X, X_hat = images
    ours = metrics.euclidean(X, X_hat)
    assert ours.shape == (6,) and ours.dtype == torch.float64
    assert np.allclose(ours, np.linalg.norm(_rows(X) - _rows(X_hat), axis=1), atol=TOL)
    pairs = zip(_rows(X), _rows(X_hat))
    ref = [scipy.spatial.distance.euclidean(x, h) for x, h in pairs]
    assert np.allclose(ours, ref, atol=TOL)


def test_soi_matches_lstsq_and_is_scale_offset_invariant(images):
    X, X_hat = images
    ref = []
    for x, h in zip(_rows(X), _rows(X_hat)):
        A = np.stack([h, np.ones_like(h)], axis=1)  # columns: scale a, offset b
        coef = np.linalg.lstsq(A, x, rcond=None)[0]
        ref.append(np.linalg.norm(x - A @ coef))
    assert np.allclose(metrics.scale_offset_invariant(X, X_hat), ref, atol=TOL)
    assert metrics.scale_offset_invariant(X, 2 * X + 0.3).abs().max() < TOL
    assert metrics.euclidean(X, 2 * X + 0.3).min() > 1  # EUC is not invariant
    blank = torch.full_like(X, 0.4)  # constant x_hat: only the offset helps
    expected = np.linalg.norm(_rows(X) - _rows(X).mean(1, keepdims=True), axis=1)
    assert np.allclose(metrics.scale_offset_invariant(X, blank), expected, atol=TOL)


def test_noc_matches_pearson_and_is_affine_invariant(images):
    X, X_hat = images
    ref = [1 - scipy.stats.pearsonr(x, h)[0] for x, h in zip(_rows(X), _rows(X_hat))]
    assert np.allclose(metrics.normalized_correlation(X, X_hat), ref, atol=TOL)
    assert metrics.normalized_correlation(X, 3 * X + 1).abs().max() < TOL
    assert np.allclose(metrics.normalized_correlation(X, -X), 2.0, atol=TOL)
    blank = torch.zeros_like(X)  # correlation undefined: NOC defined as 1
    noc = metrics.normalized_correlation(X, blank)
    assert torch.equal(noc, torch.ones(6, dtype=torch.float64))


def test_e94_matches_skimage_on_rgb_and_grey(images):
    X, X_hat = images
    x, h = X[:1], X_hat[:1]
    lab = color.rgb2lab(x[0].permute(1, 2, 0).numpy())
    lab_hat = color.rgb2lab(h[0].permute(1, 2, 0).numpy())
    ref = color.deltaE_ciede94(lab, lab_hat).mean()
    assert metrics.e94(x, h).item() == pytest.approx(ref, abs=TOL)
    grey, grey_hat = X[:1, :1], X_hat[:1, :1]  # replicated to (g, g, g)
    rgb = np.repeat(grey[0].permute(1, 2, 0).numpy(), 3, axis=2)
    rgb_hat = np.repeat(grey_hat[0].permute(1, 2, 0).numpy(), 3, axis=2)
    ref = color.deltaE_ciede94(color.rgb2lab(rgb), color.rgb2lab(rgb_hat)).mean()
    assert metrics.e94(grey, grey_hat).item() == pytest.approx(ref, abs=TOL)
    dL = np.abs(color.rgb2lab(rgb)[..., 0] - color.rgb2lab(rgb_hat)[..., 0]).mean()
    assert metrics.e94(grey, grey_hat).item() == pytest.approx(dL, rel=1e-2)
    flat = metrics.e94(grey.reshape(1, -1), grey_hat.reshape(1, -1))  # N x D = grey
    assert flat.item() == pytest.approx(ref, abs=TOL)
    assert metrics.e94(X, X).abs().max() < TOL
    wild = 3 * X_hat - 1  # out of [0, 1]: clipped before rgb2lab
    assert torch.allclose(metrics.e94(X, wild), metrics.e94(X, wild.clamp(0, 1)))


def test_mahalanobis_matches_scipy_with_fitted_precision():
    g = torch.Generator().manual_seed(1)
    data = torch.rand(300, 2, 3, 3, generator=g, dtype=torch.float64)
    data[:, 0] = data[:, 1] * 0.7 + 0.1 * data[:, 0]  # correlated pixels
    P = metrics.fit_precision(data, shrinkage=0.05)
    cov = np.cov(_rows(data), rowvar=False)
    shrunk = 0.95 * cov + 0.05 * np.trace(cov) / 18 * np.eye(18)
    assert np.allclose(P.numpy(), np.linalg.inv(shrunk), atol=TOL)
    X, X_hat = data[:5], data[5:10]
    ref = [scipy.spatial.distance.mahalanobis(x, h, P.numpy())
           for x, h in zip(_rows(X), _rows(X_hat))]
    assert np.allclose(metrics.mahalanobis(X, X_hat, P), ref, atol=TOL)


def test_fit_precision_handles_mnist_sized_constant_borders():
    g = torch.Generator().manual_seed(2)
    X = torch.zeros(200, 1, 28, 28)
    X[:, :, 4:24, 4:24] = torch.rand(200, 1, 20, 20, generator=g)  # border stays 0
    P = metrics.fit_precision(X)
    assert P.shape == (784, 784) and torch.isfinite(P).all()
    assert torch.allclose(P, P.T, atol=1e-8)
    assert torch.linalg.eigvalsh(P).min() > 0
    d = metrics.mahalanobis(X[:4], X[4:8], P)
    assert torch.isfinite(d).all() and (d > 0).all()


def test_registry_has_five_uniform_distances(images):
    X, X_hat = images
    P = metrics.fit_precision(torch.rand(50, 3, 8, 8))
    assert list(metrics.RECONSTRUCTION_DISTANCES) == ["EUC", "SOI", "NOC", "E94", "MA"]
    for name, distance in metrics.RECONSTRUCTION_DISTANCES.items():
        d = distance(X, X_hat, precision=P)
        assert d.shape == (6,) and (d > 0).all(), name
        assert distance(X, X, precision=P).abs().max() < TOL, name


# ---------------------------------------------------------------- correlation
@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_correlation_matches_scipy_and_ci_narrows(method):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, 500).astype(float)  # ties: average ranks matter
    b = a + rng.normal(0, 4, 500)
    ref = scipy.stats.pearsonr if method == "pearson" else scipy.stats.spearmanr
    wide = metrics.correlation(a[:20], b[:20], method=method, n_boot=1000)
    narrow = metrics.correlation(a, b, method=method, n_boot=1000)
    for res, n in ((wide, 20), (narrow, 500)):
        expected = ref(a[:n], b[:n])
        assert res.r == pytest.approx(expected[0], abs=TOL)
        assert res.p_value == pytest.approx(expected[1], rel=TOL, abs=1e-300)
        assert res.low < res.r < res.high and res.n == n
    assert narrow.high - narrow.low < 0.5 * (wide.high - wide.low)
    again = metrics.correlation(a[:20], b[:20], method=method, n_boot=1000)
    assert again == wide  # seeded


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_ci_agrees_with_scipy_bootstrap(method):
    rng = np.random.default_rng(1)
    a = rng.normal(size=40)
    b = 0.5 * a + rng.normal(size=40)

    def r(a, b, axis=-1):
        if method == "spearman":
            rank = scipy.stats.rankdata
            a, b = rank(a, axis=axis), rank(b, axis=axis)
        a, b = a - a.mean(axis, keepdims=True), b - b.mean(axis, keepdims=True)
        return (a * b).sum(axis) / np.sqrt((a * a).sum(axis) * (b * b).sum(axis))

    ref = scipy.stats.bootstrap((a, b), r, paired=True, method="percentile",
                                n_resamples=10000, confidence_level=0.9, rng=rng)
    ours = metrics.correlation(a, b, method=method, n_boot=10000, ci=0.9)
    # Two Monte Carlo estimates of the same interval: equal up to resampling noise.
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.03)


def test_correlation_str_and_constant_input():
    res = metrics.Correlation(0.123, -0.3, 0.51, 0.6, 20, "pearson")
    assert str(res) == "pearson r = 0.12 [95% CI -0.30, 0.51], n = 20"
    const = metrics.correlation([1, 1, 1, 1], [1, 2, 3, 4])
    assert np.isnan(const.r) and "undefined" in str(const)


# ------------------------------------------------------- training-health checks
def test_best_constant_mse_is_mean_pixel_variance(images):
    X, _ = images
    x = _rows(X)
    ref = ((x - x.mean(0)) ** 2).mean()
    assert metrics.best_constant_mse(X) == pytest.approx(ref, abs=TOL)
    assert metrics.best_constant_mse(X) == pytest.approx(np.var(x, axis=0).mean())
    mean_image = X.mean(0, keepdim=True).expand_as(X)
    assert metrics.mse(X, mean_image) == pytest.approx(ref, abs=TOL)


def test_check_reconstruction_flags_a_stalled_autoencoder(images):
    X, _ = images
    mean = X.mean(0, keepdim=True)
    stalled = metrics.reconstruction_health(X, mean.expand_as(X))
    assert not stalled.ok and stalled.message.startswith("STALLED")
    assert "same" in stalled.message and stalled.ratio == pytest.approx(1.0)
    assert not metrics.reconstruction_health(X, torch.zeros_like(X)).ok
    # 8% of each image's detail: MSE is 85% of the mean image's, below the 90%
    # tolerance, but the outputs hardly vary: still flagged.
    faint = metrics.reconstruction_health(X, mean + 0.08 * (X - mean))
    assert faint.ratio < 0.9 and not faint.ok and "same" in str(faint)
    swapped = metrics.reconstruction_health(X, X.roll(1, dims=0))  # varied, wrong
    assert not swapped.ok and "no better than the mean image" in swapped.message
    good = metrics.reconstruction_health(X, X + 0.01 * torch.randn_like(X))
    assert good.ok and "learned something" in good.message and good.ratio < 0.05
    broken = metrics.reconstruction_health(X, torch.full_like(X, float("nan")))
    assert not broken.ok and "NaN" in broken.message


def test_check_classifier_flags_a_constant_predictor():
    y = torch.arange(100) % 4
    constant = metrics.classifier_health(y, torch.full((100,), 2))
    assert not constant.ok and "class 2" in constant.message
    shuffled = metrics.classifier_health(y, y[torch.randperm(100,
                                        generator=torch.Generator().manual_seed(0))])
    assert shuffled.accuracy < 0.35 and not shuffled.ok
    good = metrics.classifier_health(y, torch.nn.functional.one_hot(y, 4).float())
    assert good.ok and good.accuracy == 1.0 and good.chance == 0.25


# ------------------------------------------------------------ per-layer probes
def _blobs(n, centres, rng):
    """n points around the rows of `centres` (unit noise), with their labels."""
    y = rng.integers(0, len(centres), n)
    F = centres[y] + rng.normal(0, 1, (n, centres.shape[1]))
    return torch.from_numpy(F), torch.from_numpy(y)


@pytest.mark.parametrize("dim", [5, 400])  # primal (D < N) and dual (D > N) form
def test_ridge_probe_separable_blobs_and_random_labels(dim):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, dim))
    F_train, y_train = _blobs(200, centres, rng)
    F_test, y_test = _blobs(300, centres, rng)
    assert probes.ridge_probe_accuracy(F_train, y_train, F_test, y_test) > 0.98
    torch.manual_seed(0)
    noise_train, noise_test = torch.randn(200, dim), torch.randn(3000, dim)
    y_rand_train = torch.from_numpy(rng.integers(0, 3, 200))
    y_rand_test = torch.from_numpy(rng.integers(0, 3, 3000))
    acc = probes.ridge_probe_accuracy(noise_train, y_rand_train, noise_test,
                                       y_rand_test, num_classes=3)
    assert abs(acc - metrics.chance_accuracy(y_rand_test)) < 0.06


@pytest.mark.parametrize("dim", [5, 400])
def test_ridge_matches_sklearn_on_standardised_features(dim):
    rng = np.random.default_rng(5)
    F_train, F_test = rng.normal(size=(200, dim)), rng.normal(size=(500, dim))
    X_train, X_test = rng.random((200, 7)), rng.random((500, 7))
    y_train, y_test = rng.integers(0, 4, 200), rng.integers(0, 4, 500)
    scaler = StandardScaler().fit(F_train)  # train mean and (population) std
    S_train, S_test = scaler.transform(F_train), scaler.transform(F_test)
    X_ref = Ridge(alpha=2.0).fit(S_train, X_train).predict(S_test)
    ours = probes.ridge_decoder_mse(F_train, X_train, F_test, X_test, alpha=2.0)
    assert ours == pytest.approx(((X_ref - X_test) ** 2).mean(), abs=TOL)
    # RidgeClassifier regresses onto +-1 codes: an affine map of one-hot targets,
    # so it predicts the same classes.
    y_ref = RidgeClassifier(alpha=2.0).fit(S_train, y_train).predict(S_test)
    acc = probes.ridge_probe_accuracy(F_train, y_train, F_test, y_test, alpha=2.0)
    assert acc == pytest.approx(sklearn.metrics.accuracy_score(y_test, y_ref))


def test_ridge_decoder_inverts_an_invertible_linear_map():
    g = torch.Generator().manual_seed(3)
    X_train, X_test = torch.rand(300, 16, generator=g), torch.rand(100, 16, generator=g)
    A = torch.randn(16, 16, generator=g) + 4 * torch.eye(16)  # well conditioned
    decoded = probes.ridge_decoder_mse(X_train @ A, X_train, X_test @ A, X_test,
                                        alpha=1e-8)
    assert decoded < 1e-10
    noise = probes.ridge_decoder_mse(torch.randn(300, 16, generator=g), X_train,
                                      torch.randn(100, 16, generator=g), X_test)
    assert noise > 0.5 * metrics.best_constant_mse(X_test)


def test_layer_probes_one_row_per_layer_and_chunking_is_invisible():
    rng = np.random.default_rng(4)
    F, y = _blobs(400, rng.normal(0, 10, (3, 6)), rng)
    X = torch.sigmoid(F / 10).float()
    layer = torch.nn.Linear(6, 32)  # has parameters: features must carry no graph

    def feature_fn(X_batch):
        assert not torch.is_grad_enabled()  # probes must not build a graph
        return [X_batch, torch.relu(layer(X_batch)), torch.randn(len(X_batch), 3)]

    torch.manual_seed(0)
    rows = probes.layer_probes(feature_fn, X[:300], y[:300], X[300:], y[300:],
                                batch_size=64)
    assert [r["layer"] for r in rows] == [0, 1, 2]
    assert [r["dim"] for r in rows] == [6, 32, 3]
    assert rows[0]["probe_accuracy"] > 0.95 and rows[2]["probe_accuracy"] < 0.6
    # Pixels decode themselves almost exactly (alpha = 1 shrinks a little); noise
    # cannot do better than the mean image.
    assert rows[0]["decoder_mse"] < 1e-3 * metrics.best_constant_mse(X)
    assert rows[2]["decoder_mse"] > 0.9 * metrics.best_constant_mse(X[300:])
    torch.manual_seed(0)
    whole = probes.layer_probes(feature_fn, X[:300], y[:300], X[300:], y[300:],
                                 batch_size=1000)
    for r, w in zip(rows[:2], whole[:2]):
        assert r["probe_accuracy"] == w["probe_accuracy"]
        assert r["decoder_mse"] == pytest.approx(w["decoder_mse"], abs=1e-9)


def test_the_old_health_check_names_still_answer_for_old_notebooks():
    X = torch.rand(6, 1, 4, 4)
    assert metrics.check_reconstruction(X, X) == metrics.reconstruction_health(X, X)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    assert metrics.check_classifier(y, y) == metrics.classifier_health(y, y)
