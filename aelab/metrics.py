"""Numbers that judge a model: accuracy, reconstruction distances, correlations,
and training-health checks (per-layer probes: aelab.probes).

Images are float tensors in [0, 1], shaped [N, C, H, W] or [N, D]. Every
distance returns one value per image (a tensor [N]) and is computed in float64,
so a lesson can compare models without float32 rounding deciding the ranking.
This module imports nothing else from aelab.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch
from skimage import color

from aelab import validate

_CONSTANT_TOL = 1e-12  # a row whose values all lie this close to its mean is constant


def _flat64(X) -> torch.Tensor:
    """[N, ...] tensor or array -> [N, D] float64 on the CPU."""
    X = torch.as_tensor(X).detach().cpu()
    return X.reshape(len(X), -1).to(torch.float64)


def _pair(X, X_hat) -> tuple[torch.Tensor, torch.Tensor]:
    if tuple(X.shape) != tuple(X_hat.shape):
        raise ValueError(f"X has shape {tuple(X.shape)} but X_hat has shape "
                         f"{tuple(X_hat.shape)}: compare images of the same shape")
    return _flat64(X), _flat64(X_hat)


def _labels(v) -> torch.Tensor:
    """Class labels from labels [N] or from logits/scores [N, C] (argmax)."""
    v = torch.as_tensor(v).detach().cpu()
    return (v.argmax(1) if v.ndim == 2 else v).long().reshape(-1)


# ---------------------------------------------------------------- classification
def accuracy(logits_or_labels, y) -> float:
    """Share of correct predictions; 2-D input is read as logits (argmax, dim 1)."""
    pred, y = _labels(logits_or_labels), torch.as_tensor(y).cpu().long().reshape(-1)
    if len(pred) != len(y) or len(y) == 0:
        raise ValueError(f"{len(pred)} predictions for {len(y)} labels")
    return (pred == y).double().mean().item()


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """LongTensor [C, C]: row = true class, column = predicted class."""
    y_true, y_pred = torch.as_tensor(y_true).cpu().long(), _labels(y_pred)
    both = torch.cat([y_true, y_pred])
    if len(both) and (both.min() < 0 or both.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    # Each (true, pred) pair gets its own bin true*C + pred: one bincount, no loop.
    counts = torch.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def chance_accuracy(y) -> float:
    """Accuracy of always answering the most common class: the bar to beat."""
    y = torch.as_tensor(y).cpu().long()
    return (torch.bincount(y).max() / len(y)).item()


# ---------------------------------------------------------------- pixel errors
def mse(X, X_hat, reduction: str = "mean"):
    """Mean squared pixel error: a float ("mean") or one value per image ("none")."""
    x, x_hat = _pair(X, X_hat)
    per_image = ((x - x_hat) ** 2).mean(1)
    return _reduce(per_image, reduction)


def psnr(X, X_hat, data_range: float = 1.0, reduction: str = "mean"):
    """Peak signal-to-noise ratio per image, 10 log10(range^2 / mse), in dB.

    "mean" averages the per-image PSNRs (inf if any image is reproduced exactly);
    "pooled" is the PSNR of the mean squared error over all images (finite
    unless every image is reproduced exactly).
    """
    validate.choice("reduction", reduction, ("mean", "none", "pooled"))
    validate.positive("data_range", data_range, hint="1.0 for images in [0, 1]")
    tops = []
    for name, v in (("X", X), ("X_hat", X_hat)):
        if not isinstance(v, (torch.Tensor, np.ndarray)):
            raise TypeError(f"psnr: {name} must be a tensor (or array) of images, got "
                            f"{type(v).__name__}: convert it with torch.as_tensor(...)")
        v = torch.as_tensor(v)
        if v.dim() == 0 or not v.numel():
            raise ValueError(f"psnr: {name} is empty (shape {tuple(v.shape)}): pass at "
                             "least one image")
        tops.append(float(v.abs().max()))
    if tops[0] > 1.5 * data_range:
        raise ValueError(f"psnr: the images reach {tops[0]:.4g} but data_range is "
                         f"{data_range:g}: scale them to [0, {data_range:g}] (X / 255) "
                         "or pass data_range=255")
    if tops[1] > 1.5 * data_range:
        raise ValueError(f"psnr: X_hat reaches {tops[1]:.4g} but data_range is "
                         f"{data_range:g}: put X_hat on the images' scale (X_hat / 255 "
                         "for [0, 1])")
    # A range 10x the pixels' (255 for images in [0, 1]) adds 20 dB or more; all-zero
    # images are left alone (any range gives them the same, infinite PSNR).
    if 0 < max(tops) and data_range >= 10 * max(*tops, 1.0) and not any(
            getattr(v, "dtype", None) in (torch.uint8, np.uint8) for v in (X, X_hat)):
        raise ValueError(f"psnr: data_range is {data_range:g} but the images only "
                         f"reach {max(tops):.4g}: pass data_range=1.0 for images in "
                         "[0, 1]")
    if reduction == "pooled":
        return 10 * math.log10(data_range**2 / max(mse(X, X_hat), 1e-300))
    per_image = 10 * torch.log10(data_range**2 / mse(X, X_hat, reduction="none"))
    return _reduce(per_image, reduction)


def _reduce(per_image: torch.Tensor, reduction: str):
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean().item()
    raise ValueError(f"reduction must be 'mean' or 'none', not {reduction!r}")


# ------------------------------------------ alberti2017's five distances, [N] each
def _centred(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows minus their mean, and a mask of the rows that are constant."""
    vc = v - v.mean(1, keepdim=True)
    return vc, vc.abs().amax(1) <= _CONSTANT_TOL


