"""Tidy results and claims tables: what a lesson's protocol loop produces and
how its verdict is judged. Nothing here names a lesson or a paper's claim.

A lesson's loop appends one row per (method, budget, seed):

    rows.append(dict(method="AE", budget=100, seed=0, accuracy=0.81))
    results = Results(rows)
    print(results)                      # mean [min-max over seeds] per budget
    claims = judge([Claim("AE beats pixels", beats("AE", "pixels"), paper="...")],
                   results)

Rules (`at_least`, `beats`, `best`, `within`, combined with `&`) say in words
what they test (`rule.criterion`) and return what they measured, so the
criterion a reader sees is the one that was applied.
"""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aelab import validate
from aelab.verdicts import (INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTED, REPRODUCED,
                            STATUSES, Effect, Gate, Gates, as_status, combine,
                            health_gate, paired_effect, plateau)

__all__ = ["Results", "Claim", "ClaimsTable", "Verdict", "Finding", "Rule", "judge",
           "beats", "best", "within", "at_least", "rule", "paired_gaps", "markdown",
           "save_run", "output_dir", "REPRODUCED", "NOT_REPRODUCED", "INCONCLUSIVE",
           "NOT_TESTED", "STATUSES", "Effect", "Gate", "Gates", "as_status",
           "combine", "health_gate", "paired_effect", "plateau"]


