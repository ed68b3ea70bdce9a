"""`aelab run` executes a lesson's own text; the lesson's exercises catch the
usual wrong answers; a student copy stops at the first unanswered exercise."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from lesson_runs import shared_run

from aelab import runner

ROOT = Path(__file__).resolve().parent.parent
PRETRAINING = ROOT / "lessons" / "01_pretraining.py"


def aelab(*args, cwd, cache):
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "aelab.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600, check=False)


def lesson_namespace(path: Path, define: str, **given) -> dict:
    """The namespace of a lesson's import cells (up to its seed cell) plus the
    one code cell that defines `define`: the exercise check, run alone (with
    `given` as the student's answers it is first called on)."""
    namespace, cells = dict(given), jupytext.read(path).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    seed = next(i for i, src in enumerate(code) if "seed_everything(" in src)
    for src in code[:seed + 1] + [next(s for s in code if f"def {define}(" in s)]:
        exec(compile(src, str(path), "exec"), namespace)  # noqa: S102
    return namespace


def test_run_list_names_every_lesson(tmp_path):
    result = aelab("run", "--list", cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    for name in runner.available():
        assert f"  {name} " in result.stdout
    assert "pretraining" in runner.available() and "tour" in runner.available()


def test_unknown_lesson_is_one_line_naming_the_lessons(tmp_path):
    result = aelab("run", "no-such-lesson", cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "no-such-lesson" in result.stderr and "pretraining" in result.stderr


def test_sparse_loss_check_catches_the_usual_mistakes(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(PRETRAINING, "check_sparse_loss",
                          sparse_loss=lambda *args: None)
    check = ns["check_sparse_loss"]
    F = ns["F"]

    def no_l1(model, batch, lam):
        X, = batch
        return F.mse_loss(model(X), X)

    def l1_sum(model, batch, lam):
        X, = batch
        z = model.encode(X)
        return F.mse_loss(model.decode(z, X.shape[-2:]), X) + lam * z.abs().sum()

    def right(model, batch, lam):
        X, = batch
        z = model.encode(X)
        return F.mse_loss(model.decode(z, X.shape[-2:]), X) + lam * z.abs().mean()

    def placeholder(model, batch, lam):
        X, = batch
        ...  # your code here

    assert not check(placeholder).answered
    assert "L1 term is missing" in check(no_l1).message
    assert "not its sum" in check(l1_sum).message
    assert check(right).ok
    with pytest.raises(ns["aelab"].exercises.ExerciseNotDone, match="Exercise 1"):
        check(no_l1).require()


def test_freeze_check_catches_an_encoder_left_trainable(monkeypatch):
    monkeypatch.setenv("AELAB_PROFILE", "fast")
    ns = lesson_namespace(PRETRAINING, "check_freeze", freeze=lambda enc: None)
    check = ns["check_freeze"]

    def eval_only(encoder):
        return encoder.eval()

    def grads_only(encoder):
        return encoder.requires_grad_(False)

    def right(encoder):
        return encoder.requires_grad_(False).eval()

    assert "requires_grad=True" in check(eval_only).message
    assert "eval()" in check(grads_only).message
    assert "not None" in check(lambda encoder: None).message or \
        not check(lambda encoder: None).answered
    assert check(right).ok


@pytest.mark.slow
def test_run_writes_the_notebook_figures_and_tables_and_follows_the_text(tmp_path):
    run = shared_run("pretraining")
    out, cache = run.out, run.cache
    assert not run.ok(), run.ok()
    assert (out / "01_pretraining.ipynb").stat().st_size > 0
    assert len(list((out / "figures").glob("*.png"))) >= 5
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("method,budget,seed,accuracy")
    claims = json.loads((out / "claims.json").read_text())
    statuses = {c["claim"]: c["status"] for c in claims}
    verified = run.verified()
    assert "INCONCLUSIVE" in verified and "criterion:" in verified
    target = "a sparse AE's frozen encoder gives above 80% for 160-1000 labels"
    # fast: 2 seeds and short training decide nothing, and the verdict says so
    assert statuses[target] == "INCONCLUSIVE"
    before = next(c for c in claims if c["claim"] == target)
    assert "health gate" in before["reason"] and before["settle"]
    # an instructor lowers the threshold in a copy of the text: the verdict follows
    text = PRETRAINING.read_text()
    edited = text.replace("at_least(name, 80,", "at_least(name, 5,")
    assert edited != text
    copy = tmp_path / "lessons" / PRETRAINING.name
    copy.parent.mkdir()
    copy.write_text(edited)
    result = aelab("run", copy, "--profile", "fast", "--out", tmp_path / "edited",
                   cwd=tmp_path, cache=cache)
    assert result.returncode == 0, result.stderr
    claims = json.loads((tmp_path / "edited" / "claims.json").read_text())
    edited_claim = next(c for c in claims if c["claim"] == target)
    assert "above 5 at every budget" in edited_claim["criterion"]
    assert "needs > 5 points" in edited_claim["measured"]
    assert "needs > 80 points" in before["measured"]


@pytest.mark.slow
def test_student_copy_stops_at_the_first_exercise_with_one_line(tmp_path):
    result = aelab("student", PRETRAINING, tmp_path / "student", cwd=tmp_path,
                   cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    student = tmp_path / "student" / PRETRAINING.name
    assert (student.with_suffix(".ipynb")).exists()
    cells = jupytext.read(student).cells
    assert not [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert not [c for c in cells if c.source.startswith("*Solution")]
    result = aelab("run", student, "--profile", "fast", "--out", tmp_path / "out",
                   cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ExerciseNotDone: Exercise 1 is not answered yet" in errors[0]