def euclidean(X, X_hat) -> torch.Tensor:
    """EUC: ||x - x_hat||_2 over all pixels (and channels) of each image."""
    x, x_hat = _pair(X, X_hat)
    return (x - x_hat).norm(dim=1)


def scale_offset_invariant(X, X_hat) -> torch.Tensor:
    """SOI: min over scalars a, b of ||x - (a x_hat + b)||_2, per image.

    Least squares in closed form: a = <xc, hc> / <hc, hc> and b = mean(x) -
    a mean(x_hat), with xc, hc the mean-centred images, so the distance is
    ||xc - a hc||. A constant x_hat can only supply the offset: a = 0 and SOI
    = ||x - mean(x)||. SOI = ||xc|| sqrt(1 - r^2), r the Pearson correlation.
    """
    x, x_hat = _pair(X, X_hat)
    xc, _ = _centred(x)
    hc, constant = _centred(x_hat)
    hh = (hc * hc).sum(1)
    a = (xc * hc).sum(1) / torch.where(constant, 1.0, hh)
    a = torch.where(constant, 0.0, a)
    # The residual vector, not ||xc||^2 - a^2 ||hc||^2: no cancellation near 0.
    return (xc - a[:, None] * hc).norm(dim=1)


def normalized_correlation(X, X_hat) -> torch.Tensor:
    """NOC: 1 - Pearson r(x, x_hat) over the flattened pixels, in [0, 2].

    r is undefined when x or x_hat is constant (a blank image); NOC is then
    defined as 1.0, the value for uncorrelated images.
    """
    x, x_hat = _pair(X, X_hat)
    xc, x_const = _centred(x)
    hc, h_const = _centred(x_hat)
    undefined = x_const | h_const
    norms = torch.where(undefined, 1.0, xc.norm(dim=1) * hc.norm(dim=1))
    r = ((xc * hc).sum(1) / norms).clamp(-1.0, 1.0)
    return torch.where(undefined, 1.0, 1.0 - r)


def _as_rgb(X) -> np.ndarray:
    """[N, C, H, W] (C = 1 or 3) or [N, D] -> numpy [N, H, W, 3] in [0, 1]."""
    X = torch.as_tensor(X).detach().cpu().to(torch.float64).clamp(0, 1)
    if X.ndim == 2:  # N x D: D grey pixels in a row
        X = X[:, None, :, None]
    if X.ndim != 4 or X.shape[1] not in (1, 3):
        raise ValueError(f"E94 needs [N, 1 or 3, H, W] or [N, D], got {tuple(X.shape)}")
    X = X.expand(-1, 3, -1, -1)  # grey -> (g, g, g); RGB unchanged
    return np.ascontiguousarray(X.permute(0, 2, 3, 1).numpy())  # skimage: channel last


def e94(X, X_hat) -> torch.Tensor:
    """E94: mean over pixels of the CIE94 colour difference, per image.

    Both images are clipped to [0, 1], converted with skimage.color.rgb2lab and
    compared with skimage.color.deltaE_ciede94(lab(x), lab(x_hat)) (graphic-arts
    weights; x is the reference colour, as CIE94 is not symmetric). Greyscale
    images are replicated to 3 channels first, so for them E94 measures
    lightness differences only: |L*(x) - L*(x_hat)| up to rounding.
    """
    if tuple(X.shape) != tuple(X_hat.shape):
        _pair(X, X_hat)  # raises the shape message
    lab, lab_hat = color.rgb2lab(_as_rgb(X)), color.rgb2lab(_as_rgb(X_hat))
    delta = color.deltaE_ciede94(lab, lab_hat)  # [N, H, W]
    return torch.from_numpy(delta.reshape(len(delta), -1).mean(1))


