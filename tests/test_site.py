"""`aelab site`: the course as static HTML, built from executed lessons.

The quick tests build a site from a small hand-made executed notebook (one
figure with alt text, one without, a solution, a widget); the slow one builds
the real course from the session's cold fast runs of every lesson
(tests/lesson_runs.py) into artifacts/site/, where .ci/run says it is, and
checks every lesson's page and figure."""
import base64
import io
import shutil
from contextlib import redirect_stderr
from pathlib import Path

import nbformat
import pytest
from lesson_runs import shared_run

from aelab import cli, runner, site

ROOT = Path(__file__).resolve().parent.parent
ALT = "Three test digits above their reconstructions."


def png() -> str:
    """A tiny PNG, base64 as in a notebook: what matters is that it is an image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (2, 2)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def executed_lesson(folder: Path, *, alt: str | None = ALT) -> Path:
    """A notebook shaped like an executed lesson of the fast profile: a title,
    a figure (with the alt text of its cell header, unless alt is None), a
    solution cell, a widget and a second figure without alt text."""
    v4 = nbformat.v4
    figure = v4.new_code_cell("fig = plot.image_grid(...)", metadata={"alt": alt} if alt
                              else {}, outputs=[v4.new_output(
                                  "display_data", data={"image/png": png(),
                                                        "text/plain": "<Figure>"})])
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# 07 · A lesson\n\nWhy before how."),
        figure,
        v4.new_code_cell("def answer():\n    return 42",
                         metadata={"tags": ["solution", "hide-cell"]}),
        v4.new_code_cell("widgets.explorer()", outputs=[v4.new_output(
            "display_data", data={site.WIDGET: {"model_id": "abc", "version_major": 2,
                                                "version_minor": 0},
                                  "text/plain": "interactive(children=(...))"})]),
        v4.new_code_cell("fig = plot.loss_curves(...)", outputs=[v4.new_output(
            "display_data", data={"image/png": png(), "text/plain": "<Figure>"})]),
    ])
    nb.metadata["aelab"] = {"profile": "fast", "seeds": None}  # as `aelab run` stamps it
    path = folder / "07_lesson.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    executed_lesson(tmp / "runs" / "lesson")
    result = site.build(tmp / "runs", tmp / "site", log=lambda *a: None)
    return result, result["pages"]["07_lesson"].read_text(encoding="utf-8")


def test_site_writes_an_index_that_links_every_lesson_page(built):
    result, _ = built
    assert result["pages"]["07_lesson"].exists()
    index = result["index"].read_text(encoding="utf-8")
    assert 'href="07_lesson.html"' in index
    assert "These pages ran in the" in index  # a fast site says its numbers mean nothing


def test_site_figure_carries_the_alt_text_of_its_cell(built):
    result, _ = built
    images = site.page_images(result["pages"]["07_lesson"])
    assert len(images) == 2, images
    assert images[0]["alt"] == ALT
    for image in images:  # the figure file is there, beside the page
        assert (result["pages"]["07_lesson"].parent / image["src"]).is_file(), image


def test_site_reports_the_figures_that_have_no_alt_text(built):
    result, _ = built
    assert result["missing_alt"] == {"07_lesson": ["cell 4"]}


def test_site_shows_solutions_collapsed_behind_a_toggle(built):
    _, page = built
    start = page.index("tag_solution")
    details = page[page.index("<details", start):page.index("</details>", start)]
    assert "open" not in details.split(">", 1)[0], "the solution is shown open"
    assert "Show the solution" in details and "answer" in details


def test_site_replaces_a_widget_by_a_note_to_run_the_lesson(built):
    _, page = built
    assert "An interactive widget was here" in page
    assert "interactive(children" not in page


def test_site_cli_strict_fails_on_a_figure_without_alt_text(tmp_path):
    executed_lesson(tmp_path / "runs")
    args = ["site", "--from", str(tmp_path / "runs"), "--out", str(tmp_path / "site")]
    assert cli.main(args) == 0  # reported, not fatal
    assert cli.main([*args, "--strict"]) == 1


def test_site_cli_from_a_folder_without_lessons_says_so_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli.main(["site", "--from", str(tmp_path / "empty"),
                         "--out", str(tmp_path / "site")])
    assert code == 1
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "no executed lessons" in lines[0], lines


@pytest.mark.slow
def test_the_course_site_has_every_lesson_with_its_figures_and_alt_text():
    """The real course, from the session's cold fast runs of every lesson,
    built with the documented command into artifacts/site (.ci/run prints
    where): a page per lesson, each of its figures with its cell's alt text,
    each solution collapsed."""
    runs = {name: shared_run(name) for name in runner.available()}
    assert all(not run.ok() for run in runs.values()), {
        n: r.ok() for n, r in runs.items() if r.ok()}
    out = ROOT / "artifacts" / "site"
    shutil.rmtree(out, ignore_errors=True)
    code = cli.main(["site", "--from", *(str(r.out) for r in runs.values()),
                     "--out", str(out), "--strict"])
    assert code == 0, "aelab site --strict failed: see its output above"
    index = (out / "html" / "index.html").read_text(encoding="utf-8")
    for name, run in runs.items():
        notebook = next(run.out.glob("[0-9][0-9]_*.ipynb"))
        page = out / "html" / f"{notebook.stem}.html"
        assert page.exists(), f"{name}: no page"
        assert f'href="{page.name}"' in index, f"{name}: not in the index"
        nb = nbformat.read(notebook, as_version=4)
        expected = [c.metadata.get("alt") for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        images = site.page_images(page)
        assert expected, f"{name}: the lesson drew no figure"
        assert [i["alt"] for i in images] == expected, f"{name}: figures or alt text"
        assert all((page.parent / i["src"]).is_file() for i in images), name
        solutions = sum("solution" in c.metadata.get("tags", []) for c in nb.cells)
        assert page.read_text(encoding="utf-8").count("Show the solution") == solutions
