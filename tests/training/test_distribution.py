"""Distribution: MirroredStrategy on two logical CPU devices, MultiWorkerMirroredStrategy on
loopback ports (slow), `--strategy data_parallel` on two forced JAX host devices (slow; the
trajectory check is in tests/test_jax.py)."""

import json
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, project_env
from keras_transformer.run_dir import RunDir

MIRRORED_SCRIPT = r"""
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_transformer import build_transformer, preset
from keras_transformer.training.schedule import compile_transformer

rng = np.random.default_rng(0)
source = rng.integers(4, 41, (64, 6)).astype("int32")
target = rng.integers(4, 43, (64, 8)).astype("int32")
target[:32, 6:] = 0  # padding: token counts differ between sentences ...
data = tf.data.Dataset.from_tensor_slices(((source, target[:, :-1]), target[:, 1:])).batch(16)
# one block: what is distributed is the same, and tracing the replicated step takes half as long
config = preset("tiny", source_vocab_size=41, target_vocab_size=43, num_layers=1)
weights = None

def fit(strategy):
    global weights
    with strategy.scope():
        model = build_transformer(config)
        compile_transformer(model, config.d_model, warmup_steps=10, learning_rate_scale=2.0)
    if weights is None:
        weights = model.get_weights()
    model.set_weights(weights)  # the same start on both sides
    return model.fit(data, epochs=2, verbose=0).history["loss"]

one = fit(tf.distribute.get_strategy())
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
two = fit(mirrored)
print(json.dumps({"one": one, "two": two, "replicas": mirrored.num_replicas_in_sync}))
"""


def _env(**extra):
    return project_env(**extra)


def test_mirrored_strategy_follows_the_single_device_loss_trajectory():
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                            text=True, env=_env(), timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["replicas"] == 2
    assert losses["one"][-1] < losses["one"][0]  # it trains
    # ... and the same global batch gives the same trajectory. Each replica averages over
    # its own tokens, so with unequal padding the two differ slightly, not more.
    for single, mirrored in zip(losses["one"], losses["two"]):
        assert abs(single - mirrored) < 0.02 * single


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(command, out_logs, cluster, **env):
    """Two workers of `command` on loopback ports, each writing its output to a file: a pipe read
    after the other worker's would fill (64 KiB) and block that worker in mid-step, and the other
    in the all-reduce waiting for it (the "hang" of the first multi-worker test)."""
    workers = []
    for index, log in enumerate(out_logs):
        with open(log, "w") as file:
            workers.append(subprocess.Popen(
                command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT, text=True,
                env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                               "task": {"type": "worker", "index": index}}),
                         **env)))
    return workers


def _wait(workers, seconds):
    """Exit codes of `workers`, every one killed if they are not all done within `seconds`."""
    deadline = time.monotonic() + seconds
    try:
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the workers did not finish within {seconds} s")
    finally:
        for worker in workers:
            worker.kill()
    return [worker.returncode for worker in workers]


WORKER_TROUBLE = ("Collective", "unhealthy", "heartbeat", "Traceback", "lost", "crashed")


def _train_command(data, out, *options):
    return [sys.executable, "-m", "keras_transformer", "train", "--data", str(data),
            "--preset", "tiny", "--vocab-size", "300", "--batch-tokens", "1024", "--examples", "0",
            "--strategy", "multi_worker", "--out", str(out), *options]