def mahalanobis(X, X_hat, precision=None) -> torch.Tensor:
    """MA: sqrt(d^T P d) per image, d = flattened x - x_hat, P = fit_precision(...).

    P is the inverse pixel covariance of the data, so an error along a
    direction in which images rarely vary costs more than one along a common one.
    """
    if precision is None:
        raise ValueError("mahalanobis needs precision=fit_precision(X_train)")
    x, x_hat = _pair(X, X_hat)
    P = torch.as_tensor(precision).cpu().to(torch.float64)
    if P.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"precision is {tuple(P.shape)} for {x.shape[1]} pixels")
    d = x - x_hat
    # clamp: a tiny negative from rounding would give sqrt(-0.0...) = NaN
    return ((d @ P) * d).sum(1).clamp_min(0).sqrt()


def fit_precision(X, shrinkage: float = 1e-3) -> torch.Tensor:
    """Inverse of the shrunk pixel covariance of X: float64 [D, D].

    S = (1 - shrinkage) C + shrinkage * v * I, C the sample covariance and v the
    mean pixel variance. MNIST's border pixels never vary, so C alone is
    singular; the scaled identity keeps every eigenvalue >= shrinkage * v > 0.
    """
    x = _flat64(X)
    if len(x) < 2 or not 0 < shrinkage <= 1:
        raise ValueError("fit_precision needs >= 2 images and 0 < shrinkage <= 1")
    xc = x - x.mean(0)
    cov = xc.T @ xc / (len(x) - 1)
    v = cov.diagonal().mean().item() or 1.0  # all-constant data: shrink towards I
    eye = torch.eye(len(cov), dtype=torch.float64)
    shrunk = (1 - shrinkage) * cov + shrinkage * v * eye
    return torch.cholesky_inverse(torch.linalg.cholesky(shrunk))


def _ignores_precision(distance):
    @functools.wraps(distance)
    def with_precision(X, X_hat, precision=None):
        return distance(X, X_hat)
    return with_precision


# Uniform signature f(X, X_hat, precision=None) -> [N]; only "MA" uses precision.
RECONSTRUCTION_DISTANCES = {
    "EUC": _ignores_precision(euclidean),
    "SOI": _ignores_precision(scale_offset_invariant),
    "NOC": _ignores_precision(normalized_correlation),
    "E94": _ignores_precision(e94),
    "MA": mahalanobis,
}


# ---------------------------------------------------------------- correlation
@dataclass(frozen=True)
class Correlation:
    r: float
    low: float  # percentile-bootstrap confidence interval
    high: float
    p_value: float  # from scipy.stats (H0: no correlation)
    n: int
    method: str
    ci: float = 0.95

    def __str__(self) -> str:
        if math.isnan(self.r):
            return f"{self.method} r undefined (a constant input), n = {self.n}"
        return (f"{self.method} r = {self.r:.2f} [{self.ci:.0%} CI {self.low:.2f}, "
                f"{self.high:.2f}], n = {self.n}")


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ac, bc = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ac * bc).sum(-1) / np.sqrt((ac**2).sum(-1) * (bc**2).sum(-1))


def correlation(a, b, *, method: str = "pearson", n_boot: int = 2000,
                ci: float = 0.95, seed: int = 0) -> Correlation:
    """Pearson or Spearman r between paired values, with a bootstrap CI.

    The CI resamples the n pairs with replacement n_boot times and takes the
    percentiles of r; Spearman re-ranks each resample (average ranks for ties).
    """
    a = np.asarray(torch.as_tensor(a).detach().cpu(), dtype=np.float64).ravel()
    b = np.asarray(torch.as_tensor(b).detach().cpu(), dtype=np.float64).ravel()
    n = len(a)
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', not {method!r}")
    if len(b) != n or n < 3 or not np.isfinite(np.r_[a, b]).all():
        raise ValueError(f"need >= 3 finite pairs, got {n} and {len(b)} values")
    if n_boot < 1 or not 0 < ci < 1:
        raise ValueError("need n_boot >= 1 and 0 < ci < 1")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        nan = float("nan")
        return Correlation(nan, nan, nan, nan, n, method, ci)
    rank = functools.partial(scipy.stats.rankdata, method="average", axis=-1)
    test = scipy.stats.pearsonr if method == "pearson" else scipy.stats.spearmanr
    r = _row_pearson(*((rank(a), rank(b)) if method == "spearman" else (a, b)))
    rng = np.random.default_rng(seed)
    boots = []
    for size in np.diff(np.r_[0:n_boot:500, n_boot]):  # chunks bound the memory
        idx = rng.integers(0, n, size=(size, n))
        ra, rb = a[idx], b[idx]
        if method == "spearman":
            ra, rb = rank(ra), rank(rb)
        boots.append(_row_pearson(ra, rb))
    # A resample can draw one pair n times: r is NaN there, so it is skipped.
    low, high = np.nanpercentile(np.concatenate(boots), [50 * (1 - ci), 50 * (1 + ci)])
    p_value = float(test(a, b)[1])
    return Correlation(float(r), float(low), float(high), p_value, n, method, ci)


