"""tf.distribute: MirroredStrategy on two logical CPU devices, MultiWorkerMirroredStrategy on loopback."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keras_transformer.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]

MIRRORED_SCRIPT = r"""
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_transformer import build_transformer, preset
from keras_transformer.training import compile_transformer

rng = np.random.default_rng(0)
source = rng.integers(4, 41, (64, 6)).astype("int32")
target = rng.integers(4, 43, (64, 8)).astype("int32")
target[:32, 6:] = 0  # padding: token counts differ between sentences ...
data = tf.data.Dataset.from_tensor_slices(((source, target[:, :-1]), target[:, 1:])).batch(16)
config = preset("tiny", source_vocab_size=41, target_vocab_size=43)
weights = None

def fit(strategy):
    global weights
    with strategy.scope():
        model = build_transformer(config)
        compile_transformer(model, config.d_model, warmup_steps=10, learning_rate_scale=2.0)
    if weights is None:
        weights = model.get_weights()
    model.set_weights(weights)  # the same start on both sides
    return model.fit(data, epochs=4, verbose=0).history["loss"]

one = fit(tf.distribute.get_strategy())
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
two = fit(mirrored)
print(json.dumps({"one": one, "two": two, "replicas": mirrored.num_replicas_in_sync}))
"""


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


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


@pytest.mark.slow
def test_multi_worker_training_from_the_command_line(small_tsv, tmp_path):
    import csv

    import keras
    import numpy as np

    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    out = tmp_path / "run"
    # --steps-per-epoch 0 (a pass): the job must give both workers the same number of steps itself
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", str(small_tsv),
               "--preset", "tiny", "--vocab-size", "300", "--batch-tokens", "1024",
               "--epochs", "2", "--strategy", "multi_worker", "--out", str(out),
               "--examples", "0", "--steps-per-epoch", "0", "--bleu-sentences", "0",
               "--keep-best", "val_loss"]
    workers = [subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                       "task": {"type": "worker", "index": index}})))
        for index in range(2)]
    try:
        outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    assert "2 replicas" in outputs[0]
    chief, other = RunDir(out), RunDir(tmp_path / "run.worker1")
    assert chief.best_model.exists()          # the chief wrote the run ...
    assert other.best_model.exists()          # ... and the other worker wrote aside
    with open(chief.history) as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]
    assert len(losses) == 2 and losses[1] < losses[0]  # it trains
    # Gradients are averaged across the workers, so both hold the same weights after
    # training on different halves of the data.
    for mine, theirs in zip(keras.models.load_model(chief.best_model, compile=False).weights,
                            keras.models.load_model(other.best_model, compile=False).weights):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5, atol=1e-6)


def test_multi_worker_support_refuses_a_keras_it_was_not_tested_with(tiny_model, monkeypatch):
    import keras

    from keras_transformer.distribution import check_keras_internals

    check_keras_internals(tiny_model)  # the pinned Keras: fine
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(RuntimeError, match="tested with Keras 3.15; this is Keras 3.99.0"):
        check_keras_internals(tiny_model)
    monkeypatch.undo()
    monkeypatch.setattr(tiny_model, "_maybe_symbolic_build", None, raising=False)
    with pytest.raises(RuntimeError, match="which lacks _maybe_symbolic_build"):
        check_keras_internals(tiny_model)
