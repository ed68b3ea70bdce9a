"""Grading a class's notebooks: `aelab grade SUBMISSIONS... [--out grades.csv]`.

Each submitted notebook (.ipynb, or a lesson's .py) runs headless in a fresh
kernel, in the fast profile, offline, in its own temporary working directory
with its own empty cache (so it cannot change the lessons, the other
submissions or the instructor's cache). Its own code cells run up to its last
exercise, except the cells that train on an answer (those that call
`.require()`); then the lesson's checks, taken from the instructor's copy of the
lesson (not from the submission), are run on the student's functions, one
kernel call per exercise, each with a time limit. One row per (notebook,
exercise): passed or not, and the one-line hint the student got.

A notebook that hangs, kills its kernel or fills its folder costs its own
rows, never the run. Its cells and the checks together get `notebook_timeout`
seconds (each call at most `timeout`). A file over `max_file_mb` gets an
OSError in its own kernel (RLIMIT_FSIZE), and the row shows it; files under its
folder over `max_disk_mb` in all stop its kernel (the folder is measured after
every cell and about once a second while one runs).

Before the checks run, the instructor's imports are run again (with a fresh
load of aelab.exercises), so a submission that rebound `check`, `answer` or
`close` is graded by the real ones. That guards against a slip, not a
determined cheat: the student's code runs in the same process as the checks
and could patch torch itself.

Trust: a submission is code, and it runs as the user who grades it, as in
nbgrader. Its kernel starts in a folder of its own, with limits on time, file
size and that folder's size; nothing stops it from reading or writing elsewhere
with that user's rights, or from using the network. Grade on a machine (or
account) that holds nothing a student's code must not read.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import re
import resource
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from aelab import runner, validate

MARK = "AELAB-GRADE "  # the line the grading call prints, then its JSON


@dataclass(frozen=True)
class Row:
    notebook: str
    exercise: str
    passed: bool
    hint: str


def _calls(source: str) -> list[tuple[str, str]]:
    """The (check, answer) pairs a cell calls at top level: check_x(x)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    return [(node.value.func.id, node.value.args[0].id) for node in body
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id.startswith("check_") and len(node.value.args) == 1
            and isinstance(node.value.args[0], ast.Name)]


def _defines_check(source: str) -> bool:
    return bool(re.search(r"^def check_\w+\(", source, re.MULTILINE))


