"""What installs aelab cannot drift apart: the conda environments list
pyproject.toml's dependencies with the same bounds, and every lesson's Colab
cell installs from the one Source URL in pyproject.toml (and only on Colab)."""
import re
import sys
import types
from pathlib import Path

import jupytext
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the [test] extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
CONDA_NAME = {"torch": "pytorch"}  # conda-forge's name, where it differs


def requirements(*extras) -> dict[str, SpecifierSet]:
    """{name: bounds} of pyproject's dependencies and the given extras (an extra
    that names aelab[...] brings that extra's too)."""
    found, todo = {}, [*PYPROJECT["dependencies"]]
    for extra in extras:
        todo += PYPROJECT["optional-dependencies"][extra]
    while todo:
        req = Requirement(todo.pop())
        if req.name == "aelab":
            extras = PYPROJECT["optional-dependencies"]
            todo += [d for e in req.extras for d in extras[e]]
            continue
        if req.name in found and found[req.name] != req.specifier:
            pytest.fail(f"pyproject.toml gives {req.name} two bounds: "
                        f"{found[req.name]} and {req.specifier}")
        found[req.name] = req.specifier
    return found


def conda_specs(path: Path) -> tuple[dict[str, SpecifierSet], list[str]]:
    """{name: bounds} of an environment file's conda packages (a build string
    such as cpu* is not a bound) and its pip lines."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    specs, pip = {}, []
    for dep in deps:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
            continue
        name, _, rest = re.match(r"([\w.-]+)\s*(=?)(.*)", dep).groups()
        version = rest.split()[0] if rest.split() else ""
        if version and version[0].isdigit():  # conda's name=3.11 means 3.11.*
            version = f"=={version}.*"
        specs[name] = SpecifierSet(version)
    return specs, pip


def test_binder_lists_every_dependency_and_the_lab_extra_with_the_same_bounds():
    # postBuild installs aelab with --no-deps: conda must provide them all.
    specs, pip = conda_specs(ROOT / "binder" / "environment.yml")
    wanted = requirements("lab")
    missing = [n for n in wanted if CONDA_NAME.get(n, n) not in specs]
    assert not missing, f"binder/environment.yml lacks {missing} (pyproject has them)"
    differ = {n: (str(b), str(specs[CONDA_NAME.get(n, n)])) for n, b in wanted.items()
              if specs[CONDA_NAME.get(n, n)] != b}
    assert not differ, f"binder/environment.yml's bounds are not pyproject's: {differ}"
    assert "--no-deps" in (ROOT / "binder" / "postBuild").read_text()


def test_environment_yml_installs_the_rest_from_pyproject_without_other_bounds():
    specs, pip = conda_specs(ROOT / "environment.yml")
    assert any(re.match(r'-e "?\.\[.*test.*\]"?$', line) for line in pip), pip
    wanted = requirements("test")
    for name, bounds in wanted.items():
        conda = specs.get(CONDA_NAME.get(name, name))
        assert conda is None or conda == bounds, (
            f"environment.yml gives {name} {conda}, pyproject.toml {bounds}")


@pytest.mark.parametrize("path", ["binder/environment.yml", "environment.yml"])
def test_the_conda_python_is_one_pyproject_accepts(path):
    specs, _ = conda_specs(ROOT / path)
    version = str(next(iter(specs["python"]))).strip("=.*")
    assert version in SpecifierSet(PYPROJECT["requires-python"]), version


def test_binder_opens_lessons_with_the_settings_aelab_lab_uses():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "cp aelab/lab-overrides.json" in post and "settings/overrides.json" in post


def test_pyproject_names_a_source_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+",
                        PYPROJECT["urls"]["Source"])


def run_install_cell(path: Path, monkeypatch, *, on_colab: bool,
                     exit_code: int = 0) -> list[str]:
    """Run a lesson's first code cell with IPython's shell replaced by a
    recorder whose commands exit with exit_code (IPython and Colab keep it in
    user_ns["_exit_code"]); return the shell commands it ran."""
    import subprocess

    import IPython

    ran = []

    def system(command):
        ran.append(command)
        shell.user_ns["_exit_code"] = exit_code

    shell = types.SimpleNamespace(system=system, user_ns={})
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)

    def elsewhere(*args, **kwargs):  # never install anything from a test
        pytest.fail(f"{path.name} installs through subprocess, not the notebook's "
                    "shell (`!pip install`): Colab cannot offer its restart then")

    for name in ("run", "call", "check_call", "Popen"):
        monkeypatch.setattr(subprocess, name, elsewhere)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    cell = next(c for c in jupytext.read(path).cells if c.cell_type == "code")
    exec(compile(cell.source, str(path), "exec"), {})  # noqa: S102
    return ran


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_colab_cell_pip_installs_the_source_on_colab_only(path, monkeypatch):
    assert run_install_cell(path, monkeypatch, on_colab=False) == []
    (command,) = run_install_cell(path, monkeypatch, on_colab=True)
    # Colab offers a restart after a shell command that starts with `pip install`
    # (colabtools' _pip.is_pip_install_command); `%pip` runs `python -m pip`.
    assert re.match(r"^pip[23]?\s+install", command), command
    assert f'"aelab @ git+{PYPROJECT["urls"]["Source"]}"' in command, command


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_colab_cell_installs_from_aelab_source_when_it_is_set(path, monkeypatch):
    wheel = "/content/aelab-0.1.0-py3-none-any.whl"
    monkeypatch.setenv("AELAB_SOURCE", wheel)
    (command,) = run_install_cell(path, monkeypatch, on_colab=True)
    assert re.match(r"^pip[23]?\s+install", command), command
    assert f'"{wheel}"' in command and "git+" not in command, command


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_a_failed_colab_install_stops_the_lesson_with_one_line(path, monkeypatch):
    monkeypatch.delenv("AELAB_SOURCE", raising=False)
    with pytest.raises(Exception) as stopped:
        run_install_cell(path, monkeypatch, on_colab=True, exit_code=1)
    shown = stopped.value._render_traceback_()  # what IPython prints instead
    assert len(shown) == 1 and "\n" not in shown[0], shown
    assert "could not install" in shown[0] and "AELAB_SOURCE" in shown[0], shown


def test_every_install_url_and_badge_names_the_source_repository():
    source = PYPROJECT["urls"]["Source"]
    repo = source.removeprefix("https://github.com/")
    texts = {p.name: p.read_text() for p in [ROOT / "README.md", *LESSONS]}
    for name, text in texts.items():
        for url in re.findall(r"git\+(https://[^\s\"')]+)", text):
            assert url == source, f"{name} installs from {url}, not {source}"
        for other in re.findall(r"(?:colab\.research\.google\.com/github|mybinder\.org"
                                r"/v2/gh)/([\w.-]+/[\w.-]+)", text):
            assert other == repo, f"{name} links {other}, not {repo}"


def imports_of(module: str, path: Path) -> list:
    """The `import module` statements of a file, with the try/except around each
    one (None when there is none)."""
    import ast

    tree = ast.parse(path.read_text())
    found = []

    def visit(node, guard):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import) and any(
                    alias.name == module for alias in child.names):
                found.append(guard)
            visit(child, child if isinstance(child, ast.Try) else guard)

    visit(tree, None)
    return found


def test_a_module_newer_than_requires_python_has_a_fallback_and_a_dependency():
    """tomllib is 3.11's; on the floor pyproject states (3.10) an import of it
    needs `except ModuleNotFoundError: import tomli`, and the test extra must
    install tomli there."""
    import ast

    floor = re.search(r">=\s*3\.(\d+)", PYPROJECT["requires-python"])
    if floor is None or int(floor.group(1)) >= 11:
        return  # tomllib is in every Python that pyproject accepts
    files = sorted([*ROOT.glob("tests/*.py"), *ROOT.glob("aelab/**/*.py"),
                    *ROOT.glob("tools/*.py"), ROOT / "conftest.py"])
    for path in files:
        for guard in imports_of("tomllib", path):
            handlers = guard.handlers if guard else []
            fallback = [h for h in handlers
                        if "tomli" in ast.dump(h) and ("ModuleNotFoundError"
                                                       in ast.dump(h.type)
                                                       or "ImportError"
                                                       in ast.dump(h.type))]
            assert fallback, (f"{path.relative_to(ROOT)} imports tomllib (3.11+) "
                              f"without a tomli fallback, yet requires-python is "
                              f"{PYPROJECT['requires-python']}")
    needs = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["test"]]
    tomli = [r for r in needs if r.name == "tomli"]
    assert tomli, "the test extra must install tomli for Python < 3.11"
    assert tomli[0].marker and tomli[0].marker.evaluate({"python_version": "3.10"})
    assert not tomli[0].marker.evaluate({"python_version": "3.11"})


README = (ROOT / "README.md").read_text()


def test_readme_gives_the_cpu_only_pytorch_install_with_the_size_it_saves():
    line = re.search(r"pip install ([\w ]+) --index-url (\S+?)`", README)
    assert line, "the README should give the CPU-only PyTorch install line"
    assert line.group(2) == "https://download.pytorch.org/whl/cpu"
    assert {"torch", "torchvision"} <= set(line.group(1).split())
    around = README[max(0, line.start() - 600):line.end() + 600]
    assert re.search(r"\d(\.\d)? GB", around), "say how much the CPU wheels save"


def tour_settings(profile: str) -> dict:
    """Lesson 00's SETTINGS for a profile, as its own profile cell computes it."""
    cell = next(c.source for c in jupytext.read(ROOT / "lessons" / "00_tour.py").cells
                if c.cell_type == "code" and "SETTINGS" in c.source)
    namespace = {"aelab": types.SimpleNamespace(get_profile=lambda: profile),
                 "print": lambda *args: None}
    exec(compile(cell, "00_tour.py", "exec"), namespace)  # noqa: S102
    return namespace["SETTINGS"]


