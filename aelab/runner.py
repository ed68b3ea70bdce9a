"""`aelab run LESSON`: execute a lesson's own text headless.

The lesson file (lessons/NN_name.py, jupytext py:percent) IS the experiment:
this module reads it, runs every cell in a fresh kernel with the chosen
profile, and writes into --out the executed notebook, every figure it drew,
and the tables the lesson saved with `aelab.study.save_run` (results, claims).
There is no second copy of any experiment in the package.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

LESSON_FILE = re.compile(r"^(\d\d)_(\w+)\.py$")


class LessonError(Exception):
    """A lesson could not be found or stopped in a cell: one line says which."""


def lessons_dir() -> Path:
    """lessons/ beside the package (a checkout), else where pip put the wheel's
    copy: <prefix>/share/aelab/lessons (a venv's, the system's or the user's)."""
    import site
    import sysconfig

    here = Path(__file__).resolve().parent.parent / "lessons"
    candidates = [here] + [Path(base) / "share" / "aelab" / "lessons" for base in
                           (sys.prefix, sysconfig.get_path("data"), site.USER_BASE)]
    for path in candidates:
        if path.is_dir():
            return path
    raise LessonError("the lessons are not installed: pip install the aelab wheel "
                      "(it carries them), or clone the repository and "
                      "`pip install -e .` in it")


def copy_lessons(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy every lesson (NN_name.py and its .ipynb) into dest, so that a
    student with only the wheel has the course to open and edit. Refuses to
    overwrite a file that is there already, unless force."""
    import shutil

    dest, src = Path(dest), lessons_dir()
    files = sorted(p for p in src.glob("[0-9][0-9]_*") if p.suffix in (".py", ".ipynb"))
    if dest.exists() and not dest.is_dir():
        raise LessonError(f"{dest} is a file: pass a folder for the lessons")
    there = [p.name for p in files if (dest / p.name).exists()]
    if there and not force:
        raise LessonError(f"{dest} already holds {', '.join(there[:3])}"
                          f"{' ...' if len(there) > 3 else ''}: pass another folder, "
                          "or --force to overwrite them")
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, dest / p.name)) for p in files]


def available() -> dict[str, Path]:
    """{name: path} of every lessons/NN_name.py, in order ('pretraining': ...)."""
    found = {}
    for path in sorted(lessons_dir().glob("[0-9][0-9]_*.py")):
        match = LESSON_FILE.match(path.name)
        if match:
            found[match.group(2)] = path
    return found


def find(lesson: str) -> Path:
    """A lesson by name ('pretraining'), file name ('01_pretraining') or path."""
    path = Path(lesson)
    if path.suffix == ".py" and path.exists():
        return path.resolve()
    known = available()
    for name, p in known.items():
        if lesson in (name, p.stem):
            return p
    raise LessonError(f"no lesson called {lesson!r}: use one of {', '.join(known)} "
                      "(`aelab run --list`), or a path to a lesson's .py file")


def _title(cell) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return first.strip("# ")[:60]


def _save_figures(nb, folder: Path) -> list[Path]:
    """Every PNG the lesson displayed, as figures/cell-NN-K.png."""
    paths = []
    for i, cell in enumerate(nb.cells):
        k = 0
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"cell-{i:02d}-{k}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                paths.append(path)
                k += 1
    return paths


def _forward(stream, logfile: Path) -> threading.Thread:
    """Echo the kernel's real stderr (the progress lines of AELAB_PROGRESS=lines,
    a crash) to ours, and keep all of it in a log file; jupyter_client's warning
    about TCP without encryption (the kernel is on this machine) goes to the
    log only."""
    def pump():
        with open(logfile, "w") as log:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                if "without encryption" not in line:
                    sys.stderr.write(line)
                    sys.stderr.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _this_interpreter():
    """A kernel-spec manager whose every kernel is ipykernel in the running
    interpreter (sys.executable): `aelab run` then executes the lesson with
    the aelab it was started from, not whatever a registered `python3`
    kernelspec points at (another venv, another Python)."""
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class ThisInterpreter(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

    return ThisInterpreter()


@contextmanager
def _kernel(nb, *, cwd: Path, stderr_log: Path, timeout: float | None = None):
    """A fresh ipykernel in this interpreter, driven by nbclient one cell at a
    time (so that each cell gets its progress line); yields `execute(index)`,
    which runs that cell of `nb`, keeps its outputs in it, and returns the
    error in one line, or None. nbclient also keeps what a hand-written driver
    drops: the widgets' state, saved in the notebook's metadata as
    JupyterLab's "Save Widget State" does."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import (CellExecutionError, CellTimeoutError,
                                     DeadKernelError)

    km = AsyncKernelManager(kernel_spec_manager=_this_interpreter())
    client = NotebookClient(nb, km=km, timeout=timeout, store_widget_state=True,
                            shutdown_kernel="immediate")

    def execute(index: int) -> str | None:
        try:
            client.execute_cell(nb.cells[index], index)
        except CellTimeoutError:
            return f"the cell ran longer than {timeout:g} s (--timeout)"
        except DeadKernelError:
            return "the kernel died (out of memory?); see kernel-stderr.log"
        except CellExecutionError as err:
            return f"{err.ename}: {err.evalue}".splitlines()[0]
        return None

    # cleanup_kc: the kernel manager is ours, so nbclient stops the kernel too
    with client.setup_kernel(cwd=str(cwd), stderr=subprocess.PIPE, cleanup_kc=True):
        _forward(km.provisioner.process.stderr, stderr_log)
        try:
            yield execute
        finally:
            client.set_widgets_metadata()


