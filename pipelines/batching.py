"""tf.data input pipelines: text pairs -> padded id batches `((source, target_in), target_out)` for `fit`.

Sequences (B = sentences in a batch, S/T = padded lengths, 0 = [PAD]):

    source      [START] x [END]      (B, S) int32, S <= max_length
    target_in   [START] y            (B, T) int32, T <= max_length
    target_out  y [END]              (B, T) int32

Longer sentences are truncated to fit, keeping [END] last. `batch_tokens` bounds the padded size of each
side of a batch, B * max(S, T) <= batch_tokens; bucketing by length packs many short sentences together.
"""

import tensorflow as tf

from pipelines.tokenizers import END_ID, PAD_ID, START_ID

_ENCODE_BATCH = 256  # sentences tokenized per call: ragged ops amortize far better on a batch


def _budgets(max_length):
    """Token budgets of x and y: [START] x [END] and [START] y, y [END] hold at most max_length."""
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3, got {max_length}")
    return max_length - 2, max_length - 1


def count_truncated(pairs, tokenizers, max_length: int) -> int:
    """How many pairs `make_dataset` truncates; `tokenizers` is (source, target)."""
    if not pairs:
        return 0
    source_budget, target_budget = _budgets(max_length)
    sources, targets = zip(*pairs)
    source_lengths = tokenizers[0].tokenize(list(sources)).row_lengths()
    target_lengths = tokenizers[1].tokenize(list(targets)).row_lengths()
    truncated = (source_lengths > source_budget) | (target_lengths > target_budget)
    return int(tf.math.count_nonzero(truncated))


def _with_markers(ids, budget):
    """Ragged (B, None) -> [START] ids[:budget] [END], ragged (B, None)."""
    column = tf.ones([ids.nrows(), 1], tf.int32)
    return tf.concat([column * START_ID, ids[:, :budget], column * END_ID], axis=1)


def make_dataset(pairs, source_tokenizer, target_tokenizer, *, max_length: int, batch_tokens: int,
                 shuffle: bool, seed: int, bucketing: bool = True, bucket_width: int = 4,
                 pad_to_bucket: bool = False, drop_remainder: bool = False,
                 cache: bool = True) -> tf.data.Dataset:
    """A dataset of `((source, target_in), target_out)` batches, each (B, None) int32 padded with 0.

    Args:
        pairs: (source, target) strings.
        max_length: longest source, target_in and target_out, [START]/[END] included.
        batch_tokens: about this many token slots per side of a batch (sentences x padded length).
        shuffle: shuffle the sentences, again each epoch; the order of every epoch depends only on `seed`.
        bucketing: group sentences of similar length (buckets `bucket_width` tokens wide); otherwise
            batches of `batch_tokens // max_length` sentences.
        pad_to_bucket: pad source and target to their bucket's longest length, so batches come in a
            few fixed shapes (XLA compiles once per shape rather than once per batch).
        drop_remainder: drop the last, smaller batch (of each bucket).
        cache: keep the tokenized sentences in memory after the first epoch.
    """
    source_budget, target_budget = _budgets(max_length)
    if not pairs:
        raise ValueError("no pairs to make a dataset of")
    if batch_tokens < max_length:
        raise ValueError(f"batch_tokens ({batch_tokens}) must be at least max_length ({max_length})")

    def encode(sources, targets):  # (N,) strings -> ragged (N, None) ids
        source = _with_markers(source_tokenizer.tokenize(sources), source_budget)
        target = _with_markers(target_tokenizer.tokenize(targets), target_budget)
        return (source, target[:, :-1]), target[:, 1:]

    sources, targets = zip(*pairs)
    dataset = (tf.data.Dataset.from_tensor_slices((list(sources), list(targets)))
               .batch(_ENCODE_BATCH)
               .map(encode, num_parallel_calls=tf.data.AUTOTUNE)
               .unbatch()
               .map(lambda inputs, target_out: (inputs, target_out)))  # 1-D ragged rows -> dense tensors
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if bucketing:
        # Buckets of lengths 1..w, w+1..2w, ..., the last one ending at max_length.
        boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width))
        if pad_to_bucket:  # padding to a boundary needs an upper bound on the last bucket too
            boundaries.append(max_length + 1)
        longest = [bound - 1 for bound in boundaries] + [max_length]
        dataset = dataset.bucket_by_sequence_length(
            lambda inputs, target_out: tf.maximum(tf.shape(inputs[0])[0], tf.shape(target_out)[0]),
            boundaries, [batch_tokens // length for length in longest],
            pad_to_bucket_boundary=pad_to_bucket, drop_remainder=drop_remainder)
    else:
        dataset = dataset.padded_batch(batch_tokens // max_length, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def padding_fraction(dataset: tf.data.Dataset) -> float:
    """The fraction of [PAD] among all source and target_in slots of one pass over `dataset`."""
    padding = slots = 0
    for (source, target_in), _ in dataset:
        for ids in (source, target_in):
            padding += int(tf.math.count_nonzero(ids == PAD_ID))
            slots += int(tf.size(ids))
    return padding / slots
