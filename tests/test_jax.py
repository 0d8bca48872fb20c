"""The package under JAX, in one fresh interpreter where TensorFlow cannot be imported (as on our GPU
machines), with two forced host devices: a `.keras` file saved under TensorFlow runs, searches and
trains there; the fused cross-entropy equals the plain form; `keras.distribution.DataParallel`
over the two devices follows the one-device trajectory.

One interpreter for all the checks (each JAX start costs seconds); each check reports on its own.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, project_env, random_tokens
from keras_transformer.generation import decoding

pytest.importorskip("jax")

JAX_SCRIPT = r"""
import importlib.abc, json, sys, traceback

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoTensorFlow())
import jax, keras, numpy as np
import keras_transformer
from keras_transformer.generation import decoding

assert keras.backend.backend() == "jax", keras.backend.backend()
results = {}


def check(function):
    try:
        results[function.__name__] = function()
    except Exception:
        results[function.__name__] = {"error": traceback.format_exc()[-3000:]}
    return function


@check
def saved_model_file():
    data = np.load(sys.argv[2])
    model = keras.models.load_model(sys.argv[1])
    found = {"max_abs_diff": float(np.abs(np.asarray(model([data["source"], data["target"]]))
                                          - data["logits"]).max())}
    # beam search: the cache gather, the n-gram scatter
    tokens, scores, _ = decoding.beam_search(model, data["source"], 6, beam_size=3,
                                             no_repeat_ngram=2)
    found["beam_tokens_equal"] = bool((np.asarray(tokens) == data["beam_tokens"]).all())
    found["beam_score_diff"] = float(np.abs(np.asarray(scores) - data["beam_scores"]).max())
    tokens, _, masked, _ = decoding.greedy_decode_with_attention(model, data["source"], 5)
    found["recorded_greedy_equal"] = bool(
        (np.asarray(tokens) == np.asarray(decoding.greedy_decode(model, data["source"], 5))).all())
    found["masked_future_max"] = max(float(np.triu(np.asarray(w), 1).max()) for w in masked)
    # a seed past int32's range: TensorFlow's products wrapped; JAX raised OverflowError
    sampled = decoding.sample_decode(model, data["source"], 6, seed=123456789)
    found["sampled_equal"] = bool((np.asarray(sampled) == data["sampled"]).all())
    inputs, labels = [data["source"], data["target"][:, :-1]], data["target"][:, 1:]
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    found["loss_before"] = float(model.evaluate(inputs, labels, verbose=0))
    model.train_on_batch(inputs, labels)
    found["loss_after"] = float(model.evaluate(inputs, labels, verbose=0))
    return found


@check
def compiled_search():
    # the searches compiled by jax.jit give the eager tokens, and read weights set later
    data = np.load(sys.argv[2])
    model = keras.models.load_model(sys.argv[1])
    source = data["source"]
    greedy = decoding.jax_compiled(model, lambda s: decoding.greedy_decode(model, s, 6))
    found = {"greedy_equal": bool((np.asarray(greedy(source))
                                   == np.asarray(decoding.greedy_decode(model, source, 6))).all())}
    model.set_weights([w * 1.5 for w in model.get_weights()])  # as the train job's twin is set
    found["new_weights_read"] = bool((np.asarray(greedy(source))
                                      == np.asarray(decoding.greedy_decode(model, source, 6))).all())
    return found


@check
def fused_cross_entropy():
    from keras_transformer.training.cross_entropy import label_smoothed_cross_entropy

    rng = np.random.default_rng(0)
    z = (4.0 * rng.normal(size=(3, 11, 37))).astype("float32")
    y = rng.integers(0, 37, size=(3, 11)).astype("int32")
    w = rng.random((3, 11)).astype("float32")

    def plain(z):
        lp = jax.nn.log_softmax(z, axis=-1)
        true = np.take_along_axis(lp, y[..., None], -1)[..., 0]
        return ((-0.9 * true - 0.1 * lp.mean(-1)) * w).sum()

    fused = lambda z: (label_smoothed_cross_entropy(y, z, 0.1, 4) * w).sum()  # noqa: E731
    found = {}
    for name, f in (("eager", jax.value_and_grad(fused)),
                    ("jit", jax.jit(jax.value_and_grad(fused)))):
        (loss, grad), (want, want_grad) = f(z), jax.value_and_grad(plain)(z)
        found[name] = {"loss_rel": abs(float(loss) - float(want)) / abs(float(want)),
                       "grad_abs": float(abs(grad - want_grad).max())}
    found["bfloat16_grad_dtype"] = str(jax.grad(fused)(jax.numpy.asarray(z, "bfloat16")).dtype)
    return found


