"""Many small models at once: label budgets x seeds x methods.

`fit_many(models, datas, loss_fn)` trains model i on datas[i]. How depends on
the device, measured rather than assumed:
- "sequential": one `fit` after another. Fastest on a CPU, where a tiny model
  already fills both cores.
- "vmap" (CUDA, batch_size < 1024): models of identical structure whose data
  have equal length are stacked (torch.func.stack_module_state) and trained as
  ONE vmapped model, so
  a GPU runs them in one kernel per layer. Adam works element-wise, so one
  Adam over stacked parameters is exactly M independent Adams; gradient
  clipping is done per model. Each model sees the same batch order as in the
  sequential path (same per-model seed), so both give the same results.

(Heads on frozen features, trained many at once, are in aelab.probes.)
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from aelab.splits import to_float
from aelab.train import (History, autocast, fit, fit_key, load_fitted,
                         make_optimizer, save_fitted)
from aelab.utils import progress, training_device


VMAP_MAX_BATCH = 1024


class _Objective(nn.Module):
    """Wraps (model, loss_fn) so functional_call can swap the model's parameters
    while loss_fn calls any of its methods (encode, forward, ...)."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, *batch):
        return self.loss_fn(self.model, batch)


def _signature(model: nn.Module, n: int):
    shapes = tuple((k, tuple(v.shape), v.requires_grad) for k, v in model.named_parameters())
    return (type(model).__name__, shapes, n)


def _vmappable(model: nn.Module) -> bool:
    # BatchNorm's in-place running-statistics update cannot run under vmap.
    return not any(True for _ in model.buffers())


def fit_many(models: list, datas: list, loss_fn, *, strategy: str = "auto",
             num_epochs: int = 10, lr: float = 1e-3, batch_size: int = 128,
             optimizer: str = "adam", weight_decay: float = 0.0,
             clip_grad: float | None = None, seeds: list | None = None, device=None,
             quiet: bool = False, desc: str = "models",
             cache: bool = False) -> list[History]:
    """Train models[i] on datas[i] (a tuple of tensors) with the same objective.

    cache: as in `fit`, per model: models whose exact run finished before are
    loaded, the others trained and stored. Ctrl-C stops the whole sweep (the
    models that finished stay cached, so a rerun resumes) and re-raises.
    """
    if len(models) != len(datas):
        raise ValueError(f"fit_many needs one dataset per model: got {len(models)} "
                         f"models and {len(datas)} datasets")
    device = training_device(device)
    seeds = list(seeds) if seeds is not None else list(range(len(models)))
    if strategy == "auto":
        # Measured on an H100 with the barletta AE: 64 models at batch 64, vmap
        # 268k vs sequential 14k images/s; 16 models at batch 4096, vmap 347k vs
        # sequential 679k. Big batches already fill the GPU one model at a time.
        vmap_wins = device.type == "cuda" and batch_size < VMAP_MAX_BATCH
        strategy = "vmap" if vmap_wins else "sequential"
    if strategy not in ("sequential", "vmap"):
        raise ValueError(f"unknown strategy {strategy!r}: use 'auto', 'sequential' or 'vmap'")
    kw = dict(num_epochs=num_epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
              weight_decay=weight_decay, clip_grad=clip_grad, device=device)
    histories: list = [None] * len(models)
    keys: dict = {}
    groups: dict = {}
    datas = [(d,) if torch.is_tensor(d) else tuple(d) for d in datas]
    for i, (m, d) in enumerate(zip(models, datas)):
        if cache and strategy == "vmap":
            keys[i] = fit_key(m, d, loss_fn, seed=seeds[i], strategy="vmap", **kw)
            histories[i] = load_fitted(m, keys[i], device)
            if histories[i] is not None:
                continue
        key = _signature(m, len(d[0])) if strategy == "vmap" and _vmappable(m) else i
        groups.setdefault(key, []).append(i)
    bar = progress(total=len(models), initial=len(models) - sum(map(len, groups.values())),
               desc=desc, disable=quiet, unit="model")
    try:
        for idx in groups.values():
            if len(idx) == 1 or strategy == "sequential":
                for i in idx:
                    histories[i] = fit(models[i], datas[i], loss_fn, seed=seeds[i],
                                       quiet=True, cache=cache and i not in keys, **kw)
                    if histories[i].stopped == "interrupted":
                        raise KeyboardInterrupt
                    if i in keys:
                        save_fitted(models[i], keys[i], histories[i])
                    bar.update()
            else:
                hs = _fit_vmap([models[i] for i in idx], [datas[i] for i in idx],
                               loss_fn, [seeds[i] for i in idx], **kw)
                for i, h in zip(idx, hs):
                    histories[i] = h
                    if i in keys:
                        save_fitted(models[i], keys[i], h)
                bar.update(len(idx))
    finally:
        bar.close()
    return histories


def _fit_vmap(models, datas, loss_fn, seeds, *, num_epochs, lr, batch_size, optimizer,
              weight_decay, clip_grad, device):
    m_count, n = len(models), len(datas[0][0])
    for m in models:
        m.to(device)
    params, buffers = stack_module_state(models)
    trainable = {k: v for k, v in params.items()
                 if models[0].get_parameter(k).requires_grad}
    frozen = {k: v.detach() for k, v in params.items() if k not in trainable}
    base = copy.deepcopy(models[0]).to("meta")
    objective = _Objective(base, loss_fn)
    data = [torch.stack([d[j] for d in datas]).to(device) for j in range(len(datas[0]))]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    opt = make_optimizer(optimizer, list(trainable.values()), lr, weight_decay)

    def one(p, *batch):
        return functional_call(objective, {f"model.{k}": v for k, v in p.items()}, batch)

    # Every parameter is mapped over (models may carry different frozen encoders);
    # only the trainable ones get gradients.
    step = vmap(one, in_dims=(0,) + (0,) * len(data), randomness="different")
    histories = [History() for _ in models]
    rows = torch.arange(m_count, device=device)[:, None]
    start = time.perf_counter()
    for m in models:
        m.train()
    base.train()
    for _ in range(num_epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        total = torch.zeros(m_count, device=device)
        for s in range(0, n, batch_size):
            idx = perms[:, s:s + batch_size]
            batch = [to_float(t[rows, idx].flatten(0, 1)).unflatten(0, idx.shape)
                     if t.dtype == torch.uint8 else t[rows, idx] for t in data]
            with autocast(device):
                losses = step({**trainable, **frozen}, *batch)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # models are independent: grads do not mix
            if clip_grad is not None:
                _clip_per_model(list(trainable.values()), clip_grad)
            opt.step()
            total += losses.detach().float() * idx.shape[1]
        for h, loss in zip(histories, (total / n).tolist()):
            h.train_loss.append(loss)
            h.num_images += n
    seconds = time.perf_counter() - start
    for i, (m, h) in enumerate(zip(models, histories)):
        state = {k: v[i].detach().clone() for k, v in params.items()}
        m.load_state_dict(state, strict=False)
        m.eval()
        h.seconds = seconds / m_count
    return histories


def _clip_per_model(stacked: list, max_norm: float) -> None:
    grads = [p.grad for p in stacked if p.grad is not None]
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
