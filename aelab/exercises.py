"""Exercise checks: the student's answer is tried the way the lesson will use
it, on small cases, each with a one-line hint that names the fix; a later cell
that needs the answer stops with one line (not a traceback) when it is missing
or wrong.

In a lesson:

    def check_freeze(freeze):                  # the lesson writes the cases
        ...
        return check("Exercise 2", [(ok_1, "hint 1"), (ok_2, "hint 2")],
                     code=freeze)

    check_freeze(freeze)                       # under the exercise: ✓ or ✗ hint
    check_freeze(freeze).require()             # before training on the answer

A solution cell is tagged `solution` (`aelab student` removes it) and
`hide-cell` (Jupyter Book shows it collapsed behind a toggle; nbconvert drops it
with --TagRemovePreprocessor.remove_cell_tags='{"hide-cell"}'). We chose
`hide-cell` over `remove-cell` so that the instructor's rendered lesson still
holds the solution, one click away.

The probes below test what a value check cannot see: whether gradients reach
the weights (`no_gradient`), whether the objects passed in were left alone
(`Snapshot`), whether a network is linear (`is_affine`), and whether the answer
survives one step of the lesson's own training loop (`one_step`).
"""
from __future__ import annotations

import copy
import linecache
import types
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


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
    """got ~= want for numbers and tensors (a 0-d tensor and a float compare;
    any dtype, any device)."""
    got = answer(got)
    if not torch.is_tensor(got) and not isinstance(got, (int, float)):
        return False
    got = torch.as_tensor(got).detach().to("cpu", torch.float64)
    want = torch.as_tensor(want).detach().to("cpu", torch.float64)
    return got.shape == want.shape and bool(torch.allclose(got, want, rtol=rtol,
                                                           atol=atol))


def _codes(fn) -> set:
    """The code objects of fn and of every function defined inside it."""
    fn = getattr(fn, "__func__", fn)
    todo, seen = [getattr(fn, "__code__", None)], set()
    while todo:
        code = todo.pop()
        if isinstance(code, types.CodeType) and code not in seen:
            seen.add(code)
            todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return seen


def _where(err: BaseException, code) -> str:
    """' (your f raised TypeError at `line`)' when err came out of the
    student's code `code`; '' when it came from the check's own look at the
    value (the hint is the message); the type alone when `code` is not known."""
    codes = set().union(*map(_codes, code if isinstance(code, (list, tuple))
                             else [code]))
    tb, last = err.__traceback__, None
    while tb is not None:  # the deepest frame that is the student's
        if tb.tb_frame.f_code in codes:
            last = tb
        tb = tb.tb_next
    if last is None:  # the check's own probing of the value failed: the hint
        return "" if codes else f" (it raised {type(err).__name__})"
    line = linecache.getline(last.tb_frame.f_code.co_filename, last.tb_lineno,
                             last.tb_frame.f_globals).strip()
    line = line if len(line) <= 60 else line[:57] + "..."
    at = f" at `{line}`" if line else f" at line {last.tb_lineno}"
    what = type(err).__name__
    if isinstance(err, NameError):  # Python's own words, and they name the fix
        what += f" ({err})"
    return f" (your {last.tb_frame.f_code.co_name} raised {what}{at})"


