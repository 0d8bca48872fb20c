"""Generation: the cached step equals full recomputation; greedy, beam and sampling agree where they must."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import random_tokens
from keras_transformer import TransformerParts, build_transformer
from keras_transformer import decoding
from keras_transformer.training import compile_transformer

MAX_LENGTH = 10


@pytest.fixture(scope="module")
def trained_model():
    """A tiny model trained for a few seconds to copy its source, so it emits [END]
    (an untrained model never stops, which would leave the stopping logic untested)."""
    keras.utils.set_random_seed(0)
    from keras_transformer import preset
    config = preset("tiny", source_vocab_size=20, target_vocab_size=20)
    model = build_transformer(config)
    compile_transformer(model, config.d_model, warmup_steps=30, learning_rate_scale=4.0)
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 7, size=512)
    source = np.zeros((512, 8), "int32")
    for row, length in enumerate(lengths):
        source[row, :length] = rng.integers(4, 20, size=length)
    target = np.zeros((512, 9), "int32")
    target[:, 0] = decoding.START_ID
    target[:, 1:8] = source[:, :7]
    target[np.arange(512), lengths + 1] = decoding.END_ID
    model.fit([source, target[:, :-1]], target[:, 1:], batch_size=32, epochs=12, verbose=0)
    return model


@pytest.fixture
def sources():
    rng = np.random.default_rng(7)
    source = random_tokens(rng, 4, 6, 20)
    source[1, 3:] = 0
    source[2, 2:] = 0
    return source


def test_cached_step_logits_equal_full_recomputation(trained_model, sources):
    parts = TransformerParts(trained_model)
    target = random_tokens(np.random.default_rng(1), 4, 7, 20)
    full_logits = np.asarray(trained_model([sources, target]))
    context = decoding.SourceContext(parts, sources)
    cache = parts.empty_cache(4, 7)
    for t in range(7):
        logits, cache, _, _ = parts.decode_step(target[:, t:t + 1], t, cache,
                                                context.cross_key_values, context.source_mask)
        np.testing.assert_allclose(logits, full_logits[:, t], atol=1e-4)


@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_cached_greedy_equals_uncached_greedy(trained_model, sources, jit_compile):
    expected = np.asarray(decoding.greedy_decode_uncached(trained_model, sources, MAX_LENGTH))
    assert (expected == decoding.END_ID).any(), "the fixture model should stop somewhere"
    if jit_compile is None:  # eager
        tokens = decoding.greedy_decode(trained_model, sources, MAX_LENGTH)
    else:
        search = tf.function(lambda s: decoding.greedy_decode(trained_model, s, MAX_LENGTH),
                             jit_compile=jit_compile, autograph=False)
        tokens = search(tf.constant(sources))
    np.testing.assert_array_equal(tokens, expected)


@pytest.mark.parametrize("jit_compile", [None, True])
def test_recorded_attention_equals_full_recomputation(trained_model, sources, jit_compile):
    """The weights the cached steps computed are those of the whole generated prefix
    recomputed at once; masked self-attention is exactly 0 above the diagonal."""
    if jit_compile is None:  # eager
        decoded = decoding.greedy_decode_with_attention(trained_model, sources, MAX_LENGTH)
    else:
        search = tf.function(
            lambda s: decoding.greedy_decode_with_attention(trained_model, s, MAX_LENGTH),
            jit_compile=jit_compile, autograph=False)
        decoded = search(tf.constant(sources))
    tolerance = 1e-5 if jit_compile is None else 1e-4  # XLA rounds in its own order
    tokens, encoder, masked, cross = (np.asarray(decoded[0]),
                                      *[[np.asarray(w) for w in ws] for ws in decoded[1:]])
    np.testing.assert_array_equal(tokens,
                                  decoding.greedy_decode(trained_model, sources, MAX_LENGTH))
    parts = TransformerParts(trained_model)
    encoder_outputs, source_mask, full_encoder = parts.encode_with_attention(sources)
    inputs = np.concatenate([np.full((4, 1), decoding.START_ID, "int32"), tokens[:, :-1]], 1)
    _, full_masked, full_cross = parts.decode(inputs, encoder_outputs, source_mask)
    assert len(encoder) == len(masked) == len(cross) == parts.num_layers
    for layer in range(parts.num_layers):
        assert masked[layer].shape == (4, 4, MAX_LENGTH, MAX_LENGTH)
        assert cross[layer].shape == (4, 4, MAX_LENGTH, 6)
        np.testing.assert_allclose(encoder[layer], full_encoder[layer], atol=tolerance)
        assert np.all(np.triu(masked[layer], k=1) == 0.0)  # the future: exactly 0
        for row, output in enumerate(tokens):
            ends = np.flatnonzero(output == decoding.END_ID)
            steps = ends[0] + 1 if len(ends) else MAX_LENGTH  # the steps that generated
            np.testing.assert_allclose(masked[layer][row, :, :steps],
                                       np.asarray(full_masked[layer])[row, :, :steps],
                                       atol=tolerance)
            np.testing.assert_allclose(cross[layer][row, :, :steps],
                                       np.asarray(full_cross[layer])[row, :, :steps],
                                       atol=tolerance)
            for weights in (masked[layer], cross[layer]):
                np.testing.assert_allclose(weights[row, :, :steps].sum(-1), 1.0, atol=1e-5)
        assert np.all(cross[layer][2, :, :, 2:] == 0.0)  # source padding: exactly 0


def test_stops_per_sentence_and_batch_equals_one_at_a_time(trained_model, sources):
    batch = np.asarray(decoding.greedy_decode(trained_model, sources, MAX_LENGTH))
    for row in range(len(sources)):
        alone = sources[row:row + 1]
        alone = alone[:, : max(1, int((alone != 0).sum()))]  # no padding at all
        np.testing.assert_array_equal(
            decoding.greedy_decode(trained_model, alone, MAX_LENGTH)[0], batch[row])
        ends = np.flatnonzero(batch[row] == decoding.END_ID)
        if len(ends):  # everything after the first [END] is padding
            assert np.all(batch[row, ends[0] + 1:] == 0)


def test_never_generates_pad_or_start(sources):
    model = build_transformer(keras_transformer_tiny())
    tokens = np.asarray(decoding.greedy_decode(model, sources, MAX_LENGTH))
    assert not np.any(tokens == decoding.START_ID)
    assert np.all(tokens != 0)  # untrained: it never stops, so no padding either


def keras_transformer_tiny():
    from keras_transformer import preset
    return preset("tiny", source_vocab_size=20, target_vocab_size=20)


def test_beam_of_one_equals_greedy(trained_model, sources):
    greedy = np.asarray(decoding.greedy_decode(trained_model, sources, MAX_LENGTH))
    tokens, _, _ = decoding.beam_search(trained_model, sources, MAX_LENGTH, beam_size=1)
    np.testing.assert_array_equal(tokens[:, 0], greedy)


def test_larger_beam_scores_at_least_greedy_under_the_model(trained_model):
    rng = np.random.default_rng(3)
    sources = random_tokens(rng, 8, 5, 20)
    # an untrained model is unsure, so beams and greedy differ
    model = build_transformer(keras_transformer_tiny())
    for candidate in (trained_model, model):
        greedy = decoding.greedy_decode(candidate, sources, MAX_LENGTH)
        greedy_score = np.asarray(decoding.sequence_log_prob(candidate, sources, greedy))
        tokens, _, log_probs = decoding.beam_search(candidate, sources, MAX_LENGTH,
                                                    beam_size=4, alpha=0.0)
        best = np.asarray(log_probs)[:, 0]
        assert np.all(best >= greedy_score - 1e-4)
        # the reported score is the model's own score of the returned tokens
        np.testing.assert_allclose(
            decoding.sequence_log_prob(candidate, sources, tokens[:, 0]), best, atol=1e-3)


def test_beam_returns_n_best_sorted_by_normalized_score(trained_model, sources):
    tokens, scores, log_probs = decoding.beam_search(trained_model, sources, MAX_LENGTH,
                                                     beam_size=3, alpha=0.6)
    assert tokens.shape == (4, 3, MAX_LENGTH)
    scores = np.asarray(scores)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    lengths = (np.asarray(tokens) != 0).sum(-1)
    np.testing.assert_allclose(scores, np.asarray(log_probs) / ((5 + lengths) / 6) ** 0.6,
                               rtol=1e-5)


def test_sampling_is_reproducible_and_top_k_one_is_greedy(trained_model, sources):
    model = build_transformer(keras_transformer_tiny())  # untrained: a flat distribution
    first = np.asarray(decoding.sample_decode(model, sources, MAX_LENGTH, seed=11))
    np.testing.assert_array_equal(decoding.sample_decode(model, sources, MAX_LENGTH, seed=11),
                                  first)
    assert not np.array_equal(decoding.sample_decode(model, sources, MAX_LENGTH, seed=12), first)
    np.testing.assert_array_equal(
        decoding.sample_decode(model, sources, MAX_LENGTH, top_k=1, seed=3),
        decoding.greedy_decode(model, sources, MAX_LENGTH))
    np.testing.assert_array_equal(
        decoding.sample_decode(trained_model, sources, MAX_LENGTH, top_p=1e-6, seed=3),
        decoding.greedy_decode(trained_model, sources, MAX_LENGTH))


def test_filter_logits():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], "float32"))
    top2 = np.asarray(decoding.filter_logits(logits, top_k=2))
    assert np.isfinite(top2[0, :2]).all() and np.isneginf(top2[0, 2:]).all()
    nucleus = np.asarray(decoding.filter_logits(logits, top_p=0.7))  # 0.5 + 0.3 reach 0.7
    assert np.isfinite(nucleus[0, :2]).all() and np.isneginf(nucleus[0, 2:]).all()
    with pytest.raises(ValueError, match="temperature"):
        decoding.sample_decode(None, None, 3, temperature=0.0)
