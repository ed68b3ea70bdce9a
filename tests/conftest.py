import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets an empty cache, so no test passes on another's leftovers."""
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