@pytest.mark.slow
def test_two_workers_train_the_real_corpus_recipe_to_a_time_budget(small_tsv, tmp_path):
    import csv

    import keras
    import numpy as np

    out, logs = tmp_path / "run", [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    # the real-corpus recipe as it is (validation BLEU, cooldown, early stopping, alpha tuning),
    # with short epochs, so the budget ends in the middle of an epoch after several of them
    command = _train_command(small_tsv, out, "--steps-per-epoch", "25", "--bleu-sentences", "40",
                             "--max-minutes", "0.75")
    # TensorFlow's C++ logging at its own default (everything), so a collective aborted at the
    # end would show ("E0000 ... StartAbort ... tasks have crashed")
    codes = _wait(_start_workers(command, logs, cluster, TF_CPP_MIN_LOG_LEVEL="0"), 360)
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    for output in outputs:
        assert not [word for word in WORKER_TROUBLE + ("StartAbort",) if word in output], \
            output[-3000:]
        assert "2 replicas" in output
    # one clock: both stopped after the same step, mid-epoch, and the chief wrote the run
    steps = [re.search(r"the time budget of 0.75 minutes is spent: training stopped after \d+ s "
                       r"\(this session: (\d+) steps\)", output) for output in outputs]
    assert all(steps), outputs[0][-2000:]
    assert steps[0].group(1) == steps[1].group(1)
    chief, other = RunDir(out), RunDir(tmp_path / "run.worker1")
    progress = json.loads(chief.progress.read_text())
    assert progress["budget_spent"]
    with open(chief.history) as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= 3 and all(float(row["val_bleu"]) >= 0 for row in rows)
    assert [int(row["epoch"]) for row in rows] == list(range(len(rows)))
    if progress["stopped_after"] == "step":  # (or right after an epoch's validation, when the
        assert int(steps[0].group(1)) % 25   # budget ran out there) the budget ended mid-epoch
    assert "trained in step with the chief" in outputs[1]  # the chief reports ...
    assert "test (best)" in outputs[0] and "test (best)" not in outputs[1]
    assert chief.decoding_file.exists() and not other.decoding_file.exists()
    # ... and both kept the same model: the same validation scores, the same weights
    with open(other.history) as file:
        assert [row["val_bleu"] for row in csv.DictReader(file)] == [row["val_bleu"] for row in rows]
    for mine, theirs in zip(keras.models.load_model(chief.best_model, compile=False).weights,
                            keras.models.load_model(other.best_model, compile=False).weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_a_restart_resumes(small_tsv, tmp_path):
    import csv

    out, logs = tmp_path / "run", [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    command = _train_command(small_tsv, out, "--steps-per-epoch", "40", "--bleu-sentences", "20",
                             "--epochs", "4", "--max-minutes", "30")
    workers = _start_workers(command, logs, cluster)
    chief = RunDir(out)
    try:
        deadline = time.monotonic() + 300
        while not (chief.history.exists() and len(chief.history.read_text().splitlines()) >= 2):
            assert time.monotonic() < deadline and workers[0].poll() is None, logs[0].read_text()
            time.sleep(0.5)
        time.sleep(2)  # into the second epoch
        workers[1].kill()  # SIGKILL: no goodbye to the other worker
        killed = time.monotonic()
        code = workers[0].wait(timeout=150)
        waited = time.monotonic() - killed
    finally:
        for worker in workers:
            worker.kill()
    output = logs[0].read_text()
    assert code == 3, output[-3000:]
    assert waited <= 120, waited
    assert "error: a worker of this multi-worker run was lost" in output, output[-3000:]
    with open(chief.history) as file:
        done = len(list(csv.DictReader(file)))
    assert done < 4
    used = json.loads(chief.progress.read_text())["train_seconds"]

    # the same commands again: both resume from the last finished epoch
    codes = _wait(_start_workers(command, [tmp_path / "again0.log", tmp_path / "again1.log"],
                                 {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}),
                  360)
    again = (tmp_path / "again0.log").read_text()
    assert codes == [0, 0], again[-3000:]
    with open(chief.history) as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == [0, 1, 2, 3]
    assert json.loads(chief.progress.read_text())["train_seconds"] > used  # counted on, not anew
    assert chief.status_file.exists()


def test_multi_worker_support_refuses_a_keras_it_was_not_tested_with(tiny_model, monkeypatch):
    import keras

    from keras_transformer.training.distribution import check_keras_internals

    check_keras_internals(tiny_model)  # the pinned Keras: fine
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(RuntimeError, match="tested with Keras 3.15; this is Keras 3.99.0"):
        check_keras_internals(tiny_model)
    monkeypatch.undo()
    monkeypatch.setattr(tiny_model, "_maybe_symbolic_build", None, raising=False)
    with pytest.raises(RuntimeError, match="which lacks _maybe_symbolic_build"):
        check_keras_internals(tiny_model)


TWO_HOST_DEVICES = {"KERAS_BACKEND": "jax",
                    "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


@pytest.mark.slow  # JAX compiles the step once per bucket shape: minutes on two CPU devices
def test_data_parallel_trains_from_the_command_line(small_tsv, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "keras_transformer", "train", "--data", str(small_tsv),
         "--strategy", "data_parallel", "--preset", "tiny", "--vocab-size", "300",
         "--batch-tokens", "1024", "--epochs", "1", "--steps-per-epoch", "8",
         "--bleu-sentences", "10", "--out", str(out), "--examples", "0", "--no-tune-alpha"],
        capture_output=True, text=True, env=_env(**TWO_HOST_DEVICES), timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "strategy data_parallel (2 replicas)" in result.stdout
    assert RunDir(out).best_model.exists() and "test (best)" in result.stdout


@pytest.mark.parametrize("strategy, backend, instead", [
    ("mirrored", "jax", "data_parallel"), ("multi_worker", "jax", "data_parallel"),
    ("data_parallel", "tensorflow", "mirrored")])
def test_a_strategy_on_the_wrong_backend_says_which_to_use(strategy, backend, instead):
    from keras_transformer.training.distribution import check_backend

    with pytest.raises(ValueError, match=f"--strategy {strategy} runs on the .* backend.*"
                                         f"use --strategy {instead}"):
        check_backend(strategy, backend)
    check_backend("default", backend)  # one device: any backend


def test_pad_rows_to_multiple_adds_only_padding_rows():
    import numpy as np
    import tensorflow as tf

    from pipelines.batching import pad_rows_to_multiple

    batch = ((tf.ones((5, 3), tf.int32), tf.ones((5, 4), tf.int32)), tf.ones((5, 4), tf.int32))
    (source, target_in), target_out = pad_rows_to_multiple(batch, 4)
    assert source.shape == (8, 3) and target_in.shape == (8, 4) and target_out.shape == (8, 4)
    np.testing.assert_array_equal(source[:5], batch[0][0])
    assert not np.any(source[5:]) and not np.any(target_out[5:])  # [PAD] is 0
    assert pad_rows_to_multiple(batch, 5)[1].shape == (5, 4)  # already a multiple


@pytest.mark.slow
def test_two_jax_processes_train_in_step_with_data_parallel(small_tsv, tmp_path):
    import csv

    import keras
    import numpy as np

    out, logs = tmp_path / "run", [tmp_path / "process0.log", tmp_path / "process1.log"]
    addresses = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", str(small_tsv),
               "--strategy", "data_parallel", "--preset", "tiny", "--vocab-size", "300",
               "--batch-tokens", "1024", "--steps-per-epoch", "8", "--bleu-sentences", "10",
               "--epochs", "2", "--max-minutes", "10", "--out", str(out), "--examples", "0",
               "--no-tune-alpha"]
    processes = []
    for index, log in enumerate(logs):
        with open(log, "w") as file:
            processes.append(subprocess.Popen(
                command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT, text=True,
                env=_env(KERAS_BACKEND="jax", KERAS_DISTRIBUTION_JOB_ADDRESSES=addresses,
                         KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                         KERAS_DISTRIBUTION_PROCESS_ID=str(index))))
    codes = _wait(processes, 900)
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert all("strategy data_parallel (2 replicas)" in output for output in outputs)
    assert "test (best)" in outputs[0] and "trained in step with the chief" in outputs[1]
    chief, other = RunDir(out), RunDir(tmp_path / "run.worker1")
    with open(chief.history) as file, open(other.history) as other_file:
        rows, other_rows = list(csv.DictReader(file)), list(csv.DictReader(other_file))
    assert len(rows) == 2 and [row["val_bleu"] for row in rows] == [
        row["val_bleu"] for row in other_rows]
    assert [row["loss"] for row in rows] == [row["loss"] for row in other_rows]
    for mine, theirs in zip(keras.models.load_model(chief.best_model, compile=False).weights,
                            keras.models.load_model(other.best_model, compile=False).weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


@pytest.mark.slow
def test_workers_with_different_settings_all_stop_naming_them(small_tsv, tmp_path):
    """A worker with another budget would take another number of steps, and the others would wait
    for it forever: every worker stops at once, naming the setting."""
    out, logs = tmp_path / "run", [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index, minutes in enumerate(("1", "2")):
        command = _train_command(small_tsv, out, "--steps-per-epoch", "10", "--max-minutes", minutes)
        with open(logs[index], "w") as file:
            workers.append(subprocess.Popen(
                command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT, text=True,
                env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                               "task": {"type": "worker", "index": index}}))))
    codes = _wait(workers, 300)
    outputs = [log.read_text() for log in logs]
    assert codes == [2, 2], outputs[0][-3000:] + outputs[1][-3000:]
    for output, minutes in zip(outputs, ("1.0", "2.0")):
        assert f"different settings: max_minutes (here: max_minutes={minutes})" in output, output
