"""Thin ipywidgets layer over pure functions.

All the work is done before (or cached), so a widget only redraws. Each widget
keeps one matplotlib figure for its whole life and shows it as a PNG in an
`ipywidgets.Image`; moving a control changes what moved (an image's pixels, a
line, a title) and redraws that one figure. Rebuilding the figure on every
move, as this module first did, took 370-990 ms a move in a browser; see
benchmarks/RESULTS.md. Works with ipywidgets 7.7 (Colab's) and 8. Nothing here
trains a model.
"""
from __future__ import annotations

import contextlib
import html
import io

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aelab import plot
from aelab.corrupt import corrupt

GAP = 2  # pixels between the images of one row of a grid


def png(fig) -> bytes:
    """The figure as PNG bytes, drawn once (no tight bounding box: that draws
    twice, as a notebook's inline display does). zlib's fastest level: a
    tenth larger, and a quarter of the time of a move saved."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def canvas_png(fig) -> bytes:
    """The figure's canvas as it is now, as PNG bytes, without drawing it again
    (after a blit: restore_region plus draw_artist of what moved)."""
    from PIL import Image  # matplotlib's own dependency

    rgba = Image.frombuffer("RGBA", fig.canvas.get_width_height(),
                            fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    rgba.save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def new_figure(**kwargs) -> Figure:
    """A figure pyplot does not track, so the notebook never shows a second,
    stale copy of it at the end of the cell."""
    kwargs.setdefault("facecolor", "white")  # readable on a dark JupyterLab theme too
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _one_line(err: Exception) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


class _View:
    """An Image showing a figure, and an Output beneath it for text and for
    errors. update(fn) runs fn (which changes the kept figure, or returns a new
    one, or PNG bytes) and shows the figure and what fn printed; an error in fn
    is one line in the Output, and the widget keeps working: the next move
    draws again."""

    def __init__(self):
        self.image = W.Image(format="png")
        self.out = W.Output()
        self._has_text = False

    def update(self, fn) -> None:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                fig = fn()
        except Exception as err:  # noqa: BLE001 - a callback must not kill the widget
            plt.close("all")
            self.image.layout.display = "none"
            self._say(printed.getvalue() + _one_line(err) + "\n")
            return
        if fig is not None:
            self.image.value = fig if isinstance(fig, bytes) else png(fig)
            self.image.layout.display = None
            if plt.fignum_exists(getattr(fig, "number", None) or -1):
                plt.close(fig)  # a pyplot figure, drawn once: free it
        self._say(printed.getvalue())

    def _say(self, text: str) -> None:
        if self._has_text:  # only touch the Output when it holds or gets text
            self.out.clear_output()
        if text:
            with self.out:
                print(text, end="")
        self._has_text = bool(text)


def interactive(draw, **controls) -> W.VBox:
    """Call draw(**values) whenever a control changes; show the figure it
    returns and what it prints. draw may build a new figure each time; it is
    drawn once into a PNG (faster than displaying it) and closed."""
    view = _View()

    def update(_=None):
        view.update(lambda: draw(**{k: c.value for k, c in controls.items()}))

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return W.VBox([W.HBox(list(controls.values())), view.image, view.out])


def _row(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, H, W[, 3]) in [0, 1] -> one (H, columns*(W+GAP)-GAP[, 3]) strip, with
    white gaps (and white where there are fewer than `columns` images)."""
    h, w = images.shape[1:3]
    strip = np.ones((h, columns * (w + GAP) - GAP, *images.shape[3:]), np.float32)
    for i, image in enumerate(images[:columns]):
        strip[:, i * (w + GAP):i * (w + GAP) + w] = image
    return strip


class ImageRows:
    """A kept figure of labelled rows of images (what plot.image_grid draws),
    one AxesImage per row: show() replaces the pixels, the labels and the
    title, and returns the figure."""

    def __init__(self, labels: list[str], num_images: int, shape, *,
                 scale: float = 1.0, title: bool = False):
        h, w = shape[-2:]
        self.columns, self.shape = num_images, (h, w)
        width = num_images * (w + GAP) - GAP
        self.fig = new_figure(figsize=(scale * num_images * 0.9,
                                       scale * (len(labels) * 0.95 + 0.3 * title)))
        self.axes, self.artists = [], []
        for r, label in enumerate(labels):
            ax = self.fig.add_subplot(len(labels), 1, r + 1)
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
            blank = np.ones((h, width), dtype=np.float32)
            self.artists.append(ax.imshow(blank, cmap="gray", vmin=0, vmax=1,
                                          interpolation="nearest"))
            self.axes.append(ax)
        self.title = self.fig.suptitle(" " if title else "", fontsize=10)
        self.fig.tight_layout()

    def show(self, rows: dict, title: str = "") -> Figure:
        for ax, artist, (label, images) in zip(self.axes, self.artists, rows.items()):
            images = plot._images(images)
            if images.shape[1:3] != self.shape:
                raise ValueError(f"row {label!r} holds {images.shape[1]}x"
                                 f"{images.shape[2]} images; this grid shows "
                                 f"{self.shape[0]}x{self.shape[1]}")
            artist.set_data(_row(images, self.columns))
            ax.yaxis.label.set_text(label)  # set_ylabel would centre it again
        self.title.set_text(title)
        return self.fig