def check(name: str, cases, *, done: str = "passes every check",
          code=None) -> Check:
    """Run the cases in order; the first that fails gives its hint.

    cases: [(test, hint)], where test is a bool or a function of no arguments
    returning one (or a bool tensor or array of one element), or returning the
    answer (a number, a tensor, a module: it passes when it runs; None or many
    truth values fail, saying so). A function may call the student's code: if
    it hits the `...` placeholder, the exercise is reported as not answered; if
    anything raises, the student gets that case's hint, and, when `code` (the
    student's function, or a list of them) is where it raised, the line that
    raised. The hint is always one line that names the fix, never torch's own
    message."""
    if not isinstance(cases, (list, tuple)) or not all(
            isinstance(c, (tuple, list)) and len(c) == 2 and isinstance(c[1], str)
            for c in cases):
        raise TypeError(f"check {name!r}: cases must be a list of (test, hint) pairs, "
                        "e.g. [(lambda: f(2) == 4, 'return 2 * x')]")
    for i, (test, hint) in enumerate(cases, 1):
        try:
            with warnings.catch_warnings():  # the hint says it all, in one line
                warnings.simplefilter("ignore")
                ok = test() if callable(test) else test
        except NotAnswered:
            return Check(name, False, "it returns None: write its body in place of "
                         "the `...` placeholder, and return the result",
                         answered=False)
        except Exception as err:  # noqa: BLE001 - the student gets a hint instead
            return Check(name, False, hint + _where(err, code))
        odd = _odd(ok)
        if odd:
            return Check(name, False, f"{hint} (case {i} gave {odd})".lstrip())
        if not _passed(ok):
            return Check(name, False, hint)
    return Check(name, True, done)


def _truths(ok) -> int | None:
    """How many truth values ok holds if it is a bool tensor or array (a
    comparison), else None."""
    if torch.is_tensor(ok) and ok.dtype == torch.bool:
        return ok.numel()
    return ok.size if isinstance(ok, np.ndarray) and ok.dtype == np.bool_ else None


def _odd(ok) -> str:
    """What is wrong with a case's result, in words ('' if nothing)."""
    if ok is None:
        return "None, not True or False: return the result"
    n = _truths(ok)
    return "" if n in (None, 1) else \
        f"{n} truth values, not one: end it with .all() or .any()"


def _passed(ok) -> bool:
    """A test passes when it returns True (or a one-element bool tensor or
    array holding it); one that returns anything else, a number or a tensor of
    numbers included, only calls the answer, and passes when that did not raise:
    a loss of exactly 0 is an answer too, not a False."""
    if isinstance(ok, (bool, np.bool_)) or _truths(ok) is not None:
        return bool(ok)
    return True


# ---- probes: how the lesson will use the answer -----------------------------

def _named(params) -> list:
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    if isinstance(params, dict):
        return list(params.items())
    return [(str(i), p) for i, p in enumerate(params)]


def gradients(loss, params) -> dict:
    """{name: gradient of loss} for a module's parameters (or a dict or list of
    tensors); a parameter the loss does not reach gets None. An answer that went
    through .item(), float(), torch.tensor([...]) or .detach() reaches none."""
    named = [(k, p) for k, p in _named(params) if p.requires_grad]
    if not torch.is_tensor(loss) or not loss.requires_grad or not named:
        return {k: None for k, _ in named}
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True,
                                retain_graph=True)
    return dict(zip([k for k, _ in named], grads, strict=True))


def no_gradient(loss, params) -> list[str]:
    """The names of the parameters that get no gradient (or only zeros) from
    loss: [] when every one of them would learn."""
    return [k for k, g in gradients(loss, params).items()
            if g is None or not bool(g.abs().sum() > 0)]


def same_gradients(loss, want, params, *, rtol: float = 1e-4,
                   atol: float = 1e-7) -> bool:
    """loss and want pull every parameter the same way (a term that went through
    .item() has the right value but no gradient: this tells them apart)."""
    got, ref = gradients(loss, params), gradients(want, params)
    return all(g is not None and close(g, r, rtol=rtol, atol=atol)
               if r is not None else g is None or not bool(g.abs().sum() > 0)
               for (_, g), (_, r) in zip(got.items(), ref.items(), strict=True))


