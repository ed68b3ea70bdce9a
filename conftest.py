"""Defaults for every pytest run, the lessons' nbval kernels included (they
inherit this process's environment): the fast profile and no network.

The lessons' notebooks (nbval, collected from testpaths) count as `slow`: the
README's `pytest` runs every lesson once anyway, headless through `aelab run`
(tests/test_lessons.py and tests/test_lesson_*.py), and .ci/run runs
`pytest -m slow` after it. Named on the command line (`pytest
lessons/00_tour.ipynb`), a notebook runs whatever the marker says."""
import os

import pytest

os.environ.setdefault("AELAB_PROFILE", "fast")
os.environ.setdefault("AELAB_OFFLINE", "1")


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects anything
def pytest_collection_modifyitems(config, items):
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    for item in items:
        if type(item).__module__.startswith("nbval"):
            item.add_marker(pytest.mark.slow)
