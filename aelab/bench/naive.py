"""The naive side of `aelab bench`, run in a fresh Python process.

The naive loop is the one most tutorials show: a DataLoader over a TensorDataset
of float images, batch 16, shuffled, NCHW fp32, `loss.item()` after every step.
It runs in a worker process of its own so that nothing aelab sets for its own
loop (glibc's allocator thresholds, see `aelab.utils.tune_cpu_allocator`) helps
or hurts it: the worker sees glibc as a tutorial's Python process would.
"""
from __future__ import annotations

import multiprocessing
import os
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aelab.bench.timing import Timed, sync
from aelab.losses import classification_objective, reconstruction_objective
from aelab.metrics import accuracy
from aelab.models import ConvAutoencoder, EncoderClassifier


def naive_train(model, tensors, loss_fn, device, *, batch_size=16, num_epochs=1):
    """The tutorial loop: DataLoader, fp32 NCHW, a sync (loss.item()) every step."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True)
    running = 0.0
    for _ in range(num_epochs):
        for batch in loader:
            batch = [t.to(device) for t in batch]
            loss = loss_fn(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()  # what tutorials print; a sync every step
    return model.eval()


def sweep_models(m: int) -> list:
    """The sweep's models, identical on both sides (same seed, same order)."""
    torch.manual_seed(0)
    return [EncoderClassifier(ConvAutoencoder().encoder, freeze=False) for _ in range(m)]


@torch.no_grad()
def mean_accuracy(models, X, y, device) -> float:
    """Mean test accuracy of `models` on uint8 images X."""
    X = X.to(device).float() / 255
    return statistics.mean(accuracy(m.to(device).eval()(X), y) for m in models)


def autoencoder(Xf, device) -> None:
    naive_train(ConvAutoencoder(), (Xf,), reconstruction_objective, device)


def sweep(datas, Xte, yte, device, num_epochs) -> float:
    models = sweep_models(len(datas))
    for model, (Xs, ys) in zip(models, datas):
        naive_train(model, (Xs.float() / 255, ys), classification_objective, device,
                    num_epochs=num_epochs)
    return mean_accuracy(models, Xte, yte, device)


def probes(feats, y, subsets, feats_te, yte, device, num_epochs) -> float:
    heads = [naive_train(nn.Linear(feats.shape[1], 10), (feats[s], y[s]),
                         classification_objective, device, batch_size=32,
                         num_epochs=num_epochs) for s in subsets]
    with torch.no_grad():
        F_te = feats_te.to(device)
        return statistics.mean(accuracy(h(F_te), yte) for h in heads)


def _serve(conn) -> None:
    """The worker's loop: (fn, args, device) in, ('ok', seconds, result) out."""
    os.environ["AELAB_MALLOC"] = "default"  # in case anything here calls fit()
    while True:
        message = conn.recv()
        if message is None:
            return
        fn, args, device = message
        try:
            sync(device)
            start = time.perf_counter()
            result = fn(*args)
            sync(device)
            conn.send(("ok", time.perf_counter() - start, result))
        except Exception as err:  # noqa: BLE001 - reported to the parent as one line
            conn.send(("error", 0.0, f"{type(err).__name__}: {err}"))


class Worker:
    """`with Worker() as run: run(fn, *args, device=d)` -> Timed, in a fresh process."""

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter; CUDA-safe
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        return self

    def __call__(self, fn, *args, device) -> Timed:
        try:
            self.conn.send((fn, args, str(device)))
            status, seconds, result = self.conn.recv()
        except (EOFError, OSError):  # killed, out of memory, ...
            self.proc.join(timeout=5)
            raise RuntimeError(f"the bench worker process died (exit code "
                               f"{self.proc.exitcode}); run `aelab bench` again") from None
        if status != "ok":
            raise RuntimeError(f"the naive loop failed in the bench worker: {result}")
        return Timed(seconds, result)

    def __exit__(self, *exc):
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
        return False
