"""Token embedding and the paper's positional encoding."""

import math

import numpy as np
import pytest

from keras_transformer.layers import PositionalEmbedding, sinusoidal_encoding


def paper_encoding(length, d_model, start=0):
    encoding = np.zeros((length, d_model))
    for pos in range(start, start + length):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            encoding[pos - start, 2 * i] = math.sin(angle)
            encoding[pos - start, 2 * i + 1] = math.cos(angle)
    return encoding


def test_sinusoidal_encoding_equals_the_formula():
    np.testing.assert_allclose(sinusoidal_encoding(50, 16), paper_encoding(50, 16), atol=1e-5)
    np.testing.assert_allclose(sinusoidal_encoding(3, 16, start_position=7),
                               paper_encoding(3, 16, start=7), atol=1e-5)


def test_embedding_is_scaled_token_plus_position():
    layer = PositionalEmbedding(20, 8, max_length=16)
    tokens = np.array([[3, 4, 5]], "int32")
    out = np.asarray(layer(tokens))
    table = np.asarray(layer.token_embedding.embeddings)
    expected = table[tokens] * math.sqrt(8) + paper_encoding(3, 8)[None]
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("encoding", ["sinusoidal", "learned"])
def test_start_position_embeds_one_token_as_in_the_full_sequence(encoding):
    layer = PositionalEmbedding(20, 8, max_length=16, position_encoding=encoding)
    tokens = np.array([[3, 4, 5, 6]], "int32")
    full = np.asarray(layer(tokens))
    for t in range(4):
        np.testing.assert_allclose(layer(tokens[:, t:t + 1], start_position=t), full[:, t:t + 1],
                                   atol=1e-6)


def test_reverse_projects_onto_the_embedding_matrix():
    layer = PositionalEmbedding(20, 8)
    layer(np.zeros((1, 1), "int32"))
    hidden = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
    logits = np.asarray(layer(hidden, reverse=True))
    np.testing.assert_allclose(logits, hidden @ np.asarray(layer.token_embedding.embeddings).T,
                               atol=1e-5)
    assert logits.shape == (2, 3, 20)


def test_unknown_encoding_is_rejected():
    with pytest.raises(ValueError, match="position_encoding"):
        PositionalEmbedding(10, 8, position_encoding="rotary")


def test_learned_positions_past_max_length_are_an_error_not_a_silent_clip():
    layer = PositionalEmbedding(20, 8, max_length=6, position_encoding="learned")
    layer(np.ones((1, 6), "int32"))  # max_length positions: fine
    with pytest.raises(ValueError, match="max_length=6"):
        layer(np.ones((1, 7), "int32"))
    sinusoidal = PositionalEmbedding(20, 8, max_length=6)
    assert sinusoidal(np.ones((1, 9), "int32")).shape == (1, 9, 8)  # computed for any position
