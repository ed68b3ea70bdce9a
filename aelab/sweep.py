"""Many small models at once: label budgets x seeds x methods, many initialisations.

`fit_many(models, datas, loss_fn)` trains model i on datas[i] and records for
each what `fit` records, epoch by epoch (train loss, test loss, metrics, watched
outputs; the stalled flag follows from the train loss). How depends on the
models and the device, measured rather than assumed (benchmarks/RESULTS.md):
- "sequential": one `fit` after another, in this process.
- "processes" (CPU, Linux, two torch threads or more): one `fit` per model in
  forked worker processes, as many as torch has threads, one thread each
  (aelab.workers). For the models the CPU cannot stack: convolutions,
  BatchNorm (each model keeps its own running statistics), anything.
- "batched" (CPU, models whose only weighted layers are nn.Linear, all of one
  architecture): the M models' weights are stacked as [M, in, out]
  (aelab.batched) and each layer of all M runs as one batched matmul.
- "vmap" (CUDA, batch_size < 1024): any models of identical structure, stacked
  with torch.func.stack_module_state and run as ONE vmapped model.
In the two stacked strategies one optimizer steps the stacked tensors: Adam and
SGD work element by element, so that is exactly M independent optimizers;
gradient clipping is done per model (weight decay is element-wise already).
Each model sees the batch order it would see in `fit` (same per-model seed),
so all strategies train the same models, to float rounding. Models are stacked
in chunks of at most `chunk`, so Ctrl-C keeps every finished chunk cached.

(Heads on frozen features, trained many at once, are in aelab.probes.)
"""
from __future__ import annotations

import copy
import functools
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from aelab import batched, validate, workers
from aelab.splits import to_float
from aelab.train import (History, autocast, cached_fit, evaluate, fit, fit_key,
                         load_fitted, make_optimizer, record_extras, record_loss,
                         rng_neutral, save_fitted, validate_settings)
from aelab.utils import progress, say_once, training_device

VMAP_MAX_BATCH = 1024
STRATEGIES = ("auto", "sequential", "processes", "batched", "vmap")


