"""Attention masks, built in one place and passed explicitly.

Convention: a mask is boolean and True where attention is ALLOWED. Attention masks have
shape (B, T, S) or anything that broadcasts to it ((B, 1, S) for padding, (T, S) for
causality), where T is the query length and S the key length.
"""

from keras import ops

from pipelines.special_tokens import PAD_ID


def padding_mask(tokens, pad_id=PAD_ID):
    """(B, S) int tokens -> (B, S) bool, True at real (non-padding) tokens."""
    return ops.not_equal(tokens, pad_id)


def key_padding_mask(tokens, pad_id=PAD_ID):
    """(B, S) int tokens -> (B, 1, S) bool: every query may see the real keys only."""
    return ops.expand_dims(padding_mask(tokens, pad_id), 1)


def causal_mask(query_length, key_length=None, query_offset=0):
    """(T, S) bool, True where key position <= query position.

    `query_offset` is the absolute position of the first query: incremental decoding
    attends one query at position t over a fixed-size cache of S keys.
    """
    key_length = query_length if key_length is None else key_length
    query_positions = ops.arange(query_length) + query_offset
    key_positions = ops.arange(key_length)
    return ops.greater_equal(
        ops.expand_dims(query_positions, 1), ops.expand_dims(key_positions, 0))


def decoder_self_attention_mask(target_tokens, pad_id=PAD_ID):
    """(B, T) target tokens -> (B, T, T) bool: causal and not attending to padding."""
    # Positions from the tokens themselves: the length may be symbolic (None) here.
    positions = ops.cumsum(ops.ones_like(target_tokens), axis=1)  # (B, T): 1 .. T
    causal = ops.greater_equal(ops.expand_dims(positions, 2), ops.expand_dims(positions, 1))
    return ops.logical_and(causal, key_padding_mask(target_tokens, pad_id))
