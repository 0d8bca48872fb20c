"""The fused, chunked cross-entropy equals the plain float32 form: loss and gradient."""


import numpy as np
import pytest

from keras_transformer.training.cross_entropy import label_smoothed_cross_entropy
from keras_transformer.training.loss import MaskedSparseCrossEntropy

tf = pytest.importorskip("tensorflow")


def plain_cross_entropy(labels, logits, eps):
    """The textbook form: float32 log-softmax of the whole logits, then the smoothed target."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    true = tf.gather(log_probs, labels, batch_dims=labels.ndim, axis=-1)
    return -(1.0 - eps) * true - eps * tf.reduce_mean(log_probs, axis=-1)


def loss_and_gradient(function, logits, weights):
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(function(logits) * weights)
    return float(loss), tape.gradient(loss, logits)


def example(seed, shape=(3, 11), vocab=37):
    rng = np.random.default_rng(seed)
    logits = (4.0 * rng.normal(size=shape + (vocab,))).astype("float32")
    labels = rng.integers(0, vocab, size=shape).astype("int32")
    weights = rng.random(shape).astype("float32")
    return logits, labels, weights


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("chunk_tokens", [None, 1, 4, 32, 1024])  # 33 tokens: ragged last chunk
def test_loss_and_gradient_equal_the_plain_form(eps, chunk_tokens):
    logits, labels, weights = example(0)
    fused = loss_and_gradient(
        lambda z: label_smoothed_cross_entropy(labels, z, eps, chunk_tokens), logits, weights)
    plain = loss_and_gradient(lambda z: plain_cross_entropy(labels, z, eps), logits, weights)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-6)
    np.testing.assert_allclose(fused[1], plain[1], atol=1e-6)


@pytest.mark.parametrize("dtype, atol", [("bfloat16", 2e-2), ("float16", 2e-3)])
def test_sixteen_bit_logits_give_a_gradient_in_their_dtype(dtype, atol):
    logits, labels, weights = example(1)
    low = tf.cast(logits, dtype)
    loss, grad = loss_and_gradient(
        lambda z: label_smoothed_cross_entropy(labels, z, 0.1, 8), low, weights)
    assert grad.dtype == dtype
    # the same as the plain form on the same (rounded) logits, computed in float32
    plain_loss, plain_grad = loss_and_gradient(
        lambda z: plain_cross_entropy(labels, z, 0.1), tf.cast(low, "float32"), weights)
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-6)
    np.testing.assert_allclose(tf.cast(grad, "float32"), plain_grad, atol=atol)


def test_symbolic_token_count_in_a_traced_function():
    logits, labels, weights = example(2)
    spec = [tf.TensorSpec([None, None, 37], tf.float32), tf.TensorSpec([None, None], tf.int32)]

    @tf.function(input_signature=spec)
    def fused(z, y):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = tf.reduce_sum(label_smoothed_cross_entropy(y, z, 0.1, 5))
        return loss, tape.gradient(loss, z)

    loss, grad = fused(logits, labels)
    plain = loss_and_gradient(lambda z: plain_cross_entropy(labels, z, 0.1), logits, 1.0)
    np.testing.assert_allclose(float(loss), plain[0], rtol=1e-6)
    np.testing.assert_allclose(grad, plain[1], atol=1e-6)


def test_the_keras_loss_keeps_bfloat16_logits_and_ignores_padding():
    logits, labels, _ = example(3)
    labels[0, 5:] = labels[2, 1:] = 0  # padding
    low = tf.Variable(tf.cast(logits, "bfloat16"))
    loss_object = MaskedSparseCrossEntropy(0.1, chunk_tokens=4)
    with tf.GradientTape() as tape:
        loss = loss_object(labels, low)
    grad = tape.gradient(loss, low)
    assert loss.dtype == "float32" and grad.dtype == "bfloat16"
    real = labels != 0
    expected = plain_cross_entropy(labels, tf.cast(low, "float32"), 0.1).numpy()[real].mean()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    assert np.all(np.asarray(tf.cast(grad, "float32"))[~real] == 0.0)