def run(lesson: str, *, profile: str = "classroom", out: str | Path = "out",
        timeout: int | None = None, seeds: str | None = None, log=None,
        cache: str | Path | None = None) -> dict:
    """Execute a lesson's cells in order in a fresh kernel; return what was
    written. `seeds` ("5-9", "5,6,7") replaces the lesson's seeds (it is
    AELAB_SEEDS for the kernel); `cache`, a folder, replaces the model cache
    (AELAB_CACHE) for this run. Raises LessonError with one line if a cell
    fails (the notebook up to that cell is still written)."""
    import jupytext
    import nbformat

    from aelab import validate

    log = log or (lambda line: print(line, flush=True))
    profile = validate.profile(profile)
    validate.environment()  # the kernel inherits these: a typo is one line now
    if timeout is not None:
        timeout = validate.positive("--timeout", timeout, hint="seconds per cell")
    if seeds is not None:
        from aelab.profile import parse_seeds

        try:
            seeds = ",".join(map(str, parse_seeds(seeds)))
        except ValueError as err:
            raise ValueError(f"--seeds: {err}") from None
    path = find(lesson)
    missing = [m for m in ("ipykernel", "nbclient") if find_spec(m) is None]
    if missing:
        raise LessonError(f"aelab run needs {' and '.join(missing)} (the lab extra): "
                          'pip install "aelab[lab]"  (in a clone: pip install -e '
                          '".[lab]")')
    out = Path(out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".aelab-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise LessonError(f"cannot write to --out {out}: {err.strerror}; pick a "
                          "folder you can write to") from None
    nb = jupytext.read(path)
    # The kernel inherits this environment: the profile, and where to save tables.
    saved_env = {k: os.environ.get(k)
                 for k in ("AELAB_PROFILE", "AELAB_OUT", "AELAB_PROGRESS", "AELAB_SEEDS",
                           "AELAB_CACHE")}
    os.environ.update(AELAB_PROFILE=profile, AELAB_OUT=str(out), AELAB_PROGRESS="lines")
    if seeds is not None:
        os.environ["AELAB_SEEDS"] = seeds
    if cache is not None:
        os.environ["AELAB_CACHE"] = str(cache)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    # How it ran, in the executed notebook itself (`aelab site` reads it)
    nb.metadata["aelab"] = {"profile": profile, "seeds": os.environ.get("AELAB_SEEDS")}
    start = time.perf_counter()
    chosen = f", seeds {os.environ['AELAB_SEEDS']}" if os.environ.get("AELAB_SEEDS") else ""
    log(f"aelab run: {path.name}, profile {profile}{chosen}, {len(code)} code cells "
        f"-> {out}")
    failure = None
    try:
        with _kernel(nb, cwd=path.parent, stderr_log=out / "kernel-stderr.log",
                     timeout=timeout) as execute:
            for k, i in enumerate(code, 1):
                t0 = time.perf_counter()
                error = execute(i)
                if error:
                    failure = (f"{path.name} stopped in code cell {k} of {len(code)} "
                               f"('{_title(nb.cells[i])}'): {error}")
                    break
                seconds = time.perf_counter() - t0
                if seconds >= 1 or k == len(code):
                    log(f"  [{k:>2}/{len(code)}] {seconds:6.1f} s  "
                        f"{_title(nb.cells[i])}")
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    notebook = out / (path.stem + ".ipynb")
    nbformat.write(nb, notebook)
    figures = _save_figures(nb, out / "figures")
    if failure:
        raise LessonError(failure)
    log(f"aelab run: done in {time.perf_counter() - start:.0f} s; the executed "
        f"notebook, {len(figures)} figures and the tables are in {out}/")
    return dict(notebook=notebook, figures=figures,
                tables=sorted(p for p in out.glob("*.json")))


