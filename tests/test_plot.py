"""The figures lessons draw through aelab.plot."""
import matplotlib

matplotlib.use("Agg")

from aelab import plot  # noqa: E402
from aelab.train import History  # noqa: E402


def test_history_panels_draw_one_line_per_run_in_each_panel():
    runs = {"a": History(train_loss=[3, 2, 1], metrics={"acc": [0.1, 0.5, 0.7]}),
            "b": History(train_loss=[3, 3, 3], metrics={"acc": [0.1, 0.1, 0.2]})}
    fig = plot.history_panels(runs, {"loss": "train_loss", "accuracy": "acc"},
                              logy=("loss",))
    loss, acc = fig.axes
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert list(acc.lines[0].get_ydata()) == [0.1, 0.5, 0.7]
    assert loss.get_yscale() == "log" and acc.get_yscale() == "linear"


def test_correlation_scatter_marks_and_highlights_points():
    fig = plot.correlation_scatter([1, 2, 3, 4], [4, 3, 2, 1], labels="abcd",
                                   highlight=2, marked=[0], title="r = -1")
    ax = fig.axes[0]
    offsets = [len(c.get_offsets()) for c in ax.collections]
    assert offsets == [3, 1, 1]  # plain points, the stalled one, the highlight
    assert ax.get_title() == "r = -1" and ax.texts[0].get_text() == "c"
