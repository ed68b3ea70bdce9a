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

REPRODUCED, NOT_REPRODUCED, NOT_TESTED = "REPRODUCED", "NOT REPRODUCED", "NOT TESTED"


class Results:
    """Rows of {method, budget, seed, <value>, ...}: one per run of the protocol.

    `value` names the number being compared (accuracy, in [0, 1] or any scale
    of your choosing; `scale` multiplies it for display, e.g. 100 for %)."""

    def __init__(self, rows: list, *, value: str = "accuracy", scale: float = 100.0,
                 unit: str = "%"):
        rows = [dict(r) for r in rows]
        missing = [k for k in ("method", "budget", "seed", value)
                   if rows and k not in rows[0]]
        if missing:
            raise ValueError(f"Results rows need the keys method, budget, seed and "
                             f"{value!r}; the first row lacks {missing}")
        self.rows, self.value, self.scale, self.unit = rows, value, scale, unit

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


def _within(n, budgets) -> bool:
    return budgets is None or budgets[0] <= n <= budgets[1]


def _plain(v):
    return v.item() if hasattr(v, "item") else str(v)


# ------------------------------------------------------------------- rules
class Rule:
    """A criterion: `criterion` says it in words; judge(results) returns
    (True / False / None for not testable, what was measured)."""

    criterion = ""

    def judge(self, results: Results) -> tuple[bool | None, str]:
        raise NotImplementedError

    def __and__(self, other: Rule) -> Rule:
        return AllOf(self, other)


class AllOf(Rule):
    def __init__(self, *rules: Rule):
        self.rules = rules
        self.criterion = " and ".join(r.criterion for r in rules)

    def judge(self, results):
        verdicts = [r.judge(results) for r in self.rules]
        oks = [ok for ok, _ in verdicts]
        ok = None if None in oks else all(oks)
        return ok, "; ".join(m for _, m in verdicts)


def _span(budgets) -> str:
    return "" if budgets is None else f" at {budgets[0]}-{budgets[1]} labels"


def _per_seed(results, method, budgets):
    """Mean over the budgets in range, per seed: {seed: value}; {} if none."""
    if method not in results.methods:
        return {}
    chosen, v = results.values(method, budgets)
    if not chosen:
        return {}
    return dict(zip(results.seeds(method), np.nanmean(v, axis=1)))


class at_least(Rule):  # noqa: N801 - reads as a phrase in a claims cell
    """Every budget in range: the mean over seeds >= threshold."""

    def __init__(self, method: str, threshold: float, *, budgets=None):
        self.method, self.threshold, self.budgets = method, threshold, budgets
        self.criterion = (f"{method}: mean over seeds >= {threshold:g} at every "
                          f"budget{_span(budgets)}")

    def judge(self, results):
        if self.method not in results.methods:
            return None, f"{self.method} was not run"
        chosen, v = results.values(self.method, self.budgets)
        if not chosen:
            return None, f"no budget{_span(self.budgets)} in this run"
        means = np.nanmean(v, axis=0)
        worst = int(np.argmin(means))
        where = f" at {chosen[worst]} labels" if len(chosen) > 1 else ""
        return bool(means.min() >= self.threshold), (
            f"{self.method}: lowest {means[worst]:.1f}{where}")


class beats(Rule):  # noqa: N801
    """In every seed, the method's mean over the budgets in range is above each
    rival's by more than `margin` (a win that holds across seeds, not only on
    average)."""

    def __init__(self, method: str, rivals, *, margin: float = 0.0, budgets=None):
        self.method, self.budgets, self.margin = method, budgets, margin
        self.rivals = [rivals] if isinstance(rivals, str) else list(rivals)
        self.criterion = (f"{method} above {', '.join(self.rivals)} by more than "
                          f"{margin:g} in every seed (mean over budgets"
                          f"{_span(budgets)})")

    def judge(self, results):
        absent = [m for m in [self.method, *self.rivals] if m not in results.methods]
        if absent:
            return None, f"{', '.join(absent)} not run"
        mine = _per_seed(results, self.method, self.budgets)
        if not mine:
            return None, f"no budget{_span(self.budgets)} in this run"
        ok, parts = True, []
        for rival in self.rivals:
            theirs = _per_seed(results, rival, self.budgets)
            gaps = [mine[s] - theirs[s] for s in mine if s in theirs]
            ok = ok and bool(gaps) and bool(min(gaps) > self.margin)
            parts.append(f"vs {rival}: {np.mean(gaps):+.1f} (seeds "
                         + ", ".join(f"{g:+.1f}" for g in gaps) + ")")
        return ok, f"{self.method} " + "; ".join(parts)


