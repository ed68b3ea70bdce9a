"""Lesson 01's verdict, figures and headless entry point (`aelab run pretraining`)."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import torch

from aelab import metrics, plot
from aelab.experiments.pretraining import PAPER, Study, run
from aelab.splits import to_float

SPARSE = "sparse AE (L1 activations)"
LOW, HIGH = 160, 1000  # the paper's claims are about 160..1000 labels


@dataclass
class Claim:
    claim: str
    criterion: str
    paper: str  # the criterion applied to the paper's own Fig. 4 means
    measured: str
    status: str  # REPRODUCED | NOT REPRODUCED | NOT TESTED


def budget_means(study: Study, method: str) -> tuple[list, torch.Tensor]:
    """Sizes in [160, 1000] (or all <= 1000 when the profile has none) and the
    mean accuracy (%) over seeds at each."""
    sizes, acc = study.accuracy(method)
    keep = [i for i, n in enumerate(sizes) if LOW <= n <= HIGH] or \
        [i for i, n in enumerate(sizes) if n <= HIGH]
    return [sizes[i] for i in keep], acc[:, keep].mean(0) * 100


def mean_accuracy(study: Study, method: str) -> float:
    return budget_means(study, method)[1].mean().item()


def summary(study: Study) -> list[dict]:
    """One row per method: mean accuracy over the budgets, spread over seeds, paper."""
    rows = []
    for method in study.methods:
        sizes, acc = study.accuracy(method)
        keep = [i for i, n in enumerate(sizes) if n in budget_means(study, method)[0]]
        per_seed = acc[:, keep].mean(1) * 100
        rows.append(dict(method=method, mean=per_seed.mean().item(),
                         low=per_seed.min().item(), high=per_seed.max().item(),
                         paper=PAPER.get(method)))
    return sorted(rows, key=lambda r: -r["mean"])


def verdict(study: Study) -> list[Claim]:
    m = {method: mean_accuracy(study, method) for method in study.methods}
    sizes, sparse = budget_means(study, SPARSE)
    in_range = [n for n in sizes if LOW <= n <= HIGH]
    claims = []
    if in_range:
        worst = min(sparse.tolist())
        claims.append(Claim(
            "sparse AE above 80% for 160-1000 labels", "every budget in 160-1000 >= 80%",
            "Fig. 4 mean 77.1% (below 80)", f"min {worst:.1f}% over {in_range}",
            "REPRODUCED" if worst >= 80 else "NOT REPRODUCED"))
    else:
        claims.append(Claim("sparse AE above 80% for 160-1000 labels",
                            "every budget in 160-1000 >= 80%", "Fig. 4 mean 77.1%",
                            "no budget in 160-1000 in this profile", "NOT TESTED"))
    cnn = m["CNN (from scratch)"]
    rivals = {k: v for k, v in m.items() if k != "CNN (from scratch)"}
    best = max(rivals, key=rivals.get)
    claims.append(Claim(
        "the CNN is best", "CNN's mean accuracy above every other method's",
        "81.3 vs 78.7 (AE): yes", f"CNN {cnn:.1f} vs {best} {rivals[best]:.1f}",
        "REPRODUCED" if cnn > rivals[best] else "NOT REPRODUCED"))
    rnd, ae = m["random encoder"], m["AE"]
    claims.append(Claim(
        "the random encoder does surprisingly well",
        ">= 50% and within 15 points of the pretrained AE", "65.9 vs 78.7: yes",
        f"random {rnd:.1f} vs AE {ae:.1f}",
        "REPRODUCED" if rnd >= 50 and ae - rnd <= 15 else "NOT REPRODUCED"))
    fashion = m["Fashion sparse AE"]
    claims.append(Claim(
        "Fashion-MNIST pretraining works", "beats the random encoder by >= 2 points",
        "65.6 vs 65.9: no", f"Fashion {fashion:.1f} vs random {rnd:.1f}",
        "REPRODUCED" if fashion - rnd >= 2 else "NOT REPRODUCED"))
    sp = m[SPARSE]
    claims.append(Claim(
        "the sparse AE is the best pretraining", "sparse AE above the plain AE",
        "77.1 vs 78.7: no", f"sparse {sp:.1f} vs AE {ae:.1f}",
        "REPRODUCED" if sp > ae else "NOT REPRODUCED"))
    return claims


def health(study: Study) -> list[str]:
    """One line per autoencoder and one for the classifiers: did they train?"""
    lines = [f"{name}: {ae['check'].message}" + (f" ({ae['history'].check()})"
                                                  if ae["history"].check() else "")
             for name, ae in study.pretrained.items()]
    stalled = [r for r in study.rows if not r["check_ok"]]
    lines.append(f"classifiers: {len(study.rows) - len(stalled)} of {len(study.rows)} "
                 "beat chance by 5 points" + (
                     "; stalled: " + ", ".join(f"{r['method']} n={r['size']} "
                                               f"seed {r['seed']}" for r in stalled[:6])
                     if stalled else ""))
    return lines


def confusion_figure(study: Study, method: str = SPARSE, near: int = 480):
    """Confusion matrix of `method`'s seed-0 head at the budget closest to `near`
    (barletta2024's Fig. 5 used 480 labels)."""
    n = min(study.confusion[method], key=lambda k: abs(k - near))
    cm = metrics.confusion_matrix(study.y_test, study.confusion[method][n], 10)
    return plot.confusion(cm, title=f"{method}, {n} labels (seed 0)")


def figures(study: Study, test_X: torch.Tensor | None = None) -> dict:
    """The study's figures; reconstructions are shown under `test_X` (default:
    the study's own MNIST test images)."""
    test_X = study.X_test if test_X is None else test_X
    curves = {k: study.accuracy(k) for k in study.methods}
    figs = {"budget": plot.budget_curves(curves)}
    figs["pretraining"] = plot.loss_curves(
        {k: v["history"] for k, v in study.pretrained.items()},
        title="Autoencoder pretraining loss")
    figs["confusion"] = confusion_figure(study)
    if test_X is not None:
        rows = {"input": to_float(test_X[:8])}
        rows.update({k: v["snapshots"][-1][:8] for k, v in study.pretrained.items()
                     if v["dataset"] == "mnist"})
        figs["reconstructions"] = plot.image_grid(rows)
    return figs


def format_verdict(claims: list[Claim]) -> str:
    blocks = []
    for c in claims:
        blocks.append(f"{c.status:<15} {c.claim}\n{'':16}criterion: {c.criterion}\n"
                      f"{'':16}paper's own numbers: {c.paper}\n"
                      f"{'':16}measured: {c.measured}")
    return "\n".join(blocks)


def winners(study: Study) -> str:
    """The best method at each budget, and by how much it beats the CNN."""
    cnn = "CNN (from scratch)"
    lines = []
    for i, n in enumerate(study.accuracy(cnn)[0]):
        means = {m: study.accuracy(m)[1][:, i].mean().item() * 100
                 for m in study.methods}
        best = max(means, key=means.get)
        gap = means[best] - means[cnn]
        versus = "" if best == cnn else f" ({gap:+.1f} points vs the CNN)"
        lines.append(f"{n:>6} labels: best is {best}, {means[best]:.1f}%{versus}")
    return "\n".join(lines)


def format_summary(study: Study) -> str:
    lines = [f"{'method':<28} {'mean %':>7} {'seed range':>13} {'paper %':>8}"]
    for r in summary(study):
        paper = f"{r['paper']:.1f}" if r["paper"] is not None else "-"
        lines.append(f"{r['method']:<28} {r['mean']:>7.1f} "
                     f"{r['low']:>6.1f}-{r['high']:<6.1f} {paper:>8}")
    return "\n".join(lines)


def write(study: Study, out: str | Path, test_X=None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["method", "size", "seed", "accuracy", "check_ok"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: r[k] for k in fields} for r in study.rows)
    (out / "results.json").write_text(json.dumps(dict(
        profile=study.profile, provenance=study.provenance,
        summary=summary(study), verdict=[asdict(c) for c in verdict(study)],
        health=health(study), rows=study.rows), indent=1))
    for name, fig in figures(study, test_X).items():
        fig.savefig(out / f"{name}.png", dpi=110)
    return out


def main(profile: str | None = None, out: str = "out", verify: bool = False) -> Study:
    """`aelab run pretraining`: the whole study, its files, and the verdict."""
    matplotlib.use("Agg")
    study = run(profile)
    path = write(study, out)
    print("\nDid every model train?\n  " + "\n  ".join(health(study)))
    print(f"\nMean test accuracy over the label budgets ({study.profile} profile):")
    print(format_summary(study))
    print("\nThe best method at each budget:\n" + winners(study))
    if verify:
        print("\nbarletta2024's claims, checked:")
        print(format_verdict(verdict(study)))
    print(f"\nFigures and results.csv / results.json in {path}/")
    return study
