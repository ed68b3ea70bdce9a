"""A process that fills a cache folder, for tests/test_cache_safety.py: cached()
entries of 64 KiB and, every 15th, a fit(cache=True) of a tiny model, all
deterministic; `digests` lists what it got (from the cache or computed)."""
from __future__ import annotations

import contextlib
import functools
import json
import os

NUM_ENTRIES = 150


def payload(i: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(i)
    return {"i": i, "x": torch.randn(128, 128, generator=g)}


def recon(model, batch):
    import torch.nn.functional as F

    X, = batch
    return F.mse_loss(model(X), X)


def tiny_fit(i: int) -> str:
    import torch
    from torch import nn

    from aelab.train import fit
    from aelab.utils import tensor_hash

    torch.manual_seed(i)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(2, 1, 3, padding=1))
    X = payload(i)["x"][:16, :64].reshape(16, 1, 8, 8).sigmoid()
    fit(model, (X,), recon, num_epochs=2, batch_size=8, device="cpu", quiet=True,
        cache=True)
    return tensor_hash(*model.state_dict().values())


def digests() -> list[str]:
    from aelab.utils import cached, tensor_hash

    out = []
    for i in range(NUM_ENTRIES):
        entry = cached({"writer": i}, functools.partial(payload, i))
        out.append(tensor_hash(entry["x"]))
        if i % 15 == 0:
            out.append(tiny_fit(i))
    return out


def work(cache: str, log: str, result: str | None = None, extras: int = 0,
         start=None) -> None:
    """Fill `cache`; print aelab's messages into `log`; write the digests to
    `result`; then rewrite 20 more entries `extras` times (refresh=True: a kill
    then always meets a write, often one replacing a good entry)."""
    os.environ["AELAB_CACHE"] = cache
    import torch

    from aelab.utils import atomic_save, cached

    torch.set_num_threads(1)  # two of these on two cores: no OpenMP fight
    os.makedirs(os.path.dirname(log), exist_ok=True)
    if start is not None:
        start.wait()
    with open(log, "a") as f, contextlib.redirect_stdout(f):
        found = digests()
        if result:
            atomic_save({"digests": json.dumps(found)}, result)
        for j in range(extras):
            cached({"extra": j % 20}, functools.partial(payload, 10_000 + j % 20),
                   refresh=True)