class Results:
    """Rows of {method, budget, seed, <value>, ...}: one per run of the protocol.

    `value` names the number being compared (accuracy, in [0, 1] or any scale
    of your choosing; `scale` multiplies it for display, e.g. 100 for %)."""

    def __init__(self, rows: list, *, value: str = "accuracy", scale: float = 100.0,
                 unit: str = "%"):
        try:
            rows = [dict(r) for r in rows]
        except (TypeError, ValueError):
            raise ValueError("Results takes a list of dicts, one per run: "
                             "dict(method=..., budget=..., seed=..., "
                             f"{value}=...)") from None
        seen = {}  # (method, budget, seed) -> its row
        for i, r in enumerate(rows):
            missing = [k for k in ("method", "budget", "seed", value) if k not in r]
            if missing:
                raise ValueError(f"Results row {i} lacks {missing}: every row needs "
                                 f"method, budget, seed and {value!r} ({r})")
            x = r[value]
            if isinstance(x, (str, bytes)) or not isinstance(x, (int, float, np.number)):
                if isinstance(x, str):
                    raise ValueError(
                        f"Results row {i}: {value}={x!r} is text (read back from a "
                        f"CSV?): convert it, e.g. float(row[{value!r}])")
                if not (hasattr(x, "item") and getattr(x, "ndim", 1) == 0):
                    raise ValueError(f"Results row {i}: {value}={x!r} is not a number")
                r[value] = x.item()
            for k in ("budget", "seed"):
                if isinstance(r[k], str):
                    raise ValueError(f"Results row {i}: {k}={r[k]!r} is text: give a "
                                     f"number, e.g. int(row[{k!r}])")
            validate.finite(f"Results row {i}: budget", r["budget"])
            validate.count(f"Results row {i}: seed", r["seed"], minimum=None)
            if not isinstance(r["method"], str) or not r["method"]:
                raise ValueError(f"Results row {i}: method={r['method']!r} must name the "
                                 "method, e.g. method='AE'")
            if (r["method"], r["budget"], r["seed"]) in seen:
                raise ValueError(f"Results rows {seen[r['method'], r['budget'], r['seed']]}"
                                 f" and {i} are both method={r['method']!r}, budget="
                                 f"{r['budget']}, seed={r['seed']}: one row per run; drop "
                                 "the repeat or give it its own method name")
            seen[r["method"], r["budget"], r["seed"]] = i
            x = float(r[value])
            if value == "accuracy" and scale == 100 and math.isfinite(x) and abs(x) > 1:
                raise ValueError(f"Results row {i}: accuracy={r[value]!r} is over 1, but "
                                 "accuracies are fractions here (scale=100 shows them "
                                 "as %): divide by 100, or pass scale=1 for percentages")
        dead = [m for m in dict.fromkeys(r["method"] for r in rows)
                if all(not math.isfinite(float(r[value])) for r in rows
                       if r["method"] == m)]
        if dead:
            raise ValueError(f"every {value} of {dead} is NaN or infinite: those runs "
                             "failed; check their training before judging them")
        self.rows, self.value, self.scale, self.unit = rows, value, scale, unit

    @property
    def unit_short(self) -> str:
        """The unit of a scaled difference: points for %, else the unit."""
        return " points" if self.unit == "%" else self.unit

    def cells(self, method: str) -> dict:
        """{(seed, budget): value, scaled} of one method (finite values only)."""
        return {(r["seed"], r["budget"]): float(r[self.value]) * self.scale
                for r in self.rows if r["method"] == method
                and math.isfinite(float(r[self.value]))}

    @property
    def methods(self) -> list:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    def budgets(self, method: str | None = None) -> list:
        return sorted({r["budget"] for r in self.rows
                       if method is None or r["method"] == method})

    def seeds(self, method: str | None = None) -> list:
        return sorted({r["seed"] for r in self.rows
                       if method is None or r["method"] == method})

    def values(self, method: str, budgets=None) -> tuple[list, np.ndarray]:
        """The budgets of `method` (within `budgets` = (low, high) if given) and
        a (seeds, budgets) array of its values, scaled. NaN where a run is missing."""
        if method not in self.methods:
            raise KeyError(f"no results for method {method!r}; have {self.methods}")
        budgets = _budget_range(budgets)
        chosen = [n for n in self.budgets(method) if _within(n, budgets)]
        seeds = self.seeds(method)
        out = np.full((len(seeds), len(chosen)), np.nan)
        for r in self.rows:
            if r["method"] == method and r["budget"] in chosen:
                out[seeds.index(r["seed"]), chosen.index(r["budget"])] = \
                    r[self.value] * self.scale
        return chosen, out

    def curves(self) -> dict:
        """{method: (budgets, values[seeds, budgets] unscaled)}, for plot.budget_curves."""
        return {m: (b, v / self.scale) for m in self.methods
                for b, v in [self.values(m)]}

    def table(self) -> list[dict]:
        """One row per (method, budget): mean, min and max over seeds, seeds."""
        out = []
        for m in self.methods:
            budgets, v = self.values(m)
            for j, n in enumerate(budgets):
                col = v[:, j][~np.isnan(v[:, j])]
                out.append(dict(method=m, budget=n, mean=float(col.mean()),
                                low=float(col.min()), high=float(col.max()),
                                seeds=len(col)))
        return out

    def winners(self) -> list[dict]:
        """Per budget, the method with the best mean and the runner-up."""
        out, table = [], self.table()
        for n in self.budgets():
            means = {r["method"]: r["mean"] for r in table if r["budget"] == n}
            ranked = sorted(means, key=means.get, reverse=True)
            out.append(dict(budget=n, best=ranked[0], mean=means[ranked[0]],
                            runner_up=ranked[1] if len(ranked) > 1 else None,
                            gap=means[ranked[0]] - means[ranked[1]]
                            if len(ranked) > 1 else float("nan")))
        return out

    def summary(self, budgets=None, reference: dict | None = None) -> list[dict]:
        """Per method, best first: the mean over the budgets in range (low, high),
        its min and max over seeds, and reference[method] if given."""
        rows = []
        for m in self.methods:
            per_seed = list(_per_seed(self, m, budgets).values())
            if per_seed:
                rows.append(dict(method=m, mean=float(np.mean(per_seed)),
                                 low=float(np.min(per_seed)),
                                 high=float(np.max(per_seed)),
                                 reference=(reference or {}).get(m)))
        return sorted(rows, key=lambda r: -r["mean"])

    def format_summary(self, budgets=None, reference: dict | None = None,
                       reference_name: str = "paper") -> str:
        width = max([len(m) for m in self.methods] + [6])
        lines = [f"{'method':<{width}} {'mean':>6} {'seed range':>13} "
                 f"{reference_name:>7}"]
        for r in self.summary(budgets, reference):
            ref = "-" if r["reference"] is None else f"{r['reference']:.1f}"
            lines.append(f"{r['method']:<{width}} {r['mean']:>6.1f} "
                         f"{r['low']:>6.1f}-{r['high']:<6.1f} {ref:>7}")
        return "\n".join(lines)

    def format_winners(self) -> str:
        return "\n".join(
            f"{w['budget']:>6}: {w['best']} {w['mean']:.1f}{self.unit}"
            + (f" (+{w['gap']:.1f} over {w['runner_up']})" if w["runner_up"] else "")
            for w in self.winners())

    def __str__(self) -> str:
        budgets = self.budgets()
        width = max([len(m) for m in self.methods] + [6])
        head = f"{'method':<{width}} " + " ".join(f"{n:>13}" for n in budgets)
        lines = [f"{self.value} ({self.unit}), mean [min-max over seeds] per budget",
                 head]
        cells = {(r["method"], r["budget"]): r for r in self.table()}
        for m in self.methods:
            parts = []
            for n in budgets:
                r = cells.get((m, n))
                parts.append(f"{'-':>13}" if r is None else
                             f"{r['mean']:5.1f} [{r['low']:.0f}-{r['high']:.0f}]".rjust(13))
            lines.append(f"{m:<{width}} " + " ".join(parts))
        return "\n".join(lines)

    def save(self, out: str | Path, name: str = "results") -> Path:
        """<out>/<name>.csv (the tidy rows) and <name>.json (rows and table)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        (out / f"{name}.json").write_text(json.dumps(
            dict(value=self.value, rows=self.rows, table=self.table(),
                 winners=self.winners()), indent=1, default=_plain))
        return out / f"{name}.csv"


def _per_seed(results, method, budgets):
    """Mean over the budgets in range, per seed: {seed: value}; {} if none."""
    if method not in results.methods:
        return {}
    chosen, v = results.values(method, budgets)
    if not chosen:
        return {}
    with np.errstate(all="ignore"):
        return dict(zip(results.seeds(method), np.nanmean(v, axis=1)))


def _within(n, budgets) -> bool:
    return budgets is None or budgets[0] <= n <= budgets[1]


def _budget_range(budgets):
    """None, or a (low, high) range of label budgets (both ends included)."""
    if budgets is None:
        return None
    if (not isinstance(budgets, (tuple, list)) or len(budgets) != 2
            or not all(isinstance(b, (int, float, np.number)) for b in budgets)
            or budgets[0] > budgets[1]):
        raise ValueError(f"budgets must be a (low, high) range of label budgets, both "
                         f"included, or None for all; got {budgets!r}: e.g. "
                         "budgets=(100, 1000), or (100, 100) for one budget")
    return tuple(budgets)


def _plain(v):
    return v.item() if hasattr(v, "item") else str(v)


# ------------------------------------------------------------------- rules
@dataclass
class Finding:
    """What a rule found: a status, what was measured (one line per part),
    what would settle it when INCONCLUSIVE, and the status the means alone give
    (`point`, used on a paper's single figures)."""

    status: str
    measured: str
    settle: str = ""
    point: str = NOT_TESTED
    reason: str = ""  # why it is INCONCLUSIVE, when the rule knows better than judge


def _finding(parts: list, label=lambda i: "") -> Finding:
    """Join (label, Effect) parts: statuses combined with 'and'."""
    effects = [e for _, e in parts]
    status = combine(e.status for e in effects)
    open_ = [e for e in effects if e.status == INCONCLUSIVE]
    return Finding(status, ";\n".join(f"{k}{e}" for k, e in parts),
                   open_[0].settle() if open_ else "",
                   combine(e.point_status for e in effects),
                   open_[0].reason() if open_ else "")


class Rule:
    """A criterion: `criterion` says it in words, `arms` names the methods it
    rests on (their health gates decide whether it can be judged), and
    judge(results) returns a Finding."""

    criterion = ""
    arms: tuple = ()

    def judge(self, results: Results) -> Finding:
        raise NotImplementedError

    def __and__(self, other: Rule) -> Rule:
        return AllOf(self, other)


class AllOf(Rule):
    def __init__(self, *rules: Rule):
        self.rules = rules
        self.criterion = " and ".join(r.criterion for r in rules)
        self.arms = tuple(dict.fromkeys(a for r in rules for a in r.arms))

    def judge(self, results):
        found = [r.judge(results) for r in self.rules]
        settles = [f.settle for f in found if f.settle]
        reasons = [f.reason for f in found if f.status == INCONCLUSIVE and f.reason]
        return Finding(combine(f.status for f in found),
                       ";\n".join(f.measured for f in found),
                       settles[0] if settles else "", combine(f.point for f in found),
                       reasons[0] if reasons else "")


def _span(budgets) -> str:
    return "" if budgets is None else f" at {budgets[0]}-{budgets[1]} labels"


def _need_results(results) -> None:
    if not isinstance(results, Results):  # rule() takes any table; these need Results
        raise TypeError(f"beats, best, within and at_least judge a Results table, got "
                        f"{type(results).__name__}: wrap the rows, Results(rows) (or "
                        "judge another table with rule(...))")


def _absent(results, arms) -> Finding | None:
    _need_results(results)
    gone = [m for m in arms if m not in results.methods]
    return Finding(NOT_TESTED, f"{', '.join(gone)} not run") if gone else None


def paired_gaps(results: Results, method: str, rival: str, budgets=None, *,
                every_budget: bool = False) -> dict:
    """Per-seed paired differences method - rival (scaled), on the budgets both
    ran within `budgets`: {budget: {seed: gap}} if every_budget, else
    {None: {seed: mean gap over those budgets}}. Seeds run by only one arm are
    left out; if no seed is shared, one line says so."""
    a, b = results.cells(method), results.cells(rival)
    common = [n for n in sorted({n for _, n in a} & {n for _, n in b})
              if _within(n, budgets)]
    seeds_a, seeds_b = {s for s, _ in a}, {s for s, _ in b}
    shared = sorted(seeds_a & seeds_b)
    if not shared:
        raise ValueError(f"{method!r} ran seeds {sorted(seeds_a)} and {rival!r} seeds "
                         f"{sorted(seeds_b)}: a paired effect needs the same seeds in "
                         "both arms; run both on the same seeds")
    gaps = {n: {s: a[s, n] - b[s, n] for s in shared if (s, n) in a and (s, n) in b}
            for n in common}
    if every_budget:
        return gaps
    per_seed = {}
    for s in shared:
        vals = [gaps[n][s] for n in common if s in gaps[n]]
        per_seed[s] = float(np.mean(vals)) if vals else math.nan
    return {None: per_seed} if common else {}


class beats(Rule):  # noqa: N801 - reads as a phrase in a claims cell
    """The method is above each rival by more than `margin` (in the Results'
    unit, e.g. points): the per-seed paired difference (same seed, same labeled
    subsets), averaged over the budgets in range or judged at every budget,
    with a 95% bootstrap interval that must clear the margin."""

    def __init__(self, method: str, rivals, *, margin: float = 0.0, budgets=None,
                 every_budget: bool = False):
        margin = validate.finite("margin", margin, hint="in the claim's unit, e.g. 1.0")
        self.method, self.budgets, self.margin = method, _budget_range(budgets), margin
        self.rivals = [rivals] if isinstance(rivals, str) else list(rivals)
        self.every_budget = every_budget
        self.arms = (method, *self.rivals)
        where = "at every budget" if every_budget else "mean over budgets"
        self.criterion = (f"{method} minus {', '.join(self.rivals)}: paired 95% interval "
                          f"above {margin:g} ({where}{_span(budgets)})")

    def judge(self, results):
        gone = _absent(results, self.arms)
        if gone:
            return gone
        parts = []
        for rival in self.rivals:
            gaps = paired_gaps(results, self.method, rival, self.budgets,
                               every_budget=self.every_budget)
            for n, per_seed in gaps.items():
                where = "" if n is None else f" at {n}"
                parts.append((f"vs {rival}{where}: ", paired_effect(
                    list(per_seed.values()), self.margin, unit=results.unit_short)))
        if not parts:
            return Finding(NOT_TESTED, f"no budget{_span(self.budgets)} in this run")
        return _finding(parts)


class best(Rule):  # noqa: N801
    """The method beats every other method (in `among`, default all) by more
    than `margin`: `beats` against each of them."""

    def __init__(self, method: str, *, margin: float = 0.0, budgets=None, among=None):
        margin = validate.finite("margin", margin, hint="in the claim's unit, e.g. 1.0")
        budgets = _budget_range(budgets)
        self.method, self.margin, self.budgets, self.among = method, margin, budgets, among
        self.arms = (method, *(among or ()))
        self.criterion = (f"{method} above every other method by more than {margin:g} "
                          f"(paired 95% interval, mean over budgets{_span(budgets)})")

    def judge(self, results):
        _need_results(results)
        others = [m for m in (self.among or results.methods)
                  if m != self.method and m in results.methods]
        if self.method not in results.methods or not others:
            return Finding(NOT_TESTED, f"{self.method} or a rival was not run")
        return beats(self.method, others, margin=self.margin,
                     budgets=self.budgets).judge(results)


class within(Rule):  # noqa: N801
    """The method is no more than `points` below the reference (one-sided), or,
    with two_sided=True, within ±points of it: the per-seed paired difference's
    95% interval must lie inside."""

    def __init__(self, method: str, reference: str, points: float, *, budgets=None,
                 two_sided: bool = False):
        points = validate.non_negative("within's points", points,
                                       hint="how far below (or around) the reference "
                                            "still counts, e.g. 1.0")
        self.method, self.reference, self.points = method, reference, points
        self.budgets, self.two_sided = _budget_range(budgets), two_sided
        self.arms = (method, reference)
        bound = f"within ±{points:g} of" if two_sided else f"no more than {points:g} below"
        self.criterion = (f"{method} {bound} {reference} (paired 95% interval, mean "
                          f"over budgets{_span(budgets)})")

    def judge(self, results):
        gone = _absent(results, self.arms)
        if gone:
            return gone
        gaps = paired_gaps(results, self.method, self.reference, self.budgets)
        if not gaps:
            return Finding(NOT_TESTED, f"no budget{_span(self.budgets)} in this run")
        values = list(gaps[None].values())
        effect = (paired_effect(values, self.points, sense="within",
                                unit=results.unit_short) if self.two_sided else
                  paired_effect(values, -self.points, unit=results.unit_short))
        return _finding([(f"{self.method} - {self.reference}: ", effect)])


class at_least(Rule):  # noqa: N801
    """At every budget in range, the method's mean over seeds is above
    `threshold`, by its 95% bootstrap interval."""

    def __init__(self, method: str, threshold: float, *, budgets=None):
        threshold = validate.finite("at_least's threshold", threshold,
                                    hint="in the table's unit, e.g. 80 for 80%")
        self.method, self.threshold = method, threshold
        self.budgets = budgets = _budget_range(budgets)
        self.arms = (method,)
        self.criterion = (f"{method}: 95% interval of the mean over seeds above "
                          f"{threshold:g} at every budget{_span(budgets)}")

    def judge(self, results):
        gone = _absent(results, self.arms)
        if gone:
            return gone
        chosen, v = results.values(self.method, self.budgets)
        if not chosen:
            return Finding(NOT_TESTED, f"no budget{_span(self.budgets)} in this run")
        parts = [(f"{self.method} at {n}: ", paired_effect(
            v[:, j], self.threshold, center=self.threshold, unit=results.unit_short))
            for j, n in enumerate(chosen)]
        found = _finding(parts)
        # one line for the worst budget, the rest counted
        worst = min(parts, key=lambda p: p[1].low if math.isfinite(p[1].low)
                    else p[1].mean)
        passed = sum((e.point_status if e.n == 1 else e.status) == REPRODUCED
                     for _, e in parts)
        found.measured = (f"lowest {worst[0]}{worst[1]}; {passed} of {len(parts)} "
                          "budgets clear it")
        return found


class rule(Rule):  # noqa: N801
    """A rule written in the lesson: rule(criterion, fn, arms=()), where
    fn(data) returns (answer, what was measured) or (answer, measured, why) and
    answer is an Effect (from verdicts.paired_effect: judged by its interval),
    a status, or True / False / None (not testable). `why` says why an
    INCONCLUSIVE answer is one (e.g. "too few converged models"), where the
    lesson knows. For claims about other tables than Results."""

    def __init__(self, criterion: str, fn, *, arms=()):
        if not callable(fn):
            raise TypeError(f"rule {criterion!r}: fn must be a function of the results, "
                            f"got {type(fn).__name__}")
        self.criterion, self.fn, self.arms = criterion, fn, tuple(arms)

    def judge(self, results):
        out = self.fn(results)
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise TypeError(f"rule {self.criterion!r}: its function returned "
                            f"{type(out).__name__} {validate.one_line(repr(out))[:40]}, "
                            "not (answer, what was measured): e.g. return effect, "
                            "str(effect)")
        answer, measured, *why = out
        status = as_status(answer)
        why = why[0] if why else ""
        if isinstance(answer, Effect):
            return Finding(status, measured or str(answer),
                           answer.settle() if status == INCONCLUSIVE else "",
                           answer.point_status, why or answer.reason())
        return Finding(status, measured, "", status,
                       why or ("the lesson's rule could not decide (see what was "
                               "measured)" if status == INCONCLUSIVE else ""))


# ------------------------------------------------------------------ claims
@dataclass
class Claim:
    """A claim of a paper, the rule it is judged by, the paper's own figure,
    and the models it rests on (default: the rule's arms), whose health gates
    must pass before it is judged."""

    claim: str
    rule: Rule
    paper: str = ""
    models: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.claim, str) or not all(
                hasattr(self.rule, k) for k in ("judge", "criterion", "arms")):
            raise TypeError(f"Claim takes its text, then a rule such as beats('A', 'B'); "
                            f"got {type(self.claim).__name__} and "
                            f"{type(self.rule).__name__}"
                            + (f" {self.rule!r}" if isinstance(self.rule, str) else ""))

    @property
    def arms(self) -> tuple:
        return tuple(self.rule.arms if self.models is None else self.models)


