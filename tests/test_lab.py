"""`aelab lab`: its JupyterLab opens a lesson's .py as a notebook (settings
merged under the user's own), and without JupyterLab it says in one line how to
install it. (tests/test_browser.py double-clicks a .py in a real browser.)"""
import json
from pathlib import Path

import pytest

from aelab import cli


def test_the_lab_overrides_open_python_files_with_jupytexts_notebook_viewer():
    overrides = json.loads(cli.LAB_OVERRIDES.read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"python": "Jupytext Notebook"}
    try:  # the viewer's name is the one jupytext's JupyterLab extension registers
        import jupyterlab_jupytext
    except ImportError:
        pytest.skip("jupytext's JupyterLab extension is not installed")
    static = Path(jupyterlab_jupytext.__file__).parent / "labextension" / "static"
    assert any('FACTORY="Jupytext Notebook"' in js.read_text(errors="ignore")
               for js in static.glob("*.js"))


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """A JupyterLab application folder with settings of its own."""
    import jupyterlab.commands

    app = tmp_path / "share" / "jupyter" / "lab"
    (app / "settings").mkdir(parents=True)
    (app / "static").mkdir()
    (app / "settings" / "page_config.json").write_text('{"disabledExtensions": {}}')
    (app / "settings" / "overrides.json").write_text(json.dumps({
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
        "@jupyterlab/docmanager-extension:plugin": {"autosave": False}}))
    monkeypatch.setattr(jupyterlab.commands, "get_app_dir", lambda: str(app))
    return app


def test_lab_settings_keep_the_apps_own_settings_and_add_the_default_viewer(
        app_dir, tmp_path):
    settings = cli.lab_settings_dir(tmp_path / "generated")
    merged = json.loads((settings / "overrides.json").read_text())
    docmanager = merged["@jupyterlab/docmanager-extension:plugin"]
    assert docmanager == {"defaultViewers": {"python": "Jupytext Notebook"},
                          "autosave": False}
    assert merged["@jupyterlab/apputils-extension:themes"]["theme"] == "JupyterLab Dark"
    assert (settings / "page_config.json").exists()
    assert (settings.parent / "static").resolve() == (app_dir / "static").resolve()
    assert json.loads((app_dir / "settings" / "overrides.json").read_text())[
        "@jupyterlab/docmanager-extension:plugin"] == {"autosave": False}  # untouched


def test_the_apps_own_default_viewers_win_over_aelabs(app_dir, tmp_path):
    (app_dir / "settings" / "overrides.json").write_text(json.dumps({
        "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {}}}))
    settings = cli.lab_settings_dir(tmp_path / "generated")
    merged = json.loads((settings / "overrides.json").read_text())
    assert merged["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"] == {}


def test_lab_command_points_jupyterlab_at_the_settings_and_the_lessons(tmp_path):
    cmd = cli.lab_command(["--no-browser"], root=True, settings_dir=tmp_path)
    assert f"--LabApp.app_settings_dir={tmp_path}" in cmd
    assert f"--ServerApp.root_dir={cli.lessons_dir()}" in cmd
    assert cmd[-2:] == ["--no-browser", "--allow-root"]


def test_lab_without_jupyterlab_says_how_to_install_it_in_one_line(
        monkeypatch, capsys):
    monkeypatch.setattr(cli, "missing_lab_modules", lambda: ["jupyterlab"])
    monkeypatch.setattr(cli.subprocess, "call", lambda *a, **k: pytest.fail("ran"))
    assert cli.main(["lab"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install -e ".[lab]"' in err
    assert "jupyterlab" in err
