"""Exercise checks: the student's answer is tested on small cases, each with a
one-line hint, and a later cell that needs the answer stops with one line
(not a traceback) when it is missing or wrong.

In a lesson:

    def check_freeze(freeze):                  # the lesson writes the cases
        ...
        return check("Exercise 2", [(ok_1, "hint 1"), (ok_2, "hint 2")])

    check_freeze(freeze)                       # under the exercise: ✓ or ✗ hint
    check_freeze(freeze).require()             # before training on the answer
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


class ExerciseNotDone(Exception):
    """Raised by Check.require(). IPython shows its one-line message instead of
    a traceback (through _render_traceback_); `aelab run` prints the same line."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class NotAnswered(Exception):
    """Raised inside a case when the answer is still the `...` placeholder."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    answered: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return ("✓ " if self.ok else "✗ ") + f"{self.name}: {self.message}"

    def _repr_pretty_(self, p, cycle) -> None:  # what a notebook cell shows
        p.text(str(self))

    def require(self) -> None:
        """Stop here, with one line, unless the check passed."""
        if not self.ok:
            what = ("is not answered yet" if not self.answered
                    else "does not pass its check yet")
            raise ExerciseNotDone(f"{self.name} {what}: {self.message}. Fix it in "
                                  f"the cell under '{self.name}', run that cell, "
                                  "then this one")


def answer(value):
    """The value of a student's answer, or NotAnswered if it is the placeholder
    (None or Ellipsis, as `...  # your code here` leaves it)."""
    if value is None or value is Ellipsis:
        raise NotAnswered
    return value


def close(got, want, *, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """got ~= want for numbers and tensors (a 0-d tensor and a float compare)."""
    got = answer(got)
    if not torch.is_tensor(got) and not isinstance(got, (int, float)):
        return False
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(
        want, dtype=torch.float64)
    return got.shape == want.shape and bool(torch.allclose(got, want, rtol=rtol,
                                                           atol=atol))


def check(name: str, cases, *, done: str = "passes every check") -> Check:
    """Run the cases in order; the first that fails gives the hint.

    cases: [(test, hint)], where test is a bool or a function of no arguments
    returning one (a function may call the student's code: if that raises, the
    hint says what it raised; if it hits the `...` placeholder, the exercise is
    reported as not answered)."""
    for test, hint in cases:
        try:
            ok = test() if callable(test) else test
        except NotAnswered:
            return Check(name, False, "the function still returns None (the `...` "
                         "placeholder): write its body", answered=False)
        except Exception as err:  # noqa: BLE001 - the student sees what went wrong
            return Check(name, False, f"it raised {type(err).__name__}: {err}")
        if not ok:
            return Check(name, False, hint)
    return Check(name, True, done)
