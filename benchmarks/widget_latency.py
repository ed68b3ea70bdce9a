"""How long a widget move takes in the kernel: aelab.widgets now (one kept
figure, set_data, a PNG into an Image) against rebuilding the figure on every
move and displaying it as a notebook does (what aelab.widgets first did).

    OMP_NUM_THREADS=1 python benchmarks/widget_latency.py

Kernel side only; the browser adds the round trip (tests/test_browser.py
measures both together). Data of the fast profile's size.
"""
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import ipywidgets as W  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from IPython.core.pylabtools import print_figure  # noqa: E402

from aelab import plot, widgets  # noqa: E402
from aelab.corrupt import corrupt  # noqa: E402

MOVES = 15


def median_ms(move) -> float:
    move(0)  # warm
    times = []
    for i in range(1, MOVES + 1):
        t0 = time.perf_counter()
        move(i)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def displayed(fig) -> None:
    """What IPython's inline display does with a figure: a tight PNG."""
    print_figure(fig, "png", bbox_inches="tight")
    plt.close(fig)


def first(box, kind):
    return next(c for c in widgets_in(box) if isinstance(c, kind))


def widgets_in(box):
    for child in getattr(box, "children", ()):
        yield child
        yield from widgets_in(child)


def main():
    torch.manual_seed(0)
    X = torch.rand(8, 1, 28, 28)
    Xs = torch.rand(32, 1, 28, 28)
    snaps = {k: torch.rand(8, 32, 1, 28, 28) for k in ("AE", "sparse AE")}
    sizes = [20, 50, 100, 200, 500, 1000]
    curves = {f"method {k}": (sizes, np.random.rand(3, len(sizes))) for k in range(5)}
    levels = np.linspace(0.05, 0.95, 10)

    def rebuild_corruption(i):
        g = torch.Generator().manual_seed(0)
        noisy = corrupt(X, "gaussian", float(levels[i % 10]), generator=g)
        displayed(plot.image_grid({"clean": X, "gaussian": noisy}))

    def rebuild_epoch(i):
        rows = {"input": Xs[:8], **{k: v[i % 8][:8] for k, v in snaps.items()}}
        displayed(plot.image_grid(rows, suptitle=f"after epoch {i % 8 + 1}"))

    def rebuild_budget(i):
        fig = plot.budget_curves(curves, reference=None)
        fig.axes[0].axvline(sizes[i % 6], color="k", lw=0.8)
        displayed(fig)

    corruption = first(widgets.corruption_explorer(X), W.FloatSlider)
    epoch = first(widgets.epoch_scrubber(Xs, snaps), W.IntSlider)
    budget = first(widgets.budget_explorer(curves), W.SelectionSlider)
    rows = [
        ("corruption_explorer (level)", rebuild_corruption,
         lambda i: setattr(corruption, "value", float(levels[i % 10]))),
        ("epoch_scrubber (epoch)", rebuild_epoch,
         lambda i: setattr(epoch, "value", i % 8 + 1)),
        ("budget_explorer (labels)", rebuild_budget,
         lambda i: setattr(budget, "index", i % 6)),
    ]
    print("| widget, control | rebuild + display (ms) | aelab.widgets (ms) |\n"
          "|---|---:|---:|")
    for name, before, after in rows:
        print(f"| {name} | {median_ms(before):.0f} | {median_ms(after):.0f} |")


if __name__ == "__main__":
    main()
