"""Every exercise of lessons 00-05 against a table of plausible wrong answers
(each must be rejected with its one-line hint) and of correct variants (each,
and the lesson's own solution, must pass); stubs and solutions share their
signature; no later cell rebinds a name the exercise cells use."""
import ast
import copy
import functools
from pathlib import Path

import jupytext
import pytest
import torch
import torch.nn.functional as F
from test_lesson_run import lesson_namespace
from torch import nn

from aelab.corrupt import corrupt

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
bce = F.binary_cross_entropy_with_logits

# exercise -> (lesson file, the check, what the check cell needs besides imports)
EXERCISES = {
    "reconstruction_loss": ("00_tour.py", "check_reconstruction_loss", {}),
    "sparse_loss": ("01_pretraining.py", "check_sparse_loss", {}),
    "freeze": ("01_pretraining.py", "check_freeze", {}),
    "soi": ("02_pitfall.py", "check_soi", {}),
    "decoder_only": ("02_pitfall.py", "check_decoder_only", {}),
    "denoising_loss (03)": ("03_skips.py", "check_denoising_loss", {}),
    "small_decoder": ("03_skips.py", "check_small_decoder", {}),
    "denoising_loss (04)": ("04_erhan.py", "check_denoising_loss", {"MASK": 0.25}),
    "greedy_pretrain": ("04_erhan.py", "check_greedy", {"WIDTH": 8}),
    "unpool_with_switches": ("05_joint.py", "check_unpool", {}),
    "joint_loss": ("05_joint.py", "check_joint_loss", {}),
}
HELPERS = {"check_greedy": ("dae", "encode"),  # cells the check itself calls
           "check_unpool": ("switch_pool", "encode"),  # lesson 05's pooling, its net
           "check_joint_loss": ("switch_pool", "encode")}


def namespace(exercise: str) -> dict:
    """The lesson's imports, the cells the check needs, and the check cell, run
    alone (its last line calls the check on a blank answer)."""
    lesson, name, given = EXERCISES[exercise]
    ns = {**given, exercise.split(" ")[0]: lambda *args, **kw: None}
    for helper in HELPERS.get(name, ()):
        ns = lesson_namespace(LESSONS / lesson, helper, **ns)
    return lesson_namespace(LESSONS / lesson, name, **ns)


@functools.cache
def checker(exercise: str):
    """The lesson's check function for this exercise."""
    return namespace(exercise)[EXERCISES[exercise][1]]


def encode(layer, codes):  # lesson 04's, for the greedy answers below
    with torch.no_grad():
        return torch.sigmoid(layer(codes))


# ---- lesson 00: reconstruction_loss(model, batch) ---------------------------

def mse_item(model, batch):
    return F.mse_loss(model(batch[0]), batch[0]).item()


def mse_rewrapped(model, batch):
    return torch.tensor(F.mse_loss(model(batch[0]), batch[0]).item())


def mse_detached(model, batch):
    return F.mse_loss(model(batch[0]).detach(), batch[0])


def mse_summed(model, batch):
    return ((model(batch[0]) - batch[0]) ** 2).sum()


def mean_absolute(model, batch):
    return (model(batch[0]) - batch[0]).abs().mean()


def mse_per_pixel(model, batch):
    return F.mse_loss(model(batch[0]), batch[0], reduction="none")


def mse_in_place(model, batch):
    X, = batch
    return X.sub_(model(X)).pow(2).mean()


def mse_in_float32(model, batch):
    X, = batch
    return F.mse_loss(model(X.float()), X.float())


def mse_typo(model, batch):
    X, = batch
    return F.mse_loss(X_hat, X)  # noqa: F821 - the student's typo


def mse_right(model, batch):
    X, = batch
    return F.mse_loss(model(X), X)


def mse_right_by_hand(model, batch):
    X, = batch
    return torch.mean((X - model.decode(model.encode(X))) ** 2)


# ---- lesson 01: sparse_loss(model, batch, lam), freeze(encoder) -------------

def sparse(penalty, *, size=True):
    """A sparse loss whose L1 term is penalty(z, X_hat, lam)."""
    def sparse_loss(model, batch, lam):
        X, = batch
        z = model.encode(X)
        X_hat = model.decode(z, X.shape[-2:]) if size else model.decode(z)
        return F.mse_loss(X_hat, X) + penalty(z, X_hat, lam)
    return sparse_loss


def sparse_terms_in_a_tensor(model, batch, lam):
    X, = batch
    z = model.encode(X)
    terms = [F.mse_loss(model.decode(z, X.shape[-2:]), X).item(),
             lam * z.abs().mean().item()]
    return torch.tensor(terms).sum()


def sparse_lam_on_mse(model, batch, lam):
    X, = batch
    z = model.encode(X)
    return lam * F.mse_loss(model.decode(z, X.shape[-2:]), X) + z.abs().mean()


def sparse_by_forward(model, batch, lam):
    X, = batch
    return F.mse_loss(model(X), X) + lam * torch.mean(torch.abs(model.encode(X)))


def sparse_centred_in_place(model, batch, lam):
    X, = batch
    X -= X.mean()  # centres the caller's batch too
    return sparse(lambda z, X_hat, lam: lam * z.abs().mean())(model, (X,), lam)


def sparse_in_float32(model, batch, lam):
    X, = batch
    return sparse(lambda z, X_hat, lam: lam * z.abs().mean())(model, (X.float(),), lam)


def sparse_if_on_a_tensor(model, batch, lam):
    X, = batch
    z = model.encode(X)
    mse, l1 = F.mse_loss(model.decode(z, X.shape[-2:]), X), z.abs().mean()
    return mse + lam * l1 if l1 > 0 else mse  # a Python if on a tensor's value


def freeze_eval_only(encoder):
    return encoder.eval()


def freeze_grads_only(encoder):
    return encoder.requires_grad_(False)


def freeze_a_copy(encoder):
    return copy.deepcopy(encoder).requires_grad_(False).eval()


def freeze_no_return(encoder):
    encoder.requires_grad_(False)
    encoder.eval()


def freeze_training_flag(encoder):
    encoder.training = False
    return encoder.requires_grad_(False)


def freeze_comparison_typo(encoder):
    for p in encoder.parameters():
        p.requires_grad == False  # noqa: E712, B015 - the student's typo
    return encoder.eval()


