"""`aelab site`: a static course site built from the executed lessons.

Sphinx with myst-nb, rather than Jupyter Book 2, because:
- it is pure Python (pip installs it, like everything else here), while Jupyter
  Book 2 is the Node program mystmd, which also downloads its theme from the
  network on a first build, and this course must build offline;
- myst-nb renders executed notebooks as they are (`nb_execution_mode = "off"`:
  the outputs are those that `aelab run` printed, never a second run), and it
  understands the lessons' `hide-cell` tag (solutions show collapsed, behind a
  toggle) and the `mystnb.image.alt` metadata of a cell (a figure's alt text).

A lesson gives a figure its alt text in the header of the cell that draws it,
`# %% alt="What the figure shows"`, so the text sits beside the code an
instructor edits. `build` copies that into myst-nb's metadata and reports every
figure that has none.
"""
from __future__ import annotations

import copy
import datetime
from pathlib import Path

from aelab import __version__, runner

WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("<p><em>An interactive widget was here. Run the lesson in "
               "JupyterLab (<code>aelab lab</code>), Binder or Colab to use it.</em></p>")
CONF = """\
# Written by `aelab site`; rebuilt on every run.
project = {title!r}
author = "the aelab authors"
extensions = ["myst_nb"]
nb_execution_mode = "off"  # the outputs are the executed lessons' own
html_theme = "sphinx_book_theme"  # a left contents bar, a page outline, print
html_title = {title!r}
html_theme_options = {{"show_toc_level": 1, "use_download_button": False,
                      "use_fullscreen_button": False}}
html_show_sourcelink = False
nb_render_markdown_format = "myst"
# Only solution cells carry hide-cell (aelab.exercises says why), so the toggle
# can say what it hides.
nb_code_prompt_show = "Show the solution"
nb_code_prompt_hide = "Hide the solution"
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
"""
INDEX = """\
# {title}

{subtitle}

Every page is a lesson as `aelab run` executed it ({profile} profile,
aelab {version}, built {date}). The numbers on a page were printed by that run;
run the lesson yourself to get your own. Solutions are collapsed: open them once
you have tried the exercise.{caveat}

```{{toctree}}
:maxdepth: 1
:caption: Lessons

{pages}
```
"""


FAST_CAVEAT = ("\n\n**These pages ran in the `fast` profile**, a smoke test of a "
               "few steps of tiny networks: their numbers and verdicts mean nothing. "
               "For a class, build with `aelab site --profile classroom`.")


class SiteError(Exception):
    """The site could not be built: one line says why and what to do."""


def executed_notebooks(*folders: str | Path, skip: Path | None = None
                       ) -> dict[str, Path]:
    """{stem: path} of the executed lessons (NN_name.ipynb) under the folders
    that `aelab run --out` wrote into (or folders that hold such folders), but
    none under `skip` (a site's own copies); the first one found wins."""
    found = {}
    for runs in map(Path, folders):
        if not runs.is_dir():
            raise SiteError(f"{runs} is not a folder: pass the folder that "
                            "`aelab run LESSON --out FOLDER` wrote the lesson into")
        for path in sorted(runs.rglob("[0-9][0-9]_*.ipynb")):
            if ".ipynb_checkpoints" not in path.parts and not (
                    skip and skip in path.resolve().parents):
                found.setdefault(path.stem, path)
    if not found:
        raise SiteError(f"no executed lessons (NN_name.ipynb) under "
                        f"{', '.join(map(str, folders))}: run `aelab run LESSON --out "
                        "FOLDER/LESSON` first, or leave out --from to let `aelab site` "
                        "run them")
    return dict(sorted(found.items()))


def profiles(notebooks) -> str:
    """The profile the lessons ran in, as `aelab run` recorded it in each
    executed notebook ('fast'; 'fast, classroom' when they differ)."""
    found = {nb.metadata.get("aelab", {}).get("profile") or "an unrecorded"
             for nb in notebooks}
    return ", ".join(sorted(found))