@dataclass
class Verdict:
    claim: str
    criterion: str
    paper: str
    measured: str
    status: str  # one of verdicts.STATUSES
    reason: str = ""  # why INCONCLUSIVE / NOT TESTED
    settle: str = ""  # what would settle it


class ClaimsTable(list):
    """A list of Verdicts that prints as readable blocks and saves as JSON."""

    def __str__(self) -> str:
        pad = " " * 16
        blocks = []
        for v in self:
            lines = [f"{v.status:<15} {v.claim}", f"{pad}criterion: {v.criterion}"]
            if v.paper:
                lines.append(f"{pad}paper: {v.paper}")
            lines.append(f"{pad}measured: " + v.measured.replace("\n", "\n" + pad + "  "))
            if v.reason:
                lines.append(f"{pad}why: {v.reason}")
            if v.settle:
                lines.append(f"{pad}to settle: {v.settle}")
            blocks.append("\n".join(lines))
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        return "\n".join(blocks + [f"{len(self)} claims: {counts}"])

    def counts(self) -> dict:
        return {s: sum(v.status == s for v in self) for s in STATUSES}

    def by_status(self, status: str) -> list:
        return [v for v in self if v.status == status]

    def reading(self) -> str:
        """A Markdown summary of this run's verdicts (for the lesson's reading)."""
        counts = self.counts()
        said = ", ".join(f"**{n}** {s.lower()}" for s, n in counts.items() if n)
        lines = [f"In this run, of {len(self)} claims: {said}."]
        for s in STATUSES:
            for v in self.by_status(s):
                extra = f" ({v.reason})" if v.reason else ""
                lines.append(f"- **{s}**: {v.claim}{extra}")
        return "\n".join(lines)

    def to_settle(self) -> str:
        """One Markdown bullet: what would settle the INCONCLUSIVE claims (each
        different remedy once), or '' when none is open."""
        settles = sorted({v.settle for v in self.by_status(INCONCLUSIVE) if v.settle})
        return ("* **To settle the inconclusive ones:** " + "; ".join(settles) + "."
                if settles else "")

    def markdown(self) -> str:
        """The table as Markdown: verdict, claim, what was measured."""
        rows = ["| verdict | claim | measured |", "|---|---|---|"]
        for v in self:
            measured = v.measured.replace("\n", "<br>").replace("|", "\\|")
            rows.append(f"| {v.status} | {v.claim} | {measured} |")
        return "\n".join(rows)

    def save(self, out: str | Path, name: str = "claims") -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.json"
        path.write_text(json.dumps([asdict(v) for v in self], indent=1))
        return path


