"""Run independent jobs in forked worker processes, one CPU thread each.

fit_many's "processes" strategy uses this on a CPU for models it cannot stack
(convolutions, BatchNorm). Why processes: a small conv autoencoder at batch 64
gains little from a second torch thread (one fit: 13.4 ms a step on one thread,
9.8 on two), while two processes of one thread each train two models at once
(benchmarks/RESULTS.md). Processes, not threads, because every `fit` seeds the
global random generator that its objective's noise draws from.

    results = run(jobs, workers=2, on_result=lambda k, value: ...)

jobs[k]() runs in a child forked from this process (it sees every object the
parent had, nothing is pickled on the way in) and returns a dict of tensors,
numbers, strings and lists: what torch.save(weights_only) can carry back.
What a job prints is captured and printed by the parent under its result.
An exception in a job is raised in the parent (the same type, the child's
traceback in its notes). Ctrl-C in the parent is passed on to the children,
whose jobs stop the way they stop on Ctrl-C in-process (a `fit` saves its
checkpoint), and then raised.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
import warnings
from multiprocessing.connection import wait

import torch

STOP_WAIT_S = 30.0  # how long the children get to stop after Ctrl-C
_to_parent = None  # in a child: its pipe, for report()


def report(n: int = 1) -> None:
    """In a job: tell the parent that n more units of work are done (its
    progress bar moves); a no-op outside a worker."""
    if _to_parent is not None:
        _to_parent.send(("tick", -1, "", n))


def unavailable() -> str:
    """'' if jobs can run in forked workers here, else why not (one line)."""
    if not sys.platform.startswith("linux"):
        return f"forking a process is not safe on {sys.platform}"
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this Python cannot fork"
    if multiprocessing.current_process().daemon:
        return "this is already a worker process"
    return ""


def _stop_once(signum, frame):
    """A child's first Ctrl-C stops its job; later ones (the parent passes one
    on after the terminal sent its own) must not break the checkpoint write."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _child(jobs, tasks, conn) -> None:
    global _to_parent
    _to_parent = conn
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, _stop_once)
    for k in tasks:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                value = jobs[k]()
            buf = io.BytesIO()
            torch.save(value, buf)
            message = ("done", k, out.getvalue(), buf.getvalue())
        except KeyboardInterrupt:
            conn.send(("interrupted", k, out.getvalue(), b""))
            break
        except BaseException as err:  # noqa: BLE001 - the parent raises it
            err.add_note("".join(traceback.format_exception(err)).rstrip())
            try:
                payload = pickle.dumps(err)
            except Exception:  # noqa: BLE001 - an exception that cannot travel
                payload = pickle.dumps(RuntimeError(f"{type(err).__name__}: {err}"))
            conn.send(("error", k, out.getvalue(), payload))
            break
        conn.send(message)
    conn.close()


def run(jobs: list, *, workers: int, on_result, on_tick=None) -> None:
    """Run every jobs[k]() in `workers` forked processes, calling
    on_result(k, value) in the parent as each finishes (in finishing order),
    and on_tick(n) when a job calls report(n). Worker w runs jobs w,
    w + workers, ... in turn."""
    why = unavailable()
    if why:
        raise RuntimeError(f"aelab.workers: {why}")
    ctx = multiprocessing.get_context("fork")
    workers = max(1, min(workers, len(jobs)))
    procs, conns = [], []
    with warnings.catch_warnings():  # Python 3.12 warns on every fork of a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        for w in range(workers):
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(jobs, range(w, len(jobs), workers), send),
                            daemon=True)
            p.start()
            send.close()
            procs.append(p)
            conns.append(recv)
    interrupted = clean = False
    try:
        error = _collect(conns, on_result, on_tick)
        clean = error is None
    except KeyboardInterrupt:
        interrupted = True
        for p in procs:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        _collect(conns, on_result, on_tick, deadline=time.monotonic() + STOP_WAIT_S)
    finally:  # after an error or a Ctrl-C, what still runs is stopped
        for p in procs:
            p.join(timeout=None if clean else 1.0)
            if p.is_alive():
                p.terminate()
                p.join()
        for c in conns:
            c.close()
    if interrupted:
        raise KeyboardInterrupt
    if error is not None:
        raise error


def _collect(conns: list, on_result, on_tick, *, deadline: float | None = None):
    """Read the children's messages until every one has closed its pipe.
    Returns the first error (an exception object) or None; a child's Ctrl-C
    is raised as KeyboardInterrupt. With a deadline (draining after Ctrl-C)
    finished results are still delivered and everything else is let pass."""
    live = list(conns)
    while live:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = wait(live, timeout=timeout)
        if not ready:  # the children did not stop in time
            break
        for c in ready:
            try:
                kind, k, printed, payload = c.recv()
            except (EOFError, OSError):
                live.remove(c)
                continue
            if printed:
                print(printed, end="" if printed.endswith("\n") else "\n", flush=True)
            if kind == "tick":
                if on_tick is not None:
                    on_tick(payload)
            elif kind == "done":
                on_result(k, torch.load(io.BytesIO(payload), weights_only=True))
            elif deadline is not None:
                continue
            elif kind == "interrupted":
                raise KeyboardInterrupt
            else:
                return pickle.loads(payload)
    return None
