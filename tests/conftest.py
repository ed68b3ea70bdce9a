import os

import pytest

# Tests never touch the network, the user's cache, or a GPU they were not asked to.
os.environ.setdefault("AELAB_OFFLINE", "1")
os.environ.setdefault("AELAB_PROFILE", "fast")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
