"""The model runs under JAX where TensorFlow cannot be imported (as on our GPU machines)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import random_tokens
from keras_transformer.generation import decoding

ROOT = Path(__file__).resolve().parents[1]

JAX_SCRIPT = r"""
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoTensorFlow())
import keras, numpy as np
import keras_transformer

assert keras.backend.backend() == "jax", keras.backend.backend()
data = np.load(sys.argv[2])
model = keras.models.load_model(sys.argv[1])
logits = np.asarray(model([data["source"], data["target"]]))
print("max_abs_diff", float(np.abs(logits - data["logits"]).max()))

from keras_transformer.generation import decoding  # beam search: the cache gather, the n-gram scatter
tokens, scores, _ = decoding.beam_search(model, data["source"], 6, beam_size=3,
                                         no_repeat_ngram=2)
assert (np.asarray(tokens) == data["beam_tokens"]).all(), np.asarray(tokens)
print("beam_score_diff", float(np.abs(np.asarray(scores) - data["beam_scores"]).max()))

inputs, labels = [data["source"], data["target"][:, :-1]], data["target"][:, 1:]
model.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
before = float(model.evaluate(inputs, labels, verbose=0))
model.train_on_batch(inputs, labels)
after = float(model.evaluate(inputs, labels, verbose=0))
print("loss_before", before, "loss_after", after)

from keras_transformer.generation import decoding
tokens, _, masked, _ = decoding.greedy_decode_with_attention(model, data["source"], 5)
assert (np.asarray(tokens) == np.asarray(decoding.greedy_decode(model, data["source"], 5))).all()
print("masked_future_max", max(float(np.triu(np.asarray(w), 1).max()) for w in masked))
assert "tensorflow" not in sys.modules
"""


def test_keras_file_saved_under_tensorflow_runs_and_trains_under_jax(tiny_model, tmp_path):
    pytest.importorskip("jax")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("saves the reference under the TensorFlow backend")
    rng = np.random.default_rng(0)
    source, target = random_tokens(rng, 4, 6, 41), random_tokens(rng, 4, 5, 43)
    source[0, 4:] = 0  # padding travels too
    beam_tokens, beam_scores, _ = decoding.beam_search(tiny_model, source, 6, beam_size=3,
                                                       no_repeat_ngram=2)
    np.savez(tmp_path / "batch.npz", source=source, target=target,
             logits=np.asarray(tiny_model([source, target])), beam_tokens=beam_tokens,
             beam_scores=beam_scores)
    tiny_model.save(tmp_path / "model.keras")
    script = tmp_path / "run_under_jax.py"
    script.write_text(JAX_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "model.keras"),
                             str(tmp_path / "batch.npz")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    values = dict(zip(result.stdout.split()[::2], map(float, result.stdout.split()[1::2])))
    assert values["max_abs_diff"] < 1e-5
    assert values["loss_after"] < values["loss_before"]
    assert values["masked_future_max"] == 0.0  # cached decoding's weights, under JAX too
    assert values["beam_score_diff"] < 1e-4
