"""The lessons as text: each lessons/NN_topic.py (the file people edit) and its
paired .ipynb (for Colab and Binder) hold the same cells, and every lesson keeps
the house habits; and every lesson runs headless in the fast profile, once (here
or in its tests/test_lesson_*.py). nbval runs the notebooks themselves under
`pytest -m slow` (see conftest.py)."""
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

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


def run_by_their_own_tests() -> dict[str, str]:
    """{lesson name: test file} of the lessons that a test of the README's
    `pytest` (not marked slow) in another tests/test_*.py runs with `aelab run
    NAME`: a call with the arguments "run", NAME (`aelab("run", "erhan", ...)`,
    `[..., "aelab.cli", "run", "tour", ...]`)."""
    import ast

    def slow(node) -> bool:
        return any("slow" in ast.unparse(d) for d in node.decorator_list)

    found, lessons = {}, set(names(SCRIPTS))
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        if path.name == Path(__file__).name or "mark.slow" in "".join(
                ast.unparse(n) for n in tree.body if isinstance(n, ast.Assign)):
            continue
        for test in tree.body:
            if not isinstance(test, ast.FunctionDef) or slow(test):
                continue
            for node in ast.walk(test):
                if isinstance(node, (ast.Call, ast.List)):
                    args = [a.value if isinstance(a, ast.Constant) else None
                            for a in getattr(node, "args", getattr(node, "elts", []))]
                    for first, second in zip(args, args[1:]):
                        if first == "run" and second in lessons:
                            found.setdefault(second, path.name)
    return found


def names(scripts) -> list[str]:
    return [re.sub(r"^\d\d_", "", p.stem) for p in scripts]


def test_the_lessons_own_tests_are_found_running_them():
    """The search above must see `aelab("run", "pretraining", ...)` in its file,
    or the smoke below would run every lesson a second time."""
    found = run_by_their_own_tests()
    assert found.get("pretraining") == "test_lesson_run.py", found
    assert set(found) <= set(names(SCRIPTS)), found


@pytest.mark.parametrize("name", [n for n in names(SCRIPTS)
                                  if n not in run_by_their_own_tests()])
def test_a_lesson_without_its_own_run_test_runs_headless_in_the_fast_profile(
        name, tmp_path):
    """Every lesson runs top to bottom in the README's `pytest`: here, unless
    another test runs it already (nbval reruns them all under `pytest -m slow`).
    In this process, as `aelab run NAME --profile fast` does (its kernel is a
    fresh process; the conftest's empty cache is the kernel's)."""
    from aelab import runner

    lines = []
    written = runner.run(name, profile="fast", out=tmp_path / "out", log=lines.append)
    assert lines[-1].startswith("aelab run: done in"), lines
    nb = nbformat.read(written["notebook"], as_version=4)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran), "a code cell did not run"
    assert written["figures"], "the lesson drew no figure"
