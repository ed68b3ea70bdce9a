"""Heads on frozen features: how much class information (and how much of the
image) a representation keeps.

- `frozen_features(encoder, X)`: an encoder's output, flattened, no gradients;
- `pca(X_fit, *Xs, k)`: the classic baseline representation;
- `train_probes(feats, y, subsets, head=...)`: one linear or MLP head per labeled
  subset, all trained together as one batched operation, full batch;
- `layer_probes`: closed-form ridge probes of every layer (no training loop,
  no learning rate, so two probes differ only because their features differ).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aelab import validate
from aelab.metrics import _CONSTANT_TOL, _flat64, _labels, accuracy, mse
from aelab.splits import to_float
from aelab.train import predict
from aelab.utils import get_device, progress, training_device


def frozen_features(encoder, X: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """encoder(X) flattened to N x D, in eval mode (the encoder's mode is
    restored afterwards), on the CPU. `encoder` is a module or a bound method
    of one (`model.encode`). It must be frozen (no parameter requires a
    gradient): features of a trainable encoder are not "frozen features", and a
    head trained on them would not say what the pretraining learned."""
    module = encoder if isinstance(encoder, nn.Module) else \
        getattr(encoder, "__self__", None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"frozen_features: the encoder must be a torch module or a method "
                         f"of one (model.encoder or model.encode), got "
                         f"{type(encoder).__name__}")
    if not torch.is_tensor(X) or X.dim() == 0 or len(X) == 0:
        got = f"a {type(X).__name__}" if not torch.is_tensor(X) else \
            f"a tensor of shape {tuple(X.shape)}"
        raise ValueError(f"frozen_features: X must be a non-empty tensor of images "
                         f"(N x C x H x W, as the encoder was trained on), got {got}")
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(f"frozen_features: the encoder still has {len(trainable)} "
                         f"trainable parameters ({trainable[0]}, ...): freeze it "
                         "first (requires_grad_(False) and .eval())")

    def code(xb):
        try:
            out = encoder(xb)
        except RuntimeError as err:  # shapes: torch's words, after ours
            first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
            raise ValueError(f"frozen_features: the encoder cannot take X of shape "
                             f"{tuple(X.shape)} ({first}): pass images shaped as the "
                             "ones it was trained on") from None
        if not torch.is_tensor(out):
            raise ValueError(f"frozen_features: the encoder returned a "
                             f"{type(out).__name__}, not one tensor: pass a module or "
                             "method that returns the code alone")
        return out.flatten(1)

    device = get_device()
    module.to(device)
    was_training = module.training
    module.eval()  # BatchNorm and dropout as at test time; running statistics untouched
    try:
        return predict(code, X, device=device, batch_size=batch_size)
    finally:
        module.train(was_training)


def pca(X_fit: torch.Tensor, *Xs: torch.Tensor, k: int) -> tuple:
    """Project each of Xs onto the top-k principal components of X_fit (images
    or features, flattened). One SVD in float64, however many sets."""
    k = validate.count("k", k, minimum=1, hint="the number of components, e.g. 50")
    if not Xs:
        raise ValueError("pca: no sets to project: pass them after the fit set, e.g. "
                         f"pca(X_train, X_train, X_test, k={k})")
    for what, X in [("X_fit", X_fit)] + [(f"set {i}", X) for i, X in enumerate(Xs)]:
        if not torch.is_tensor(X):
            raise TypeError(f"pca: {what} must be a tensor, got {type(X).__name__}: "
                            "convert it with torch.as_tensor(...)")
        validate.data(X, what, "pca")  # rows, no NaN
    P = to_float(X_fit).flatten(1).double()
    if not 1 <= k <= min(P.shape):
        raise ValueError(f"pca: k={k} must be between 1 and {min(P.shape)} "
                         f"(the data is {tuple(P.shape)})")
    for i, X in enumerate(Xs):
        if X[0].numel() != P.shape[1]:
            raise ValueError(f"pca: set {i} has {X[0].numel()} values per row but the fit "
                             f"set has {P.shape[1]}: project sets of the same width")
    mean = P.mean(0)
    _, _, V = torch.linalg.svd(P - mean, full_matrices=False)
    return tuple(((to_float(X).flatten(1).double() - mean) @ V[:k].T).float()
                 for X in Xs)


def _ridge_predict(feats_train, T_train, feats_test, alpha: float) -> torch.Tensor:
    """Ridge regression T ~ feats W + t0 on standardised features; predict for
    feats_test."""
    if alpha <= 0:
        raise ValueError("alpha must be > 0")
    feats, G = _flat64(feats_train), _flat64(feats_test)
    mean, std = feats.mean(0), feats.std(0, correction=0)
    std = torch.where(std > _CONSTANT_TOL, std, 1.0)  # a dead unit becomes 0, not NaN
    feats, G = (feats - mean) / std, (G - mean) / std
    # Centred feats and T make the intercept t0 = mean(T): it is not penalised.
    t0 = T_train.mean(0)
    T = T_train - t0
    N, D = feats.shape
    if D <= N:  # primal: (feats^T feats + alpha I) W = feats^T T, a D x D system
        eye = torch.eye(D, dtype=feats.dtype)
        W = torch.linalg.solve(feats.T @ feats + alpha * eye, feats.T @ T)
    else:  # dual: the same W = feats^T (feats feats^T + alpha I)^-1 T, an N x N system
        eye = torch.eye(N, dtype=feats.dtype)
        W = feats.T @ torch.linalg.solve(feats @ feats.T + alpha * eye, T)
    return G @ W + t0


def ridge_probe_accuracy(feats_train, y_train, feats_test, y_test, *, alpha: float = 1.0,
                         num_classes: int | None = None) -> float:
    """Test accuracy of a linear probe: ridge regression onto one-hot targets."""
    y_train, y_test = _labels(y_train), _labels(y_test)
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    Y = torch.nn.functional.one_hot(y_train, num_classes).to(torch.float64)
    return accuracy(_ridge_predict(feats_train, Y, feats_test, alpha), y_test)


def ridge_decoder_mse(feats_train, X_train, feats_test, X_test, *,
                      alpha: float = 1.0) -> float:
    """Test pixel MSE of a linear "small decoder" fitted from features to pixels."""
    X_hat = _ridge_predict(feats_train, _flat64(X_train), feats_test, alpha)
    return mse(_flat64(X_test), X_hat)


def _features(feature_fn, X, batch_size: int) -> list[torch.Tensor]:
    """feature_fn over X in chunks, without autograd; per layer a CPU [N, D]."""
    chunks = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            layers = feature_fn(X[start:start + batch_size])
            chunks.append([f.reshape(len(f), -1).cpu() for f in layers])
    return [torch.cat(layer) for layer in zip(*chunks)]


def layer_probes(feature_fn, X_train, y_train, X_test, y_test, *, alpha: float = 1.0,
                 batch_size: int = 1024) -> list[dict]:
    """A linear classifier probe and a linear decoder for every layer's features.

    feature_fn(X) returns a list of per-layer feature tensors [N, ...] (put the
    model in eval mode first; include X itself to get the raw-pixel baseline).
    "layer" is the index in that list. Costs O(N D) memory per layer: pool
    wide convolutional maps inside feature_fn.
    """
    train = _features(feature_fn, X_train, batch_size)
    test = _features(feature_fn, X_test, batch_size)
    return [{"layer": layer, "dim": feats_train.shape[1],
             "probe_accuracy": ridge_probe_accuracy(feats_train, y_train, feats_test,
                                                    y_test, alpha=alpha),
             "decoder_mse": ridge_decoder_mse(feats_train, X_train, feats_test, X_test,
                                              alpha=alpha)}
            for layer, (feats_train, feats_test) in enumerate(zip(train, test))]


class Probes:
    """M heads on the same features, linear or MLP, as stacked weights:
    layers[j] = (W (M, D_in, D_out), b (M, D_out)), ReLU between layers."""

    def __init__(self, layers, mean, std, losses=None, train_accuracy=None):
        self.layers, self.mean, self.std = layers, mean, std
        # (M, steps) each head's cross-entropy on its own labels at every step,
        # and (M,) its accuracy on them at the end: did the head converge?
        self.losses, self.train_accuracy = losses, train_accuracy

    def __len__(self) -> int:
        return len(self.layers[0][0])

    @torch.no_grad()
    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (M, N, C) logits."""
        h = ((feats.float().to(self.mean.device) - self.mean) / self.std)
        h = h.expand(len(self), *h.shape)
        return _forward(h, self.layers).cpu()

    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (M, N) predicted classes."""
        return self.logits(feats).argmax(-1)

    def module(self, k: int = 0) -> nn.Sequential:
        """Head k as an nn.Module on raw (flattened) features, the centring and
        scaling folded into its first layer: e.g. to fine-tune an encoder
        together with the head trained on its frozen features."""
        layers = [nn.Flatten()]
        for j, (W, b) in enumerate(self.layers):
            W, b = W[k].cpu(), b[k].cpu()
            # j == 0: ((feats - mean) / std) W + b = feats (W / std) + (b - (mean / std) W)
            if j == 0:
                std = self.std.cpu().reshape(-1, 1) if self.std.dim() else self.std.cpu()
                W = W / std
                b = b - self.mean.cpu() @ W
            linear = nn.Linear(*W.shape)
            with torch.no_grad():
                linear.weight.copy_(W.T)
                linear.bias.copy_(b)
            layers += [linear] + ([nn.ReLU()] if j < len(self.layers) - 1 else [])
        return nn.Sequential(*layers)


def _forward(h: torch.Tensor, layers) -> torch.Tensor:
    """(S, n, D) -> (S, n, C) through stacked layers, ReLU between them."""
    for j, (W, b) in enumerate(layers):
        h = torch.baddbmm(b[:, None], h, W)  # S x n x D_in -> S x n x D_out
        if j < len(layers) - 1:
            h = h.relu()
    return h


def _init(S: int, sizes: list, generator, device) -> list:
    """nn.Linear's default init, for S heads at once; the last layer starts at
    zero (a linear head then starts at the uniform prediction)."""
    layers = []
    for j, (d_in, d_out) in enumerate(zip(sizes, sizes[1:])):
        bound = d_in ** -0.5
        if j == len(sizes) - 2:
            W, b = torch.zeros(S, d_in, d_out), torch.zeros(S, d_out)
        else:
            W = (torch.rand(S, d_in, d_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(S, d_out, generator=generator) * 2 - 1) * bound
        layers.append((W.to(device).requires_grad_(), b.to(device).requires_grad_()))
    return layers


HEADS = {"linear": (), "mlp": (256, 256)}  # hidden widths (alberti2017: 3 FC layers)


def train_probes(feats: torch.Tensor, y: torch.Tensor, subsets: list, *,
                 head: str = "linear", num_classes: int | None = None,
                 num_steps: int | None = None, lr: float | None = None,
                 weight_decay: float = 1e-3, scale: str = "global", seed: int = 0,
                 device=None, quiet: bool = True) -> Probes:
    """One head per index set in `subsets`, all trained together, full batch,
    with Adam, on the frozen features feats (N, D) of the labeled pool, labels y.

    head: "linear" (multinomial logistic regression; defaults 300 steps, lr
    0.05) or "mlp" (3 fully connected layers, 256 hidden ReLU units; defaults
    500 steps, lr 1e-3). Features are centred with the mean of all of feats (no
    labels are used) and divided by one global std (scale="global": keeps the
    features' geometry) or each feature's own (scale="feature": whitens, which
    inflates near-constant directions). weight_decay is an L2 penalty on the
    weights, summed over heads so each head gets the same as alone.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}: use 'linear' or 'mlp'")
    if scale not in ("global", "feature"):
        raise ValueError(f"unknown scale {scale!r}: use 'global' or 'feature'")
    num_steps = num_steps if num_steps is not None else (300 if head == "linear" else 500)
    lr = lr if lr is not None else (0.05 if head == "linear" else 1e-3)
    num_steps = validate.count("num_steps", num_steps, minimum=1, hint="e.g. 300")
    validate.positive("lr", lr, hint="e.g. 0.05, or None for the head's default")
    validate.non_negative("weight_decay", weight_decay, hint="use 0 for none")
    validate.count("seed", seed, minimum=None)
    validate.probe_data(feats, y, subsets, num_classes)
    device = training_device(device)
    feats, y = feats.float().to(device), torch.as_tensor(y).to(device)
    C = num_classes or int(y.max()) + 1
    mean = feats.mean(0)
    std = (feats.std() if scale == "global" else feats.std(0)).clamp_min(1e-6)
    Fz = (feats - mean) / std
    sizes = [feats.shape[1], *HEADS[head], C]
    generator = torch.Generator().manual_seed(seed)
    trained = [None] * len(subsets)
    curves, fit = [None] * len(subsets), [None] * len(subsets)
    # Heads with subsets of equal size train as one batched op on their own rows
    # only (a budget sweep has one group per budget, the seeds batched inside).
    # Adam is element-wise, so grouping gives the same heads as one big op.
    groups: dict = {}
    for m, s in enumerate(subsets):
        groups.setdefault(len(s), []).append(m)
    for heads in progress(groups.values(), desc="probes", disable=quiet, leave=False):
        idx = torch.stack([torch.as_tensor(subsets[m], device=device) for m in heads])
        Fg, yg = Fz[idx], y[idx]  # S, n, D and S, n
        layers = _init(len(heads), sizes, generator, device)
        params = [t for layer in layers for t in layer]
        opt = torch.optim.Adam(params, lr=lr)
        steps = []
        for _ in range(num_steps):
            logits = _forward(Fg, layers)
            per_head = F.cross_entropy(logits.flatten(0, 1), yg.flatten(),
                                        reduction="none").view(yg.shape).mean(1)
            ce = per_head.mean()
            l2 = sum(W.pow(2).sum() for W, _ in layers)
            loss = ce * len(heads) + weight_decay * l2 / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps.append(per_head.detach())
        with torch.no_grad():
            right = (_forward(Fg, layers).argmax(-1) == yg).float().mean(1)
        steps = torch.stack(steps, 1).cpu()  # heads, steps
        for k, m in enumerate(heads):
            trained[m] = [(W[k].detach(), b[k].detach()) for W, b in layers]
            curves[m], fit[m] = steps[k], float(right[k])
    stacked = [(torch.stack([t[j][0] for t in trained]),
                torch.stack([t[j][1] for t in trained])) for j in range(len(sizes) - 1)]
    return Probes(stacked, mean, std, torch.stack(curves), torch.tensor(fit))
