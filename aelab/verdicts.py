"""Verdicts as statistical statements: paired effects with a bootstrap interval,
judged against a margin the lesson writes, after health gates.

A claim compares arms (methods). Its rule computes, for every seed, the paired
effect (the same labeled subsets and seed in both arms, e.g. accuracy of A minus
accuracy of B), then a 95% bootstrap interval of its mean (scipy.stats.bootstrap).
Against the claim's margin, the smallest difference that matters in the claim's
unit:

    interval entirely past the margin      -> REPRODUCED
    interval entirely short of it          -> NOT REPRODUCED
    interval straddles the margin          -> INCONCLUSIVE (more seeds would settle it)
    an arm it needs was not run            -> NOT TESTED
    a model it rests on failed its gate    -> INCONCLUSIVE (naming the model)

Win counts over seeds are printed beside, as information; they decide nothing.
Nothing here names a lesson or a paper's claim.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from aelab import validate

REPRODUCED, NOT_REPRODUCED = "REPRODUCED", "NOT REPRODUCED"
INCONCLUSIVE, NOT_TESTED = "INCONCLUSIVE", "NOT TESTED"
STATUSES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTED)
SENSES = ("above", "below", "within")
CONFIDENCE = 0.95
# Fewer paired seeds than this give no verdict: a bootstrap interval of 2-4
# values is far too narrow (with 3 it is about the range of the data).
MIN_SEEDS = 5


@dataclass(frozen=True)
class Effect:
    """Per-seed effects, their mean and a bootstrap interval, against a margin.

    sense "above": the claim says the effect exceeds `margin`; "below": that it
    is under `margin`; "within": that it lies in (-margin, +margin)."""

    values: tuple
    margin: float
    sense: str = "above"
    mean: float = math.nan
    low: float = math.nan
    high: float = math.nan
    unit: str = ""
    missing: int = 0  # seeds without a value in one of the arms
    center: float = 0.0  # wins count the seeds past it (0 for a difference)
    min_seeds: int = MIN_SEEDS

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def status(self) -> str:
        lo, hi, m = self.low, self.high, self.margin
        if self.n == 0:
            return NOT_TESTED
        if self.n < self.min_seeds or not (math.isfinite(lo) and math.isfinite(hi)):
            return INCONCLUSIVE
        if self.sense == "above":
            return REPRODUCED if lo > m else NOT_REPRODUCED if hi < m else INCONCLUSIVE
        if self.sense == "below":
            return REPRODUCED if hi < m else NOT_REPRODUCED if lo > m else INCONCLUSIVE
        if -m < lo and hi < m:
            return REPRODUCED
        return NOT_REPRODUCED if lo > m or hi < -m else INCONCLUSIVE

    @property
    def point_status(self) -> str:
        """The status the mean alone would give (for a paper's single figures)."""
        if not math.isfinite(self.mean):
            return NOT_TESTED
        m, x = self.margin, self.mean
        ok = x > m if self.sense == "above" else x < m if self.sense == "below" \
            else abs(x) < m
        return REPRODUCED if ok else NOT_REPRODUCED

    @property
    def wins(self) -> int:
        """Seeds on the claim's side of `center` (information only)."""
        v = np.asarray(self.values) - self.center
        if self.sense == "within":
            return int(np.sum(np.abs(v) < self.margin))
        return int(np.sum(v > 0) if self.sense == "above" else np.sum(v < 0))

    def reason(self) -> str:
        """Why the effect is INCONCLUSIVE, in words ('' if it is not)."""
        if self.status != INCONCLUSIVE:
            return ""
        if self.n < self.min_seeds:
            return f"{self.n} paired seed(s), fewer than the {self.min_seeds} a verdict needs"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no interval could be computed"
        return "the 95% interval straddles the margin"

    def settle(self) -> str:
        """What would settle an INCONCLUSIVE effect, in words."""
        if self.n < self.min_seeds:
            return (f"{self.n} paired seed(s) are too few for a verdict: run at least "
                    f"{self.min_seeds} (aelab run LESSON --seeds 0-{self.min_seeds - 1})")
        width = self.high - self.low
        return (f"the interval is {width:.2g}{self.unit} wide over {self.n} seeds, "
                f"and straddles the margin: more seeds (about {4 * self.n} would "
                "halve it) or the paper profile")

    def __str__(self) -> str:
        u = self.unit
        if self.n == 0:
            return "no paired values"
        sign = "+" if self.center == 0 else ""  # a difference gets its sign
        c = f"{self.center:g}"
        side = {"above": f"> {c}", "below": f"< {c}", "within": f"within ±{self.margin:g}"}
        if self.sense == "within":
            margin = f"±{self.margin:g}{u}"
        else:
            margin = f"{'>' if self.sense == 'above' else '<'} {self.margin:{sign}g}{u}"
        if self.n == 1:
            return f"{self.mean:{sign}.2f}{u} (one value); needs {margin}"
        interval = (f"[{self.low:{sign}.2f}, {self.high:{sign}.2f}]"
                    if math.isfinite(self.low) else "[no interval]")
        gone = f", {self.missing} seed(s) missing" if self.missing else ""
        return (f"{self.mean:{sign}.2f}{u} {interval} over {self.n} seeds "
                f"({self.wins}/{self.n} {side[self.sense]}{gone}); needs {margin}")


def paired_effect(values, margin: float = 0.0, *, sense: str = "above",
                  unit: str = "", confidence: float = CONFIDENCE,
                  center: float = 0.0, min_seeds: int = MIN_SEEDS) -> Effect:
    """The mean of per-seed effects and its bootstrap interval (BCa, 9,999
    resamples, a fixed generator: the same values give the same interval).

    NaN values (a seed missing in one arm) are dropped and counted."""
    if sense not in SENSES:
        raise ValueError(f"sense={sense!r} is not one of {SENSES}")
    try:
        v = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError("paired_effect takes numbers (one effect per seed); got "
                         f"{type(values).__name__}: convert the values with float()"
                         ) from None
    if not isinstance(margin, (int, float)) or not math.isfinite(margin):
        raise ValueError(f"margin={margin!r} must be a finite number in the claim's unit")
    if sense == "within" and margin <= 0:
        raise ValueError(f"a two-sided margin must be positive; got {margin}")
    kept = v[np.isfinite(v)]
    mean = float(kept.mean()) if kept.size else math.nan
    low, high = _interval(kept, confidence)
    return Effect(tuple(float(x) for x in kept), float(margin), sense, mean, low,
                  high, unit, int(v.size - kept.size), float(center),
                  int(min_seeds))


def _interval(v: np.ndarray, confidence: float) -> tuple[float, float]:
    if v.size < 2:
        return math.nan, math.nan
    if np.ptp(v) == 0:  # every seed the same: the bootstrap has nothing to resample
        return float(v[0]), float(v[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate/few-sample warnings: handled
        for method in ("BCa", "percentile"):  # BCa can fail on 2-3 values
            ci = stats.bootstrap((v,), np.mean, confidence_level=confidence,
                                 n_resamples=9999, method=method,
                                 rng=np.random.default_rng(0)).confidence_interval
            if math.isfinite(ci.low) and math.isfinite(ci.high):
                return float(ci.low), float(ci.high)
    return math.nan, math.nan


def combine(statuses) -> str:
    """The status of claims joined by 'and': any NOT REPRODUCED makes it false;
    else any NOT TESTED leaves it untested; else any INCONCLUSIVE; else REPRODUCED."""
    statuses = list(statuses)
    for s in (NOT_REPRODUCED, NOT_TESTED, INCONCLUSIVE):
        if s in statuses:
            return s
    return REPRODUCED if statuses else NOT_TESTED


def as_status(ok) -> str:
    """A lesson rule's answer as a status: True / False / None, a status, or an Effect."""
    if isinstance(ok, Effect):
        return ok.status
    if ok is None:
        return NOT_TESTED
    if isinstance(ok, str):
        if ok not in STATUSES:
            raise ValueError(f"a rule answered {ok!r}; answer one of {STATUSES}, "
                             "True, False or None")
        return ok
    return REPRODUCED if bool(ok) else NOT_REPRODUCED


# ------------------------------------------------------------------ gates
@dataclass
class Gate:
    """One model's health: named checks, each (passed, what was measured)."""

    arm: str
    seed: object
    checks: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.checks.values())

    @property
    def model(self) -> str:
        return f"{self.arm}, seed {self.seed}"

    def failures(self) -> list[str]:
        return [f"{name}: {text}" for name, (passed, text) in self.checks.items()
                if not passed]


def plateau(losses, *, last: float = 0.25, max_drop: float = 0.05) -> tuple[bool, str]:
    """Has a loss curve flattened? Over its last `last` share of points, the loss
    fell by less than `max_drop` of its fall over the whole run.

    A share of the whole fall (not of the loss) so that a loss near 0, whose
    relative steps are large however flat it is, still reads as flat."""
    if not 0 < last < 1 or not 0 < max_drop < 1:
        raise ValueError(f"plateau: last={last:g} and max_drop={max_drop:g} are shares "
                         "between 0 and 1 (e.g. last=0.25, max_drop=0.05)")
    if isinstance(losses, (str, bytes)) or not hasattr(losses, "__iter__"):
        raise TypeError(f"losses must be a list of numbers, e.g. "
                        f"history.train_loss; got {type(losses).__name__} {losses!r}")
    y = np.asarray([validate.number(f"losses[{i}]", x) for i, x in enumerate(losses)],
                   dtype=float)
    if y.size < 3 or not np.all(np.isfinite(y)):
        return False, f"{y.size} points{'' if np.all(np.isfinite(y)) else ', not finite'}"
    k = min(y.size - 2, int(round((1 - last) * (y.size - 1))))
    total, tail = y[0] - y.min(), y[k] - y[-1]
    share = tail / total if total > 0 else 0.0
    itself = (y[k] - y[-1]) / abs(y[k]) if y[k] else 0.0
    return bool(share < max_drop), (f"last {y.size - 1 - k} of {y.size - 1} steps: "
                                    f"{share:.0%} of the whole fall (limit {max_drop:.0%}),"
                                    f" the loss itself fell {itself:.0%}")


def health_gate(arm: str, seed, *, losses=None, error=None, constant_error=None,
                max_ratio: float = 0.9, accuracy=None, chance=None,
                above_chance: float = 0.05, last: float = 0.25,
                max_drop: float = 0.05) -> Gate:
    """A model's gate: beats the best constant image (error < max_ratio x the
    constant's) or chance (accuracy > chance + above_chance), and its loss curve
    reached a plateau. Give the numbers you have; each gives one check."""
    gate = Gate(arm, seed)
    error, constant_error, accuracy, chance = (
        None if v is None else validate.number(f"health_gate's {k}", v) for k, v in
        (("error", error), ("constant_error", constant_error), ("accuracy", accuracy),
         ("chance", chance)))
    if error is not None and constant_error is not None:
        ratio = error / constant_error if constant_error else math.inf
        gate.checks["beats constant"] = (
            bool(math.isfinite(ratio) and ratio < max_ratio),
            f"error {ratio:.0%} of the best constant image's (limit {max_ratio:.0%})")
    if accuracy is not None and chance is not None:
        gate.checks["beats chance"] = (
            bool(accuracy > chance + above_chance),
            f"{100 * accuracy:.1f}% vs chance {100 * chance:.1f}%")
    if losses is not None:
        gate.checks["plateau"] = plateau(losses, last=last, max_drop=max_drop)
    if not gate.checks:
        raise ValueError("health_gate needs losses, error and constant_error, or "
                         "accuracy and chance: give it what this model measured")
    return gate


class Gates(list):
    """The gate table: one Gate per (arm, seed)."""

    def failures(self, arms) -> list[Gate]:
        arms = set(arms)
        return [g for g in self if g.arm in arms and not g.ok]

    def summary(self) -> str:
        """One line per arm: how many of its seeds passed, and why the others
        failed (the full table is str(gates))."""
        arms = list(dict.fromkeys(g.arm for g in self))
        width = max([len(a) for a in arms] + [3])
        lines = [f"{'arm':<{width}}  passed  checks"]
        for arm in arms:
            mine = [g for g in self if g.arm == arm]
            names = ", ".join(dict.fromkeys(n for g in mine for n in g.checks))
            lines.append(f"{arm:<{width}}  {sum(g.ok for g in mine)}/{len(mine):<5} {names}")
            for g in mine:
                if not g.ok:
                    lines.append(f"{'':<{width}}    seed {g.seed} FAILED: "
                                 + "; ".join(g.failures()))
        failed = sum(not g.ok for g in self)
        lines.append(f"{len(self) - failed} of {len(self)} models passed their gate")
        return "\n".join(lines)

    def __str__(self) -> str:
        if not self:
            return "no gates"
        names = list(dict.fromkeys(n for g in self for n in g.checks))
        width = max(len(g.model) for g in self)
        head = f"{'model':<{width}}  " + "  ".join(f"{n:<14}" for n in names)
        lines = [head + "  gate"]
        for g in self:
            cells = ["-" if n not in g.checks else
                     ("pass" if g.checks[n][0] else "FAIL") for n in names]
            lines.append(f"{g.model:<{width}}  " + "  ".join(f"{c:<14}" for c in cells)
                         + f"  {'ok' if g.ok else 'FAILED'}")
        failed = [g for g in self if not g.ok]
        lines.append(f"{len(self) - len(failed)} of {len(self)} models passed")
        lines += [f"  {g.model}: " + "; ".join(g.failures()) for g in failed]
        return "\n".join(lines)
