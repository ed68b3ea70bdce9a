"""Write the bad-input table of docs/RELIABILITY.md from tests/bad_inputs.py:
run every case as the tests do (fresh cache, offline, fast profile) and put
the message it got between the table markers. tests/test_bad_inputs.py
checks the doc quotes each message exactly, so rerun this after changing one:

    OMP_NUM_THREADS=1 python tools/reliability_table.py
"""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"
HEADER = ("| id | where | bad input | raises | the message (TMP: a scratch folder) |\n"
          "|---|---|---|---|---|")


def main() -> int:
    os.environ.update(AELAB_OFFLINE="1", AELAB_PROFILE="fast")
    sys.path.insert(0, str(ROOT / "tests"))
    import matplotlib

    matplotlib.use("Agg")
    from bad_inputs import CASES, message_row, outcome

    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["AELAB_CACHE"] = str(Path(tmp) / "cache")
            raised, message, _ = outcome(case, Path(tmp))
        if raised is not case.raises:
            print(f"{case.id}: expected {case.raises}, got {raised}: {message}")
            return 1
        rows.append(message_row(case, message))
    text = DOC.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{HEADER}\n" + "\n".join(rows) + f"\n{END}{tail}")
    print(f"{len(rows)} cases written to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
