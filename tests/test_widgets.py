"""Widgets are thin and answer fast: a move changes the kept figure and its
picture, moving back draws the first picture again (nothing stale), an error
inside a callback is one line and the next move works, and no pyplot figure is
left for the notebook to show a second time. .ci/run runs this file under
ipywidgets 8 and under 7.7.1 (Colab's)."""
import io

import ipywidgets as W
import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from aelab import widgets  # noqa: E402


def find(box, kind) -> list:
    """Every widget of `kind` inside box, depth first."""
    found = []
    for child in getattr(box, "children", ()):
        found += [child] if isinstance(child, kind) else []
        found += find(child, kind)
    return found


def picture(box) -> bytes:
    (image,) = find(box, W.Image)
    return image.value


def pixels(box) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(picture(box))).convert("L"), dtype=float)


@pytest.fixture(autouse=True)
def _no_figures_left():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a widget left a pyplot figure open"


def snapshots(num_epochs=4, n=16):
    """Reconstructions whose brightness is the epoch: epoch k is all k/num_epochs."""
    return {"AE": torch.stack([torch.full((n, 1, 28, 28), (k + 1) / num_epochs)
                               for k in range(num_epochs)])}


def test_an_error_in_a_callback_is_one_line_and_the_next_move_works(capsys):
    drawn = []

    def draw(x):
        if x == 2:
            raise ValueError("x = 2 has no picture\nsecond line")
        drawn.append(x)
        return plt.figure()

    slider = W.IntSlider(value=1, min=0, max=5)
    box = widgets.interactive(draw, x=slider)
    slider.value = 2  # raises inside the callback
    assert find(box, W.Image)[0].layout.display == "none"  # no stale picture
    slider.value = 3
    assert drawn == [1, 3]
    assert find(box, W.Image)[0].layout.display in (None, "")
    out = capsys.readouterr().out
    assert "ValueError: x = 2 has no picture" in out and "second line" not in out
    assert "Traceback" not in out


def test_interactive_shows_the_figure_draw_returns_and_what_it_prints(capsys):
    def draw(level):
        print(f"level is {level}")
        fig = plt.figure(figsize=(1, 1))
        fig.patch.set_facecolor((level, level, level))
        return fig

    slider = W.FloatSlider(value=0.0, min=0.0, max=1.0)
    box = widgets.interactive(draw, level=slider)
    dark = pixels(box).mean()
    slider.value = 1.0
    assert pixels(box).mean() > dark + 200
    assert "level is 1.0" in capsys.readouterr().out


def test_corruption_explorer_redraws_on_each_move_and_moving_back_restores():
    X = torch.rand(8, 1, 28, 28)
    box = widgets.corruption_explorer(X)
    (level,), (kind,) = find(box, W.FloatSlider), find(box, W.Dropdown)
    first = picture(box)
    level.value = 0.8
    assert picture(box) != first
    kind.value = "big_block"
    level.value = 0.3
    assert picture(box) != first
    kind.value = "gaussian"
    assert picture(box) == first


def test_epoch_scrubber_draws_the_chosen_epoch_like_a_fresh_widget():
    X = torch.rand(16, 1, 28, 28)
    box = widgets.epoch_scrubber(X, snapshots(num_epochs=4))
    epoch, images = find(box, W.IntSlider)
    assert (epoch.value, epoch.max, images.max) == (4, 4, 8)
    bright = pixels(box).mean()
    epoch.value = 1
    assert pixels(box).mean() < bright - 5  # epoch 1 is the darkest
    fresh = widgets.epoch_scrubber(X, {"AE": snapshots(num_epochs=4)["AE"][:1]})
    assert picture(box) == picture(fresh)
    images.value = 8  # the next 8 images
    assert picture(box) != picture(fresh)


def test_epoch_scrubber_with_a_bad_snapshot_says_so_and_the_next_move_works(capsys):
    bad = snapshots(num_epochs=3)["AE"]
    shots = {"AE": [bad[0], bad[1][:, :, :5], bad[2]]}  # epoch 2 is cropped
    box = widgets.epoch_scrubber(torch.rand(16, 1, 28, 28), shots)
    epoch = find(box, W.IntSlider)[0]
    epoch.value = 2
    out = capsys.readouterr().out
    assert out.count("Error") == 1 and "Traceback" not in out
    epoch.value = 1
    assert find(box, W.Image)[0].layout.display in (None, "")


def budget_curves():
    sizes = [20, 50, 100, 200]
    return {"pixels": (sizes, np.array([[0.5, 0.6, 0.7, 0.8], [0.52, 0.62, 0.7, 0.8]])),
            "AE": (sizes, np.array([[0.6, 0.7, 0.75, 0.85], [0.58, 0.7, 0.77, 0.83]]))}


def test_budget_explorer_slider_moves_the_marker_and_rewrites_the_text():
    box = widgets.budget_explorer(budget_curves(), paper={"AE": 71.0})
    (slider,) = find(box, W.SelectionSlider)
    text = find(box, W.HTML)[-1]
    assert slider.value == 100 and "AE: 76.0% [75.0-77.0] (paper 71.0)" in text.value
    first = picture(box)
    slider.value = 20
    assert picture(box) != first and "pixels: 51.0%" in text.value
    slider.value = 100
    assert picture(box) == first


def test_budget_explorer_checkbox_leaves_out_a_method():
    box = widgets.budget_explorer(budget_curves())
    boxes = {b.description: b for b in find(box, W.Checkbox)}
    text = find(box, W.HTML)[-1]
    both = picture(box)
    boxes["pixels"].value = False
    assert "pixels" not in text.value and "AE" in text.value
    assert picture(box) != both
    boxes["pixels"].value = True
    assert picture(box) == both


def test_choice_checker_reveals_the_answer_and_an_error_is_one_line(capsys):
    def answer(choice):
        if choice == "wrong":
            raise KeyError("no answer for that")
        return f"you chose {choice}"

    box = widgets.choice_checker("Which?", ["right", "wrong"], answer)
    (pick,), (button,) = find(box, W.Dropdown), find(box, W.Button)
    button.click()
    pick.value = "wrong"
    button.click()
    out = capsys.readouterr().out
    assert "you chose right" in out
    assert "KeyError: 'no answer for that'" in out and "Traceback" not in out


def test_image_rows_keep_each_label_left_of_its_images_after_a_move():
    grid = widgets.ImageRows(["clean", "gaussian"], 8, (8, 1, 28, 28))
    fig = grid.show({"clean": torch.rand(8, 1, 28, 28),
                     "big_block": torch.rand(8, 1, 28, 28)})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax, label in zip(grid.axes, ["clean", "big_block"]):
        text = ax.yaxis.label
        assert text.get_text() == label
        right = text.get_window_extent(renderer).x1
        assert 0 <= text.get_window_extent(renderer).x0 and right <= ax.bbox.x0 + 1