@check
def data_parallel():
    from keras_transformer import build_transformer, preset
    from keras_transformer.training.loss import MaskedAccuracy, MaskedSparseCrossEntropy

    rng = np.random.default_rng(0)
    source = rng.integers(4, 41, (32, 6)).astype("int32")
    target = rng.integers(4, 43, (32, 8)).astype("int32")
    target[:16, 6:] = 0  # padding: the two halves of a batch hold different numbers of tokens
    config = preset("tiny", source_vocab_size=41, target_vocab_size=43, dropout=0.0,
                    num_layers=1)  # one block: half the tracing of the two fits

    def fit(distribution):
        keras.distribution.set_distribution(distribution)
        keras.utils.set_random_seed(0)
        model = build_transformer(config)
        # plain SGD: the weights then show the gradients (Adam would blow up float noise in the
        # near-zero ones to whole steps)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=MaskedSparseCrossEntropy(0.1),
                      metrics=[MaskedAccuracy()])
        history = model.fit((source, target[:, :-1]), target[:, 1:], batch_size=16, epochs=3,
                            shuffle=False, verbose=0)
        return history.history["loss"], [np.asarray(w) for w in model.get_weights()]

    one, one_weights = fit(None)
    parallel = keras.distribution.DataParallel()
    two, two_weights = fit(parallel)
    keras.distribution.set_distribution(None)
    return {"one": one, "two": two, "devices": len(parallel.device_mesh.devices.flat),
            "weights": max(float(np.max(np.abs(a - b))) for a, b in zip(one_weights, two_weights))}


results["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def under_jax(tmp_path_factory):
    """What the checks of JAX_SCRIPT found, given a tiny model saved under TensorFlow and its
    outputs on a batch."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("saves the reference under the TensorFlow backend")
    from keras_transformer import build_transformer, preset

    folder = tmp_path_factory.mktemp("jax")
    model = build_transformer(preset("tiny", source_vocab_size=41, target_vocab_size=43))
    rng = np.random.default_rng(0)
    source, target = random_tokens(rng, 4, 6, 41), random_tokens(rng, 4, 5, 43)
    source[0, 4:] = 0  # padding travels too
    beam_tokens, beam_scores, _ = decoding.beam_search(model, source, 6, beam_size=3,
                                                       no_repeat_ngram=2)
    np.savez(folder / "batch.npz", source=source, target=target,
             logits=np.asarray(model([source, target])), beam_tokens=beam_tokens,
             beam_scores=beam_scores,
             sampled=np.asarray(decoding.sample_decode(model, source, 6, seed=123456789)))
    model.save(folder / "model.keras")
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(folder / "model.keras"), str(folder / "batch.npz")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=project_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                        XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def found(under_jax, check):
    assert "error" not in under_jax[check], under_jax[check]["error"]
    return under_jax[check]


def test_tensorflow_is_never_imported(under_jax):
    assert under_jax["tensorflow_imported"] is False


def test_keras_file_saved_under_tensorflow_runs_and_trains_under_jax(under_jax):
    values = found(under_jax, "saved_model_file")
    assert values["max_abs_diff"] < 1e-5
    assert values["beam_tokens_equal"] and values["beam_score_diff"] < 1e-4
    assert values["recorded_greedy_equal"]
    assert values["masked_future_max"] == 0.0  # cached decoding's weights, under JAX too
    assert values["sampled_equal"]  # the same samples for a large seed on both backends
    assert values["loss_after"] < values["loss_before"]


def test_searches_compiled_by_jax_equal_the_eager_ones_and_read_new_weights(under_jax):
    values = found(under_jax, "compiled_search")
    assert values["greedy_equal"] and values["new_weights_read"]


def test_fused_cross_entropy_equals_the_plain_form_under_jax(under_jax):
    values = found(under_jax, "fused_cross_entropy")
    for mode in ("eager", "jit"):
        assert values[mode]["loss_rel"] < 1e-4 and values[mode]["grad_abs"] < 1e-6, values
    assert values["bfloat16_grad_dtype"] == "bfloat16"


def test_jax_data_parallel_follows_the_single_device_trajectory(under_jax):
    values = found(under_jax, "data_parallel")
    assert values["devices"] == 2
    assert values["one"][-1] < values["one"][0]  # it trains
    # the global batch is split across the devices and the loss is still the global batch's
    # mean: the same numbers as one device, up to the order of float32 sums
    for single, parallel in zip(values["one"], values["two"]):
        assert abs(single - parallel) < 1e-4 * single
    assert values["weights"] < 1e-4
