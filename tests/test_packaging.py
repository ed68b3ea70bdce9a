"""What installs aelab cannot drift apart: the conda environments list
pyproject.toml's dependencies with the same bounds, and every lesson's Colab
cell installs from the one Source URL in pyproject.toml (and only on Colab)."""
import re
import sys
import tomllib
import types
from pathlib import Path

import jupytext
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

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


def run_install_cell(path: Path, monkeypatch, *, on_colab: bool) -> list[str]:
    """Run a lesson's first code cell with IPython's shell replaced by a
    recorder; return the shell commands it ran."""
    import subprocess

    import IPython

    ran = []
    shell = types.SimpleNamespace(system=ran.append)
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