def freeze_module_attribute(encoder):
    encoder.requires_grad = False
    return encoder.eval()


def freeze_and_zero(encoder):
    with torch.no_grad():
        for p in encoder.parameters():
            p.zero_()
    return encoder.requires_grad_(False).eval()


def freeze_wrapped(encoder):
    return nn.Sequential(encoder).requires_grad_(False).eval()


def freeze_loop(encoder):
    for p in encoder.parameters():
        p.requires_grad = False
    return encoder.eval()


def freeze_train_false(encoder):
    return encoder.requires_grad_(False).train(False)


# ---- lesson 02: soi(X, X_hat), decoder_only(autoencoder, encoder) -----------

def soi_with(centre=lambda v: v - v.mean(1, keepdim=True), guard=True,
             swap=False, reduce=None, dtype=torch.float64):
    def soi(X, X_hat):
        x, h = X.flatten(1).to(dtype), X_hat.flatten(1).to(dtype)
        if swap:
            x, h = h, x
        xc, hc = centre(x), centre(h)
        hh = (hc * hc).sum(1)
        a = (torch.where(hh > 1e-12, (xc * hc).sum(1) / hh.clamp_min(1e-12), 0.0)
             if guard else (xc * hc).sum(1) / hh)
        d = (xc - a[:, None] * hc).norm(dim=1)
        return reduce(d) if reduce else d
    return soi


def soi_euclidean(X, X_hat):
    return (X.flatten(1).double() - X_hat.flatten(1).double()).norm(dim=1)


def soi_in_place(X, X_hat):
    x, h = X.flatten(1).double(), X_hat.flatten(1).double()
    x -= x.mean(1, keepdim=True)
    h -= h.mean(1, keepdim=True)
    hh = (h * h).sum(1)
    a = torch.where(hh > 1e-12, (x * h).sum(1) / hh.clamp_min(1e-12), 0.0)
    return (x - a[:, None] * h).norm(dim=1)


def soi_fixed_size(X, X_hat):
    return soi_with()(X.reshape(len(X), 1, 8, 8), X_hat.reshape(len(X), 1, 8, 8))


def soi_as_a_list(X, X_hat):
    return [float(d) for d in soi_with()(X, X_hat)]


def soi_loop(X, X_hat):
    x, h = X.flatten(1).double(), X_hat.flatten(1).double()
    out = []
    for xi, hi in zip(x, h, strict=True):
        xc, hc = xi - xi.mean(), hi - hi.mean()
        a = (xc @ hc) / (hc @ hc) if (hc @ hc) > 1e-12 else 0.0
        out.append((xc - a * hc).norm())
    return torch.stack(out)


def decoder_only_in_place(autoencoder, encoder):
    autoencoder.encoder = encoder.requires_grad_(False).eval()
    return autoencoder


def decoder_only_shallow_copy(autoencoder, encoder):
    new = copy.copy(autoencoder)  # shares the submodules with the original
    new.encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
    return new


