"""Generation one token at a time: greedy, beam search and sampling, all around `next_logits`.

Everything here is `keras.ops`, so it runs eagerly on any backend and traces inside
`tf.function` (optionally XLA) on TensorFlow. The decoder's self-attention keys and
values live in a fixed-size cache (B, h, max_length, d_k) written in place at each
step; the cross-attention keys and values are computed once per source.

Outputs are token ids after [START]: each row ends with [END] then padding (0), or
stops at `max_length` tokens without [END]. Every search takes `no_repeat_ngram=n`: a
token that would repeat an n-gram of its own output is never chosen (0, the default: off).
`greedy_decode_with_attention` also keeps every attention weight that the cached steps
computed (what the attention pictures show).
"""

import keras
from keras import ops

from keras_transformer.generation.defaults import ALPHA, BEAM_SIZE
from keras_transformer.model import TransformerParts
from pipelines.special_tokens import END_ID, PAD_ID, START_ID


def _parts(model):
    return model if isinstance(model, TransformerParts) else model.parts


def _choose_best(logits):
    """(B, V) -> (B,) int32 argmax. top_k(1) rather than argmax: TFLite has no BitwiseAnd."""
    return ops.cast(ops.top_k(logits, 1)[1][:, 0], "int32")


class SourceContext:
    """What every decoding step needs from the source, computed once: (B, S) tokens ->
    per-layer cross-attention keys/values and the (B, 1, S) source padding mask; also each
    encoder layer's self-attention weights (B, h, S, S), for attention pictures."""

    def __init__(self, parts, source_tokens):
        encoder_outputs, self.source_mask, self.encoder_weights = parts.encode_with_attention(
            source_tokens)
        self.cross_key_values = parts.cross_key_values(encoder_outputs)

    def reorder(self, indices):
        """Select batch rows (beam search tiles and reorders sources)."""
        context = SourceContext.__new__(SourceContext)
        context.source_mask, context.encoder_weights, context.cross_key_values = _take_rows(
            (self.source_mask, self.encoder_weights, self.cross_key_values), indices)
        return context


def _running(position, max_length, done):
    """The loop condition of every search: below max_length, and some sentence not done."""
    return ops.logical_and(position < max_length, ops.logical_not(ops.all(done)))


def forbid_reserved(logits):
    """(..., V) logits with [PAD] and [START] at -inf: they are never generated."""
    vocab = ops.arange(ops.shape(logits)[-1])
    return ops.where(ops.logical_or(vocab == PAD_ID, vocab == START_ID), float("-inf"), logits)


def next_logits(parts, tokens, position, cache, context):
    """The one step function: (B, 1) tokens at `position` -> (B, V) float32 logits, new cache,
    and the step's attention weights: per decoder layer, self (B, h, 1, max_length) and
    cross (B, h, 1, S), as a pair of tuples."""
    logits, cache, self_weights, cross_weights = parts.decode_step(
        tokens, position, cache, context.cross_key_values, context.source_mask)
    return forbid_reserved(logits), cache, (self_weights, cross_weights)


def force_prefix(scores, prefix, position):
    """(R, V) scores with every token but the prefix's at -inf in the rows whose target prefix
    (R, max_length) int32, 0 past its end) has a token at `position`: a search then continues
    the given words. The forced token keeps its own score (its log-probability counts)."""
    forced = ops.expand_dims(ops.take(prefix, position, axis=1), 1)  # (R, 1)
    vocab = ops.expand_dims(ops.arange(ops.shape(scores)[-1], dtype="int32"), 0)
    return ops.where(ops.logical_and(forced != PAD_ID, vocab != forced), float("-inf"), scores)