class _Objective(nn.Module):
    """Wraps (model, loss_fn) so functional_call can swap the model's parameters
    while loss_fn calls any of its methods (encode, forward, ...)."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, *batch):
        return self.loss_fn(self.model, batch)


def _tuple(data):
    return (data,) if torch.is_tensor(data) else tuple(data)


def _choose(strategy, models, device, batch_size, callback=None) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of "
                         f"{', '.join(STRATEGIES)}")
    why_not = next(filter(None, map(batched.batchable, models)), "")
    if strategy == "batched" and why_not:
        raise ValueError(f"strategy='batched' cannot stack these models: {why_not}; "
                         "use strategy='sequential'")
    no_workers = workers.unavailable() or (
        "" if device.type == "cpu" else f"worker processes train on the CPU, not {device}")
    if strategy == "processes" and no_workers:
        raise ValueError(f"strategy='processes': {no_workers}; use strategy='sequential'")
    if strategy != "auto":
        return strategy
    if device.type == "cuda" and batch_size < VMAP_MAX_BATCH:
        # Measured on an H100 with the barletta AE: 64 models at batch 64, vmap
        # 268k vs sequential 14k images/s; 16 models at batch 4096, vmap 347k vs
        # sequential 679k. Big batches already fill the GPU one model at a time.
        return "vmap"
    if device.type == "cpu" and not why_not and len(models) > 1 and batch_size <= 256:
        # Measured on 2 CPU cores (benchmarks/batched_cpu.py): 4 or 20 MLPs
        # 784-(32|128|512)x(1|3)-10, batch 64 or 256, never slower (median of 3
        # rounds), 1.0-6.0x faster than one fit after another with 2 threads,
        # 1.0-2.7x with 1; 20 x 784-128-128-10 at batch 64: 3.1-3.2x (RESULTS.md).
        return "batched"
    if (device.type == "cpu" and len(models) > 1 and torch.get_num_threads() > 1
            and not no_workers and callback is None):
        # Measured on 2 CPU cores: 5 barletta AEs at batch 64, one epoch, 1.2-1.5x
        # one fit after another (one thread per model gains more than a second
        # thread for one model: 13.4 vs 9.8 ms a step); a callback is left
        # in-process, since it would run on the worker's copy of the model.
        return "processes"
    return "sequential"


def _check_watch(model, X, watch, *, stacked: bool) -> None:
    """One line, before training, for watched inputs that are no tensor, or that
    the first nn.Linear of a stacked MLP cannot take (torch would say so only
    after the first epoch)."""
    if watch is None:
        return
    if not torch.is_tensor(watch) or watch.dim() == 0 or not len(watch):
        got = (f"shape {tuple(watch.shape)}" if torch.is_tensor(watch)
               else type(watch).__name__)
        raise ValueError(f"fit_many: watch must be a non-empty tensor of inputs, got "
                         f"{got}: e.g. watch=X_test[:8]")
    if not stacked:
        return
    width = next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features
    if watch.shape[1:] != X.shape[1:] and width not in (watch.shape[-1], watch[0].numel()):
        raise ValueError(f"fit_many: watch holds inputs of shape {tuple(watch.shape[1:])} "
                         f"but the models train on {tuple(X.shape[1:])} (their first "
                         f"layer takes {width} values): watch inputs shaped like the data")


def _describe(strategy: str, models: list) -> str:
    """Which strategy trains the models, in words (say it once per kind)."""
    if strategy == "vmap" and any(True for m in models for _ in m.buffers()):
        return ("models with buffers (BatchNorm) one after another, since their "
                "running statistics cannot update under vmap; the others stacked "
                "under vmap")
    if strategy == "processes":
        return (f"one model per worker process, {min(torch.get_num_threads(), len(models))}"
                " at once, one thread each")
    return {"sequential": "one model after another",
            "vmap": "same-shape models stacked under vmap",
            "batched": "same-shape models stacked into batched matmuls"}[strategy]


@rng_neutral
def fit_many(models: list, datas: list, loss_fn, *, strategy: str = "auto",
             num_epochs: int = 10, lr: float = 1e-3, batch_size: int = 128,
             optimizer: str = "adam", weight_decay: float = 0.0,
             clip_grad: float | None = None, seeds: list | None = None,
             test_data=None, eval_data: dict | None = None,
             metrics: dict | None = None, watch=None, callback=None, device=None,
             quiet: bool = False, desc: str = "models", cache: bool = False,
             chunk: int = 32) -> list[History]:
    """Train models[i] on datas[i] (a tuple of tensors) with loss_fn: one
    objective for every model, or a list with one per model (configurations
    of one shape trained together: the stacked strategies stack the models
    that share an objective).

    test_data: one dataset for every model, or a list with one per model; its
        loss_fn after every epoch goes into history.test_loss, as in `fit`.
    eval_data: {name: dataset (or a list, one per model)}: the mean loss_fn on
        it after every epoch, in history.metrics[name] (e.g. the training set,
        measured after the epoch rather than averaged during it).
    metrics, watch, callback: as in `fit`, for every model after every epoch;
        watch may be a list, one tensor of inputs per model.
    cache: as in `fit`, per model: models whose exact run finished before are
        loaded, the others trained and stored. Ctrl-C stops the whole sweep
        (the models that finished stay cached, so a rerun resumes) and re-raises.
    chunk: at most this many models are stacked into one run.
    """
    if len(models) != len(datas):
        raise ValueError(f"fit_many needs one dataset per model: got {len(models)} "
                         f"models and {len(datas)} datasets")
    num_epochs, batch_size = validate_settings(num_epochs, batch_size, lr, weight_decay,
                                            clip_grad, optimizer)
    if seeds is not None and len(seeds) != len(models):
        raise ValueError(f"fit_many needs one seed per model: got {len(seeds)} seeds "
                         f"for {len(models)} models (or leave seeds=None for 0, 1, ...)")
    for i, s in enumerate(seeds if seeds is not None else ()):
        validate.count(f"seeds[{i}]", s, minimum=None)  # as fit checks its seed
    chunk = validate.count("chunk", chunk, minimum=1, hint="e.g. 32")
    for i, d in enumerate(datas):
        validate.data(d, f"datas[{i}]", "fit_many")
    loss_fns = list(loss_fn) if isinstance(loss_fn, (list, tuple)) else \
        [loss_fn] * len(models)
    if len(loss_fns) != len(models) or not all(map(callable, loss_fns)):
        raise ValueError(f"fit_many needs one objective, or a list of one per model: "
                         f"got {len(loss_fns)} for {len(models)} models")
    if eval_data is not None and not isinstance(eval_data, dict):
        raise TypeError(f"fit_many: eval_data must be a dict {{name: dataset}}, got "
                        f"{type(eval_data).__name__}: e.g. eval_data={{'train': (X,)}} "
                        "(the test set goes in test_data)")
    evals = {"": test_data, **(eval_data or {})}  # "" is the test set
    for name, data in evals.items():
        if isinstance(data, list) and len(data) != len(models):
            raise ValueError(f"{name or 'test_data'} as a list needs one dataset per "
                             f"model: got {len(data)} for {len(models)} models")
        what = f"eval_data[{name!r}]" if name else "test_data"
        for d in {id(d): d for d in (data if isinstance(data, list) else [data])
                  if data is not None}.values():  # as fit checks its test_data
            validate.data(d, what, "fit_many")
    evals = {k: v if isinstance(v, list) else [v] * len(models)
             for k, v in evals.items() if v is not None}
    watches = watch if isinstance(watch, (list, tuple)) else [watch] * len(models)
    if len(watches) != len(models):
        raise ValueError(f"watch as a list needs one tensor per model: got "
                         f"{len(watches)} for {len(models)} models")
    device = training_device(device)
    strategy = _choose(strategy, models, device, batch_size, callback)
    for m, d, w in zip(models, datas, watches, strict=True):
        _check_watch(m, _tuple(d)[0], w, stacked=strategy == "batched")
    if not quiet:
        say_once(f"fit_many {strategy} {device.type}",
                 f"aelab: fit_many on {device.type}: {_describe(strategy, models)}")
    seeds = list(seeds) if seeds is not None else list(range(len(models)))
    datas = [_tuple(d) for d in datas]
    kw = dict(num_epochs=num_epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
              weight_decay=weight_decay, clip_grad=clip_grad, device=device)
    if strategy == "processes":
        return _fit_processes(models, datas, loss_fns, seeds, evals, metrics, watches,
                              callback, cache, kw, desc=desc, quiet=quiet)
    histories: list = [None] * len(models)
    keys, groups = {}, {}
    for i, (m, d) in enumerate(zip(models, datas)):
        mine = {k: v[i] for k, v in evals.items()}
        if strategy != "sequential":
            if cache:
                keys[i] = fit_key(m, d, loss_fns[i], seed=seeds[i], strategy=strategy,
                                  evals=mine, metrics=metrics, watch=watches[i], **kw)
                histories[i] = load_fitted(m, keys[i], device)
                if histories[i] is not None:
                    continue
            if strategy == "vmap" and any(True for _ in m.buffers()):
                key = i  # BatchNorm's running statistics cannot update under vmap
            else:
                key = (batched.signature(m), id(loss_fns[i]), len(d[0]),
                       tuple(len(_tuple(v)[0]) for v in mine.values()))
        else:
            key = i
        groups.setdefault(key, []).append(i)
    todo = [idx[k:k + chunk] for idx in groups.values()
            for k in range(0, len(idx), chunk)]
    bar = progress(total=len(models), initial=len(models) - sum(map(len, todo)),
                   desc=desc, disable=quiet, unit="model")
    try:
        for idx in todo:
            if len(idx) == 1 or strategy == "sequential":
                for i in idx:
                    histories[i] = _fit_one(models[i], datas[i], loss_fns[i], seeds[i],
                                            {k: v[i] for k, v in evals.items()},
                                            metrics, watches[i], callback,
                                            cache and i not in keys, kw)
                    if i in keys:
                        save_fitted(models[i], keys[i], histories[i])
                    if histories[i].stopped == "interrupted":
                        raise KeyboardInterrupt
                    bar.update()
                continue
            hs = _fit_stacked([models[i] for i in idx], [datas[i] for i in idx],
                              loss_fns[idx[0]], [seeds[i] for i in idx],
                              {k: [v[i] for i in idx] for k, v in evals.items()},
                              layout=strategy, metrics=metrics,
                              watch=[watches[i] for i in idx],
                              callback=callback, desc=desc, **kw)
            for i, h in zip(idx, hs, strict=True):
                histories[i] = h
                if i in keys:
                    save_fitted(models[i], keys[i], h)
            if any(h.stopped == "interrupted" for h in hs):
                raise KeyboardInterrupt
            bar.update(len(idx))
    finally:
        bar.close()
    return histories


def _loss_on(model, *, data, loss_fn):
    return evaluate(model, data, loss_fn)


def _fit_args(data, loss_fn, seed, evals, metrics, watch, callback, kw,
              desc="fit") -> dict:
    """fit's arguments for one model, eval_data passed as metrics (the same
    numbers); desc names the model in fit's messages (not in its cache key)."""
    extra = {k: functools.partial(_loss_on, data=v, loss_fn=loss_fn)
             for k, v in evals.items() if k}
    return dict(data=data, loss_fn=loss_fn, seed=seed, test_data=evals.get(""),
                metrics={**extra, **metrics} if extra and metrics else extra or metrics,
                watch=watch, callback=callback, quiet=True, desc=desc, **kw)