def exercises(lesson: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """A reference lesson's check cells and its (check, answer) pairs, in order."""
    import jupytext

    cells = [c.source for c in jupytext.read(lesson).cells if c.cell_type == "code"]
    pairs = []
    for src in cells:
        pairs += [p for p in _calls(src) if p not in pairs]
    return [_definitions(src) for src in cells if _defines_check(src)], pairs


def _definitions(source: str) -> str:
    """A check cell without its top-level calls of the check: only what it
    defines (the grading calls come one by one, each with its time limit)."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Call))]
    return ast.unparse(tree)


def which_lesson(sources: list[str], lessons: dict[str, Path]) -> Path | None:
    """The reference lesson whose exercises the submission calls the most."""
    called = {p for src in sources for p in _calls(src)}
    scores = {path: len(called & set(exercises(path)[1])) for path in lessons.values()}
    best = max(scores, key=scores.get, default=None)
    return best if best is not None and scores[best] > 0 else None


def imports(lesson: Path) -> str:
    """The reference lesson's top-level imports, after a fresh load of
    aelab.exercises: what its checks call, whatever the submission rebound."""
    import jupytext

    found = ["import importlib", "import aelab.exercises",
             "importlib.reload(aelab.exercises)"]
    for cell in jupytext.read(lesson).cells:
        try:
            body = ast.parse(cell.source).body if cell.cell_type == "code" else []
        except SyntaxError:
            continue
        found += [ast.unparse(node) for node in body
                  if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(dict.fromkeys(found))


def disk_mb(folder: Path) -> float:
    """The MB the files under folder take on disk."""
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:  # gone while we looked
                pass
    return total / 2 ** 20


def _drain(stream, logfile: Path) -> None:
    """Keep the kernel's stderr in a log, quietly (a class's worth of kernels)."""
    def pump():
        with open(logfile, "wb") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)

    threading.Thread(target=pump, daemon=True).start()


class _Kernel:
    """A fresh ipykernel in this interpreter, with a cap on the size of any
    file it writes and, with max_disk_mb, on the size of the folder cwd (a
    submission that fills the disk stops only its own kernel), driven with
    jupyter_client's blocking client: a cell that runs past its time limit is
    interrupted, a dead kernel is noticed."""

    def __init__(self, *, cwd: Path, stderr_log: Path, max_file_mb: int,
                 max_disk_mb: float | None = None):
        import subprocess

        from jupyter_client.manager import KernelManager

        limit = max_file_mb * 2 ** 20
        self.cwd, self.max_disk_mb = Path(cwd), max_disk_mb

        def cap():  # in the kernel's process, before it starts
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        self.km = KernelManager(kernel_spec_manager=runner._this_interpreter())
        self.km.start_kernel(cwd=str(cwd), stderr=subprocess.PIPE, preexec_fn=cap)
        _drain(self.km.provisioner.process.stderr, stderr_log)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def execute(self, cell, timeout: float | None = None) -> str | None:
        """Run one code cell, its outputs stored in it; the error line or None."""
        from queue import Empty

        import nbformat

        msg_id = self.kc.execute(cell.source, store_history=True, allow_stdin=False)
        outputs, error = [], None
        deadline = None if timeout is None else time.monotonic() + timeout
        measured = time.monotonic()
        while True:
            if deadline is not None and time.monotonic() > deadline:
                self.km.interrupt_kernel()
                return f"the cell ran longer than {timeout:g} s"
            if time.monotonic() - measured > 1:
                measured, full = time.monotonic(), self._folder_full()
                if full:
                    return full
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except Empty:
                if not self.km.is_alive():
                    return "the kernel died (out of memory, or its code ended it)"
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(nbformat.v4.output_from_msg(msg))
                if kind == "error":
                    error = f"{content['ename']}: {content['evalue']}".splitlines()[0]
        cell.outputs = outputs
        return self._folder_full() or error

    def _folder_full(self) -> str:
        """'' while cwd's files fit max_disk_mb; else the kernel is stopped and
        this says why."""
        if self.max_disk_mb is None or disk_mb(self.cwd) <= self.max_disk_mb:
            return ""
        if self.km.is_alive():
            self.km.shutdown_kernel(now=True)
        return f"its files passed {self.max_disk_mb:g} MB"

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _responsive(kernel, wait: float = 10) -> bool:
    """The kernel answers again after an interrupt (a loop may swallow it)."""
    import nbformat

    return kernel.execute(nbformat.v4.new_code_cell("pass"), wait) is None


def _grading_call(check: str, answer: str) -> str:
    return (f"import json as _json\n"
            f"try:\n"
            f"    _c = {check}(globals().get({answer!r}))\n"
            f"    _row = [_c.name, bool(_c.ok), _c.message]\n"
            f"except Exception as _e:\n"
            f"    _row = ['', False, 'the check could not run (' + type(_e).__name__"
            f" + '): the cells it needs were changed or deleted']\n"
            f"print({MARK!r} + _json.dumps(_row))\n")


def grade_notebook(path: Path, lessons: dict[str, Path], *, timeout: float = 60,
                   notebook_timeout: float = 300, max_file_mb: int = 100,
                   max_disk_mb: float = 1000, log=None) -> list[Row]:
    """The rows of one submission (see the module's docstring)."""
    import jupytext
    import nbformat

    log = log or (lambda line: None)
    name = str(path)
    try:
        nb = jupytext.read(path)
    except Exception as err:  # noqa: BLE001 - an unreadable file is its own row
        return [Row(name, "", False, f"cannot read the notebook ({type(err).__name__})"
                                     ": submit the .ipynb or .py as saved")]
    code = [c for c in nb.cells if c.cell_type == "code"]
    lesson = which_lesson([c.source for c in code], lessons)
    if lesson is None:
        return [Row(name, "", False, "no exercise of a lesson found in it: is it one "
                                     "of the lessons' notebooks?")]
    checks, pairs = exercises(lesson)
    last = max((i for i, c in enumerate(code) if _calls(c.source)), default=-1)
    own = [c for c in code[:last + 1] if ".require()" not in c.source]
    work = Path(tempfile.mkdtemp(prefix="aelab-grade-"))
    shutil.copy(path, work / path.name)
    rows, trouble = [], ""
    kernel = None
    # The kernel inherits this environment: fast, offline, a cache of its own.
    env = dict(AELAB_PROFILE="fast", AELAB_OFFLINE="1",
               AELAB_CACHE=str(work / "cache"), AELAB_OUT=str(work / "out"))
    try:
        with mock.patch.dict(os.environ, env):
            kernel = _Kernel(cwd=work, stderr_log=work / "kernel.log",
                             max_file_mb=max_file_mb, max_disk_mb=max_disk_mb)
        # torch and aelab first, outside the student's time (a cold import alone
        # can take tens of seconds on a loaded machine)
        kernel.execute(nbformat.v4.new_code_cell("import aelab"), 300)
        deadline = time.monotonic() + notebook_timeout

        def budget() -> float:  # a call's time limit, within the notebook's
            return min(timeout, deadline - time.monotonic())

        for cell in own:
            if budget() <= 0:
                trouble = f"its cells ran past {notebook_timeout:g} s"
                break
            limit = budget()
            error = kernel.execute(cell, limit)
            if error and "longer than" in error and not _responsive(kernel):
                kernel.km.shutdown_kernel(now=True)
                trouble = "a cell did not stop when interrupted"
                break
            if error and ("kernel died" in error or "files passed" in error):
                trouble = error.replace("the kernel", "its kernel")
                break
            if error and "longer than" in error:
                trouble = f"a cell ran longer than {limit:g} s"
        # the instructor's imports and checks replace the submission's
        for src in [imports(lesson), *checks]:
            if kernel.km.is_alive() and budget() > 0:
                kernel.execute(nbformat.v4.new_code_cell(src), budget())
        for check, answer in pairs:
            if not kernel.km.is_alive() or budget() <= 0:
                why = (trouble or "its kernel died" if not kernel.km.is_alive() else
                       f"its cells and checks ran past {notebook_timeout:g} s")
                rows.append(Row(name, answer, False, f"not graded: {why}"))
                continue
            cell = nbformat.v4.new_code_cell(_grading_call(check, answer))
            limit = budget()
            error = kernel.execute(cell, limit)
            if error and "longer than" in error and not _responsive(kernel):
                kernel.km.shutdown_kernel(now=True)  # it ignored the interrupt
                trouble = f"{answer} did not stop when interrupted"
            if error and ("kernel died" in error or "files passed" in error):
                trouble = error.replace("the kernel", "its kernel")
            shown = "".join(o.get("text", "") for o in cell.outputs
                            if o.get("output_type") == "stream")
            found = [line[len(MARK):] for line in shown.splitlines()
                     if line.startswith(MARK)]
            if found:
                title, ok, hint = json.loads(found[-1])
                rows.append(Row(name, f"{title} ({answer})".strip(), ok, hint))
            else:
                rows.append(Row(name, answer, False, f"{answer} did not finish within "
                                f"{limit:g} s: does it loop forever?" if error
                                and "longer than" in error else
                                f"not graded: {trouble or error or 'no result'}"))
    finally:
        if kernel is not None:
            try:
                kernel.shutdown()
            except Exception:  # noqa: BLE001 - already gone (killed, or it died)
                pass
        shutil.rmtree(work, ignore_errors=True)
    log(f"  {name}: {sum(r.passed for r in rows)} of {len(rows)} passed"
        + (f" ({trouble})" if trouble else ""))
    return rows


def submissions(paths) -> list[Path]:
    """The notebooks among paths (folders are searched, .ipynb before .py of
    the same name: a jupytext pair is one submission)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix in (".ipynb", ".py")
                            and ".ipynb_checkpoints" not in q.parts)
        elif p.exists():
            found.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder; give notebooks or the "
                             "folder that holds them")
    stems = {q.with_suffix("") for q in found if q.suffix == ".ipynb"}
    return [q for q in found if q.suffix == ".ipynb" or q.with_suffix("") not in stems]


def grade(paths, *, out: str | Path | None = None, timeout: float = 60,
          notebook_timeout: float = 300, lessons: dict | None = None,
          max_file_mb: int = 100, max_disk_mb: float = 1000,
          log=print) -> list[Row]:
    """Grade every submission against the lessons' checks (`lessons`: {name:
    path}, default the installed lessons); print one row per (notebook,
    exercise)."""
    for name, value in (("timeout", timeout), ("notebook_timeout", notebook_timeout),
                        ("max_file_mb", max_file_mb), ("max_disk_mb", max_disk_mb)):
        validate.positive(name, value, hint="seconds or megabytes: a limit above 0")
    notebooks = submissions(paths)
    if not notebooks:
        raise ValueError("no .ipynb or .py found in " + ", ".join(map(str, paths)))
    lessons = lessons or runner.available()
    rows = []
    log(f"aelab grade: {len(notebooks)} notebooks, fast profile, offline, "
        f"{timeout:g} s per cell")
    for path in notebooks:
        rows += grade_notebook(path, lessons, timeout=timeout,
                               notebook_timeout=notebook_timeout,
                               max_file_mb=max_file_mb, max_disk_mb=max_disk_mb,
                               log=log)
    width = max((len(r.notebook) for r in rows), default=0)
    for r in rows:
        log(f"{r.notebook:<{width}}  {'passed' if r.passed else 'FAILED':<6}  "
            f"{r.exercise}: {r.hint}")
    if out:
        with open(out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["notebook", "exercise", "passed", "hint"])
            w.writerows([r.notebook, r.exercise, r.passed, r.hint] for r in rows)
        log(f"aelab grade: {len(rows)} rows in {out}")
    return rows