def _token_loop(parts, context, max_length, choose, end_id=END_ID, no_repeat_ngram=0,
                record=None, prefix=None):
    """Shared loop of greedy, sampling and attention recording.

    Args:
        context: the `SourceContext` of the (B, S) sources.
        choose: (logits (B, V), position) -> (B,) int32.
        end_id: None never stops early (benchmarks time a fixed number of steps).
        no_repeat_ngram: n > 0 forbids repeating an n-gram (see `ban_repeated_ngrams`).
        record: optional (initial, update): extra loop state, and
            update(state, position, weights) -> state with each step's weights from
            `next_logits`.
        prefix: optional (B, max_length) int32 target words to start with (`force_prefix`).
    Returns:
        output (B, max_length) int32 and the final recorded state (() without `record`).
    """
    recorded, update = record or ((), lambda state, position, weights: state)
    batch = ops.shape(context.source_mask)[0]

    def cond(position, last, output, cache, finished, recorded):
        return _running(position, max_length, finished)

    def body(position, last, output, cache, finished, recorded):
        logits, cache, weights = next_logits(parts, last, position, cache, context)
        recorded = update(recorded, position, weights)
        logits = ban_repeated_ngrams(logits, output, position, no_repeat_ngram)
        if prefix is not None:
            logits = force_prefix(logits, prefix, position)
        chosen = ops.where(finished, PAD_ID, choose(logits, position))
        output = ops.slice_update(output, [0, position], ops.expand_dims(chosen, 1))
        if end_id is not None:
            finished = ops.logical_or(finished, ops.equal(chosen, end_id))
        return position + 1, ops.expand_dims(chosen, 1), output, cache, finished, recorded

    initial = (ops.convert_to_tensor(0, "int32"),
               ops.full((batch, 1), START_ID, "int32"),
               ops.zeros((batch, max_length), "int32"),
               parts.empty_cache(batch, max_length),
               ops.zeros((batch,), "bool"),
               recorded)
    _, _, output, _, _, recorded = ops.while_loop(cond, body, initial)
    return output, recorded


def greedy_decode(model, source_tokens, max_length, end_id=END_ID, no_repeat_ngram=0,
                  prefix=None):
    """(B, S) source tokens -> (B, max_length) int32: the most likely token at each step
    (that repeats no n-gram of its output when `no_repeat_ngram` = n > 0), after the
    `prefix` tokens where given ((B, max_length), 0-padded)."""
    parts = _parts(model)
    return _token_loop(parts, SourceContext(parts, source_tokens), max_length,
                       lambda logits, position: _choose_best(logits), end_id,
                       no_repeat_ngram, prefix=prefix)[0]


def greedy_decode_with_attention(model, source_tokens, max_length, end_id=END_ID):
    """`greedy_decode`, plus every attention weight that its cached steps computed.

    Step t reads the token at position t ([START], then output token t - 1) and chooses
    output token t; row t of each decoder buffer holds its weights. A sentence that ended
    keeps stepping (on padding) while others have not; rows after the last step stay 0.

    Returns:
        tokens (B, max_length) int32, equal to `greedy_decode`'s; per encoder layer the
        self weights (B, h, S, S); per decoder layer the masked self weights
        (B, h, max_length, max_length) and the cross weights (B, h, max_length, S).
        Weights are float32 and tuples run over layers.
    """
    parts = _parts(model)
    context = SourceContext(parts, source_tokens)
    batch, source_length = ops.shape(source_tokens)[0], ops.shape(source_tokens)[1]
    heads = parts.num_heads

    def buffers(key_length):  # one (B, h, max_length, keys) buffer per decoder layer
        return tuple(ops.zeros((batch, heads, max_length, key_length), "float32")
                     for _ in parts.decoder_blocks)

    def update(recorded, position, weights):
        return tuple(
            tuple(ops.slice_update(buffer, [0, 0, position, 0], ops.cast(step, "float32"))
                  for buffer, step in zip(layer_buffers, step_weights))
            for layer_buffers, step_weights in zip(recorded, weights))

    tokens, (self_weights, cross_weights) = _token_loop(
        parts, context, max_length, lambda logits, position: _choose_best(logits), end_id,
        record=((buffers(max_length), buffers(source_length)), update))
    return tokens, context.encoder_weights, self_weights, cross_weights


