"""The cache survives what happens to a class's notebooks: a writer killed with
SIGKILL at random points (20 times) leaves no corrupt entry and the rerun
gets what an uninterrupted run gets; two processes filling one cache folder
at once both finish with the same results.

Writers are forked from a server that has already imported torch and aelab
(multiprocessing's forkserver), so a kill lands in the writing, not in the
imports, and twenty of them take seconds."""
import json
import multiprocessing
import random
import signal
import time
from pathlib import Path

import pytest
import torch

import cache_writer

KILLS = 20


@pytest.fixture(scope="module")
def ctx():
    context = multiprocessing.get_context("forkserver")
    # What a first fit imports lazily (tqdm.auto; torch._dynamo, which Adam's
    # constructor imports: 3 s here) is imported once, in the server.
    context.set_forkserver_preload(["torch", "torch._dynamo", "aelab", "aelab.train",
                                    "tqdm.auto", "cache_writer"])
    return context


def run_writer(ctx, folder: Path, **kw) -> list:
    """One writer to the end; the digests it got."""
    result = folder / "result.pt"
    p = ctx.Process(target=cache_writer.work,
                    args=(str(folder / "cache"), str(folder / "log.txt"), str(result)),
                    kwargs=kw)
    p.start()
    p.join(timeout=120)
    assert p.exitcode == 0, f"writer exited with {p.exitcode}"
    return json.loads(torch.load(result, weights_only=True)["digests"])


def check_entries(cache: Path) -> int:
    """Every entry loads whole and holds what was computed; returns how many
    temporary files (writes cut short) lie beside them, never read as entries."""
    left = 0
    for path in cache.rglob("*"):
        if path.is_dir():
            continue
        if path.suffix == ".tmp":
            assert path.name.startswith("."), path  # never a `<key>.pt` name
            left += 1
            continue
        assert path.suffix == ".pt", path
        entry = torch.load(path, weights_only=True)  # raises if half a file
        if path.parent.name == "run":
            assert torch.equal(entry["x"], cache_writer.payload(entry["i"])["x"])
        else:
            assert path.parent.name == "fit" and set(entry) == {"state", "history"}
    return left


def log_lines(folder: Path) -> list:
    log = folder / "log.txt"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_sigkill_during_cache_writes_leaves_no_corrupt_entry(ctx, tmp_path):
    reference = run_writer(ctx, tmp_path / "reference")
    killed = tmp_path / "killed"
    rng = random.Random(20)  # the kill points, seeded
    kills, cut_short = 0, 0
    for _ in range(KILLS):
        p = ctx.Process(target=cache_writer.work,
                        args=(str(killed / "cache"), str(killed / "log.txt")),
                        kwargs=dict(extras=10_000))
        p.start()
        time.sleep(rng.uniform(0.05, 0.5))
        p.kill()
        p.join(timeout=30)
        kills += p.exitcode == -signal.SIGKILL
        cut_short = check_entries(killed / "cache")
    assert kills == KILLS
    assert cut_short >= 3, "the kills should land in writes"
    # no writer ever met a file it could not read
    assert not [line for line in log_lines(killed) if "unreadable" in line
                or "refused" in line]
    assert run_writer(ctx, killed) == reference  # the rerun completes, same results
    assert check_entries(killed / "cache") == cut_short
    print(f"{kills} SIGKILLs, {cut_short} writes cut short (left as .tmp), "
          f"no corrupt entry")


@pytest.mark.slow
def test_two_processes_fill_one_cache_folder_at_once(ctx, tmp_path):
    reference = run_writer(ctx, tmp_path / "reference")
    shared = tmp_path / "shared"
    start = ctx.Event()
    writers = [ctx.Process(target=cache_writer.work,
                           args=(str(shared / "cache"), str(shared / f"log{k}.txt"),
                                 str(shared / f"result{k}.pt")),
                           kwargs=dict(start=start)) for k in range(2)]
    for p in writers:
        p.start()
    start.set()  # both begin together, on the same entries
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    for k in range(2):
        got = json.loads(torch.load(shared / f"result{k}.pt", weights_only=True)
                         ["digests"])
        assert got == reference
        assert not [line for line in (shared / f"log{k}.txt").read_text().splitlines()
                    if "unreadable" in line or "refused" in line]
    assert check_entries(shared / "cache") == 0