class best(Rule):  # noqa: N801
    """The method's mean (over seeds and the budgets in range) is the highest."""

    def __init__(self, method: str, *, budgets=None, among=None):
        self.method, self.budgets, self.among = method, budgets, among
        self.criterion = f"{method} has the highest mean{_span(budgets)}"

    def judge(self, results):
        methods = [m for m in (self.among or results.methods) if m in results.methods]
        if self.method not in results.methods or len(methods) < 2:
            return None, f"{self.method} was not run"
        means = {m: float(np.nanmean(list(_per_seed(results, m, self.budgets).values())
                                     or [np.nan])) for m in methods}
        means = {m: v for m, v in means.items() if not math.isnan(v)}
        if self.method not in means:
            return None, f"no budget{_span(self.budgets)} in this run"
        top = max(means, key=means.get)
        rival = max((m for m in means if m != self.method), key=means.get)
        return top == self.method, (f"{self.method} {means[self.method]:.1f} vs "
                                    f"best other {rival} {means[rival]:.1f}")


class within(Rule):  # noqa: N801
    """The method's mean is no more than `points` below the reference's."""

    def __init__(self, method: str, reference: str, points: float, *, budgets=None):
        self.method, self.reference, self.points = method, reference, points
        self.budgets = budgets
        self.criterion = (f"{method} within {points:g} of {reference} (mean"
                          f"{_span(budgets)})")

    def judge(self, results):
        absent = [m for m in (self.method, self.reference) if m not in results.methods]
        if absent:
            return None, f"{', '.join(absent)} not run"
        a = list(_per_seed(results, self.method, self.budgets).values())
        b = list(_per_seed(results, self.reference, self.budgets).values())
        if not a or not b:
            return None, f"no budget{_span(self.budgets)} in this run"
        gap = float(np.mean(b) - np.mean(a))
        return gap <= self.points, (f"{self.method} {np.mean(a):.1f} vs "
                                    f"{self.reference} {np.mean(b):.1f}")


class rule(Rule):  # noqa: N801
    """A rule written in the lesson: rule(criterion, fn), fn(data) -> (True /
    False / None, what was measured). For claims about other tables than
    Results (correlations, per-layer probes, ...)."""

    def __init__(self, criterion: str, fn):
        self.criterion, self.fn = criterion, fn

    def judge(self, results):
        ok, measured = self.fn(results)
        return (None if ok is None else bool(ok)), measured


# ------------------------------------------------------------------ claims
@dataclass
class Claim:
    """A claim of a paper, the rule it is judged by, and the paper's own figure."""

    claim: str
    rule: Rule
    paper: str = ""


@dataclass
class Verdict:
    claim: str
    criterion: str
    paper: str
    measured: str
    status: str  # REPRODUCED | NOT REPRODUCED | NOT TESTED


class ClaimsTable(list):
    """A list of Verdicts that prints as readable blocks and saves as JSON."""

    def __str__(self) -> str:
        return "\n".join(
            f"{v.status:<15} {v.claim}\n{'':16}criterion: {v.criterion}\n"
            + (f"{'':16}paper: {v.paper}\n" if v.paper else "")
            + f"{'':16}measured: {v.measured}" for v in self)

    def counts(self) -> dict:
        return {s: sum(v.status == s for v in self)
                for s in (REPRODUCED, NOT_REPRODUCED, NOT_TESTED)}

    def save(self, out: str | Path, name: str = "claims") -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.json"
        path.write_text(json.dumps([asdict(v) for v in self], indent=1))
        return path


def judge(claims: list, results: Results, *, paper: Results | None = None,
          untested: dict | None = None) -> ClaimsTable:
    """Apply each claim's rule to the results.

    paper: the paper's own numbers as Results; a claim without a `paper` text
    gets the same rule applied to them ("yes: ..." / "no: ..."), so a reader
    sees whether the paper's figures pass the criterion it is judged by.
    untested: {claim text: reason} for claims this run cannot test (e.g. a
    dataset that is offline)."""
    table = ClaimsTable()
    for c in claims:
        if untested and c.claim in untested:
            ok, measured = None, untested[c.claim]
        else:
            ok, measured = c.rule.judge(results)
        text = c.paper
        if not text and paper is not None:
            said, numbers = c.rule.judge(paper)
            text = ("no figures for it" if said is None else
                    f"{'yes' if said else 'no'}: {numbers}")
        status = NOT_TESTED if ok is None else REPRODUCED if ok else NOT_REPRODUCED
        table.append(Verdict(c.claim, c.rule.criterion, text, measured, status))
    return table


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
