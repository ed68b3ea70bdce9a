"""Thin ipywidgets layer over pure functions.

Each widget redraws an Output area by calling a plot function; all the work
is done before (or cached), so moving a slider is instant. Nothing here
trains a model.
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from aelab import plot
from aelab.corrupt import corrupt


def _redraw(out: W.Output, draw) -> None:
    """Draw into `out`. An error in draw shows as one line there, and the
    widget keeps working: the next move draws again."""
    with out:
        out.clear_output(wait=True)
        try:
            fig = draw()
        except Exception as err:  # noqa: BLE001 - a callback must not kill the widget
            plt.close("all")
            print(f"{type(err).__name__}: {err}".splitlines()[0])
            return
        display(fig)
        plt.close(fig)


def interactive(draw, **controls) -> W.VBox:
    """Call draw(**values) into an Output whenever a control changes; show it."""
    out = W.Output()

    def update(_=None):
        _redraw(out, lambda: draw(**{k: c.value for k, c in controls.items()}))

    for control in controls.values():
        control.observe(update, names="value")
    box = W.VBox([W.HBox(list(controls.values())), out])
    update()
    return box


def corruption_explorer(X: torch.Tensor, *, seed: int = 0) -> W.VBox:
    """Pick a corruption and its level; see clean and corrupted images."""
    X = X.float() / 255 if X.dtype == torch.uint8 else X

    def draw(kind, level):
        g = torch.Generator().manual_seed(seed)
        return plot.image_grid({"clean": X, f"{kind}": corrupt(X, kind, level, generator=g)})

    return interactive(
        draw,
        kind=W.Dropdown(options=["gaussian", "big_block", "small_blocks", "none"],
                        value="gaussian", description="noise"),
        level=W.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="level"),
    )


def epoch_scrubber(X: torch.Tensor, snapshots: dict) -> W.VBox:
    """snapshots: {label: tensor (epochs, N, C, H, W)} of reconstructions of X."""
    num_epochs = min(len(s) for s in snapshots.values())

    def draw(epoch, first):
        rows = {"input": X[first:first + 8]}
        rows.update({k: v[epoch - 1][first:first + 8] for k, v in snapshots.items()})
        return plot.image_grid(rows, suptitle=f"reconstructions after epoch {epoch}")

    return interactive(
        draw,
        epoch=W.IntSlider(value=num_epochs, min=1, max=num_epochs, description="epoch"),
        first=W.IntSlider(value=0, min=0, max=max(0, len(X) - 8), step=8,
                          description="images"),
    )


def choice_checker(question: str, options: list, answer_fn, *, multi: bool = False):
    """A 'predict before you run' box: the student commits to an answer, then
    answer_fn(choice) returns the text revealed under it."""
    pick = (W.SelectMultiple if multi else W.Dropdown)(options=options, description="")
    button = W.Button(description="Reveal", button_style="info")
    out = W.Output()

    def reveal(_):
        with out:
            out.clear_output()
            print(answer_fn(pick.value))

    button.on_click(reveal)
    return W.VBox([W.HTML(f"<b>{question}</b>"), W.HBox([pick, button]), out])


def budget_explorer(curves: dict, *, paper: dict | None = None) -> W.VBox:
    """Label-budget slider and method checkboxes over finished results (instant).
    curves: {method: (sizes, acc[seeds, sizes])}."""
    sizes = sorted({n for s, _ in curves.values() for n in s})
    boxes = {m: W.Checkbox(value=True, description=m, indent=False,
                           layout=W.Layout(width="260px")) for m in curves}
    slider = W.SelectionSlider(options=sizes, value=sizes[len(sizes) // 2],
                               description="labels")
    out = W.Output()

    def update(_=None):
        chosen = {m: curves[m] for m, b in boxes.items() if b.value}

        def draw():
            fig = plot.budget_curves(chosen or curves, reference=None)
            ax = fig.axes[0]
            ax.axvline(slider.value, color="k", lw=0.8)
            lines = []
            for m, (s, acc) in sorted(chosen.items(), key=lambda kv: -kv[1][1].mean()):
                if slider.value in s:
                    a = acc[:, list(s).index(slider.value)] * 100
                    ref = f" (paper {paper[m]:.1f})" if paper and m in paper else ""
                    lines.append(f"{m}: {a.mean():.1f}% [{a.min():.1f}-{a.max():.1f}]{ref}")
            ax.set_title(f"{slider.value} labels: " + (lines[0] if lines else ""),
                         fontsize=9)
            print("\n".join(lines))
            return fig

        _redraw(out, draw)

    for control in [slider, *boxes.values()]:
        control.observe(update, names="value")
    update()
    grid = W.GridBox(list(boxes.values()),
                     layout=W.Layout(grid_template_columns="repeat(3, 270px)"))
    return W.VBox([slider, grid, out])
