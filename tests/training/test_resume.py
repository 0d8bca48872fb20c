"""Stop the train job at any moment and run the same command again: it resumes where it stopped."""

import csv
import re
import signal
import subprocess
import sys
import time

import numpy as np
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
            "--examples", 0, "--steps-per-epoch", 12, "--bleu-sentences", 0,
            "--keep-best", "val_loss",
            "--validation-data", held_out["validation_data"], "--test-data", held_out["test_data"],
            "--mixed-precision", "float32", "--no-tune-alpha",
            "--set", "num_layers=1"]  # one block: half the tracing in each of the two processes
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


# A line the job prints, and the phase that begins when it is printed.
PHASES = {"data": "precision:", "vocabulary": "SentencePiece vocabular",
          "first epoch": "first training step done", "a later epoch": "Epoch 2/3",
          "report": "trained in", "alpha tuning": "translated 20 test sentences"}


@pytest.mark.slow  # a killed job and its restart per phase: minutes
@pytest.mark.parametrize("phase", PHASES)
def test_a_kill_in_any_phase_resumes_and_finishes(phase, small_tsv, held_out, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", small_tsv, "--preset", "tiny", "--vocab-size", 300,
            "--epochs", 3, "--steps-per-epoch", 20, "--bleu-sentences", 10, "--out", run,
            "--examples", 0, "--mixed-precision", "float32", "--tune-alpha",
            "--validation-data", held_out["validation_data"], "--test-data", held_out["test_data"]]
    first = _cli(*args)
    for line in first.stdout:  # kill it as the phase begins
        if PHASES[phase] in line:
            first.send_signal(signal.SIGKILL)
            break
    else:
        pytest.fail(f"the job ended without printing {PHASES[phase]!r}")
    first.wait()
    second = _cli(*args)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    finished = RunDir(run)
    assert _epochs_in_history(run) == [0, 1, 2]
    assert finished.status_file.exists() and finished.decoding_file.exists(), output
    assert "test (best): BLEU" in output


def _last_weights(run):
    import h5py

    path = sorted(RunDir(run).checkpoints.glob("epoch_*.weights.h5"))[-1]
    with h5py.File(path) as file:
        found = []
        file.visititems(lambda name, item: found.append(item[()]) if hasattr(item, "shape") else None)
    return path.name, found


@pytest.mark.slow  # four train jobs
@pytest.mark.parametrize("steps_per_epoch", [0, 12], ids=["a pass an epoch", "12 steps an epoch"])
def test_a_resumed_run_trains_on_the_batches_of_an_uninterrupted_one(steps_per_epoch, small_tsv,
                                                                    held_out, tmp_path,
                                                                    monkeypatch):
    """Stopped after its second epoch and run again, a run ends with the weights of a run never
    stopped: it trained on the same batches in the same order (a replay of the first epochs'
    data, or a restart of the stream, would change them)."""
    from conftest import quiet, tiny_settings
    from keras_transformer.training import callbacks
    from keras_transformer.training.job import train

    settings = tiny_settings(small_tsv, epochs=3, steps_per_epoch=steps_per_epoch,
                             keep_checkpoints=1, bleu_sentences=0, keep_best="val_loss",
                             **held_out)
    train(settings, tmp_path / "whole", examples=0, verbose=0, log=quiet)

    write = callbacks.EpochHistory.on_epoch_end

    def stop_after_the_second_epoch(self, epoch, logs=None):
        write(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt  # after BackupAndRestore saved epoch 2
    monkeypatch.setattr(callbacks.EpochHistory, "on_epoch_end", stop_after_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(settings, tmp_path / "stopped", examples=0, verbose=0, log=quiet)
    monkeypatch.undo()
    train(settings, tmp_path / "stopped", examples=0, verbose=0, log=quiet)

    (name, whole), (resumed_name, resumed) = _last_weights(tmp_path / "whole"), _last_weights(
        tmp_path / "stopped")
    assert name == resumed_name == "epoch_0003.weights.h5"
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)
