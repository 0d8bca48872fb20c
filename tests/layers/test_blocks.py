"""Feed-forward, Add & Norm, encoder and decoder blocks: generic layer checks, then their math."""

import keras
import numpy as np
import pytest

from keras_transformer.layers import (
    DecoderBlock,
    EncoderBlock,
    FeedForward,
    MultiHeadAttention,
    PositionalEmbedding,
    SublayerConnection,
    decoder_self_attention_mask,
    key_padding_mask,
)

B, S, T, D = 2, 6, 5, 16


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(B, T, D)).astype("float32"),
            rng.normal(size=(B, S, D)).astype("float32"))


LAYERS = {
    "attention": (lambda: MultiHeadAttention(4, 4, dropout=0.1, use_bias=False),
                  lambda x, src: ((x, src), {})),
    "feed_forward": (lambda: FeedForward(32, activation="gelu", dropout=0.1),
                     lambda x, src: ((x,), {})),
    "add_norm": (lambda: SublayerConnection(dropout=0.1, norm_position="pre", epsilon=1e-5),
                 lambda x, src: ((x, x * 2), {})),
    "embedding": (lambda: PositionalEmbedding(30, D, max_length=12,
                                              position_encoding="learned", dropout=0.1),
                  lambda x, src: ((np.array([[1, 2, 3]], "int32"),), {})),
    "encoder": (lambda: EncoderBlock(4, 32, dropout=0.1, norm_position="pre"),
                lambda x, src: ((src,), {})),
    "decoder": (lambda: DecoderBlock(4, 32, dropout=0.1),
                lambda x, src: ((x, src), {})),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_config_round_trip_gives_the_same_layer(name):
    make, arguments = LAYERS[name]
    layer = make()
    args, kwargs = arguments(*_inputs())
    expected = layer(*args, **kwargs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(*args, **kwargs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(*args, **kwargs), expected, atol=1e-6)
    # serialization by registered name, as .keras files do it
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


@pytest.mark.parametrize("name", ["feed_forward", "encoder", "decoder"])
def test_dropout_acts_only_in_training(name):
    make, arguments = LAYERS[name]
    layer = make()
    args, kwargs = arguments(*_inputs())
    np.testing.assert_allclose(layer(*args, training=False), layer(*args, training=False))
    assert not np.allclose(layer(*args, training=True), layer(*args, training=False))


def test_feed_forward_is_position_wise():
    layer = FeedForward(32)
    x, _ = _inputs()
    full = np.asarray(layer(x))
    np.testing.assert_allclose(layer(x[:, 2:3]), full[:, 2:3], atol=1e-6)


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_add_and_norm_placement(norm_position):
    connection = SublayerConnection(norm_position=norm_position)
    x, _ = _inputs()
    def sublayer(v):
        return v * 3.0

    out = np.asarray(connection.finish(x, sublayer(connection.start(x))))
    def norm(v):
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-6)

    expected = norm(x + 3 * x) if norm_position == "post" else x + 3 * norm(x)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_encoder_ignores_padded_positions():
    block = EncoderBlock(4, 32)
    _, src = _inputs()
    tokens = np.array([[5, 6, 7, 8, 0, 0]] * B, "int32")
    out = np.asarray(block(src, attention_mask=key_padding_mask(tokens)))
    changed = src.copy()
    changed[:, 4:] = 50.0
    out_changed = np.asarray(block(changed, attention_mask=key_padding_mask(tokens)))
    np.testing.assert_allclose(out[:, :4], out_changed[:, :4], atol=1e-5)


def test_decoder_cross_attention_reads_the_encoder_and_is_causal():
    block = DecoderBlock(4, 32)
    x, src = _inputs()
    tokens = np.full((B, T), 5, "int32")
    mask = decoder_self_attention_mask(tokens)
    out, self_weights, cross_weights = block.forward(x, src, mask)
    assert cross_weights.shape == (B, 4, T, S) and self_weights.shape == (B, 4, T, T)
    assert np.all(np.triu(np.asarray(self_weights), k=1) == 0)
    # the encoder output changes the result (cross-attention is wired to it) ...
    assert not np.allclose(block(x, src + 1.0, mask), out)
    # ... and a later decoder position never changes an earlier one
    later = x.copy()
    later[:, 3:] += 1.0
    np.testing.assert_allclose(block(later, src, mask)[:, :3], np.asarray(out)[:, :3], atol=1e-5)


def test_blocks_build_symbolically_with_the_right_shapes():
    src = keras.Input((None, D))
    tgt = keras.Input((None, D))
    assert EncoderBlock(4, 32)(src).shape == (None, None, D)
    assert DecoderBlock(4, 32)(tgt, src).shape == (None, None, D)


def test_head_count_must_divide_d_model():
    with pytest.raises(ValueError, match="divisible"):
        EncoderBlock(5, 32)(np.zeros((1, 2, D), "float32"))
