"""Generation one token at a time: greedy, beam search and sampling, all around `next_logits`.

Everything here is `keras.ops`, so it runs eagerly on any backend and traces inside
`tf.function` (optionally XLA) on TensorFlow. The decoder's self-attention keys and
values live in a fixed-size cache (B, h, max_length, d_k) written in place at each
step; the cross-attention keys and values are computed once per source.

Outputs are token ids after [START]: each row ends with [END] then padding (0), or
stops at `max_length` tokens without [END]. `greedy_decode_with_attention` also keeps
every attention weight that the cached steps computed (what the attention pictures show).
"""

import keras
from keras import ops

from keras_transformer.layers.masks import PAD_ID
from keras_transformer.model import TransformerParts

START_ID, END_ID = 2, 3  # the reserved ids of pipelines.tokenizers


def _parts(model):
    return model if isinstance(model, TransformerParts) else TransformerParts(model)


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
        context.source_mask = ops.take(self.source_mask, indices, axis=0)
        context.encoder_weights = tuple(ops.take(weights, indices, axis=0)
                                        for weights in self.encoder_weights)
        context.cross_key_values = tuple(
            (ops.take(k, indices, axis=0), ops.take(v, indices, axis=0))
            for k, v in self.cross_key_values)
        return context


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


def _token_loop(parts, context, max_length, choose, end_id=END_ID, record=None):
    """Shared loop of greedy, sampling and attention recording.

    Args:
        context: the `SourceContext` of the (B, S) sources.
        choose: (logits (B, V), position) -> (B,) int32.
        end_id: None never stops early (benchmarks time a fixed number of steps).
        record: optional (initial, update): extra loop state, and
            update(state, position, weights) -> state with each step's weights from
            `next_logits`.
    Returns:
        output (B, max_length) int32 and the final recorded state (() without `record`).
    """
    recorded, update = record or ((), lambda state, position, weights: state)
    batch = ops.shape(context.source_mask)[0]

    def cond(position, last, output, cache, finished, recorded):
        return ops.logical_and(position < max_length, ops.logical_not(ops.all(finished)))

    def body(position, last, output, cache, finished, recorded):
        logits, cache, weights = next_logits(parts, last, position, cache, context)
        recorded = update(recorded, position, weights)
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


