"""Generation: the cached step equals full recomputation; greedy, beam and sampling agree where they must."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import random_tokens
from keras_transformer import TransformerParts, build_transformer, preset
from keras_transformer.generation import decoding

MAX_LENGTH = 10


@pytest.fixture
def trained_model(copy_task):
    """The session's copy-task model: trained, so it emits [END] (an untrained model never
    stops, which would leave the stopping logic untested)."""
    return copy_task.model


@pytest.fixture
def untrained(copy_task):
    """An untrained tiny model of the copy task's vocabulary: unsure, it never stops."""
    return build_transformer(preset("tiny", source_vocab_size=copy_task.vocab_size,
                                    target_vocab_size=copy_task.vocab_size))


@pytest.fixture
def sources(copy_task):
    source = copy_task.source_ids(np.random.default_rng(7), 4, 6)
    source[1, 3:] = 0
    source[2, 2:] = 0
    return source


def test_cached_step_logits_equal_full_recomputation(trained_model, sources, copy_task):
    parts = trained_model.parts
    target = random_tokens(np.random.default_rng(1), 4, 7, copy_task.vocab_size)
    full_logits = np.asarray(trained_model([sources, target]))
    context = decoding.SourceContext(parts, sources)
    cache = parts.empty_cache(4, 7)
    for t in range(7):
        logits, cache, _, _ = parts.decode_step(target[:, t:t + 1], t, cache,
                                                context.cross_key_values, context.source_mask)
        np.testing.assert_allclose(logits, full_logits[:, t], atol=1e-4)


@pytest.mark.parametrize("jit_compile", [None, pytest.param(False, marks=pytest.mark.slow), True])
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


@pytest.mark.parametrize("jit_compile", [None, pytest.param(True, marks=pytest.mark.slow)])
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
    # float32 rounding of two orders; XLA its own (1.2e-4 seen on an AVX2 CPU, where it fuses
    # and vectorizes differently)
    tolerance = 5e-5 if jit_compile is None else 3e-4
    tokens, encoder, masked, cross = (np.asarray(decoded[0]),
                                      *[[np.asarray(w) for w in ws] for ws in decoded[1:]])
    np.testing.assert_array_equal(tokens,
                                  decoding.greedy_decode(trained_model, sources, MAX_LENGTH))
    parts = trained_model.parts
    encoder_outputs, source_mask, full_encoder = parts.encode_with_attention(sources)
    inputs = np.concatenate([np.full((4, 1), decoding.START_ID, "int32"), tokens[:, :-1]], 1)
    _, full_masked, full_cross = parts.decode_with_attention(inputs, encoder_outputs, source_mask)
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


def test_never_generates_pad_or_start(sources, untrained):
    tokens = np.asarray(decoding.greedy_decode(untrained, sources, MAX_LENGTH))
    assert not np.any(tokens == decoding.START_ID)
    assert np.all(tokens != 0)  # untrained: it never stops, so no padding either


def test_beam_of_one_equals_greedy(trained_model, sources, untrained):
    for model, alpha, no_repeat_ngram in ((trained_model, 0.6, 0), (untrained, 2.0, 0),
                                          (untrained, 0.0, 2)):
        greedy = np.asarray(decoding.greedy_decode(model, sources, MAX_LENGTH,
                                                   no_repeat_ngram=no_repeat_ngram))
        tokens, _, _ = decoding.beam_search(model, sources, MAX_LENGTH, beam_size=1,
                                            alpha=alpha, no_repeat_ngram=no_repeat_ngram)
        np.testing.assert_array_equal(tokens[:, 0], greedy)


def test_larger_beam_scores_at_least_greedy_under_the_model(trained_model, untrained, copy_task):
    sources = copy_task.source_ids(np.random.default_rng(3), 8, 5)
    # an untrained model is unsure, so beams and greedy differ
    for candidate in (trained_model, untrained):
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