def sample_decode(model, source_tokens, max_length, temperature=1.0, top_k=None, top_p=None,
                  seed=0, no_repeat_ngram=0, prefix=None):
    """Sampling from softmax(logits / temperature), optionally restricted to the `top_k`
    most likely tokens and/or the smallest set whose probability reaches `top_p`, and to
    tokens that repeat no n-gram of the output when `no_repeat_ngram` = n > 0.

    Reproducible: the same seed gives the same tokens. Uses the Gumbel-max trick, with each
    step's (B, V) noise a function of (seed, step, element): no random state is carried,
    and no noise is held for steps not taken.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    parts = _parts(model)

    def choose(logits, position):
        logits = filter_logits(logits / temperature, top_k, top_p)
        return _choose_best(logits + gumbel_noise(seed, position, ops.shape(logits)))

    return _token_loop(parts, SourceContext(parts, source_tokens), max_length, choose,
                       no_repeat_ngram=no_repeat_ngram, prefix=prefix)[0]


def gumbel_noise(seed, step, shape):
    """(B, V) Gumbel(0, 1) noise, a pure function of (seed, step, element index).

    The uniforms come from an integer hash (a multiply-xorshift finalizer over int32, whose
    products wrap around alike on every backend) rather than a random generator: the same
    seed and step give the same noise in a traced loop, eagerly, under XLA and under JAX. Any
    Python int is a seed: its term is wrapped to int32 here, as the tensors' products wrap.
    """
    rows, columns = shape[0], shape[1]
    index = ops.reshape(ops.arange(rows * columns, dtype="int32"), (rows, columns))
    h = index * -1640531535 + ops.cast(step, "int32") * 374761393 + _int32(int(seed) * 668265263)
    for shift, multiplier in ((15, -2048144777), (13, -1028477379)):
        h = ops.bitwise_xor(h, ops.right_shift(h, shift)) * multiplier
    h = ops.bitwise_xor(h, ops.right_shift(h, 16))
    uniform = (ops.cast(ops.bitwise_and(h, 0xFFFFFF), "float32") + 0.5) / float(1 << 24)
    return -ops.log(-ops.log(uniform))


def _int32(value):
    """A Python int wrapped to int32's range, as int32 arithmetic wraps it."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def filter_logits(logits, top_k=None, top_p=None):
    """(B, V) logits with tokens outside the top-k / top-p (nucleus) set at -inf."""
    if top_k is not None:
        kth_best = ops.top_k(logits, top_k)[0][:, -1:]
        logits = ops.where(logits < kth_best, float("-inf"), logits)
    if top_p is not None:
        sorted_logits = ops.top_k(logits, ops.shape(logits)[-1])[0]
        cumulative = ops.cumsum(ops.softmax(sorted_logits, axis=-1), axis=-1)
        # keep a token while the mass before it is < top_p (the best one always stays)
        keep = (cumulative - ops.softmax(sorted_logits, axis=-1)) < top_p
        cutoff = ops.min(ops.where(keep, sorted_logits, float("inf")), axis=-1, keepdims=True)
        logits = ops.where(logits < cutoff, float("-inf"), logits)
    return logits


def target_log_probs(model, source_tokens, target_ids):
    """Teacher-forced log-probabilities of given targets (forced decoding).

    Args:
        source_tokens: (B, S) int32 framed sources.
        target_ids: (B, T) int32 [START] y [END], 0-padded.
    Returns:
        (B, T - 1) float32: log p(target_ids[:, t + 1] | source, target_ids[:, :t + 1]), 0 where
        that token is padding. As in every search, [PAD] and [START] are no candidates
        (`forbid_reserved`): a row's sum is what beam search's log_probs sums for it.
    """
    logits = forbid_reserved(ops.cast(model([source_tokens, target_ids[:, :-1]]), "float32"))
    log_probs = ops.log_softmax(logits, axis=-1)
    following = target_ids[:, 1:]
    taken = ops.take_along_axis(log_probs, ops.expand_dims(following, -1), axis=-1)[..., 0]
    return ops.where(following != PAD_ID, taken, 0.0)


def length_penalty(lengths, alpha):
    """GNMT (Wu et al., 2016): ((5 + |Y|) / 6) ** alpha."""
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