def greedy_decode(model, source_tokens, max_length, end_id=END_ID):
    """(B, S) source tokens -> (B, max_length) int32: the most likely token at each step."""
    parts = _parts(model)
    return _token_loop(parts, SourceContext(parts, source_tokens), max_length,
                       lambda logits, position: _choose_best(logits), end_id)[0]


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
                  seed=0):
    """Sampling from softmax(logits / temperature), optionally restricted to the `top_k`
    most likely tokens and/or the smallest set whose probability reaches `top_p`.

    Reproducible: the same seed gives the same tokens. Uses the Gumbel-max trick with
    noise drawn once for all steps, (max_length, B, V), so no random state is carried.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    parts = _parts(model)
    batch = ops.shape(source_tokens)[0]
    vocab_size = parts.target_embedding.vocab_size
    uniform = keras.random.uniform((max_length, batch, vocab_size), minval=1e-20, maxval=1.0,
                                   seed=seed)
    gumbel = -ops.log(-ops.log(uniform))

    def choose(logits, position):
        logits = filter_logits(logits / temperature, top_k, top_p)
        return _choose_best(logits + ops.take(gumbel, position, axis=0))

    return _token_loop(parts, SourceContext(parts, source_tokens), max_length, choose)[0]


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


def length_penalty(lengths, alpha):
    """GNMT (Wu et al., 2016): ((5 + |Y|) / 6) ** alpha."""
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


def beam_search(model, source_tokens, max_length, beam_size=4, alpha=0.6):
    """Beam search with GNMT length normalization.

    Keeps the `beam_size` best prefixes by summed log-probability; a prefix that emits
    [END] is finished and keeps its score. The search stops when every beam is finished
    or at `max_length`; hypotheses are then ranked by log_prob / length_penalty.

    Returns:
        tokens (B, K, max_length) int32, best first; scores (B, K) length-normalized;
        log_probs (B, K), the model's own summed log-probability of each hypothesis.
    """
    parts = _parts(model)
    batch = ops.shape(source_tokens)[0]
    k = beam_size
    flat = batch * k
    vocab_size = parts.target_embedding.vocab_size
    # every source repeated k times: row b * k + j is beam j of sentence b
    context = SourceContext(parts, source_tokens).reorder(
        ops.repeat(ops.arange(batch), k))
    # finished beams may only extend themselves with padding, at no cost
    pad_only = ops.where(ops.arange(vocab_size) == PAD_ID, 0.0, float("-inf"))

    def cond(position, last, output, cache, log_probs, finished):
        return ops.logical_and(position < max_length, ops.logical_not(ops.all(finished)))

    def body(position, last, output, cache, log_probs, finished):
        logits, cache, _ = next_logits(parts, last, position, cache, context)
        step_log_probs = ops.log_softmax(logits, axis=-1)  # (B * K, V)
        step_log_probs = ops.where(ops.reshape(finished, (flat, 1)), pad_only, step_log_probs)
        candidates = ops.expand_dims(log_probs, 2) + ops.reshape(step_log_probs,
                                                                 (batch, k, vocab_size))
        log_probs, best = ops.top_k(ops.reshape(candidates, (batch, k * vocab_size)), k)
        beam = best // vocab_size
        token = ops.cast(best % vocab_size, "int32")                  # (B, K)
        rows = ops.reshape(beam + ops.expand_dims(ops.arange(batch) * k, 1), (flat,))
        output = ops.take(output, rows, axis=0)
        cache = tuple((ops.take(keys, rows, axis=0), ops.take(values, rows, axis=0))
                      for keys, values in cache)
        finished = ops.take(ops.reshape(finished, (flat,)), rows, axis=0)
        token = ops.reshape(token, (flat,))
        output = ops.slice_update(output, [0, position], ops.expand_dims(token, 1))
        finished = ops.logical_or(finished, ops.equal(token, END_ID))
        return (position + 1, ops.expand_dims(token, 1), output, cache, log_probs,
                ops.reshape(finished, (batch, k)))

    # only beam 0 is live at the start, so the first step does not pick k copies
    first = ops.where(ops.arange(k) == 0, 0.0, float("-inf"))
    initial = (ops.convert_to_tensor(0, "int32"),
               ops.full((flat, 1), START_ID, "int32"),
               ops.zeros((flat, max_length), "int32"),
               parts.empty_cache(flat, max_length),
               ops.tile(ops.expand_dims(first, 0), (batch, 1)),
               ops.zeros((batch, k), "bool"))
    _, _, output, _, log_probs, _ = ops.while_loop(cond, body, initial)
    output = ops.reshape(output, (batch, k, max_length))
    lengths = ops.sum(ops.cast(output != PAD_ID, "int32"), axis=-1)
    scores = log_probs / length_penalty(lengths, alpha)
    order = ops.flip(ops.argsort(scores, axis=-1), axis=-1)  # best first
    return (ops.take_along_axis(output, ops.expand_dims(order, 2), axis=1),
            ops.take_along_axis(scores, order, axis=1),
            ops.take_along_axis(log_probs, order, axis=1))


def greedy_decode_uncached(model, source_tokens, max_length, end_id=END_ID):
    """Greedy decoding that recomputes the whole decoder at every step (no cache).

    The reference cached decoding must equal, and the baseline of the decode benchmark.
    The target buffer has a fixed width, so the graph has static shapes for XLA.
    """
    parts = _parts(model)
    batch = ops.shape(source_tokens)[0]
    encoder_outputs, source_mask = parts.encode(source_tokens)

    def cond(position, output, finished):
        return ops.logical_and(position < max_length, ops.logical_not(ops.all(finished)))

    def body(position, output, finished):
        # decoder input: [START] + tokens so far; later slots are padding, which the
        # causal mask hides from position `position` anyway
        inputs = ops.concatenate([ops.full((batch, 1), START_ID, "int32"), output], axis=1)
        logits, _, _ = parts.decode(inputs, encoder_outputs, source_mask)
        logits = forbid_reserved(ops.take(logits, position, axis=1))
        chosen = ops.where(finished, PAD_ID, _choose_best(logits))
        output = ops.slice_update(output, [0, position], ops.expand_dims(chosen, 1))
        if end_id is not None:
            finished = ops.logical_or(finished, ops.equal(chosen, end_id))
        return position + 1, output, finished

    initial = (ops.convert_to_tensor(0, "int32"), ops.zeros((batch, max_length), "int32"),
               ops.zeros((batch,), "bool"))
    return ops.while_loop(cond, body, initial)[1]


def sequence_log_prob(model, source_tokens, output_tokens):
    """The model's summed log-probability of each (B, T) output (padding after [END] ignored)."""
    parts = _parts(model)
    encoder_outputs, source_mask = parts.encode(source_tokens)
    batch = ops.shape(output_tokens)[0]
    inputs = ops.concatenate(
        [ops.full((batch, 1), START_ID, "int32"), output_tokens[:, :-1]], axis=1)
    logits, _, _ = parts.decode(inputs, encoder_outputs, source_mask)
    token_log_probs = ops.take_along_axis(ops.log_softmax(forbid_reserved(logits), axis=-1),
                                          ops.expand_dims(output_tokens, 2), axis=2)[..., 0]
    return ops.sum(ops.where(output_tokens != PAD_ID, token_log_probs, 0.0), axis=-1)