def decoder_only_no_eval(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    new.encoder = copy.deepcopy(encoder).requires_grad_(False)
    return new


def decoder_only_all_frozen(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    new.encoder = copy.deepcopy(encoder)
    return new.requires_grad_(False).eval()


def decoder_only_old_encoder(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    new.encoder.requires_grad_(False).eval()
    return new


def decoder_only_no_grad_block(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    with torch.no_grad():  # does not freeze anything
        new.encoder = copy.deepcopy(encoder).eval()
    return new


def decoder_only_right(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    new.encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
    return new


def decoder_only_load_state(autoencoder, encoder):
    new = copy.deepcopy(autoencoder)
    new.encoder.load_state_dict(encoder.state_dict())
    for p in new.encoder.parameters():
        p.requires_grad = False
    new.encoder.eval()
    return new


# ---- lesson 03: denoising_loss(kind, level), small_decoder(...) -------------

def denoise(loss):
    """denoising_loss(kind, level) whose loss_fn is loss(model, X, kind, level)."""
    return lambda kind, level: lambda model, batch: loss(model, batch[0], kind, level)


def corrupted_once(kind, level):
    made = {}

    def loss_fn(model, batch):
        X, = batch
        if "X_tilde" not in made:  # one corruption for the whole training
            made["X_tilde"] = corrupt(X, kind, level)
        return F.mse_loss(model(made["X_tilde"]), X)
    return loss_fn


def denoising_in_float32(model, X, kind, level):
    X = X.float()
    return F.mse_loss(model(corrupt(X, kind, level)), X)


def masked_in_place(model, X, kind, level):
    X.mul_(torch.rand_like(X) > level)
    return F.mse_loss(model(X), X)


def denoising_by_hand(kind, level):
    def loss_fn(model, batch):
        X, = batch
        X_tilde = corrupt(X, kind=kind, level=level)
        return ((model(X_tilde) - X) ** 2).mean()
    return loss_fn


def decoder(*, relu=True, up_kernel=3, layers=None, out=True, strided_first=False,
            frozen=False):
    """small_decoder(channels, downsamplings, *, num_layers, ...) built by the
    recipe (num_layers transposed 3x3 convs, the last `downsamplings` of them
    stride 2, a ReLU after each, a 3x3 conv to out_channels), with one thing
    changed."""
    def small_decoder(channels, downsamplings, *, num_layers, width=8, out_channels=1):
        n = downsamplings if layers == "per halving" else num_layers
        stack, c = [], channels
        for i in range(n):
            up = i < downsamplings if strided_first else i >= n - downsamplings
            k = up_kernel if up else 3
            stack.append(nn.ConvTranspose2d(c, width, k, stride=2 if up else 1,
                                            padding=(k - 1) // 2,
                                            output_padding=int(up) if k == 3 else 0))
            stack += [nn.ReLU()] if relu else []
            c = width
        stack.append(nn.Conv2d(c, out_channels if out else 1, 3, padding=1))
        return nn.Sequential(*stack).requires_grad_(not frozen)
    return small_decoder


def decoder_upsample_to_28(channels, downsamplings, *, num_layers, width=8,
                           out_channels=1):
    stack = [nn.Upsample(size=28)]
    for i in range(num_layers):
        stack += [nn.ConvTranspose2d(channels if i == 0 else width, width, 3,
                                     padding=1), nn.ReLU()]
    return nn.Sequential(*stack, nn.Conv2d(width, out_channels, 3, padding=1))


BUILT = {}


def decoder_built_once(channels, downsamplings, *, num_layers, width=8,
                       out_channels=1):
    key = (channels, downsamplings, num_layers, width, out_channels)
    if key not in BUILT:  # the same layers for every encoder layer's decoder
        BUILT[key] = decoder()(channels, downsamplings, num_layers=num_layers,
                               width=width, out_channels=out_channels)
    return BUILT[key]


def decoder_one_conv(channels, downsamplings, *, num_layers, width=8, out_channels=1):
    return nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1))


def decoder_keywords(channels, downsamplings, *, num_layers, width=8, out_channels=1):
    stack = []
    for i in range(num_layers):
        up = num_layers - i <= downsamplings
        stack.append(nn.ConvTranspose2d(in_channels=width if i else channels,
                                        out_channels=width, kernel_size=3,
                                        stride=1 + up, padding=1, output_padding=int(up)))
        stack.append(nn.ReLU(inplace=True))
    return nn.Sequential(*stack, nn.Conv2d(width if num_layers else channels,
                                           out_channels, kernel_size=3, padding=1))


# ---- lesson 04: denoising_loss(model, batch), greedy_pretrain(...) ----------

def masking(mask, target=lambda X, X_tilde: X, loss=bce):
    def denoising_loss(model, batch):
        X, = batch
        X_tilde = mask(X)
        return loss(model(X_tilde), target(X, X_tilde))
    return denoising_loss


def masking_in_place(model, batch):
    X, = batch
    X[torch.rand_like(X) < 0.25] = 0
    return bce(model(X), X)


def masking_in_float32(model, batch):
    X, = batch
    X = X.float()
    return bce(model(X * (torch.rand_like(X) >= 0.25)), X)


def masking_if_on_a_tensor(model, batch):
    X, = batch
    X_tilde = X * (torch.rand_like(X) >= 0.25) if X.max() > 0 else X
    return bce(model(X_tilde), X)


def masking_item(model, batch):
    X, = batch
    return torch.tensor(bce(model(X * (torch.rand_like(X) >= 0.25)), X).item())


def greedy(update=lambda d, codes, X: encode(d[0], codes), keep=lambda d: d[0],
           first_only=False):
    def greedy_pretrain(X, widths, seeds, train_daes):
        codes, stacks = [X] * len(seeds), {seed: [] for seed in seeds}
        for layer, width in enumerate(widths):
            daes = train_daes(codes, width, layer)
            for i, (seed, d) in enumerate(zip(seeds, daes, strict=True)):
                stacks[seed].append(keep(daes[0] if first_only else d))
                codes[i] = update(d, codes[i], X)
        return stacks
    return greedy_pretrain


def greedy_all_on_pixels(X, widths, seeds, train_daes):
    stacks = {seed: [] for seed in seeds}
    for layer, width in enumerate(widths):
        for seed, d in zip(seeds, train_daes([X] * len(seeds), width, layer),
                           strict=True):
            stacks[seed].append(d[0])
    return stacks


def greedy_rebinds_the_loop_variable(X, widths, seeds, train_daes):
    codes, stacks = [X] * len(seeds), {seed: [] for seed in seeds}
    for layer, width in enumerate(widths):
        for seed, d, c in zip(seeds, train_daes(codes, width, layer), codes,
                              strict=True):
            stacks[seed].append(d[0])
            c = encode(d[0], c)  # noqa: F841 - codes is never updated
    return stacks


def greedy_per_seed(X, widths, seeds, train_daes):
    codes, stacks = [X] * len(seeds), {seed: [] for seed in seeds}
    for layer, width in enumerate(widths):
        for i, seed in enumerate(seeds):
            d = train_daes([codes[i]], width, layer)[0]
            stacks[seed].append(d[0])
            codes[i] = encode(d[0], codes[i])
    return stacks


def greedy_centred_in_place(X, widths, seeds, train_daes):
    X -= X.mean(0)  # centres the caller's inputs too
    return greedy()(X, widths, seeds, train_daes)


def greedy_zipped(X, widths, seeds, train_daes):
    codes, stacks = list(X.expand(len(seeds), *X.shape)), {}
    for layer, width in enumerate(widths):
        daes = train_daes(codes, width, layer)
        codes = [encode(d[0], c) for d, c in zip(daes, codes, strict=True)]
        for seed, d in zip(seeds, daes, strict=True):
            stacks.setdefault(seed, []).append(d[0])
    return stacks


# ---- lesson 05: unpool_with_switches(...), joint_loss(...) ------------------
def fixed_unpool(X, switches, size):
    """Each value at the top-left of its window: the switches ignored."""
    N, C, h, w = X.shape
    out = X.new_zeros(N, C, *tuple(size)[-2:])
    out[:, :, 0:2 * h:2, 0:2 * w:2] = X
    return out



def scatter(zeros=lambda X, N, C, n: X.new_zeros(N, C, n), detach=False,
            per_channel=True):
    def unpool_with_switches(X, switches, output_size):
        N, C, h, w = X.shape
        H, W = output_size
        values = X.detach() if detach else X
        if not per_channel:  # one plane for all channels
            flat = X.new_zeros(N, C * H * W).scatter(1, switches.flatten(1),
                                                    values.flatten(1))
            return flat.view(N, C, H, W)
        flat = zeros(X, N, C, H * W).scatter(2, switches.flatten(2), values.flatten(2))
        return flat.view(N, C, H, W)
    return unpool_with_switches


def unpool_doubled_size(X, switches, output_size):
    N, C, h, w = X.shape
    flat = X.new_zeros(N, C, 4 * h * w).scatter(2, switches.flatten(2), X.flatten(2))
    return flat.view(N, C, 2 * h, 2 * w)


def unpool_library(X, switches, output_size):
    return F.max_unpool2d(X, switches, 2, output_size=output_size)


def unpool_loop(X, switches, output_size):
    N, C, _, _ = X.shape
    H, W = output_size
    out = X.new_zeros(N, C, H * W)
    for n in range(N):
        for c in range(C):
            out[n, c, switches[n, c].flatten()] = X[n, c].flatten()
    return out.view(N, C, H, W)


def unpool_checks_its_switches(X, switches, output_size):
    H, W = output_size
    if (switches >= H * W).any():  # a Python if on a tensor's value
        raise ValueError("a switch points outside the output")
    return scatter()(X, switches, output_size)


def unpool_sized_by_item(X, switches, output_size):
    N, C, h, w = X.shape
    H, W = output_size
    n = max(H * W, switches.max().item() + 1)  # a number out of a tensor
    flat = X.new_zeros(N, C, n).scatter(2, switches.flatten(2), X.flatten(2))
    return flat[..., :H * W].view(N, C, H, W)


def unpool_offsets_in_place(X, switches, output_size):
    N, C, h, w = X.shape
    H, W = output_size
    switches += torch.arange(C).view(1, C, 1, 1) * H * W  # the caller's switches
    flat = X.new_zeros(N, C * H * W).scatter(1, switches.flatten(1), X.flatten(1))
    return flat.view(N, C, H, W)


def joint(U=lambda recons, gammas: sum(
        g * F.mse_loss(p, t) for g, (t, p) in zip(gammas, recons, strict=False)),
          combine=lambda C, lam, U: C + lam * U):
    def joint_loss(logits, y, recons, lam, gammas):
        return combine(F.cross_entropy(logits, y), lam, U(recons, gammas))
    return joint_loss


def joint_by_loop(logits, y, recons, lam, gammas):
    loss = F.cross_entropy(logits, y)
    for (target, prediction), g in zip(recons, gammas, strict=True):
        loss = loss + lam * g * ((prediction - target) ** 2).mean()
    return loss


def joint_if_on_a_tensor(logits, y, recons, lam, gammas):
    C = F.cross_entropy(logits, y)
    U = sum(g * F.mse_loss(p, t) for g, (t, p) in zip(gammas, recons, strict=True))
    return C + lam * U if U > 0 else C


def joint_if_on_an_item(logits, y, recons, lam, gammas):
    C = F.cross_entropy(logits, y)
    U = sum(g * F.mse_loss(p, t) for g, (t, p) in zip(gammas, recons, strict=True))
    return C + lam * U if U.item() > 0 else C


def joint_in_place(logits, y, recons, lam, gammas):
    U = sum(g * p.sub_(t).pow(2).mean() for g, (t, p) in zip(gammas, recons,
                                                             strict=True))
    return F.cross_entropy(logits, y) + lam * U


def joint_swapped_cross_entropy(logits, y, recons, lam, gammas):
    return joint()(y, logits, recons, lam, gammas)


# (exercise, kind of mistake, the answer, the words its hint must hold)
WRONG = [
    ("reconstruction_loss", "graph: .item()", mse_item, "no .item()"),
    ("reconstruction_loss", "graph: torch.tensor", mse_rewrapped, "no gradient"),
    ("reconstruction_loss", "graph: detach", mse_detached, "no gradient"),
    ("reconstruction_loss", "sum, not mean", mse_summed, "SUM"),
    ("reconstruction_loss", "absolute error", mean_absolute, "ABSOLUTE"),
    ("reconstruction_loss", "no reduction", mse_per_pixel, "0-d tensor"),
    ("reconstruction_loss", "mutates X", mse_in_place, "change nothing in place"),
    ("reconstruction_loss", "dtype: float32", mse_in_float32, "float64"),
    ("reconstruction_loss", "raises NameError", mse_typo, "name 'X_hat'"),
    ("sparse_loss", "no L1 term", sparse(lambda z, X_hat, lam: 0 * lam),
     "L1 term is missing"),
    ("sparse_loss", "L1 sum", sparse(lambda z, X_hat, lam: lam * z.abs().sum()),
     "not its sum"),
    ("sparse_loss", "graph: .item() on L1",
     sparse(lambda z, X_hat, lam: lam * z.abs().mean().item()), "not the gradient"),
    ("sparse_loss", "graph: torch.tensor([...])", sparse_terms_in_a_tensor,
     "not the gradient"),
    ("sparse_loss", "hard-coded 28x28 size",
     sparse(lambda z, X_hat, lam: lam * z.abs().mean(), size=False), "20x20"),
    ("sparse_loss", "L1 on the output", sparse(lambda z, X_hat, lam: lam * X_hat.abs()
                                              .mean()), "z = model.encode(X)"),
    ("sparse_loss", "lam on the MSE", sparse_lam_on_mse, "with lam = 0"),
    ("sparse_loss", "mutates X", sparse_centred_in_place, "change nothing in place"),
    ("sparse_loss", "dtype: X.float()", sparse_in_float32, "float64"),
    ("sparse_loss", "if on a tensor (vmap)", sparse_if_on_a_tensor,
     "no `if` on a tensor"),
    ("freeze", "eval only", freeze_eval_only, "requires_grad=True"),
    ("freeze", "requires_grad only", freeze_grads_only, "eval()"),
    ("freeze", "returns a copy", freeze_a_copy, "not a copy"),
    ("freeze", "returns None", freeze_no_return, "return the result"),
    ("freeze", "training flag, top only", freeze_training_flag, "top module only"),
    ("freeze", "== for =", freeze_comparison_typo, "requires_grad=True"),
    ("freeze", "module attribute", freeze_module_attribute, "requires_grad_(False)"),
    ("freeze", "changes the weights", freeze_and_zero, "leave the weights"),
    ("freeze", "wraps the encoder", freeze_wrapped, "not a new module"),
    ("soi", "Euclidean", soi_euclidean, "distance 0"),
    ("soi", "no offset b", soi_with(centre=lambda v: v), "distance 0"),
    ("soi", "swapped image and reconstruction", soi_with(swap=True), "you scaled x"),
    ("soi", "centred over the batch", soi_with(centre=lambda v: v - v.mean()),
     "its own mean"),
    ("soi", "0/0 for a constant x_hat", soi_with(guard=False), "a = 0"),
    ("soi", "one number for the batch", soi_with(reduce=torch.mean), "shape [N]"),
    ("soi", "mutates its inputs", soi_in_place, "no in-place"),
    ("soi", "hard-coded 8x8", soi_fixed_size, "any image shape"),
    ("soi", "a list of floats", soi_as_a_list, "return a tensor"),
    ("soi", "dtype: float32", soi_with(dtype=torch.float32), "compute in float64"),
    ("decoder_only", "mutates the autoencoder", decoder_only_in_place,
     "leave the autoencoder"),
    ("decoder_only", "shallow copy", decoder_only_shallow_copy,
     "leave the autoencoder"),
    ("decoder_only", "encoder left in train mode", decoder_only_no_eval, "eval mode"),
    ("decoder_only", "decoder frozen too", decoder_only_all_frozen,
     "decoder must still learn"),
    ("decoder_only", "keeps the old encoder", decoder_only_old_encoder,
     "fine-tuned encoder's weights"),
    ("decoder_only", "no_grad() instead of freezing", decoder_only_no_grad_block,
     "requires_grad_(False)"),
    ("denoising_loss (03)", "clean input", denoise(
        lambda model, X, kind, level: F.mse_loss(model(X), X)), "corrupt X first"),
    ("denoising_loss (03)", "corrupted target", denoise(
        lambda model, X, kind, level: F.mse_loss(*[model(corrupt(X, kind, level))] * 2)),
     "corrupt X first"),
    ("denoising_loss (03)", "swapped prediction and target", denoise(
        lambda model, X, kind, level: F.mse_loss(model(X), corrupt(X, kind, level))),
     "saw the clean X"),
    ("denoising_loss (03)", "fixed kind and level", denoise(
        lambda model, X, kind, level: F.mse_loss(model(corrupt(X, "small_blocks",
                                                                 0.25)), X)),
     "the kind and level you were given"),
    ("denoising_loss (03)", "one corruption for all batches", corrupted_once,
     "a new corruption for every batch"),
    ("denoising_loss (03)", "graph: torch.tensor", denoise(
        lambda model, X, kind, level: torch.tensor(F.mse_loss(
            model(corrupt(X, kind, level)), X).item())), "no gradient"),
    ("denoising_loss (03)", "corrupts X in place", denoise(masked_in_place),
     "leave X as it is"),
    ("denoising_loss (03)", "dtype: X.float()", denoise(denoising_in_float32),
     "float64"),
    ("denoising_loss (04)", "clean input", masking(lambda X: X), "corrupt it first"),
    ("denoising_loss (04)", "added noise", masking(
        lambda X: X + 0.1 * torch.randn_like(X)), "no added noise"),
    ("denoising_loss (04)", "half masked", masking(
        lambda X: X * (torch.rand_like(X) >= 0.5)), "share MASK"),
    ("denoising_loss (04)", "per-image mask", masking(
        lambda X: X * (torch.rand(len(X), 1) >= 0.25)), "every input of every image"),
    ("denoising_loss (04)", "per-position mask", masking(
        lambda X: X * (torch.rand(X.shape[1]) >= 0.25)), "every input of every image"),
    ("denoising_loss (04)", "MSE", masking(lambda X: X * (torch.rand_like(X) >= 0.25),
                                           loss=F.mse_loss), "not the MSE"),
    ("denoising_loss (04)", "corrupted target", masking(
        lambda X: X * (torch.rand_like(X) >= 0.25), target=lambda X, X_t: X_t),
     "clean X, not the corrupted"),
    ("denoising_loss (04)", "masks X in place", masking_in_place, "leave X as it is"),
    ("denoising_loss (04)", "CPU mask", masking(
        lambda X: X * (torch.rand(X.shape) >= 0.25)), "X's device"),
    ("denoising_loss (04)", "graph: torch.tensor", masking_item, "no gradient"),
    ("denoising_loss (04)", "dtype: X.float()", masking_in_float32, "float64"),
    ("denoising_loss (04)", "swapped prediction and target", masking(
        lambda X: X * (torch.rand_like(X) >= 0.25),
        loss=lambda logits, X: bce(X, logits)), "swapped"),
    ("denoising_loss (04)", "if on a tensor (vmap)", masking_if_on_a_tensor,
     "no `if` on a tensor"),
    ("small_decoder", "one conv, no upsampling", decoder_one_conv, "ConvTranspose2d"),
    ("small_decoder", "no nonlinearity", decoder(relu=False), "nn.ReLU()"),
    ("small_decoder", "one decoder built once, reused", decoder_built_once,
     "share weights"),
    ("small_decoder", "grey output only", decoder(out=False), "out_channels"),
    ("small_decoder", "a layer per halving", decoder(layers="per halving"),
     "only the strides change"),
    ("small_decoder", "hard-coded 28x28", decoder_upsample_to_28, "no hard-coded 28"),
    ("small_decoder", "4x4 kernels to upsample", decoder(up_kernel=4),
     "only the strides change"),
    ("small_decoder", "frozen decoder", decoder(frozen=True), "requires_grad"),
    ("greedy_pretrain", "every layer on the pixels", greedy_all_on_pixels,
     "codes of the layer below"),
    ("greedy_pretrain", "keeps the whole DAE", greedy(keep=lambda d: d),
     "encoder layer"),
    ("greedy_pretrain", "codes with a graph", greedy(
        update=lambda d, codes, X: torch.sigmoid(d[0](codes))), "no_grad"),
    ("greedy_pretrain", "codes without the sigmoid", greedy(
        update=lambda d, codes, X: d[0](codes).detach()), "codes of the layer below"),
    ("greedy_pretrain", "codes from X every layer", greedy(
        update=lambda d, codes, X: encode(d[0], X)), "it must run"),
    ("greedy_pretrain", "the first seed's layer for all", greedy(first_only=True),
     "its seed's stack"),
    ("greedy_pretrain", "loop variable rebound", greedy_rebinds_the_loop_variable,
     "codes of the layer below"),
    ("greedy_pretrain", "train_daes per seed", greedy_per_seed, "once per layer"),
    ("greedy_pretrain", "mutates X", greedy_centred_in_place, "leave X as it is"),
    ("unpool_with_switches", "fixed unpooling", fixed_unpool, "fixed unpooling"),
    ("unpool_with_switches", "nearest upsampling", lambda X, switches, size: (
        F.interpolate(X, size=tuple(size), mode="nearest")),
     "one value per pooled window"),
    ("unpool_with_switches", "no output_size", lambda X, switches, size: (
        nn.MaxUnpool2d(2)(X, switches)), "use output_size"),
    ("unpool_with_switches", "hard-coded 2h x 2w", unpool_doubled_size,
     "use output_size"),
    ("unpool_with_switches", "dtype: float32 zeros", scatter(
        zeros=lambda X, N, C, n: torch.zeros(N, C, n)), "X.new_zeros"),
    ("unpool_with_switches", "graph: detach", scatter(detach=True), "keep the graph"),
    ("unpool_with_switches", "channels mixed", scatter(per_channel=False),
     "one value per pooled window"),
    ("unpool_with_switches", "mutates the switches", unpool_offsets_in_place,
     "leave X and switches"),
    ("unpool_with_switches", "if on a tensor (vmap)", unpool_checks_its_switches,
     "no `if` on a tensor"),
    ("unpool_with_switches", ".item() (vmap)", unpool_sized_by_item, "no .item()"),
    ("joint_loss", "cross-entropy only", joint(combine=lambda C, lam, U: C),
     "mean squared error"),
    ("joint_loss", "lam on C", joint(combine=lambda C, lam, U: lam * C + U),
     "cross-entropy alone"),
    ("joint_loss", "summed errors", joint(U=lambda recons, gammas: sum(
        g * F.mse_loss(p, t, reduction="sum")
        for g, (t, p) in zip(gammas, recons, strict=True))), "mean squared error"),
    ("joint_loss", "first pair only", joint(U=lambda recons, gammas: gammas[0] * (
        F.mse_loss(recons[0][1], recons[0][0]))), "every (target, prediction) pair"),
    ("joint_loss", "no gammas", joint(U=lambda recons, gammas: sum(
        F.mse_loss(p, t) for t, p in recons)), "gammas[l]"),
    ("joint_loss", "graph: .item()", joint(combine=lambda C, lam, U: C + lam
                                           * U.item()), "not the gradient"),
    ("joint_loss", "graph: torch.tensor([...])", joint(U=lambda recons, gammas: (
        torch.tensor([g * F.mse_loss(p, t) for g, (t, p) in zip(
            gammas, recons, strict=True)]).sum())), "not the gradient"),
    ("joint_loss", "dtype: torch.tensor(gammas)", joint(U=lambda recons, gammas: (
        torch.stack([F.mse_loss(p, t) for t, p in recons]) @ torch.tensor(gammas))),
     "float64"),
    ("joint_loss", "if on a tensor (vmap)", joint_if_on_a_tensor,
     "no `if` on a tensor"),
    ("joint_loss", "if on .item() (vmap)", joint_if_on_an_item, "no `if` on a tensor"),
    ("joint_loss", "mutates the predictions", joint_in_place, "nothing in place"),
    ("joint_loss", "cross_entropy(y, logits)", joint_swapped_cross_entropy,
     "it must run"),
]

RIGHT = [
    ("reconstruction_loss", mse_right), ("reconstruction_loss", mse_right_by_hand),
    ("sparse_loss", sparse(lambda z, X_hat, lam: lam * z.abs().mean())),
    ("sparse_loss", sparse_by_forward),
    ("freeze", freeze_loop), ("freeze", freeze_train_false),
    ("soi", soi_with()), ("soi", soi_loop),
    ("decoder_only", decoder_only_right), ("decoder_only", decoder_only_load_state),
    ("denoising_loss (03)", denoise(lambda model, X, kind, level: F.mse_loss(
        model(corrupt(X, kind, level)), X))),
    ("denoising_loss (03)", denoising_by_hand),
    ("small_decoder", decoder()), ("small_decoder", decoder_keywords),
    ("small_decoder", decoder(strided_first=True)),
    ("denoising_loss (04)", masking(lambda X: X * (torch.rand_like(X) >= 0.25))),
    ("denoising_loss (04)", masking(
        lambda X: X.masked_fill(torch.rand_like(X) < 0.25, 0.0))),
    ("denoising_loss (04)", masking(
        lambda X: X * torch.bernoulli(torch.full_like(X, 0.75)))),
    ("greedy_pretrain", greedy()), ("greedy_pretrain", greedy_zipped),
    ("unpool_with_switches", scatter()), ("unpool_with_switches", unpool_library),
    ("unpool_with_switches", unpool_loop),
    ("unpool_with_switches", scatter(zeros=lambda X, N, C, n: torch.zeros(
        N, C, n, dtype=X.dtype, device=X.device))),
    ("joint_loss", joint()), ("joint_loss", joint_by_loop),
]

RAW = ("Traceback", "object has no attribute", "Expected", "must match", "KeyError",
       "IndexError", "not callable", "\n")


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")


@pytest.mark.parametrize("exercise,kind,wrong,words", WRONG,
                         ids=[f"{e}: {k}" for e, k, _, _ in WRONG])
def test_wrong_answer_is_rejected_with_one_line_naming_the_fix(exercise, kind, wrong,
                                                               words):
    result = checker(exercise)(wrong)
    assert not result.ok, f"{kind}: {result}"
    assert words in result.message, f"{kind}: {result.message}"
    assert not any(raw in result.message for raw in RAW), result.message


def test_every_exercise_has_five_kinds_of_wrong_answers_and_two_right_ones():
    for exercise in EXERCISES:
        assert len({k for e, k, _, _ in WRONG if e == exercise}) >= 5, exercise
        assert sum(e == exercise for e, _ in RIGHT) >= 2, exercise


@pytest.mark.parametrize("exercise,right", RIGHT,
                         ids=[f"{e}: {r.__name__}" for e, r in RIGHT])
def test_correct_variant_is_accepted(exercise, right):
    result = checker(exercise)(right)
    assert result.ok, str(result)


def cells(lesson: str):
    return [c for c in jupytext.read(LESSONS / lesson).cells if c.cell_type == "code"]


def defined(source: str) -> dict:
    """{function name: its ast.arguments} of the functions a cell defines."""
    return {node.name: node.args for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("exercise", list(EXERCISES))
def test_lesson_solution_passes_and_the_stub_is_not_answered(exercise):
    lesson, name, _ = EXERCISES[exercise]
    fn = exercise.split(" ")[0]
    check = checker(exercise)
    code = cells(lesson)
    solution = next(c for c in code if "solution" in c.metadata.get("tags", [])
                    and fn in defined(c.source))
    stub = next(c for c in code if "solution" not in c.metadata.get("tags", [])
                and fn in defined(c.source) and "..." in c.source)
    for cell, ok in ((solution, True), (stub, False)):
        ns = namespace(exercise)
        src = cell.source.replace(f"{name}({fn})", "None")  # do not call it here
        exec(compile(src, lesson, "exec"), ns)  # noqa: S102
        result = check(ns[fn])
        assert result.ok is ok, str(result)
        assert ok or not result.answered, str(result)


@pytest.mark.parametrize("exercise", list(EXERCISES))
def test_stub_and_solution_define_the_same_signature(exercise):
    lesson, _, _ = EXERCISES[exercise]
    fn = exercise.split(" ")[0]
    versions = [defined(c.source)[fn] for c in cells(lesson) if fn in defined(c.source)]
    assert len(versions) == 2, f"{fn}: a stub and a solution"
    stub, solution = (ast.dump(v) for v in versions)
    assert stub == solution, f"{fn}: the stub and the solution differ in signature"


@pytest.mark.parametrize("lesson", sorted({v[0] for v in EXERCISES.values()}))
def test_solution_cells_carry_the_hide_cell_tag_too(lesson):
    tags = [c.metadata.get("tags", []) for c in cells(lesson)]
    solutions = [t for t in tags if "solution" in t]
    assert solutions and all("hide-cell" in t for t in solutions), lesson


def loads(tree) -> set:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def local_names(tree) -> set:
    """Names a cell binds anywhere: assigned, arguments, and functions or classes
    defined (a check's nested helper `net` is its own, not a global it uses)."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)} | {
        a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)} | {
        n.name for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def module_bindings(tree) -> set:
    """The global names a cell binds (not the locals of its functions)."""
    bound, todo = set(), list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        todo.extend(ast.iter_child_nodes(node))
    return bound


@pytest.mark.parametrize("lesson", sorted({v[0] for v in EXERCISES.values()}))
def test_no_later_cell_rebinds_a_name_the_exercise_cells_use(lesson):
    """Re-running an exercise cell after the rest of the lesson must still work
    (lesson 00 once bound `check` to a metrics result)."""
    code = [c.source for c in cells(lesson)]
    tags = [c.metadata.get("tags", []) for c in cells(lesson)]
    solved = set().union(*(defined(src) for src, t in zip(code, tags, strict=True)
                           if "solution" in t))
    exercise = [i for i, (src, t) in enumerate(zip(code, tags, strict=True))
                if "solution" in t or any(f.startswith("check_") or f in solved
                                          for f in defined(src))]
    for i in exercise:
        tree = ast.parse(code[i])
        used = set(defined(code[i])) | (loads(tree) - local_names(tree))
        for j in range(i + 1, len(code)):
            rebound = (module_bindings(ast.parse(code[j])) & used) - set(
                defined(code[j]) if j in exercise else ())
            assert not rebound, (f"{lesson}: cell {j} rebinds {sorted(rebound)}, "
                                 f"which exercise cell {i} uses")


def test_hint_names_the_line_of_the_student_code_that_raised():
    result = checker("reconstruction_loss")(mse_typo)
    assert "your mse_typo raised NameError" in result.message
    assert "`return F.mse_loss(X_hat, X)" in result.message


def exercise_cells(nb) -> list[int]:
    """The cells that define a stub or a check, or hold a solution."""
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    solved = set().union(*(defined(c.source) for _, c in code
                           if "solution" in c.metadata.get("tags", [])))
    return [i for i, c in code if "solution" in c.metadata.get("tags", [])
            or any(f.startswith("check_") or f in solved for f in defined(c.source))]


@pytest.mark.slow
@pytest.mark.parametrize("lesson", sorted({v[0] for v in EXERCISES.values()}))
def test_exercise_sections_rerun_twice_in_one_kernel(lesson, tmp_path, monkeypatch,
                                                     request):
    """The lesson (fast profile) up to its last exercise cell, then its exercise
    cells again, twice, in the same kernel: each solution still passes its
    check. (The cells after the last exercise cannot touch its check; the whole
    lesson runs in tests/test_lessons.py.)"""
    slow(request)
    from aelab.grade import _Kernel  # a kernel driven one cell at a time
    for key, value in dict(AELAB_PROFILE="fast", AELAB_OFFLINE="1",
                           AELAB_CACHE=str(tmp_path / "cache"),
                           AELAB_OUT=str(tmp_path / "out"),
                           PYTHONPATH=str(LESSONS.parent)).items():
        monkeypatch.setenv(key, value)
    nb = jupytext.read(LESSONS / lesson)
    kernel = _Kernel(cwd=LESSONS, stderr_log=tmp_path / "kernel.log", max_file_mb=4096)
    last = max(exercise_cells(nb))
    try:
        for i, cell in enumerate(nb.cells[:last + 1]):
            if cell.cell_type == "code":
                assert kernel.execute(cell, 600) is None, f"{lesson}: cell {i}"
        for _ in range(2):
            for i in exercise_cells(nb):
                error = kernel.execute(nb.cells[i], 120)
                assert error is None, f"{lesson}, cell {i} run again: {error}"
                if "solution" in nb.cells[i].metadata.get("tags", []):
                    shown = "".join(o.get("text", "") + str(o.get("data", {}))
                                    for o in nb.cells[i].outputs)
                    assert "✓" in shown, f"{lesson}, cell {i}: {shown}"
    finally:
        kernel.shutdown()


def student_notebooks(folder: Path) -> dict:
    """Lesson 00 as four students hand it in: answered, blank, wrong, endless."""
    import nbformat

    from aelab import runner
    folder.mkdir()
    full = jupytext.read(LESSONS / "00_tour.py")
    blank = runner.strip_solutions(copy.deepcopy(full))
    stub = next(c for c in blank.cells if "def reconstruction_loss" in c.source)

    def answered(body):
        nb = copy.deepcopy(blank)
        cell = next(c for c in nb.cells if c.source == stub.source)
        cell.source = stub.source.replace("...  # your code here: return one number",
                                          body)
        return nb

    books = {"ada.ipynb": full, "bob.ipynb": blank,
             "cy.ipynb": answered("return (model(X) - X).abs().mean()"),
             "dee.ipynb": answered("while True:\n        pass")}
    for name, nb in books.items():
        nbformat.write(nb, folder / name)
    return books


@pytest.mark.slow
def test_grade_gives_each_student_their_rows_within_the_time_limits(tmp_path, request):
    slow(request)
    import csv
    import time

    from aelab import cli
    student_notebooks(tmp_path / "class")
    start = time.monotonic()
    assert cli.main(["grade", str(tmp_path / "class"), "--out",
                     str(tmp_path / "grades.csv"), "--timeout", "20"]) == 0
    rows = {Path(r["notebook"]).name: r
            for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert sorted(rows) == ["ada.ipynb", "bob.ipynb", "cy.ipynb", "dee.ipynb"]
    assert rows["ada.ipynb"]["passed"] == "True"
    assert rows["bob.ipynb"]["passed"] == "False" and "placeholder" in rows[
        "bob.ipynb"]["hint"]
    assert rows["cy.ipynb"]["passed"] == "False" and "ABSOLUTE" in rows[
        "cy.ipynb"]["hint"]
    assert rows["dee.ipynb"]["passed"] == "False" and "loop forever" in rows[
        "dee.ipynb"]["hint"]
    assert time.monotonic() - start < 4 * 300  # each notebook within its limit
    assert not (LESSONS / "ada.ipynb").exists()  # nothing written beside the lessons


MINI_LESSON = '''# %%
from aelab.exercises import answer, check

# %%
def double(x):
    ...  # your code here


# %%
def check_double(double):
    return check("Exercise 1", [(lambda: answer(double(2)) == 4, "return 2 * x")],
                 code=double)


check_double(double)

# %% tags=["solution", "hide-cell"]
def double(x):
    return 2 * x


check_double(double)
'''


def slow(request):
    """Skip unless the slow tests were asked for (pytest -m slow)."""
    if "slow" not in request.config.getoption("markexpr").replace("not slow", ""):
        pytest.skip("slow (kernels, whole lessons): pytest -m slow "
                    "tests/test_exercises.py")


def mini_class(tmp_path, bodies: dict) -> tuple[Path, Path]:
    """The mini lesson, and a folder of its notebooks handed in with these
    bodies of `double` (None: the full lesson, solution included)."""
    import nbformat

    from aelab import runner
    lesson = tmp_path / "lessons" / "07_mini.py"
    lesson.parent.mkdir()
    lesson.write_text(MINI_LESSON)
    full = jupytext.read(lesson)
    blank = runner.strip_solutions(copy.deepcopy(full))
    folder = tmp_path / "class"
    folder.mkdir()
    for name, body in bodies.items():
        nb = copy.deepcopy(full if body is None else blank)
        if body is not None:
            stub = next(c for c in nb.cells if "def double" in c.source)
            stub.source = stub.source.replace("...  # your code here", body)
        nbformat.write(nb, folder / f"{name}.ipynb")
    return lesson, folder


@pytest.mark.slow
def test_grade_a_folder_answered_blank_wrong_and_endless_one_row_each(tmp_path,
                                                                      request):
    """A small lesson of one exercise, eight students: the endless one, the one
    that ends its kernel and the one that fills its folder cost their own rows
    within the time limit; one that rebinds `check` is graded by the real one;
    the others get their check's verdict."""
    slow(request)
    import csv
    import time

    from aelab import grade
    students = {
        "ada": None, "bob": "...", "cy": "return x + 1",
        "dee": "while True:\n        pass",
        "eve": "open('big', 'wb').write(bytes(2 ** 21))",  # one file over 1 MB
        "fay": "return 2 * x\nimport os\nos._exit(1)",  # a cell ends the kernel
        "gus": "return 2 * x\nfor i in range(8):\n    open(f'f{i}', 'wb').write("
               "bytes(2 ** 19))",  # 4 MB in files of 0.5 MB
        "hal": "return x + 1\nfrom aelab.exercises import Check\n"
               "check = lambda name, cases, **kw: Check(name, True, 'fine')"}
    lesson, folder = mini_class(tmp_path, students)
    start = time.monotonic()
    rows = grade.grade([folder], lessons={"mini": lesson}, out=tmp_path / "g.csv",
                       timeout=3, max_file_mb=1, max_disk_mb=2, log=lambda line: None)
    assert time.monotonic() - start < 40 * len(students)
    got = {Path(r.notebook).stem: r for r in rows}
    assert sorted(got) == sorted(students) and len(rows) == len(students)
    assert got["ada"].passed and got["ada"].exercise == "Exercise 1 (double)"
    assert not got["bob"].passed and "placeholder" in got["bob"].hint
    assert not got["cy"].passed and got["cy"].hint == "return 2 * x"
    assert not got["dee"].passed and "loop forever" in got["dee"].hint
    assert not got["eve"].passed and "raised OSError" in got["eve"].hint  # 2 > 1 MB
    assert not got["fay"].passed and "kernel died" in got["fay"].hint
    assert not got["gus"].passed and "files passed 2 MB" in got["gus"].hint
    assert not got["hal"].passed and got["hal"].hint == "return 2 * x"
    assert not (folder / "big").exists()  # it ran in its own folder
    with open(tmp_path / "g.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["passed"] for r in table] == ["True"] + ["False"] * (len(students) - 1)
    assert lesson.read_text() == MINI_LESSON  # the reference lesson is untouched


@pytest.mark.slow
def test_grade_runs_the_checks_within_the_notebook_time_limit(tmp_path, request):
    """A notebook whose cells spend its whole time gets no time for the checks:
    its answer (right, defined before the cell slept) is not graded."""
    slow(request)
    from aelab import grade
    lesson, folder = mini_class(tmp_path, {
        "ivy": "return 2 * x\nimport time\ntime.sleep(30)"})
    rows = grade.grade_notebook(folder / "ivy.ipynb", {"mini": lesson}, timeout=20,
                                notebook_timeout=3)
    assert len(rows) == 1 and not rows[0].passed, rows
    assert "ran past 3 s" in rows[0].hint, rows


def test_grade_of_a_missing_folder_is_one_line(tmp_path, capsys):
    from aelab import cli
    assert cli.main(["grade", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or folder" in err


def test_grade_counts_a_jupytext_pair_once(tmp_path):
    from aelab.grade import submissions
    for name in ("ada.ipynb", "ada.py", "bob.py", ".ipynb_checkpoints/ada.ipynb"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.name for p in submissions([tmp_path])] == ["ada.ipynb", "bob.py"]