def beam_search(model, source_tokens, max_length, beam_size=BEAM_SIZE, alpha=ALPHA,
                no_repeat_ngram=0, prefix=None):
    """Beam search where finished hypotheses leave the beam (as fairseq's does).

    Each step extends the K live hypotheses of a sentence by every token and takes the
    best 2K by summed log-probability. Those ending in [END] among the best K go to the
    sentence's pool of at most K finished hypotheses, ranked by log_prob / length_penalty
    (GNMT); the best K that do not end are the next live beams, so K hypotheses keep
    searching after one finishes. A sentence is done when its pool holds K hypotheses
    (fairseq's rule); the search stops when every sentence is done or at `max_length`,
    where live hypotheses fill the pool wherever they score better. Only an [END] among
    the best K counts, as in fairseq: one that no width-K beam would take is no hypothesis
    of this search, and beam_size=1 is then exactly greedy decoding.

    Args:
        source_tokens: (B, S) int32.
        no_repeat_ngram: n > 0 forbids a token that would repeat an n-gram of its hypothesis.
        prefix: optional (B, max_length) int32 target tokens every hypothesis starts with,
            0-padded (`force_prefix`); their log-probabilities count in the scores.
    Returns:
        tokens (B, K, max_length) int32, best first, each ending with [END] then 0s or
        filling max_length; scores (B, K) length-normalized; log_probs (B, K), the
        model's own summed log-probability of each hypothesis.
    """
    parts = _parts(model)
    batch, k = ops.shape(source_tokens)[0], beam_size
    # every source repeated k times: row b * k + j is beam j of sentence b
    context = SourceContext(parts, source_tokens).reorder(ops.repeat(ops.arange(batch), k))
    beam_prefix = None if prefix is None else ops.repeat(prefix, k, axis=0)  # (B * K, L)

    def cond(position, last, cache, live, pool):
        return _running(position, max_length, _is_full(pool))

    def body(position, last, cache, live, pool):
        logits, cache, _ = next_logits(parts, last, position, cache, context)
        live_tokens, live_log_probs = live
        step_log_probs = ban_repeated_ngrams(  # (B * K, V)
            ops.log_softmax(logits, axis=-1), ops.reshape(live_tokens, (-1, max_length)),
            position, no_repeat_ngram)
        if beam_prefix is not None:
            step_log_probs = force_prefix(step_log_probs, beam_prefix, position)
        tokens, log_probs, beams = _best_extensions(live, step_log_probs, position, 2 * k)
        ends = ops.take(tokens, position, axis=2) == END_ID  # (B, 2K)
        finishing = ops.logical_and(ends, ops.arange(2 * k) < k)
        finishing = ops.logical_and(finishing, ops.logical_not(_is_full(pool))[:, None])
        scores = log_probs / length_penalty(position + 1, alpha)
        pool = _best_of(pool, (tokens, ops.where(finishing, scores, float("-inf")), log_probs), k)
        live_log_probs, chosen = ops.top_k(ops.where(ends, float("-inf"), log_probs), k)
        live_tokens = ops.take_along_axis(tokens, chosen[..., None], axis=1)  # (B, K, L)
        rows = ops.take_along_axis(beams, chosen, axis=1) + ops.arange(batch)[:, None] * k
        cache = _take_rows(cache, ops.reshape(rows, (-1,)))
        last = ops.reshape(ops.take(live_tokens, position, axis=2), (-1, 1))
        return position + 1, last, cache, (live_tokens, live_log_probs), pool

    # only beam 0 is live at the start, so the first step does not pick k copies
    first = ops.where(ops.arange(k) == 0, 0.0, float("-inf"))
    live = (ops.zeros((batch, k, max_length), "int32"),
            ops.tile(ops.expand_dims(first, 0), (batch, 1)))
    pool = (ops.zeros((batch, k, max_length), "int32"), ops.full((batch, k), float("-inf")),
            ops.zeros((batch, k)))
    initial = (ops.convert_to_tensor(0, "int32"), ops.full((batch * k, 1), START_ID, "int32"),
               parts.empty_cache(batch * k, max_length), live, pool)
    _, _, _, (live_tokens, live_log_probs), pool = ops.while_loop(cond, body, initial)
    # sentences not done reached max_length: their live hypotheses may fill the pool
    lengths = ops.sum(ops.cast(live_tokens != PAD_ID, "int32"), axis=-1)
    scores = ops.where(_is_full(pool)[:, None], float("-inf"),
                       live_log_probs / length_penalty(lengths, alpha))
    return _best_of(pool, (live_tokens, scores, live_log_probs), k)


def _best_extensions(live, step_log_probs, position, n):
    """The n best one-token extensions of each sentence's K live hypotheses.

    Args:
        live: tokens (B, K, L) and summed log_probs (B, K).
        step_log_probs: (B * K, V) of the token at `position`.
    Returns:
        tokens (B, n, L) with the new token at `position`, log_probs (B, n) best first,
        and the live beam (B, n) in 0..K-1 each extends.
    """
    live_tokens, live_log_probs = live
    batch, k, length = ops.shape(live_tokens)
    vocab_size = ops.shape(step_log_probs)[-1]
    candidates = ops.expand_dims(live_log_probs, 2) + ops.reshape(step_log_probs,
                                                                  (batch, k, vocab_size))
    log_probs, best = ops.top_k(ops.reshape(candidates, (batch, k * vocab_size)), n)
    beams, token = best // vocab_size, ops.cast(best % vocab_size, "int32")
    tokens = ops.take_along_axis(live_tokens, ops.expand_dims(beams, 2), axis=1)
    tokens = ops.where(ops.arange(length) == position, ops.expand_dims(token, 2), tokens)
    return tokens, log_probs, beams


def _best_of(pool, candidates, k):
    """The k best by score of a pool and candidates, each (tokens (B, N, L), scores (B, N),
    log_probs (B, N)); -inf scores mark empty slots. Best first; ties keep the pool's."""
    tokens, scores, log_probs = (ops.concatenate(pair, axis=1) for pair in zip(pool, candidates))
    scores, best = ops.top_k(scores, k)
    return (ops.take_along_axis(tokens, ops.expand_dims(best, 2), axis=1), scores,
            ops.take_along_axis(log_probs, best, axis=1))