def _fit_one(model, data, loss_fn, seed, evals, metrics, watch, callback, cache, kw):
    """One `fit`, in this process."""
    return fit(model, cache=cache,
               **_fit_args(data, loss_fn, seed, evals, metrics, watch, callback, kw))


def _train_in_worker(model, cache, args) -> dict:
    """A worker's job: one fit (it caches what it trains), sent back as its
    weights and history; each finished epoch moves the parent's bar."""
    user = args["callback"]

    def tick(model, epoch, history):
        workers.report()
        if user is not None:
            user(model, epoch, history)
    history = fit(model, cache=cache, **{**args, "callback": tick})
    return dict(state=model.state_dict(), history=history.to_dict())


def _fit_processes(models, datas, loss_fns, seeds, evals, metrics, watch, callback,
                   cache, kw, *, desc, quiet):
    """Every model not in the cache trained by one `fit` in a worker process
    (aelab.workers); the parent loads each result as it comes."""
    histories: list = [None] * len(models)
    args = [_fit_args(datas[i], loss_fns[i], seeds[i], {k: v[i] for k, v in evals.items()},
                      metrics, watch[i], callback, kw, desc=f"{desc}, model {i}")
            for i in range(len(models))]
    todo = []
    for i, m in enumerate(models):
        histories[i] = cached_fit(m, **args[i]) if cache else None
        if histories[i] is None:
            todo.append(i)
    epochs = kw["num_epochs"]  # the bar counts epochs: workers finish models together
    bar = progress(total=len(todo) * epochs, desc=desc, disable=quiet, unit="epoch")
    device = kw["device"]

    def take(k, result):
        i = todo[k]
        models[i].load_state_dict(result["state"])
        models[i].to(device, memory_format=torch.channels_last).eval()
        histories[i] = History.from_dict(result["history"])
        bar.update(epochs - len(histories[i].train_loss))  # a model that stopped early

    try:
        if todo:
            jobs = [functools.partial(_train_in_worker, models[i], cache, args[i])
                    for i in todo]
            workers.run(jobs, workers=torch.get_num_threads(), on_result=take,
                        on_tick=bar.update)
            bar.update(max(0, bar.total - bar.n))  # epochs a resumed fit had done before
    except KeyboardInterrupt:
        done = sum(h is not None for h in histories)
        print(f"{desc}: interrupted; {done} of {len(models)} models finished"
              + (" (cached: a rerun loads them, and resumes the others from their "
                 "last finished epoch)" if cache else ""), flush=True)
        raise
    finally:
        bar.close()
    return histories


