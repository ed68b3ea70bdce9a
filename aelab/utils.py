"""Plumbing every lesson needs, by what it does: `aelab.progress` (bars,
notices), `aelab.device` (device choice), `aelab.cache` (hashes, atomic saves,
the disk cache); this module keeps seeding and the profile, and re-exports the
rest under their old names.

Nothing here knows about autoencoders; these modules import nothing else from
aelab but `validate` (its one-line checks).
"""
from __future__ import annotations

import random

import numpy as np
import torch

from aelab import validate
from aelab.cache import (atomic_save, cache_dir, cache_path, cached, config_hash,  # noqa: F401
                         fingerprint, no_cache, save_or_warn, sha256_file, tensor_hash,
                         unreadable)
from aelab.device import (check_device, get_device, training_device,  # noqa: F401
                          tune_cpu_allocator)
from aelab.progress import (LONG_RUN_S, announce, long_run_notice, progress,  # noqa: F401
                            say_once)

PROFILES = validate.PROFILES


def get_profile(profile: str | None = None) -> str:
    """The run profile: argument, else AELAB_PROFILE, else 'classroom'."""
    return validate.profile(profile)


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch (all devices). Returns nothing, so that a
    lesson's cell ending with it prints nothing."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