def print_claims(out: str | Path, file=sys.stdout) -> bool:
    """Print <out>/claims.json as the claims table; False if there is none."""
    path, report = Path(out) / "claims.json", Path(out) / "report.txt"
    if report.exists():
        print("\n" + report.read_text().rstrip(), file=file)
    if not path.exists():
        return False
    from aelab.study import ClaimsTable, Verdict

    table = ClaimsTable(Verdict(**v) for v in json.loads(path.read_text()))
    print("\nThe paper's claims, checked (rules from the lesson's text):", file=file)
    print(table, file=file)
    counts = table.counts()
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items()), file=file)
    return True


def strip_solutions(nb):
    """The student copy of a lesson: every cell tagged `solution` removed, and
    the markdown cell just before it when that cell only announces it."""
    keep = []
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            if keep and keep[-1].cell_type == "markdown" and re.match(
                    r"^\W*solution\b", keep[-1].source.strip(), re.IGNORECASE):
                keep.pop()
            continue
        keep.append(cell)
    nb.cells = keep
    return nb


def student_copies(src: str | Path, dest: str | Path) -> list[Path]:
    """Write student versions (.py and paired .ipynb) of every lesson in src
    (a folder or one .py) into dest. Refuses a dest that is src or lies inside
    it, and never overwrites a file that holds solution cells (an instructor's
    lesson), so no solution is ever lost."""
    import jupytext

    src, dest = Path(src), Path(dest)
    if not src.exists():
        raise LessonError(f"{src} does not exist: pass lessons/ or one lesson's .py")
    scripts = sorted(src.glob("[0-9][0-9]_*.py")) if src.is_dir() else [src]
    if not scripts:
        raise LessonError(f"no lessons (NN_name.py) in {src}")
    home = (src if src.is_dir() else src.parent).resolve()
    if dest.resolve() == home or home in dest.resolve().parents:
        raise LessonError(f"the student copies would go into {dest}, which is (inside) "
                          f"the lessons folder {src}: pick another DEST, e.g. student/")
    notebooks = []
    for script in scripts:
        try:
            notebooks.append((script, strip_solutions(jupytext.read(script))))
        except Exception as err:  # jupytext/yaml: a broken header, a stray cell marker
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise LessonError(f"{script} is not a readable jupytext lesson "
                              f"({type(err).__name__}: {first[:100]}): check its header "
                              "block between the '# ---' lines") from None
    for script, _ in notebooks:
        for suffix in (".py", ".ipynb"):
            target = dest / (script.stem + suffix)
            if target.exists() and _has_solutions(target):
                raise LessonError(f"{target} holds solution cells (an instructor's copy?): "
                                  "not overwriting it; pick another DEST or move it away")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for script, nb in notebooks:
        for fmt, suffix in (("py:percent", ".py"), ("ipynb", ".ipynb")):
            target = dest / (script.stem + suffix)
            jupytext.write(nb, target, fmt=fmt)
            written.append(target)
    return written


def _has_solutions(path: Path) -> bool:
    """Does this lesson file (.py or .ipynb) hold a cell tagged `solution`?"""
    import jupytext

    try:
        nb = jupytext.read(path)
    except Exception:  # not a lesson at all: a stranger's file, leave it be
        return True
    return any("solution" in c.metadata.get("tags", []) for c in nb.cells)