def corruption_explorer(X: torch.Tensor, *, seed: int = 0) -> W.VBox:
    """Pick a corruption and its level; see clean and corrupted images."""
    X = X.float() / 255 if X.dtype == torch.uint8 else X
    kind = W.Dropdown(options=["gaussian", "big_block", "small_blocks", "none"],
                      value="gaussian", description="noise")
    level = W.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="level")
    grid, view = ImageRows(["clean", kind.value], len(X), X.shape), _View()

    def update(_=None):
        def draw():
            g = torch.Generator().manual_seed(seed)
            noisy = corrupt(X, kind.value, level.value, generator=g)
            return grid.show({"clean": X, kind.value: noisy})

        view.update(draw)

    for control in (kind, level):
        control.observe(update, names="value")
    update()
    return W.VBox([W.HBox([kind, level]), view.image, view.out])


def epoch_scrubber(X: torch.Tensor, snapshots: dict) -> W.VBox:
    """snapshots: {label: tensor (epochs, N, C, H, W)} of reconstructions of X."""
    num_epochs = min(len(s) for s in snapshots.values())
    epoch = W.IntSlider(value=num_epochs, min=1, max=num_epochs, description="epoch")
    first = W.IntSlider(value=0, min=0, max=max(0, len(X) - 8), step=8,
                        description="images")
    shown = min(8, len(X))
    grid = ImageRows(["input", *snapshots], shown, X.shape, title=True)
    view = _View()

    def update(_=None):
        def draw():
            cols = slice(first.value, first.value + shown)
            rows = {"input": X[cols]}
            rows.update({k: v[epoch.value - 1][cols] for k, v in snapshots.items()})
            return grid.show(rows, f"reconstructions after epoch {epoch.value}")

        view.update(draw)

    for control in (epoch, first):
        control.observe(update, names="value")
    update()
    return W.VBox([W.HBox([epoch, first]), view.image, view.out])


def choice_checker(question: str, options: list, answer_fn, *, multi: bool = False):
    """A 'predict before you run' box: the student commits to an answer, then
    answer_fn(choice) returns the text revealed under it."""
    pick = (W.SelectMultiple if multi else W.Dropdown)(options=options, description="")
    button = W.Button(description="Reveal", button_style="info")
    out = W.Output()

    def reveal(_):
        with out:
            out.clear_output()
            try:
                print(answer_fn(pick.value))
            except Exception as err:  # noqa: BLE001 - the button must keep working
                print(_one_line(err))

    button.on_click(reveal)
    return W.VBox([W.HTML(f"<b>{question}</b>"), W.HBox([pick, button]), out])


def budget_explorer(curves: dict, *, paper: dict | None = None) -> W.VBox:
    """Label-budget slider and method checkboxes over finished results (instant).
    curves: {method: (sizes, acc[seeds, sizes])}. A checkbox redraws the curves;
    the slider only redraws the marker line and the title over a saved copy of
    the rest (matplotlib's blitting), and rewrites the text."""
    sizes = sorted({n for s, _ in curves.values() for n in s})
    boxes = {m: W.Checkbox(value=True, description=m, indent=False,
                           layout=W.Layout(width="260px")) for m in curves}
    slider = W.SelectionSlider(options=sizes, value=sizes[len(sizes) // 2],
                               description="labels")
    text, view = W.HTML(), _View()
    fig = new_figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    kept = {}  # the marker line and the background without it

    def chosen():
        return {m: curves[m] for m, b in boxes.items() if b.value}

    def draw_curves(_=None):
        def draw():
            ax.clear()
            plot.budget_curves(chosen() or curves, ax=ax, reference=None)
            fig.tight_layout()  # a second pass: the first moves the tick labels
            kept["marker"] = ax.axvline(slider.value, color="k", lw=0.8,
                                        animated=True)
            ax.set_title(" ", fontsize=9)
            ax.title.set_animated(True)
            fig.canvas.draw()  # everything but the animated marker and title
            kept["background"] = fig.canvas.copy_from_bbox(fig.bbox)
            return draw_marker()

        view.update(draw)

    def draw_marker():
        lines = []
        for m, (s, acc) in sorted(chosen().items(),
                                  key=lambda kv: -np.mean(kv[1][1])):
            if slider.value in s:
                a = np.asarray(acc)[:, list(s).index(slider.value)] * 100
                ref = f" (paper {paper[m]:.1f})" if paper and m in paper else ""
                lines.append(f"{m}: {a.mean():.1f}% [{a.min():.1f}-{a.max():.1f}]{ref}")
        text.value = f"<pre>{html.escape(chr(10).join(lines))}</pre>"
        kept["marker"].set_xdata([slider.value, slider.value])
        ax.title.set_text(f"{slider.value} labels: " + (lines[0] if lines else ""))
        fig.canvas.restore_region(kept["background"])
        ax.draw_artist(kept["marker"])
        ax.draw_artist(ax.title)
        return canvas_png(fig)

    slider.observe(lambda _: view.update(draw_marker), names="value")
    for box in boxes.values():
        box.observe(draw_curves, names="value")
    draw_curves()
    grid = W.GridBox(list(boxes.values()),
                     layout=W.Layout(grid_template_columns="repeat(3, 270px)"))
    return W.VBox([slider, grid, view.image, text, view.out])
