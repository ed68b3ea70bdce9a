"""Plumbing every lesson needs: device choice, seeding, atomic saves, a cache.

Nothing here knows about autoencoders; `models`, `metrics` and `utils` import
nothing else from aelab (but `utils` its one-line checks, `validate`).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import inspect
import json
import os
import pickle
import platform
import random
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from aelab import validate

PROFILES = validate.PROFILES
LONG_RUN_S = 60.0  # a bar expected to run longer says so once, with a faster option
_said: set[str] = set()


class _LineProgress:
    """A progress bar for logs: one line when the work is done (or stopped),
    instead of a redrawn bar. Written to the process's real stderr, which
    `aelab run` forwards to the terminal."""

    def __init__(self, iterable=None, *, total=None, desc="", initial=0,
                 disable=False, **_):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, initial
        self.disable, self.postfix, self.start = disable, {}, time.perf_counter()

    def __iter__(self):
        yield from self.iterable or ()

    def update(self, n=1):
        self.n += n

    def set_postfix(self, refresh=False, **kw):
        self.postfix = kw

    def close(self):
        if self.disable:
            return
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"    {self.desc}: {done} in {time.perf_counter() - self.start:.0f} s"
              f"{extra}", file=sys.__stderr__ or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def long_run_notice(desc: str, seconds: float, detail: str = "") -> str | None:
    """The one line a run expected to take over LONG_RUN_S prints (else None):
    the estimate and how to get a quicker run."""
    if not seconds > LONG_RUN_S:
        return None
    profile = os.environ.get("AELAB_PROFILE") or "classroom"
    if profile != "fast":
        tip = ("for a quicker run pick the fast profile (AELAB_PROFILE=fast before "
               "starting Jupyter, or `aelab run LESSON --profile fast`)")
    else:
        tip = ("this is already the fast profile: fewer epochs or images, or a GPU, "
               "make it quicker")
    detail = f" ({detail})" if detail else ""
    return (f"aelab: {desc or 'this run'} will take about {_duration(seconds)} on this "
            f"machine{detail}; {tip}")


def announce(line: str) -> None:
    """Print a notice in the notebook (stdout) and, under `aelab run`
    (AELAB_PROGRESS=lines), on the terminal too."""
    print(line, flush=True)
    if os.environ.get("AELAB_PROGRESS") == "lines" and sys.__stderr__ is not None:
        print(line, file=sys.__stderr__, flush=True)


class _Estimate:
    """A progress bar that, once it has seen about a second of work, estimates
    the whole and says so in one line if that is over LONG_RUN_S. The first
    unit (warm-up: allocation, kernel selection) is left out of the rate when
    there are more to measure."""

    MEASURE_S = 1.0

    def __init__(self, bar, *, total, desc, unit, initial=0):
        self.bar, self.total, self.desc, self.unit = bar, total, desc, unit
        self.done = initial
        self.start = time.perf_counter()
        self.first = None  # (time, units) when the first unit finished
        self.decided = not total

    def __getattr__(self, name):
        return getattr(self.bar, name)

    def __iter__(self):
        for item in self.bar:
            yield item
            self._tick(1)

    def update(self, n=1):
        self.bar.update(n)
        self._tick(n)

    def _tick(self, n: int) -> None:
        if self.decided:
            return
        now = time.perf_counter()
        self.done += n
        if self.first is None:
            self.first = (now, self.done)
        if now - self.start < self.MEASURE_S and self.done < self.total:
            return
        self.decided = True
        t1, n1 = self.first
        rate = ((now - t1) / (self.done - n1) if self.done > n1
                else (now - self.start) / max(self.done, 1))
        seconds = now - self.start + rate * (self.total - self.done)
        line = long_run_notice(self.desc, seconds,
                               f"{self.total:,} {self.unit}s at {rate:.2g} s each")
        if line:
            announce(line)


def progress(iterable=None, **kwargs):
    """tqdm.auto's bar (a widget in notebooks), or with AELAB_PROGRESS=lines
    (what `aelab run` sets) one line per finished bar. A bar that will run for
    more than LONG_RUN_S says so once, early (long_run_notice)."""
    style = validate.env_choice("AELAB_PROGRESS", ("lines", "bar"), "bar")
    if style == "lines":
        bar = _LineProgress(iterable, **kwargs)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(iterable, **kwargs)
    total = kwargs.get("total")
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if kwargs.get("disable") or not total:
        return bar
    return _Estimate(bar, total=total, desc=kwargs.get("desc", ""),
                     unit=kwargs.get("unit", "step"), initial=kwargs.get("initial", 0))


def say_once(key: str, message: str) -> None:
    """Print `message` the first time `key` is seen in this process."""
    if key not in _said:
        _said.add(key)
        print(message, flush=True)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def check_device(device, *, from_env: bool = False) -> torch.device:
    """`device` as a torch.device, if it names one this machine has; else one
    line that says what is there. from_env: it came from AELAB_DEVICE."""
    asked, fix = validate.device_name(device, from_env=from_env)
    d = torch.device(device)
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{asked} was asked for, but this machine has no CUDA GPU "
                             f"that torch can use: use cpu, or {fix}")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ValueError(f"{asked} was asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s) (cuda:0 ... "
                             f"cuda:{torch.cuda.device_count() - 1}): use cuda, or "
                             f"{fix}")
    if d.type == "mps" and not _mps_available():
        raise ValueError(f"{asked} was asked for, but this machine has no Apple GPU "
                         f"(MPS): use cpu, or {fix}")
    return d


def get_device(prefer: str | None = None) -> torch.device:
    """cuda, then mps, then cpu; AELAB_DEVICE or `prefer` overrides. Said once.
    A device that is not there is one line (check_device), not a torch error."""
    env = os.environ.get("AELAB_DEVICE") or None
    name = prefer or env
    if name is None:
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            name = "cpu"
    device = check_device(name, from_env=prefer is None and env is not None)
    if device.type == "cuda":
        detail = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        detail = f"{torch.get_num_threads()} threads"
    else:
        detail = "Apple GPU"
    say_once(f"device:{device}", f"aelab: using {device} ({detail})")
    return device


_allocator_tuned: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed CPU training buffers in the process instead of handing them
    back to the OS after every step (glibc Linux only; once per process).

    glibc serves buffers of over 128 KiB with fresh mmap pages and trims the heap
    when they are freed, so each CPU training step of the barletta AE took
    4,600-9,300 page faults at batch 128-256 (0 after this), which cost a third
    of its time on a 2-core VM. Sets M_MMAP_THRESHOLD to 32 MiB (glibc's
    maximum) and M_TRIM_THRESHOLD to 256 MiB; the price is that the process
    keeps up to 256 MiB of freed memory. AELAB_MALLOC=default leaves glibc as
    it is. Returns True when the settings are in force.
    """
    global _allocator_tuned
    # a misspelt value stops with one line
    mode = validate.env_choice("AELAB_MALLOC", ("tuned", "default"), "tuned")
    if _allocator_tuned is None:
        _allocator_tuned = False
        if (mode == "tuned" and platform.system() == "Linux"
                and platform.libc_ver()[0] == "glibc"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
                _allocator_tuned = bool(libc.mallopt(m_mmap_threshold, 32 << 20)
                                        and libc.mallopt(m_trim_threshold, 256 << 20))
            except (OSError, AttributeError):
                pass
    return _allocator_tuned


def training_device(device=None) -> torch.device:
    """The device to train on: `device` if given, else get_device(). On a CPU
    this also keeps glibc from page-faulting every step (tune_cpu_allocator)."""
    device = check_device(device) if device is not None else get_device()
    if device.type == "cpu":
        tune_cpu_allocator()
    return device


def get_profile(profile: str | None = None) -> str:
    """The run profile: argument, else AELAB_PROFILE, else 'classroom'."""
    return validate.profile(profile)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a torch Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then
    os.replace: a reader (another process too) sees the old file or the whole
    new one, never half of one, even if this process is killed mid-write (the
    fsync: nor after a crash of the machine); a temporary file left by a kill
    starts with '.', ends in .tmp and is never read as an entry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The folder is not fsynced: after a power cut the rename may be lost, which
    # costs a recomputation, while fsyncing it took 10-50 ms a write here.
    return path


def save_or_warn(obj, path: Path) -> bool:
    """atomic_save into the cache; if the disk is full (or the folder
    unwritable), say so in one line and go on: the caller keeps its result."""
    try:
        atomic_save(obj, path)
        return True
    except OSError as err:
        print(f"aelab: could not write cache file {Path(path).name} "
              f"({err.strerror or type(err).__name__}); the result is kept but not "
              "cached: free some disk space or point AELAB_CACHE at another folder",
              flush=True)
        return False


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-able config (keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tensor_hash(*arrays) -> str:
    """sha256 (first 16 hex digits) of the bytes of tensors or numpy arrays: a
    content key for data and weights. Fast: ~0.1 s for all of MNIST."""
    digest = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
        digest.update(str((a.dtype, a.shape)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def fingerprint(obj) -> str:
    """A short stable hash of what determines a result: tensors by content,
    modules by class, structure and weights, functions by their source code
    (and the values they close over), partials by function and arguments.
    Two notebook sessions that define the same function get the same key; edit
    the function and the key changes. (Globals a function reads are not seen.)"""
    return config_hash(_describe(obj, set()))


def _describe(obj, seen: set):
    if torch.is_tensor(obj) or isinstance(obj, np.ndarray):
        return "tensor:" + tensor_hash(obj)
    d = functools.partial(_describe, seen=seen)
    if isinstance(obj, torch.nn.Module):
        state = obj.state_dict()
        return ["module", repr(obj), tensor_hash(*state.values()) if state else ""]
    if isinstance(obj, functools.partial):
        return ["partial", d(obj.func), d(obj.args), d(obj.keywords)]
    if isinstance(obj, (list, tuple)):
        return [d(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): d(v) for k, v in obj.items()}
    if callable(obj) and hasattr(obj, "__code__"):
        if id(obj) in seen:  # recursion
            return "function:" + obj.__qualname__
        seen.add(id(obj))
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):  # no source (e.g. exec'd): the bytecode
            source = obj.__code__.co_code.hex() + repr(obj.__code__.co_consts)
        cells = [c.cell_contents for c in (obj.__closure__ or ())]
        # Functions of the same module that it calls by name (a notebook's own
        # helpers, e.g. the student's answer) are part of what it computes.
        calls = {name: g for name in obj.__code__.co_names
                 if inspect.isfunction(g := obj.__globals__.get(name))
                 and g.__module__ == obj.__module__}
        return ["function", textwrap.dedent(source), d(cells),
                d(obj.__defaults__ or ()), d(calls)]
    if hasattr(obj, "tensors"):  # a Loader
        return d(list(obj.tensors))
    return repr(obj)


def unreadable(path: Path, err: Exception) -> str:
    """Why a cache file cannot be used, in one line."""
    if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
        # weights_only=True met a Python object to import and call: it said no
        return (f"aelab: cache file {path.name} was refused: it holds Python objects, "
                "not plain tensors and numbers (a pickle payload?), and was not run; "
                "recomputing it")
    return (f"aelab: cache file {path.name} is unreadable ({type(err).__name__}); "
            "recomputing it")


def cache_dir() -> Path:
    """AELAB_CACHE, else ~/.cache/aelab. Created on first use."""
    root = os.environ.get("AELAB_CACHE") or Path.home() / ".cache" / "aelab"
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise ValueError(f"AELAB_CACHE={root} is a file, not a folder: point it at a "
                         "folder (or unset it for ~/.cache/aelab)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the cache folder {root} ({err.strerror}): set "
                         "AELAB_CACHE to a folder you can write to, or AELAB_NO_CACHE=1"
                         ) from None
    return path


def cache_path(config: dict, kind: str = "run") -> Path:
    """Where the result of `config` is cached: <cache_dir>/<kind>/<hash>.pt."""
    return cache_dir() / kind / f"{config_hash(config)}.pt"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def timer():
    """`with timer() as t: ...; t()` gives the seconds elapsed (syncs CUDA)."""
    start = time.perf_counter()
    end = None

    def elapsed() -> float:
        return (end or time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        end = time.perf_counter()


def cached(config: dict, compute, *, kind: str = "run", refresh: bool = False):
    """Return compute() for `config`, from the disk cache when it is there.

    The result must be plain data (dicts, lists, numbers, strings, tensors) so
    that it reloads with torch.load(weights_only=True). A truncated or corrupt
    file (an interrupted write from an older version, a full disk) is reported
    in one line and recomputed rather than crashed on; a write that fails (a
    full disk) is reported in one line and the result still returned. Several
    processes may share one cache folder: each writes whole files atomically.
    Set AELAB_NO_CACHE=1 to bypass.
    """
    if no_cache():
        return compute()
    path = cache_path(config, kind)
    if path.exists() and not refresh:
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is recomputed
            print(unreadable(path, err), flush=True)
    result = compute()
    save_or_warn(result, path)  # a full disk costs the cache entry, not the result
    return result


def no_cache() -> bool:
    """AELAB_NO_CACHE=1: recompute everything."""
    return validate.flag("AELAB_NO_CACHE")
