"""M networks of one architecture whose only weighted layers are nn.Linear,
stacked so that each layer of all M runs as one batched matmul; and the
stacked data and per-model gradient clipping that fit_many's stacked
strategies share.

`fit_many(strategy="batched")` uses this. The stacked weight of a Linear is
kept as [M, in, out], nn.Linear's [out, in] transposed: under torch.func.vmap
`X @ W` then becomes one bmm that reads the weights as they are stored. With
nn.Linear's own layout every step copied the transposed weights (and their
gradients) first: 55 against 37 ms a step for 20 MLPs 784-128-128-10 at batch
64 on one CPU thread (benchmarks/RESULTS.md).

    base = batched_copy(models[0])         # the architecture, Linear -> LinearInOut
    params = stack(models)                 # {name: [M, ...]}, for functional_call
    model_i_state = unstack(params, i)     # back to nn.Linear's names and layout
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from aelab.splits import to_float


class LinearInOut(nn.Linear):
    """nn.Linear with its weight stored transposed, [in, out], as `weight_t`.

    `weight` reads it back as nn.Linear's [out, in] (a view), so an objective
    that looks at the weights (an L1 penalty, say) sees what it would see on
    the original model, and isinstance(layer, nn.Linear) still holds."""

    def __init__(self, linear: nn.Linear):
        nn.Module.__init__(self)  # not nn.Linear's: it would make a new weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight
        b = linear.bias
        self.weight_t = nn.Parameter(w.detach().t().contiguous(), w.requires_grad)
        self.bias = None if b is None else nn.Parameter(b.detach().clone(),
                                                        b.requires_grad)

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_t.t()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() == 2 and self.bias is not None:
            return torch.addmm(self.bias, X, self.weight_t)  # bias added in the GEMM
        out = X @ self.weight_t
        return out if self.bias is None else out + self.bias


def signature(model: nn.Module) -> tuple:
    """What must match for models to be stacked together: class, layers (repr),
    and every parameter's name, shape and requires_grad."""
    return (type(model).__qualname__, repr(model),
            tuple((k, tuple(v.shape), v.requires_grad)
                  for k, v in model.named_parameters()))


def batchable(model: nn.Module) -> str:
    """'' if the model can be stacked with others of its signature, else why
    not (one line)."""
    if any(True for _ in model.buffers()):
        return "the models have buffers (BatchNorm?): a stacked step cannot update them"
    for name, module in model.named_modules():
        if type(module) is not nn.Linear and any(
                True for _ in module.parameters(recurse=False)):
            return (f"layer {name!r} ({type(module).__name__}) has weights and is not "
                    "an nn.Linear")
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        return "the models have no nn.Linear layer"
    return ""


def _is_linear_weight(model: nn.Module, name: str) -> bool:
    owner, _, leaf = name.rpartition(".")
    return leaf == "weight" and type(model.get_submodule(owner)) is nn.Linear


def _stacked_name(model: nn.Module, name: str) -> str:
    return name + "_t" if _is_linear_weight(model, name) else name


def batched_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` with every nn.Linear replaced by a LinearInOut."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        for child_name, child in module.named_children():
            if type(child) is nn.Linear:
                setattr(module, child_name, LinearInOut(child))
    return model


def stack(models: list) -> dict:
    """{name in batched_copy(models[0]): [M, ...] leaf tensor}; Linear weights
    as [M, in, out]. Each keeps its parameter's requires_grad."""
    first, out = models[0], {}
    for name, p in first.named_parameters():
        linear = _is_linear_weight(first, name)
        values = [m.get_parameter(name).detach() for m in models]
        stacked = torch.stack([v.t() for v in values] if linear else values)
        out[_stacked_name(first, name)] = stacked.contiguous().requires_grad_(
            p.requires_grad)
    return out


def unstack(params: dict, i: int, model: nn.Module) -> dict:
    """Model i's state_dict, in `model`'s own names and layout."""
    state = {}
    for name, _ in model.named_parameters():
        v = params[_stacked_name(model, name)][i].detach()
        state[name] = (v.t() if _is_linear_weight(model, name) else v).clone()
    return state


class PerModelData:
    """One dataset per model (a tuple of tensors, all of one length), each
    distinct tensor moved to the device once; batch(idx) gathers [M, b, ...]."""

    def __init__(self, datas: list, device):
        first_of = {}
        which = [first_of.setdefault(tuple(map(id, d)), len(first_of)) for d in datas]
        distinct = [datas[which.index(k)] for k in range(len(first_of))]
        self.n = len(datas[0][0])
        if any(len(t) != self.n for d in datas for t in d):
            raise ValueError("stacked models need data of one length per group")
        self.tensors = [torch.cat([d[j] for d in distinct]).to(device)
                        for j in range(len(datas[0]))]
        self.offset = (torch.tensor(which) * self.n).to(device)[:, None]

    def batch(self, idx: torch.Tensor) -> list:
        """[M, b, ...] per tensor; uint8 images as float (channels_last, as fit)."""
        flat = idx + self.offset
        return [to_float(t[flat].flatten(0, 1)).unflatten(0, flat.shape)
                if t.dtype == torch.uint8 else t[flat] for t in self.tensors]


def clip_per_model(stacked: list, max_norm: float) -> None:
    """clip_grad_norm_ for each model of stacked [M, ...] parameters."""
    grads = [p.grad for p in stacked if p.grad is not None]
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