class BigramParts(TransformerParts):
    """A stand-in decoder: the next token's probabilities depend on the last token only,
    read from `next_probs` {token: {next token: probability}}, so a search can be followed
    by hand. Vocabulary: 0-3 reserved ([END] = 3), A = 4, B = 5."""

    def __init__(self, next_probs):
        table = np.zeros((6, 6))
        for token, row in next_probs.items():
            table[token, list(row)] = list(row.values())
        with np.errstate(divide="ignore"):
            self.log_table = np.log(table).astype("float32")

    def encode_with_attention(self, source_tokens):
        return source_tokens, source_tokens, ()  # no attention: anything with batch rows

    def cross_key_values(self, encoder_outputs):
        return ()

    def empty_cache(self, batch_size, max_length):  # one layer's (keys, values), unused
        return ((keras.ops.zeros((batch_size, 1)), keras.ops.zeros((batch_size, 1))),)

    def decode_step(self, tokens, position, cache, cross_key_values, source_mask):
        return keras.ops.take(self.log_table, tokens[:, 0], axis=0), cache, (), ()


A, B, END = 4, 5, decoding.END_ID
BIGRAMS = {decoding.START_ID: {END: 0.5, A: 0.3, B: 0.2},
           A: {A: 0.55, B: 0.35, END: 0.1},
           B: {END: 0.9, A: 0.05, B: 0.05}}


@pytest.mark.parametrize("max_length, expected, log_probs", [
    # [END] finishes first, [A] and [B] keep searching: [B END] (0.18) then fills the pool
    # (the old search kept [END] in one of its two beams and went on with [A] alone)
    (3, [[END, 0, 0], [B, END, 0]], [0.5, 0.2 * 0.9]),
    # at max_length the best live hypothesis fills the pool's empty place
    (1, [[END], [A]], [0.5, 0.3]),
])
def test_finished_hypotheses_leave_the_beam_and_the_others_go_on(max_length, expected,
                                                                  log_probs):
    tokens, scores, found = decoding.beam_search(BigramParts(BIGRAMS), np.ones((1, 1), "int32"),
                                                 max_length, beam_size=2, alpha=0.6)
    np.testing.assert_array_equal(tokens[0], expected)
    np.testing.assert_allclose(found[0], np.log(log_probs), rtol=1e-6)
    lengths = (np.asarray(expected) != 0).sum(-1)
    np.testing.assert_allclose(scores[0], np.log(log_probs) / ((5 + lengths) / 6) ** 0.6,
                               rtol=1e-6)


@pytest.mark.parametrize("no_repeat_ngram", [0, 2])
def test_n_best_are_distinct_sorted_and_scored_by_the_model(trained_model, untrained, sources,
                                                            no_repeat_ngram):
    """Every hypothesis's score is the model's own log-probability over its length penalty."""
    for model in (trained_model, untrained):
        tokens, scores, log_probs = map(np.asarray, decoding.beam_search(
            model, sources, MAX_LENGTH, beam_size=3, alpha=0.6,
            no_repeat_ngram=no_repeat_ngram))
        flat = tokens.reshape(-1, MAX_LENGTH)
        own = np.asarray(decoding.sequence_log_prob(model, np.repeat(sources, 3, axis=0), flat))
        np.testing.assert_allclose(log_probs.reshape(-1), own, atol=1e-4)
        lengths = (flat != 0).sum(-1)
        np.testing.assert_allclose(
            scores.reshape(-1), own / decoding.length_penalty(lengths, 0.6), atol=1e-4)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)
        for row in flat:  # [END] then padding, or max_length tokens
            ends = np.flatnonzero(row == END)
            assert np.all(row[ends[0] + 1:] == 0) if len(ends) else np.all(row != 0)
        for hypotheses in tokens:
            assert len({tuple(h) for h in hypotheses}) == 3