def _stack(models, layout):
    """(base module on the meta device, {name: [M, ...]}, unstack(i) -> state)."""
    if layout == "batched":
        base, params = batched.batched_copy(models[0]), batched.stack(models)
        return base, params, lambda i: batched.unstack(params, i, models[0])
    base, (params, _) = copy.deepcopy(models[0]), stack_module_state(models)
    return base, params, lambda i: {k: v[i].detach().clone() for k, v in params.items()}


def _fit_stacked(models, datas, loss_fn, seeds, evals, *, layout, num_epochs, lr,
                 batch_size, optimizer, weight_decay, clip_grad, device, metrics,
                 watch, callback, desc):
    m_count = len(models)
    for m in models:
        m.to(device)
    base, params, unstack = _stack(models, layout)
    trainable = {k: v for k, v in params.items() if v.requires_grad}
    frozen = {k: v.detach() for k, v in params.items() if k not in trainable}
    objective = _Objective(base.to("meta"), loss_fn)
    data = batched.PerModelData(datas, device)
    evals = {k: [t.to(device) for t in _tuple(v[0])] if all(t is v[0] for t in v)
             else batched.PerModelData([_tuple(t) for t in v], device)
             for k, v in evals.items()}
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    torch.manual_seed(seeds[0])  # the noise an objective draws: set by the chunk
    fused = device.type in ("cpu", "cuda") or None
    opt = make_optimizer(optimizer, list(trainable.values()), lr, weight_decay,
                         fused=fused)

    def one(p, *batch):
        named = {f"model.{k}": v for k, v in p.items()}
        return functional_call(objective, named, batch)

    # Every parameter is mapped over (models may carry different frozen encoders);
    # only the trainable ones get gradients.
    step = vmap(one, randomness="different")
    names = [k for k in evals if k] + list(metrics or {})
    histories = [History(metrics={k: [] for k in names}) for _ in models]
    alive = list(range(m_count))  # the models that have not diverged
    n, start = data.n, time.perf_counter()

    def load(i):
        models[i].load_state_dict(unstack(i), strict=False)
        models[i].eval()

    epoch = 0
    try:
        for epoch in range(num_epochs):
            base.train()
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
            perms, total = perms.to(device), torch.zeros(m_count, device=device)
            for s in range(0, n, batch_size):
                idx = perms[:, s:s + batch_size]
                with autocast(device):
                    losses = step({**trainable, **frozen}, *data.batch(idx))
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()  # models are independent: grads do not mix
                if clip_grad is not None:
                    batched.clip_per_model(list(trainable.values()), clip_grad)
                opt.step()
                total += losses.detach().float() * idx.shape[1]
            train_loss = (total / n).tolist()  # the one sync of the epoch
            measured = {k: _evaluate(one, {**trainable, **frozen}, v, base, device)
                        for k, v in evals.items()}
            for i in list(alive):
                h = histories[i]
                h.num_images += n
                if not record_loss(h, train_loss[i], epoch, desc=f"{desc}, model {i}",
                                   lr=lr):
                    load(i)  # it stops alone, at its last finite weights' epoch
                    alive.remove(i)
                    continue
                for k, losses in measured.items():
                    (h.metrics[k] if k else h.test_loss).append(losses[i])
                if metrics or watch[i] is not None or callback is not None:
                    load(i)
                    _after_epoch(models[i], h, epoch, metrics, watch[i], callback, device)
            if not alive:
                break
    except KeyboardInterrupt:
        for h in (histories[i] for i in alive):
            h.stopped = "interrupted"
            h.message = (f"{desc}: interrupted in epoch {epoch + 1} of {num_epochs}; "
                         "the partial histories are returned")
        print(histories[alive[0]].message, flush=True)
    seconds = time.perf_counter() - start
    for i in alive:
        load(i)
    for h in histories:
        h.seconds = seconds / m_count
    return histories


@torch.no_grad()
def _evaluate(one, params, test, base, device, batch_size=1024) -> list:
    """Each model's mean loss on its test data (eval mode), as `evaluate` does:
    `test` is one list of tensors for every model, or a PerModelData."""
    base.eval()
    shared = not isinstance(test, batched.PerModelData)
    n = len(test[0]) if shared else test.n
    total = 0.0
    for s in range(0, n, batch_size):
        if shared:
            batch = [to_float(t[s:s + batch_size]) if t.dtype == torch.uint8
                     else t[s:s + batch_size] for t in test]
            size = len(batch[0])
        else:
            idx = torch.arange(s, min(s + batch_size, n), device=device)
            batch = test.batch(idx.expand(len(test.offset), -1))
            size = len(idx)
        in_dims = (0,) + ((None,) if shared else (0,)) * len(batch)
        with autocast(device):
            losses = vmap(one, in_dims=in_dims, randomness="different")(params, *batch)
        total = total + losses.float() * size
    base.train()
    return (total / n).tolist()


def _after_epoch(model, history, epoch, metrics, watch, callback, device):
    """What `fit` does after an epoch for one model: metrics, watch, callback."""
    record_extras(model, history, metrics, watch, device)
    if callback is not None:
        callback(model, epoch, history)