def prepare(nb) -> tuple[object, list[str]]:
    """A copy of an executed notebook ready for myst-nb, and the cells whose
    figures have no alt text ("cell 12"). Each cell's `alt` becomes
    mystnb.image.alt; a widget's output becomes a note (a static page cannot
    run it, and its fallback text is a Python repr)."""
    nb = copy.deepcopy(nb)
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        alt = str(cell.metadata.get("alt", "")).strip()
        if alt:
            image = cell.metadata.setdefault("mystnb", {}).setdefault("image", {})
            image.setdefault("alt", alt)
        elif any("image/png" in o.get("data", {}) for o in outputs):
            missing.append(f"cell {i}")
        for output in outputs:
            data = output.get("data", {})
            if WIDGET in data:
                output["data"] = {"text/html": WIDGET_NOTE}
    nb.metadata.pop("widgets", None)  # no widget state on a static page
    return nb, missing


def build(runs, out: str | Path, *,
          title: str = "aelab: autoencoders and unsupervised pretraining",
          log=print) -> dict:
    """Build the HTML site from the executed lessons under `runs` (a folder,
    or a list of them) into OUT/html. Returns {"index": path, "pages": {stem:
    html path}, "missing_alt": {stem: [cells]}}."""
    import nbformat
    try:
        from sphinx.cmd.build import build_main
    except ModuleNotFoundError:
        raise SiteError('aelab site needs Sphinx and myst-nb: pip install '
                        '"aelab[site]"  (in a clone: pip install -e ".[site]")') from None

    out = Path(out).resolve()
    src, html = out / "source", out / "html"
    paths = executed_notebooks(*([runs] if isinstance(runs, (str, Path)) else runs),
                               skip=src)
    notebooks = {stem: nbformat.read(path, as_version=4) for stem, path in paths.items()}
    src.mkdir(parents=True, exist_ok=True)
    for old in src.glob("[0-9][0-9]_*.ipynb"):  # a lesson dropped since last time
        old.unlink()
    subtitle = ("Interactive lessons that re-run published results on autoencoders "
                "and pretraining, and say whether they hold up.")
    missing_alt = {}
    for stem, executed in notebooks.items():
        nb, missing = prepare(executed)
        if missing:
            missing_alt[stem] = missing
            log(f"aelab site: {stem}: figures without alt text in "
                f"{', '.join(missing)}: add alt=\"...\" to those cells' `# %%` line")
        nbformat.write(nb, src / f"{stem}.ipynb")
    profile = profiles(notebooks.values())
    (src / "conf.py").write_text(CONF.format(title=title, subtitle=subtitle))
    (src / "index.md").write_text(INDEX.format(
        title=title, subtitle=subtitle, profile=profile, version=__version__,
        caveat=FAST_CAVEAT if "fast" in profile.split(", ") else "",
        date=datetime.date.today().isoformat(), pages="\n".join(notebooks)))
    warnings = out / "sphinx-warnings.log"
    log(f"aelab site: {len(notebooks)} lessons ({profile} profile) -> {html}/")
    code = build_main(["-b", "html", "-q", "-E", "-w", str(warnings), str(src), str(html)])
    if code != 0:
        raise SiteError(f"sphinx-build failed (exit {code}); its warnings and errors "
                        f"are in {warnings}")
    pages = {stem: html / f"{stem}.html" for stem in notebooks}
    lost = [stem for stem, page in pages.items() if not page.exists()]
    if lost:
        raise SiteError(f"no page was written for {', '.join(lost)}; see {warnings}")
    return dict(index=html / "index.html", pages=pages, missing_alt=missing_alt)


def run_lessons(out: str | Path, *, profile: str, lessons=None, log=print) -> Path:
    """Execute each lesson (all by default) with `aelab run` into
    OUT/runs/NAME; the folder to build from."""
    runs = Path(out) / "runs"
    names = list(lessons or runner.available())
    for k, name in enumerate(names, 1):
        log(f"aelab site: running lesson {k} of {len(names)}: {name} ({profile})")
        runner.run(name, profile=profile, out=runs / name, log=log)
    return runs


def page_images(page: str | Path) -> list[dict]:
    """Every <img> of a built page: [{"src": ..., "alt": ...}] ('' where absent)."""
    from html.parser import HTMLParser

    images = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                attrs = dict(attrs)
                images.append({"src": attrs.get("src") or "",
                               "alt": attrs.get("alt") or ""})

    Images().feed(Path(page).read_text(encoding="utf-8"))
    return images
