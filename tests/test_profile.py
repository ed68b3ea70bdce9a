import pytest

from aelab.profile import get_seeds, parse_seeds


@pytest.mark.parametrize("spec, seeds", [("5-9", (5, 6, 7, 8, 9)), ("5,6,7", (5, 6, 7)),
                                         ("3", (3,)), ("0-2, 7", (0, 1, 2, 7))])
def test_parse_seeds_reads_ranges_and_lists(spec, seeds):
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize("spec, says", [("", "empty"), ("five", "not a whole number"),
                                        ("9-5", "upwards"), ("1,1", "twice")])
def test_parse_seeds_refuses_bad_specs_in_one_line(spec, says):
    with pytest.raises(ValueError, match=says) as err:
        parse_seeds(spec)
    assert "\n" not in str(err.value)


def test_get_seeds_prefers_the_environment_over_the_lessons_seeds(monkeypatch):
    monkeypatch.delenv("AELAB_SEEDS", raising=False)
    assert get_seeds([0, 1, 2]) == (0, 1, 2)
    monkeypatch.setenv("AELAB_SEEDS", "5-9")
    assert get_seeds([0, 1, 2]) == (5, 6, 7, 8, 9)
    monkeypatch.setenv("AELAB_SEEDS", "x")
    with pytest.raises(ValueError, match="AELAB_SEEDS"):
        get_seeds([0])
