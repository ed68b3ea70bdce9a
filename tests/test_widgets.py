"""Widgets are thin: an error inside a callback is one line, and the next
move works."""
import ipywidgets as W
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from aelab import widgets  # noqa: E402


def test_an_error_in_a_callback_is_one_line_and_the_next_move_works(capsys):
    drawn = []

    def draw(x):
        if x == 2:
            raise ValueError("x = 2 has no picture\nsecond line")
        drawn.append(x)
        return plt.figure()

    slider = W.IntSlider(value=1, min=0, max=5)
    widgets.interactive(draw, x=slider)
    slider.value = 2  # raises inside the callback
    slider.value = 3
    assert drawn == [1, 3]
    out = capsys.readouterr().out
    assert "ValueError: x = 2 has no picture" in out and "second line" not in out
    assert "Traceback" not in out
