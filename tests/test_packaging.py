"""The installed package works with its declared extras: a wheel, built from this checkout and
installed into a fresh virtual environment with `pip install WHEEL[tensorflow]`, trains."""

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command, **options):
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=options.pop("timeout", 900), **options)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def pinned_constraints(path):
    """requirements.txt as pip constraints (no extras, no comments): the tested versions."""
    lines = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            lines.append(re.sub(r"\[[^\]]*\]", "", line))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow  # a TensorFlow install into a fresh venv: over a minute on 2 cores
@pytest.mark.skipif(os.environ.get("KT_SKIP_WHEEL_TEST") == "1", reason="KT_SKIP_WHEEL_TEST=1")
def test_the_wheel_installs_with_its_tensorflow_extra_and_trains(tmp_path):
    # from a copy of the source: setuptools would reuse a stale build/ left in the checkout
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".pytest_cache"))
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", dist, source])
    wheel = next(dist.glob("keras_transformer-*.whl"))
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # pip's cache holds the pinned wheels CI installed first: nothing new is downloaded
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", pinned_constraints(tmp_path / "constraints.txt"), f"{wheel}[tensorflow]"])
    # as a user runs it: none of our test settings (PYTHONPATH, TF_CPP_MIN_LOG_LEVEL)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    command = tmp_path / "venv" / "bin" / "keras-transformer"
    assert "--max-minutes" in run([command, "train", "--help"], env=env, cwd=tmp_path)
    done = subprocess.run([str(part) for part in (
        command, "train", "--preset", "tiny", "--epochs", "2", "--steps-per-epoch", "5",
        "--bleu-sentences", "10", "--examples", "0", "--out", tmp_path / "run")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "test (best): BLEU" in done.stdout
    # nothing that looks like a failure when nothing failed (issue 17)
    for alarming in ("cuInit", "CUDA error", "E0000", "ran out of data", "Traceback"):
        assert alarming not in done.stdout + done.stderr, alarming
    # the figures need the plots extra, and say so
    done = subprocess.run([command, "positional", "--out", tmp_path / "pe.png"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "pip install 'keras-transformer[plots]'" in done.stderr
