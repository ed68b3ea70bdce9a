"""Which seeds a lesson runs: the lesson's own, or AELAB_SEEDS.

`aelab run LESSON --seeds 5-9` sets AELAB_SEEDS for the kernel, so anyone can
rerun a study on seeds nobody tuned on. A lesson writes

    SEEDS = aelab.profile.get_seeds(SETTINGS["seeds"])

and uses SEEDS everywhere it would have used its own.
"""
from __future__ import annotations

import os

ENV = "AELAB_SEEDS"
_FORMS = "'5-9' (a range, both ends included), '5,6,7' or '7'"


def parse_seeds(spec: str) -> tuple[int, ...]:
    """'5-9' -> (5, 6, 7, 8, 9); '5,6,7' -> (5, 6, 7); '3' -> (3,); ranges and
    single seeds may be mixed ('0-2,7'). One line that says how, on bad input."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"seeds {spec!r} is empty: give {_FORMS}")
    seeds: list[int] = []
    for part in spec.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"seeds {spec!r}: {part!r} is not a whole number or a "
                             f"range; give {_FORMS}") from None
        if a < 0 or b < a:
            raise ValueError(f"seeds {spec!r}: {part!r} must run upwards from 0 or "
                             f"more, e.g. '5-9'")
        seeds.extend(range(a, b + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {spec!r} names a seed twice; each seed once, please")
    return tuple(seeds)


def get_seeds(default) -> tuple[int, ...]:
    """AELAB_SEEDS when set (see parse_seeds), else the lesson's `default`."""
    spec = os.environ.get(ENV, "").strip()
    if spec:
        try:
            return parse_seeds(spec)
        except ValueError as err:
            raise ValueError(f"{ENV}: {err}") from None
    return tuple(int(s) for s in default)