def test_beam_scores_at_least_greedy_after_length_normalization(trained_model, copy_task):
    sources = copy_task.source_ids(np.random.default_rng(3), 8, 5)
    sources[::2, 3:] = 0
    greedy = decoding.greedy_decode(trained_model, sources, MAX_LENGTH)
    tokens, scores, _ = decoding.beam_search(trained_model, sources, MAX_LENGTH,
                                             beam_size=4, alpha=0.6)
    lengths = (np.asarray(greedy) != 0).sum(-1)
    greedy_scores = (np.asarray(decoding.sequence_log_prob(trained_model, sources, greedy))
                     / decoding.length_penalty(lengths, 0.6))
    assert np.all(np.asarray(scores)[:, 0] >= greedy_scores - 1e-4)


def test_a_sentence_alone_gets_the_hypotheses_it_gets_in_a_batch(sources, untrained):
    """A sentence whose pool is full stops changing while its neighbours search on."""
    model = untrained
    batch = decoding.beam_search(model, sources, MAX_LENGTH, beam_size=2, no_repeat_ngram=2)
    for row in range(len(sources)):
        alone = sources[row:row + 1, : max(1, int((sources[row] != 0).sum()))]
        single = decoding.beam_search(model, alone, MAX_LENGTH, beam_size=2, no_repeat_ngram=2)
        np.testing.assert_array_equal(single[0][0], batch[0][row])
        np.testing.assert_allclose(single[1][0], batch[1][row], atol=1e-5)


def repeated_ngrams(row, n):
    """The n-grams that occur more than once in a row of output tokens."""
    row = list(row[row != 0])
    grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
    return {gram for gram in grams if grams.count(gram) > 1}


def test_ban_repeated_ngrams_on_a_small_buffer():
    scores = np.zeros((3, 7), "float32")
    tokens = np.array([[4, 5, 4, 0, 0], [4, 4, 0, 0, 0], [4, 5, 6, 4, 5]], "int32")

    def banned(n, position):
        return np.isneginf(decoding.ban_repeated_ngrams(scores, tokens, position, n))

    # row 0: 4 5 4 _ : "4 5" again is banned; row 1: 4 4 _ : "4 4" again is banned;
    # row 2 at position 3 sees 4 5 6 only, its last token 6 began no bigram yet
    np.testing.assert_array_equal(np.flatnonzero(banned(2, 3)[0]), [5])
    np.testing.assert_array_equal(np.flatnonzero(banned(2, 2)[1]), [4])
    assert not banned(2, 3)[2].any()
    np.testing.assert_array_equal(np.flatnonzero(banned(3, 5)[2]), [6])  # 4 5 6 ... 4 5 _
    np.testing.assert_array_equal(np.flatnonzero(banned(1, 2)[1]), [4])  # no token twice
    assert not decoding.ban_repeated_ngrams(scores, tokens, 3, 0).any()


def test_no_repeat_ngram_never_repeats_a_bigram(sources, untrained):
    model = untrained  # it repeats itself
    greedy = np.asarray(decoding.greedy_decode(model, sources, MAX_LENGTH))
    assert any(repeated_ngrams(row, 2) for row in greedy)
    outputs = [decoding.greedy_decode(model, sources, MAX_LENGTH, no_repeat_ngram=2),
               decoding.sample_decode(model, sources, MAX_LENGTH, no_repeat_ngram=2),
               decoding.beam_search(model, sources, MAX_LENGTH, beam_size=3,
                                    no_repeat_ngram=2)[0]]
    for output in outputs:
        for row in np.asarray(output).reshape(-1, MAX_LENGTH):
            assert not repeated_ngrams(row, 2), row


def test_beam_under_xla_equals_eager(sources, untrained):
    model = untrained

    def search(source):
        return decoding.beam_search(model, source, MAX_LENGTH, beam_size=3, alpha=0.6,
                                    no_repeat_ngram=2)

    expected = search(sources)
    compiled = tf.function(search, jit_compile=True, autograph=False)(tf.constant(sources))
    np.testing.assert_array_equal(compiled[0], expected[0])
    np.testing.assert_allclose(compiled[1], expected[1], atol=1e-5)
    np.testing.assert_allclose(compiled[2], expected[2], atol=1e-5)


def test_sampling_is_reproducible_and_top_k_one_is_greedy(trained_model, sources, untrained):
    model = untrained  # a flat distribution
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