def test_the_readme_tour_caption_says_what_lesson_00_sets_and_nothing_measured():
    import torch

    import aelab

    caption = re.search(r"\n\*From lesson 00([^*]+)\*", README)
    assert caption, "the picture's caption (*From lesson 00 ...*) is missing"
    text = " ".join(caption.group(1).split())
    settings = tour_settings("classroom")
    assert f"{settings['ae_epochs']} epochs" in text, (text, settings)
    assert f"{settings['pool_size']:,} " in text, (text, settings)
    torch.manual_seed(0)
    size = sum(p.numel() for p in aelab.models.ConvAutoencoder().parameters())
    assert re.findall(r"([\d,]+)-parameter", text) == [f"{size:,}"], text
    # measured numbers (an MSE, a ratio, a time) are the lesson's to print
    assert not re.search(r"\d\.\d|\d+ ?%|minute|second|\d+ s\b", text), text


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel .` builds from this checkout."""
    import subprocess

    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    (path,) = out.glob("aelab-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_carries_every_lesson_and_the_embedded_data(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    shared = {n.split("/data/", 1)[1] for n in names if ".data/data/share/aelab/" in n}
    for lesson in LESSONS:
        for path in (lesson, lesson.with_suffix(".ipynb")):
            assert f"share/aelab/lessons/{path.name}" in shared, path.name
    for npz in (ROOT / "data").glob("*.npz"):
        assert f"share/aelab/data/{npz.name}" in shared, npz.name


@pytest.mark.slow
def test_the_wheel_installed_without_the_checkout_copies_and_runs_the_lessons(
        wheel, tmp_path):
    """A fresh venv (it sees this machine's torch and Jupyter, nothing else of
    the checkout): `aelab lessons` and `aelab run tour --profile fast` work."""
    import os
    import subprocess

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(AELAB_OFFLINE="1", AELAB_CACHE=str(tmp_path / "cache"))

    def run(*args):
        result = subprocess.run([str(a) for a in args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=900,
                                check=False)
        assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
        return result.stdout

    # --force-reinstall: the machine's own aelab (an editable install) is the
    # same version; pip leaves that one alone, outside the venv
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
        "--force-reinstall", wheel)
    where = run(venv / "bin" / "python", "-c",
                "import aelab, aelab.data as d, aelab.runner as r; print(aelab.__file__);"
                " print(d.embedded_dir()); print(r.lessons_dir())")
    assert all(Path(line).is_relative_to(venv) for line in where.split()), where
    run(venv / "bin" / "aelab", "lessons", tmp_path / "course")
    copied = sorted(p.name for p in (tmp_path / "course").iterdir())
    assert copied == sorted(p.name for path in LESSONS
                            for p in (path, path.with_suffix(".ipynb")))
    run(venv / "bin" / "aelab", "run", "tour", "--profile", "fast",
        "--out", tmp_path / "out")
    assert (tmp_path / "out" / "00_tour.ipynb").exists()