class Snapshot:
    """What the objects passed to an answer are now: tensors' values, modules'
    weights, which parameters learn, train/eval mode, which submodules they
    hold. `changed()` says afterwards what the answer changed ('' if nothing)."""

    def __init__(self, *objects):
        self.objects = objects
        self.before = [self._state(o) for o in objects]

    @staticmethod
    def _state(obj):
        if torch.is_tensor(obj):
            return {"values": obj.detach().clone(), "requires_grad": obj.requires_grad}
        if isinstance(obj, nn.Module):
            return {"weights": {k: v.detach().clone()
                                for k, v in obj.state_dict().items()},
                    "requires_grad": [p.requires_grad for p in obj.parameters()],
                    "train/eval mode": [m.training for m in obj.modules()],
                    "submodules": [id(m) for m in obj.modules()]}
        if isinstance(obj, (list, tuple)):
            return {"items": [Snapshot._state(o) for o in obj]}
        return {"value": copy.deepcopy(obj)}

    @staticmethod
    def _diff(old, new) -> str:
        for key, was in old.items():
            now = new.get(key)
            if key == "items":
                if len(was) != len(now):
                    return "its length"
                why = next(filter(None, map(Snapshot._diff, was, now)), "")
                if why:
                    return why
            elif torch.is_tensor(was):
                if was.shape != now.shape or was.dtype != now.dtype or not bool(
                        torch.equal(was, now.to(was.device))):
                    return key
            elif key == "weights":
                if was.keys() != now.keys() or any(
                        not torch.equal(was[k], now[k]) for k in was):
                    return "its weights"
            elif was != now:
                return key
        return ""

    def changed(self) -> str:
        """What changed, e.g. 'argument 1: its weights', or ''."""
        for i, (obj, was) in enumerate(zip(self.objects, self.before), 1):
            why = self._diff(was, self._state(obj))
            if why:
                return f"argument {i}: {why}"
        return ""

    def unchanged(self) -> bool:
        return not self.changed()


def untouched(call, *objects) -> bool:
    """call() leaves every one of objects as it found it (see Snapshot)."""
    snapshot = Snapshot(*objects)
    call()
    return snapshot.unchanged()


def trainable(module: nn.Module) -> bool:
    """Every parameter of module requires a gradient."""
    return all(p.requires_grad for p in module.parameters())


def frozen(module: nn.Module) -> bool:
    """No parameter requires a gradient, and the module and all of its
    submodules are in eval mode."""
    return (not any(p.requires_grad for p in module.parameters())
            and not any(m.training for m in module.modules()))


def is_affine(fn, x: torch.Tensor, *, seed: int = 0) -> bool:
    """fn(a + b) == fn(a) + fn(b) - fn(0) on random inputs shaped like x: true for
    a network with no nonlinearity between its layers."""
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(x.shape, generator=g, dtype=x.dtype) for _ in range(2))
    with torch.no_grad():
        lhs, rhs = fn(a + b), fn(a) + fn(b) - fn(torch.zeros_like(a))
    return bool(torch.allclose(lhs, rhs, rtol=1e-3, atol=1e-4))


def one_step(models, datas, loss_fn, *, batch_size: int | None = None,
             **settings) -> bool:
    """Train for one epoch, quietly, as the lesson will (aelab.fit for one model,
    aelab.fit_many for a list, with the strategy the lesson picks); True when it
    ran and every loss was a finite number. An answer that passes the value
    checks but breaks the training loop raises here, inside the check.
    strategy="vmap" runs here, on any device, what a GPU's fit_many runs (a
    CPU's never picks it): an `if` on a tensor's value or an .item() fails
    there; strategy="sequential" trains in this process, where a CPU's
    fit_many would fork one process per model (slower for a check)."""
    from aelab.sweep import fit_many  # imported here: sweep imports aelab.train
    from aelab.train import fit
    if isinstance(models, nn.Module):
        data = datas if isinstance(datas, tuple) else (datas,)
        n = len(data[0])
        histories = [fit(models, data, loss_fn, num_epochs=1, quiet=True,
                         batch_size=batch_size or max(1, n // 2), **settings)]
    else:
        n = len(datas[0][0])
        histories = fit_many(list(models), list(datas), loss_fn, num_epochs=1,
                             quiet=True, batch_size=batch_size or max(1, n // 2),
                             **settings)
    return all(torch.isfinite(torch.as_tensor(h.train_loss)).all() for h in histories)
