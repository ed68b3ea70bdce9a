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
    with out:
        out.clear_output(wait=True)
        fig = draw()
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
