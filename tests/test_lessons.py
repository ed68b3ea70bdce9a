"""The lessons as text: each lessons/NN_topic.py (the file people edit) and its
paired .ipynb (for Colab and Binder) hold the same cells, and every lesson keeps
the house habits; and every lesson runs headless in the fast profile, every code
cell of it (under `pytest -m slow`: the session's shared cold run, which
tests/test_determinism.py compares with a second one). The browser tests run
each .ipynb itself in JupyterLab; nbval can too (`pytest -m notebooks`, see
conftest.py)."""
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from lesson_runs import shared_run

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
SCRIPTS = sorted(LESSONS.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
SYNC = "run `jupytext --sync lessons/*.py` after editing a lesson"
# A cell that trains something: the seed must come before the first of these.
TRAINING = re.compile(r"\b(fit|fit_many|train_probes)\(|(?<!subprocess)\.run\(|"
                      r"\.backward\(")


def cells(path: Path) -> list[tuple]:
    """(cell_type, source, tags) of every cell, as jupytext reads the file."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ())))
            for c in jupytext.read(path).cells]


def code(path: Path) -> list[tuple[int, str]]:
    return [(i, source) for i, (kind, source, _) in enumerate(cells(path))
            if kind == "code"]


def first(path: Path, pattern: str) -> int:
    """Index of the first code cell matching `pattern`, or fail saying which."""
    for i, source in code(path):
        if re.search(pattern, source):
            return i
    pytest.fail(f"{path.name}: no code cell matches {pattern!r}")


def test_there_are_lessons():
    assert SCRIPTS, f"no lessons found in {LESSONS}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_and_notebook_hold_the_same_cells(script):
    notebook = script.with_suffix(".ipynb")
    assert notebook.exists(), f"{notebook.name} is missing: {SYNC}"
    assert cells(script) == cells(notebook), (
        f"{script.name} and {notebook.name} differ: {SYNC}")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_script(notebook):
    assert notebook.with_suffix(".py").exists(), (
        f"{notebook.name} has no {notebook.stem}.py: lessons are edited as .py "
        f"(`jupytext --to py:percent {notebook}` makes one)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_outputs_are_stripped(notebook):
    nb = nbformat.read(notebook, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{notebook.name}: cells {dirty} keep outputs; strip them: "
                       f"`jupyter nbconvert --clear-output --inplace {notebook}`")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_a_markdown_cell_explains_every_code_cell(script):
    """A solution cell may follow its exercise cell: one text explains both."""
    found = cells(script)
    bare = [i for i, (kind, _, tags) in enumerate(found)
            if kind == "code" and (i == 0 or found[i - 1][0] != "markdown")
            and "solution" not in tags]
    starts = [found[i][1].splitlines()[0] for i in bare]
    assert not bare, f"{script.name}: no markdown cell before the code cells {starts}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_colab_installs_aelab_before_importing_it(script):
    install = first(script, r"google\.colab[\s\S]*pip[\s\S]*install")
    imports = first(script, r"(^|\n)(import|from) aelab\b")
    assert install < imports, f"{script.name}: imports aelab before Colab installs it"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_seed_and_profile_come_before_any_training(script):
    seed = first(script, r"\bseed_everything\(")
    profile = first(script, r"\bget_profile\(")
    trains = [i for i, source in code(script) if TRAINING.search(source)]
    if trains:
        assert seed < trains[0], f"{script.name}: seed_everything after training"
        assert profile < trains[0], f"{script.name}: get_profile after training"


# The SETTINGS vocabulary shared by every lesson: passes and steps are named for
# their phase (`ae_epochs`, `clf_steps`; `min_epochs` is a floor for all phases),
# labeled-set sizes are `budgets`, seeds are `seeds`.
PHASES = {"ae", "clf", "dec", "ft", "probe", "sup", "inv", "min"}
OLD_NAMES = {"num_epochs", "pre_epochs", "steps", "sizes", "num_images", "epochs",
             "labels", "probe_labels"}


def settings_keys(path: Path) -> dict[str, set]:
    """{profile: the keys of its dict(...)} of the lesson's SETTINGS = {...}[PROFILE]."""
    import ast

    cell = next(src for _, src in code(path) if "SETTINGS = {" in src)
    node = next(n for n in ast.walk(ast.parse(cell)) if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", None) == "SETTINGS")
    table = node.value.value if isinstance(node.value, ast.Subscript) else node.value
    return {k.value: {kw.arg for kw in v.keywords}
            for k, v in zip(table.keys, table.values, strict=True)}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_settings_keys_follow_the_shared_scheme_in_every_profile(script):
    profiles = settings_keys(script)
    assert set(profiles) == {"fast", "classroom", "paper"}, script.name
    keys = set().union(*profiles.values())
    assert all(v == keys for v in profiles.values()), (
        f"{script.name}: every profile sets the same keys: {profiles}")
    old = keys & OLD_NAMES
    assert not old, f"{script.name}: {sorted(old)}: use <phase>_epochs or budgets"
    for key in keys:
        if key.endswith(("_epochs", "_steps")):
            assert key.split("_")[0] in PHASES, f"{script.name}: {key}'s phase"
        assert not key.endswith("labels"), (
            f"{script.name}: {key}: a number of labels is a budget (budget, budgets "
            "or <phase>_budget)")


def names(scripts) -> list[str]:
    return [re.sub(r"^\d\d_", "", p.stem) for p in scripts]


@pytest.mark.slow
@pytest.mark.parametrize("name", names(SCRIPTS))
def test_a_lesson_runs_headless_in_the_fast_profile_every_code_cell(name):
    """`aelab run NAME --profile fast`, cold, in a fresh process (the session's
    shared run): it ends with 'done', every code cell ran, it drew figures."""
    run = shared_run(name)
    assert not run.ok(), run.ok()
    assert "aelab run: done in" in run.result.stdout + run.result.stderr
    notebook = next(run.out.glob("*.ipynb"))
    figures = list((run.out / "figures").glob("*.png"))
    nb = nbformat.read(notebook, as_version=4)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran), "a code cell did not run"
    assert figures, "the lesson drew no figure"
