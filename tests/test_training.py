"""Loss, metric and schedule of the paper, and model.fit on tiny data."""

import keras
import numpy as np
import pytest

from conftest import random_tokens
from keras_transformer import build_transformer
from keras_transformer.training import (
    MaskedAccuracy, MaskedSparseCrossEntropy, TransformerSchedule, compile_transformer)


def _logits_and_labels(seed=0, vocab=7):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, 4, vocab)).astype("float32")
    labels = rng.integers(1, vocab, size=(2, 4)).astype("int32")
    labels[0, 3] = labels[1, 2:] = 0  # padding
    return logits, labels


def test_label_smoothed_loss_equals_a_hand_computation():
    logits, labels = _logits_and_labels()
    eps, vocab = 0.1, logits.shape[-1]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for b in range(2):
        for t in range(4):
            if labels[b, t] == 0:
                continue
            target = np.full(vocab, eps / vocab)
            target[labels[b, t]] += 1 - eps
            total += -(target * log_probs[b, t]).sum()
            count += 1
    loss = float(MaskedSparseCrossEntropy(label_smoothing=eps)(labels, logits))
    np.testing.assert_allclose(loss, total / count, rtol=1e-5)


def test_unsmoothed_loss_equals_keras_cross_entropy_on_real_tokens():
    logits, labels = _logits_and_labels(1)
    real = labels != 0
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels[real], logits[real])
    np.testing.assert_allclose(MaskedSparseCrossEntropy(0.0)(labels, logits), expected,
                               rtol=1e-5)


def test_padding_positions_change_nothing():
    logits, labels = _logits_and_labels(2)
    loss = MaskedSparseCrossEntropy()(labels, logits)
    changed = logits.copy()
    changed[labels == 0] = 100.0 * np.random.default_rng(3).normal(size=changed[labels == 0].shape)
    np.testing.assert_allclose(MaskedSparseCrossEntropy()(labels, changed), loss, rtol=1e-6)
    # and extra padding columns change nothing either
    padded_labels = np.pad(labels, ((0, 0), (0, 3)))
    padded_logits = np.pad(logits, ((0, 0), (0, 3), (0, 0)))
    np.testing.assert_allclose(MaskedSparseCrossEntropy()(padded_labels, padded_logits), loss,
                               rtol=1e-6)


def test_masked_accuracy_counts_real_tokens_over_batches():
    metric = MaskedAccuracy()
    labels = np.array([[1, 2, 0]], "int32")
    one_hot = np.eye(4, dtype="float32")
    metric.update_state(labels, one_hot[[[1, 3, 0]]])        # 1 of 2 real tokens right
    metric.update_state(np.array([[3, 0, 0]], "int32"), one_hot[[[3, 1, 1]]])  # 1 of 1
    np.testing.assert_allclose(metric.result(), 2 / 3, rtol=1e-6)


@pytest.mark.parametrize("step", [0, 1, 99, 3999, 4000, 10000, 100000])
def test_schedule_matches_the_papers_formula(step):
    schedule = TransformerSchedule(d_model=512, warmup_steps=4000)
    n = step + 1  # Keras counts optimizer steps from 0, the paper from 1
    expected = 512 ** -0.5 * min(n ** -0.5, n * 4000 ** -1.5)
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5)


def test_schedule_peaks_at_the_end_of_warmup():
    schedule = TransformerSchedule(d_model=64, warmup_steps=100)
    values = [float(schedule(step)) for step in range(300)]
    assert int(np.argmax(values)) == 99


def _copy_task(rng, n=64, length=6, vocab=41):
    source = random_tokens(rng, n, length, vocab)
    target = np.concatenate([np.full((n, 1), 2), source, np.full((n, 1), 3)], 1).astype("int32")
    return [source, target[:, :-1]], target[:, 1:]


@pytest.mark.parametrize("jit_compile,policy", [(False, "float32"), (True, "float32"),
                                                (False, "mixed_bfloat16")])
def test_fit_lowers_the_loss(tiny_config, jit_compile, policy):
    keras.config.set_dtype_policy(policy)
    model = build_transformer(tiny_config)
    compile_transformer(model, tiny_config.d_model, warmup_steps=10, learning_rate_scale=3.0,
                        jit_compile=jit_compile)
    inputs, labels = _copy_task(np.random.default_rng(0))
    history = model.fit(inputs, labels, batch_size=16, epochs=4, verbose=0).history
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    assert model.get_layer("logits").compute_dtype == "float32"


def test_compiled_model_reloads_and_trains_further(tiny_config, tmp_path):
    model = build_transformer(tiny_config)
    compile_transformer(model, tiny_config.d_model, warmup_steps=10)
    inputs, labels = _copy_task(np.random.default_rng(1), n=16)
    model.fit(inputs, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.loss, MaskedSparseCrossEntropy)
    assert loaded.optimizer.get_config()["learning_rate"]["class_name"] == "TransformerSchedule"
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations)
    np.testing.assert_allclose(loaded.evaluate(inputs, labels, verbose=0),
                               model.evaluate(inputs, labels, verbose=0), rtol=1e-5)
    loaded.fit(inputs, labels, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 2 * int(model.optimizer.iterations)