def judge(claims: list, results, *, gates=None, paper: Results | None = None,
          untested: dict | None = None) -> ClaimsTable:
    """Apply each claim's rule to the results.

    gates: a verdicts.Gates table; a claim whose models (Claim.models, else its
    rule's arms) include one that failed its gate reads INCONCLUSIVE, naming it.
    paper: the paper's own numbers as Results; a claim without a `paper` text
    gets the same rule applied to their means ("yes: ..." / "no: ...").
    untested: {claim text: reason} for claims this run cannot test (e.g. a
    dataset that is offline)."""
    if isinstance(claims, (Claim, str)) or not hasattr(claims, "__iter__"):
        raise TypeError(f"judge takes a list of Claim(text, rule); got "
                        f"{type(claims).__name__}: wrap it in a list, judge([claim], "
                        "results)")
    table = ClaimsTable()
    for c in claims:
        if not isinstance(c, Claim):
            raise ValueError(f"judge takes a list of Claim(text, rule); got "
                             f"{type(c).__name__}: wrap it as Claim('...', rule)")
        reason = ""
        if untested and c.claim in untested:
            found = Finding(NOT_TESTED, untested[c.claim])
            reason = untested[c.claim]
        else:
            found = c.rule.judge(results)
        status, settle = found.status, found.settle
        failed = list(gates.failures(c.arms)) if gates is not None else []
        if failed and status != NOT_TESTED:
            names = ", ".join(g.model for g in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            status = INCONCLUSIVE
            reason = (f"{len(failed)} model(s) it rests on failed the health gate: "
                      f"{names}{more}")
            settle = (f"train them longer or fix them until they pass ({failed[0].model}: "
                      f"{'; '.join(failed[0].failures())})")
        elif status == INCONCLUSIVE:
            reason = found.reason or "the 95% interval straddles the margin"
        text = c.paper
        if not text and paper is not None:
            said = c.rule.judge(paper)
            text = ("no figures for it" if said.point == NOT_TESTED else
                    f"{'yes' if said.point == REPRODUCED else 'no'}: {said.measured}")
        table.append(Verdict(c.claim, c.rule.criterion, text, found.measured, status,
                             reason, settle))
    return table


def markdown(text: str):
    """Show Markdown built from this run (a reading, a table) in the notebook;
    under `aelab run` and in plain Python it prints the text."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


def output_dir() -> Path | None:
    """Where `aelab run --out DIR` wants this run's tables (None in a notebook)."""
    out = os.environ.get("AELAB_OUT")
    if not out:
        return None
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # can we write there?
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ValueError(f"cannot write the run's tables to AELAB_OUT={out} ({why}): "
                         "point it at a folder you can write to (aelab run --out DIR "
                         "sets it)") from None
    return path


def save_run(**tables) -> list[Path]:
    """Save each table (Results, ClaimsTable, text, or plain JSON-able data)
    under its keyword name into `aelab run`'s --out folder (text as .txt:
    `aelab run --verify` prints report.txt before the claims); does nothing
    interactively."""
    out = output_dir()
    if out is None:
        return []
    paths = []
    for name, table in tables.items():
        if hasattr(table, "save"):
            paths.append(table.save(out, name))
        elif isinstance(table, str):
            out.mkdir(parents=True, exist_ok=True)
            paths.append(out / f"{name}.txt")
            paths[-1].write_text(table.rstrip() + "\n")
        else:
            out.mkdir(parents=True, exist_ok=True)
            paths.append(out / f"{name}.json")
            paths[-1].write_text(json.dumps(table, indent=1, default=_plain))
    return paths
