"""Every bad input of tests/bad_inputs.py gets one line that says what was
wrong and what to do, raised by aelab before torch sees the input (or, for a
damaged file or a full disk, one warning line and the work goes on); and
docs/RELIABILITY.md quotes each case's message exactly."""
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from bad_inputs import CASES, outcome, message_row  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "RELIABILITY.md"
REGENERATE = "regenerate the table: python tools/reliability_table.py"


def doc_rows() -> dict:
    rows = {}
    for line in DOC.read_text().splitlines():
        found = re.match(r"^\| `([\w-]+)` \|", line)
        if found:
            rows[found.group(1)] = line
    return rows


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_gets_one_line(case, tmp_path):
    raised, message, printed = outcome(case, tmp_path)
    assert raised is case.raises, f"{case.id}: expected {case.raises}, got " \
        f"{raised} ({message or printed!r})"
    assert message and "\n" not in message, f"{case.id}: not one line: {message!r}"
    assert "Traceback" not in printed and "Traceback" not in message
    assert re.search(case.match, message), f"{case.id}: {message!r}"
    if raised is None:  # the work went on: exactly the one warning line was printed
        assert printed.strip() == message
    row = doc_rows().get(case.id)
    assert row == message_row(case, message), f"{case.id}: the doc says {row!r}; " \
        + REGENERATE


def test_there_are_at_least_30_cases_across_every_kind_of_input():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.where for c in CASES} == {"API", "CLI", "env", "file", "widget"}


def test_every_aelab_setting_has_a_bad_input_case():
    """Each AELAB_* variable the package reads is tried with a bad value
    (AELAB_CACHE, AELAB_DATA, AELAB_OUT as files or unwritable)."""
    package = Path(__file__).resolve().parent.parent / "aelab"
    read = {v for f in package.rglob("*.py")
            for v in re.findall(r"AELAB_[A-Z_]+", f.read_text())}
    tried = {v for c in CASES for v in re.findall(r"AELAB_[A-Z_]+", c.bad)}
    assert read - tried == set(), f"no bad-input case for {sorted(read - tried)}"


def test_the_doc_lists_no_case_that_is_gone():
    ids = {c.id for c in CASES}
    assert set(doc_rows()) <= ids, f"stale rows {set(doc_rows()) - ids}; " + REGENERATE
