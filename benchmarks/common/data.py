"""Synthetic data: fixed-shape training batches of random words, and sources to decode."""

import numpy as np
from keras import ops

from pipelines.special_tokens import END_ID, PAD_ID, RESERVED_TOKENS, START_ID

FIRST_WORD_ID = len(RESERVED_TOKENS)  # synthetic words: every id after the reserved ones


def synthetic_batches(count, batch, length, vocab_size, seed=0, min_fraction=0.5):
    """`count` fixed-shape ((source, target_in), target_out) int32 batches of shape (batch, length).

    Sentence lengths are uniform in [min_fraction * length, length] (source and target drawn
    independently), padded with 0; target_in = [START] + words, target_out = words + [END].
    Returns numpy arrays (the same arrays feed every model).
    """
    rng = np.random.default_rng(seed)
    batches = []
    low = max(2, int(round(min_fraction * length)))
    for _ in range(count):
        source = np.zeros((batch, length), np.int32)
        target_in = np.zeros((batch, length), np.int32)
        target_out = np.zeros((batch, length), np.int32)
        for row in range(batch):
            n = rng.integers(low, length + 1)
            source[row, :n] = rng.integers(FIRST_WORD_ID, vocab_size, n)
            m = rng.integers(low, length + 1)  # target words + 1 special token
            words = rng.integers(FIRST_WORD_ID, vocab_size, m - 1)
            target_in[row, :m] = np.concatenate([[START_ID], words])
            target_out[row, :m] = np.concatenate([words, [END_ID]])
        batches.append(((source, target_in), target_out))
    return batches


def target_tokens(batches):
    """Non-padding target tokens of each batch."""
    return [int((y != PAD_ID).sum()) for _, y in batches]


def to_backend(batches):
    """Convert numpy batches to backend tensors once, so timing excludes the copy."""
    return [((ops.convert_to_tensor(s), ops.convert_to_tensor(t)), ops.convert_to_tensor(y))
            for (s, t), y in batches]


def decode_source(batch, length, vocab_size, seed, rng):
    """(batch, length) int32 source tokens to decode: the sources of one synthetic batch (seed
    `seed + batch`); a batch of one is a full-length sentence of `rng`'s words instead."""
    source = synthetic_batches(1, batch, length, vocab_size, seed + batch)[0][0][0]
    if batch == 1:
        source[0, :] = rng.integers(FIRST_WORD_ID, vocab_size, length)
    return source
