"""Scaled dot-product multi-head attention against a NumPy reference and Keras's own layer."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformer.layers import (
    MultiHeadAttention,
    causal_mask,
    decoder_self_attention_mask,
    key_padding_mask,
    masked_softmax,
)

B, T, S, D, H = 2, 5, 7, 16, 4


def numpy_attention(layer, query, value, mask):
    """The paper's equations in NumPy, with the layer's own weights; masked = -inf."""
    def dense(x, sublayer):
        kernel, bias = (np.asarray(w) for w in sublayer.weights)
        return x @ kernel + bias

    def split(x):  # (B, L, h*dk) -> (B, h, L, dk)
        return x.reshape(x.shape[0], x.shape[1], H, D // H).transpose(0, 2, 1, 3)

    q, k, v = (split(dense(x, sub)) for x, sub in
               ((query, layer.query_dense), (value, layer.key_dense), (value, layer.value_dense)))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D // H)
    scores = np.where(mask[:, None], scores, -np.inf)
    with np.errstate(invalid="ignore"):
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights = weights / weights.sum(-1, keepdims=True)
    heads = (weights @ v).transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], D)
    return dense(heads, layer.output_dense), weights


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(B, T, D)).astype("float32")
    value = rng.normal(size=(B, S, D)).astype("float32")
    mask = rng.random((B, T, S)) > 0.4
    mask[:, :, 0] = True  # every row keeps at least one key here
    return query, value, mask


def test_matches_numpy_reference(inputs):
    query, value, mask = inputs
    layer = MultiHeadAttention(H, D // H)
    output, weights = layer.attend(query, value, attention_mask=mask)
    expected_output, expected_weights = numpy_attention(layer, query, value, mask)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_allclose(output, expected_output, atol=1e-5)


def test_matches_keras_multi_head_attention_with_same_weights(inputs):
    query, value, mask = inputs
    ours = MultiHeadAttention(H, D // H)
    ours.attend(query, value)
    theirs = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D // H)
    theirs(query, value)
    pairs = [(theirs._query_dense, ours.query_dense), (theirs._key_dense, ours.key_dense),
             (theirs._value_dense, ours.value_dense)]
    for their_dense, our_dense in pairs:  # Keras keeps (d, h, dk) kernels, we keep (d, h*dk)
        their_dense.kernel.assign(ops.reshape(our_dense.kernel, (D, H, D // H)))
        their_dense.bias.assign(ops.reshape(our_dense.bias, (H, D // H)))
    theirs._output_dense.kernel.assign(ops.reshape(ours.output_dense.kernel, (H, D // H, D)))
    theirs._output_dense.bias.assign(ours.output_dense.bias)

    our_output, our_weights = ours.attend(query, value, attention_mask=mask)
    their_output, their_weights = theirs(query, value, attention_mask=mask,
                                         return_attention_scores=True)
    np.testing.assert_allclose(our_output, their_output, atol=1e-5)
    np.testing.assert_allclose(our_weights, their_weights, atol=1e-6)


def test_masked_weights_are_exactly_zero_and_rows_sum_to_one(inputs):
    query, value, mask = inputs
    _, weights = MultiHeadAttention(H, D // H).attend(query, value, attention_mask=mask)
    weights = np.asarray(weights)
    full_mask = np.broadcast_to(mask[:, None], weights.shape)
    assert np.all(weights[~full_mask] == 0.0)
    assert np.all(weights[full_mask] > 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


def test_masked_keys_do_not_change_the_output(inputs):
    query, value, mask = inputs
    layer = MultiHeadAttention(H, D // H)
    output = layer(query, value, attention_mask=mask[:1, :1].repeat(T, 1))
    changed = value.copy()
    changed[:, ~mask[0, 0]] = 100.0  # keys the first query row may not see
    changed_output = layer(query, changed, attention_mask=mask[:1, :1].repeat(T, 1))
    np.testing.assert_allclose(output, changed_output, atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_fully_masked_row_is_finite(policy, inputs):
    keras.config.set_dtype_policy(policy)
    query, value, mask = inputs
    mask = mask.copy()
    mask[0, 2, :] = False  # one query row sees no key at all (an all-padding source)
    mask[1] = False        # a whole sentence of padding
    layer = MultiHeadAttention(H, D // H)
    output, weights = layer.attend(query, value, attention_mask=mask)
    output, weights = np.asarray(ops.cast(output, "float32")), np.asarray(weights)
    assert np.all(np.isfinite(output)) and np.all(np.isfinite(weights))
    assert np.all(weights[0, :, 2] == 0.0) and np.all(weights[1] == 0.0)
    np.testing.assert_allclose(weights[0, :, 0].sum(-1), 1.0, atol=1e-6)
    # gradients through the fully masked row stay finite too
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        scores = tf.Variable(np.random.default_rng(1).normal(size=(2, 3, 4)), dtype="float32")
        row_mask = np.ones((2, 3, 4), bool)
        row_mask[0, 1] = False
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(masked_softmax(scores, row_mask) * tf.range(4.0))
        assert np.all(np.isfinite(tape.gradient(loss, scores)))


def test_masked_softmax_equals_softmax_without_mask():
    scores = np.random.default_rng(2).normal(size=(3, 4, 6)).astype("float32")
    np.testing.assert_allclose(masked_softmax(scores, np.ones_like(scores, bool)),
                               ops.softmax(scores, axis=-1), atol=1e-6)


def test_causal_mask_values():
    np.testing.assert_array_equal(causal_mask(3), np.tril(np.ones((3, 3), bool)))
    # one query at position 2 over a cache of 5 keys sees keys 0..2
    np.testing.assert_array_equal(causal_mask(1, 5, 2), [[True, True, True, False, False]])


def test_decoder_mask_combines_causality_and_padding():
    tokens = np.array([[5, 6, 7, 0], [5, 0, 0, 0]], "int32")
    mask = np.asarray(decoder_self_attention_mask(tokens))
    expected = np.tril(np.ones((4, 4), bool))[None] & (tokens != 0)[:, None, :]
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(key_padding_mask(tokens)[:, 0], tokens != 0)


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive"):
        MultiHeadAttention(0, 8)


# ----------------------------------------------------------------- the fused kernel in `call`

def fused_and_explicit(layer, query, value, mask):
    """(fused output, explicit output, explicit weights) of one layer, in float32."""
    fused = layer(query, value, attention_mask=mask, training=False)
    explicit, weights = layer.attend(query, value, attention_mask=mask)
    return (np.asarray(ops.cast(fused, "float32")), np.asarray(ops.cast(explicit, "float32")),
            np.asarray(weights))


def test_fused_call_matches_numpy_reference(inputs):
    query, value, mask = inputs
    layer = MultiHeadAttention(H, D // H)
    layer.attend(query, value)  # build
    expected, _ = numpy_attention(layer, query, value, mask)
    np.testing.assert_allclose(layer(query, value, attention_mask=mask), expected, atol=1e-5)
    np.testing.assert_allclose(layer(query, value), numpy_attention(
        layer, query, value, np.ones_like(mask))[0], atol=1e-5)


@pytest.mark.parametrize("policy, atol", [("float32", 1e-5), ("mixed_bfloat16", 0.1),
                                          ("mixed_float16", 1e-2)])
def test_fused_equals_explicit_with_fully_masked_rows(policy, atol, inputs):
    keras.config.set_dtype_policy(policy)
    query, value, mask = inputs
    mask = mask.copy()
    mask[0, 2, :] = False  # one query row sees no key at all
    mask[1] = False        # a whole sentence of padding
    layer = MultiHeadAttention(H, D // H)
    fused, explicit, _ = fused_and_explicit(layer, query, value, mask)
    assert np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused, explicit, atol=atol)
    # rows that see no key attend to nothing: the output is the output projection's bias
    bias = np.asarray(ops.cast(layer.output_dense.bias, "float32"))
    np.testing.assert_allclose(fused[1], np.broadcast_to(bias, fused[1].shape), atol=atol)
    np.testing.assert_allclose(fused[0, 2], bias, atol=atol)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_fused_masked_keys_have_exactly_zero_weight(policy, inputs):
    """Whatever the masked keys and values hold, the fused output is the same to the bit: their
    weights are exactly 0, not small numbers."""
    keras.config.set_dtype_policy(policy)
    query, value, mask = inputs
    row = np.broadcast_to(mask[:, :1], mask.shape)  # every query row sees the same keys
    layer = MultiHeadAttention(H, D // H)
    output = np.asarray(ops.cast(layer(query, value, attention_mask=row), "float32"))
    changed = value.copy()
    changed[~row[:, 0]] = 60.0  # large, finite in float16 after the projections
    changed_output = np.asarray(ops.cast(layer(query, changed, attention_mask=row), "float32"))
    np.testing.assert_array_equal(output, changed_output)


def test_fused_gradients_are_finite_with_fully_masked_rows(inputs):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient tape: the TensorFlow backend")
    import tensorflow as tf
    query, value, mask = inputs
    mask = mask.copy()
    mask[1] = False
    layer = MultiHeadAttention(H, D // H)
    query = tf.Variable(query)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(query, value, attention_mask=mask) ** 2)
    grads = tape.gradient(loss, [query] + layer.trainable_variables)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert np.all(np.asarray(grads[0])[1] == 0.0)  # the padded sentence's queries see nothing


def test_call_takes_the_explicit_path_only_for_dropout_on_the_weights(inputs):
    query, value, mask = inputs
    layer = MultiHeadAttention(H, D // H, dropout=0.5)
    inference = layer(query, value, attention_mask=mask, training=False)
    np.testing.assert_allclose(inference, layer.attend(query, value, attention_mask=mask)[0],
                               atol=1e-5)
    trained = layer(query, value, attention_mask=mask, training=True)  # weights dropped
    assert not np.allclose(trained, inference, atol=1e-3)
