"""Stop the train job at any moment and run the same command again: it resumes where it stopped."""

import csv
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, project_env
from keras_transformer.run_dir import RunDir


def _cli(*args, env=None):
    """`python -m keras_transformer ARGS` in a child process; stdout and stderr together."""
    return subprocess.Popen([sys.executable, "-m", "keras_transformer", *map(str, args)], cwd=ROOT,
                            env=env or project_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _epochs_in_history(run):
    with open(RunDir(run).history) as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_killed_training_resumes_where_it_stopped(small_tsv, held_out, tmp_path):
    run = tmp_path / "resumed"
    args = ["train", "--data", small_tsv, "--preset", "tiny", "--vocab-size", 300,
            "--batch-tokens", 1024, "--warmup-steps", 50, "--epochs", 3, "--out", run,
            "--examples", 0, "--steps-per-epoch", 25, "--bleu-sentences", 10,
            "--validation-data", held_out["validation_data"], "--test-data", held_out["test_data"],
            "--mixed-precision", "float32", "--no-tune-alpha"]
    first = _cli(*args)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it as soon as an epoch is done
        if RunDir(run).history.exists() and len(_epochs_in_history(run)) >= 1:
            break
        if first.poll() is not None:
            pytest.fail("training ended before it could be interrupted:\n" + first.stdout.read())
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before_kill = len(_epochs_in_history(run))
    assert 1 <= done_before_kill < 3

    # as a user runs it, TensorFlow's logging left as it is: the job's output holds our lines and
    # Keras's, none of TensorFlow's C++ log lines ("E0000 ... oneDNN supports DT_BOOL only on
    # platforms with AVX-512", "I0000 ... oneDNN custom operations are on", ...)
    env = project_env()
    del env["TF_CPP_MIN_LOG_LEVEL"]
    second = _cli(*args, env=env)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert not re.search(r"^[IWEF]\d{4} \d\d:\d\d:", output, re.MULTILINE), output
    assert f"Epoch {done_before_kill + 1}/3" in output
    assert "Epoch 1/3" not in output  # resumed, not restarted
    assert _epochs_in_history(run) == [0, 1, 2]
    assert "exact match" in output