def _is_full(pool):
    """(B,) bool: the sentence's pool holds K finished hypotheses (fairseq's stopping rule)."""
    return ops.all(pool[1] > float("-inf"), axis=-1)


def _take_rows(structure, rows):
    """Rows `rows` (N,) of every tensor of a nested structure (a cache, a source context)."""
    return keras.tree.map_structure(lambda tensor: ops.take(tensor, rows, axis=0), structure)


def ban_repeated_ngrams(scores, tokens, position, n):
    """(R, V) scores with -inf on every token that would complete an n-gram already in its row.

    `tokens` (R, L) holds each hypothesis in positions < `position`; the next token goes at
    `position`. Fixed shapes: the last n - 1 tokens are compared with every window of the
    buffer, and the ids that followed the matching windows are scattered into an (R, V)
    mask. n = 0 returns the scores unchanged.
    """
    length = tokens.shape[1]
    if not n or n > length:
        return scores
    windows = ops.stack([tokens[:, i:length - n + 1 + i] for i in range(n)], axis=-1)  # (R, W, n)
    previous = ops.take(tokens, ops.maximum(position - n + 1 + ops.arange(n - 1), 0), axis=1)
    seen = ops.all(windows[..., :-1] == ops.expand_dims(previous, 1), axis=-1)  # (R, W)
    seen = ops.logical_and(seen, ops.arange(length - n + 1) <= position - n)  # windows so far
    rows = ops.shape(scores)[0]
    row_ids = ops.broadcast_to(ops.arange(rows)[:, None], ops.shape(seen))
    indices = ops.reshape(ops.stack([row_ids, windows[..., -1]], axis=-1), (-1, 2))
    banned = ops.scatter(indices, ops.reshape(ops.cast(seen, "int32"), (-1,)),
                         (rows, ops.shape(scores)[1]))
    return ops.where(banned > 0, float("-inf"), scores)


def greedy_decode_uncached(model, source_tokens, max_length, end_id=END_ID):
    """Greedy decoding that recomputes the whole decoder at every step (no cache).

    The reference cached decoding must equal, and the baseline of the decode benchmark.
    The target buffer has a fixed width, so the graph has static shapes for XLA.
    """
    parts = _parts(model)
    batch = ops.shape(source_tokens)[0]
    encoder_outputs, source_mask = parts.encode(source_tokens)

    def cond(position, output, finished):
        return _running(position, max_length, finished)

    def body(position, output, finished):
        # decoder input: [START] + tokens so far; later slots are padding, which the
        # causal mask hides from position `position` anyway
        inputs = ops.concatenate([ops.full((batch, 1), START_ID, "int32"), output], axis=1)
        logits = ops.cast(parts.decode(inputs, encoder_outputs, source_mask), "float32")
        logits = forbid_reserved(ops.take(logits, position, axis=1))
        chosen = ops.where(finished, PAD_ID, _choose_best(logits))
        output = ops.slice_update(output, [0, position], ops.expand_dims(chosen, 1))
        if end_id is not None:
            finished = ops.logical_or(finished, ops.equal(chosen, end_id))
        return position + 1, output, finished

    initial = (ops.convert_to_tensor(0, "int32"), ops.zeros((batch, max_length), "int32"),
               ops.zeros((batch,), "bool"))
    return ops.while_loop(cond, body, initial)[1]


def jax_compiled(model, function):
    """`function` (of arrays, calling the searches on `model`'s parts) compiled by `jax.jit`, once
    per input shape. The model's weights are inputs of the compiled function
    (`keras.StatelessScope` maps its variables to them): weights set after compiling, as the
    train job sets its float32 twin's each epoch, are the ones a call uses. JAX backend only."""
    import jax

    variables = model.variables

    @jax.jit
    def run(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(*args)

    return lambda *args: run([variable.value for variable in variables], *args)


def sequence_log_prob(model, source_tokens, output_tokens):
    """The model's summed log-probability of each (B, T) output (padding after [END] ignored)."""
    parts = _parts(model)
    encoder_outputs, source_mask = parts.encode(source_tokens)
    batch = ops.shape(output_tokens)[0]
    inputs = ops.concatenate(
        [ops.full((batch, 1), START_ID, "int32"), output_tokens[:, :-1]], axis=1)
    logits = ops.cast(parts.decode(inputs, encoder_outputs, source_mask), "float32")
    token_log_probs = ops.take_along_axis(ops.log_softmax(forbid_reserved(logits), axis=-1),
                                          ops.expand_dims(output_tokens, 2), axis=2)[..., 0]
    return ops.sum(ops.where(output_tokens != PAD_ID, token_log_probs, 0.0), axis=-1)
