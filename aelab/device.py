"""Where models run: the device (cuda, then mps, then cpu; AELAB_DEVICE
overrides), checked before torch sees it, and the CPU allocator setting that
keeps training steps from page-faulting.
"""
from __future__ import annotations

import ctypes
import os
import platform

import torch

from aelab import validate
from aelab.progress import say_once


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