# ------------------------------------------------------- training-health checks
def best_constant_mse(X) -> float:
    """MSE of the best constant output, the per-pixel mean image of X.

    Equals the mean per-pixel variance: the score to beat before an autoencoder
    has learned anything about the individual images.
    """
    x = _flat64(X)
    return ((x - x.mean(0)) ** 2).mean().item()


@dataclass(frozen=True)
class ReconstructionHealth:
    mse: float
    constant_mse: float  # best_constant_mse(X)
    ratio: float  # mse / constant_mse
    ok: bool
    message: str
    output_variance: float = float("nan")  # best_constant_mse(X_hat)

    def __str__(self) -> str:
        return self.message


_ADVICE = "try more epochs, a higher lr or another seed"


def reconstruction_health(X, X_hat, *, tolerance: float = 0.9) -> ReconstructionHealth:
    """Did the autoencoder learn? ok iff mse < tolerance * best_constant_mse(X)
    and the reconstructions differ from image to image.

    "Collapsed" means the variance of X_hat across images is below 1% of X's:
    the usual stalled autoencoder, which outputs the mean (or a blank) image.
    """
    err, base = mse(X, X_hat), best_constant_mse(X)
    spread = best_constant_mse(X_hat)
    ratio = err / base if base > 0 else (0.0 if err == 0 else math.inf)
    collapsed = spread < 1e-2 * base  # < 1% of the data's variance: one image
    ok = err < tolerance * base and not collapsed
    if not math.isfinite(err):
        message = "STALLED: X_hat contains NaN or inf: training diverged; lower the lr"
    elif collapsed:
        message = (f"STALLED: X_hat barely varies across images (variance "
                   f"{spread:.2g} vs {base:.2g} in X): it outputs (nearly) the same "
                   f"blank/mean image for every input (MSE {err:.3g}, {ratio:.0%} "
                   f"of the mean image's); {_ADVICE}")
    elif err >= tolerance * base:
        message = (f"STALLED: MSE {err:.3g} is no better than the mean image's "
                   f"{base:.3g} ({ratio:.0%}): the reconstructions are no closer "
                   f"to the inputs than the mean image is; {_ADVICE}")
    else:
        message = (f"MSE {err:.3g} is {ratio:.0%} of the best constant image's "
                   f"{base:.3g}: the autoencoder learned something")
    return ReconstructionHealth(err, base, ratio, ok, message, spread)


@dataclass(frozen=True)
class ClassifierHealth:
    accuracy: float
    chance: float  # chance_accuracy(y_true)
    ok: bool
    message: str
    num_predicted: int = 0  # distinct classes among the predictions

    def __str__(self) -> str:
        return self.message


def classifier_health(y_true, y_pred) -> ClassifierHealth:
    """Did the classifier learn? ok iff accuracy > chance + 0.05 and it predicts
    more than one class (a one-class predictor never beats chance anyway; the
    check is there for the message). y_pred may be labels or logits."""
    acc, chance = accuracy(y_pred, y_true), chance_accuracy(y_true)
    predicted = torch.unique(_labels(y_pred))
    if len(predicted) == 1:
        message = (f"STALLED: it predicts class {predicted.item()} for every input "
                   f"(accuracy {acc:.1%}, chance {chance:.1%}); {_ADVICE}")
    elif acc <= chance + 0.05:
        message = (f"STALLED: accuracy {acc:.1%} is within 5 points of chance "
                   f"{chance:.1%}; {_ADVICE}")
    else:
        message = (f"accuracy {acc:.1%} vs chance {chance:.1%}: the classifier "
                   f"learned something")
    ok = acc > chance + 0.05 and len(predicted) > 1
    return ClassifierHealth(acc, chance, ok, message, len(predicted))


# Old names (before "check" meant only an exercise check); kept for old notebooks.
check_reconstruction, check_classifier = reconstruction_health, classifier_health
ReconstructionCheck, ClassifierCheck = ReconstructionHealth, ClassifierHealth
