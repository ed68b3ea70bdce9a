"""Defaults for every pytest run, the lessons' nbval kernels included (they
inherit this process's environment): the fast profile and no network.

The lessons' notebooks (nbval, collected from testpaths) carry the `notebooks`
marker, which neither the README's `pytest` nor `pytest -m slow` selects: every
lesson's text runs headless under `pytest -m slow` (tests/test_lessons.py,
tests/test_determinism.py) and every .ipynb in JupyterLab under `pytest -m
browser`, so nbval would only repeat them. `pytest -m notebooks` runs them
through nbval; named on the command line (`pytest lessons/00_tour.ipynb`), a
notebook runs whatever the marker says."""
import os

import pytest

os.environ.setdefault("AELAB_PROFILE", "fast")
os.environ.setdefault("AELAB_OFFLINE", "1")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(config, items):
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    for item in items:
        if type(item).__module__.startswith("nbval"):
            item.add_marker(pytest.mark.notebooks)
