"""tf.data input pipelines: text pairs -> padded id batches `((source, target_in), target_out)` for `fit`.

The pairs come from a list in memory or stream from a `source<TAB>target` file (the cleaned splits of
`pipelines.corpus`), so a corpus larger than memory trains. Framing and tokenization are the
`TextPath`'s (sequences are (B, S/T) int32, padded with 0):

    source      [START] x [END]
    target_in   [START] y
    target_out  y [END]

`batch_tokens` bounds the padded size of each side of a batch, B * max(S, T) <= batch_tokens;
bucketing by length packs many short sentences together.
"""

from pathlib import Path

import tensorflow as tf

from pipelines.tokenizers import PAD_ID

_ENCODE_BATCH = 256  # sentences tokenized per call: ragged ops amortize far better on a batch
STREAM_SHUFFLE_BUFFER = 200_000  # lines shuffled before tokenizing when nothing is cached


def text_pairs(data, shuffle_buffer=0, seed=None, reshuffle=True) -> tf.data.Dataset:
    """(source, target) string pairs from a list of pairs, or from a cleaned TSV file (streamed).

    `shuffle_buffer` > 0: pairs shuffled in a buffer of that many, reshuffled each pass (unless
    `reshuffle` is False). A file's lines are shuffled before they are split: a line is one string
    where a pair is two, so the buffer takes ~40% less memory for the same order of pairs."""
    if isinstance(data, (str, Path)):
        def split(line):
            fields = tf.strings.split(line, "\t", maxsplit=1)
            return fields[0], fields[-1]
        lines = tf.data.TextLineDataset(str(data))
        if shuffle_buffer:
            lines = lines.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle)
        return lines.map(split, num_parallel_calls=tf.data.AUTOTUNE)
    if not data:
        raise ValueError("no pairs to make a dataset of")
    sources, targets = zip(*data)
    pairs = tf.data.Dataset.from_tensor_slices((list(sources), list(targets)))
    if shuffle_buffer:
        pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle)
    return pairs


def count_truncated(pairs, text_path) -> int:
    """How many of `pairs` (a list) `make_dataset` truncates to the text path's max_length."""
    if not pairs:
        return 0
    sources, targets = zip(*pairs)
    source_lengths = text_path.source_tokenizer.tokenize(list(sources)).row_lengths()
    target_lengths = text_path.target_tokenizer.tokenize(list(targets)).row_lengths()
    truncated = ((source_lengths > text_path.source_budget)
                 | (target_lengths > text_path.max_length - 1))
    return int(tf.math.count_nonzero(truncated))


def make_dataset(data, text_path, *, batch_tokens: int, shuffle: bool, seed: int,
                 bucketing: bool = True, bucket_width: int = 4, pad_to_bucket: bool = False,
                 drop_remainder: bool = False, cache: bool | None = None,
                 shuffle_buffer: int | None = None, batch_multiple: int = 1,
                 process_share: tuple[int, int] | None = None, epoch=None) -> tf.data.Dataset:
    """A dataset of `((source, target_in), target_out)` batches, each (B, None) int32 padded with 0.

    Args:
        data: (source, target) string pairs, or the path of a `source<TAB>target` file.
        text_path: a `pipelines.text_path.TextPath` (tokenizers, framing and max_length).
        batch_tokens: about this many token slots per side of a batch (sentences x padded length).
        shuffle: shuffle the sentences, again each epoch; the order of every epoch depends only on
            `seed` (and on how many times the dataset was iterated before, unless `epoch`).
        bucketing: group sentences of similar length (buckets `bucket_width` tokens wide); otherwise
            batches of `batch_tokens // max_length` sentences.
        pad_to_bucket: pad source and target to their bucket's longest length, so batches come in a
            few fixed shapes (XLA compiles once per shape rather than once per batch).
        drop_remainder: drop the last, smaller batch (of each bucket).
        cache: keep the tokenized sentences in memory after the first epoch, and shuffle them all
            each epoch. Default: for a list, yes; for a file, no: lines are then shuffled in a
            buffer of `shuffle_buffer` (default STREAM_SHUFFLE_BUFFER) before tokenizing, and
            memory stays bounded whatever the corpus size.
        shuffle_buffer: sentences shuffled together (default: all of a cached dataset).
        batch_multiple: every batch gets a multiple of this many rows, the extra ones all [PAD]
            (which the masked loss and metrics ignore): what splitting each batch evenly
            across devices needs (`--strategy data_parallel`).
        process_share: (index, count): keep process `index`'s rows of each batch, the
            index-th of `count` equal slices (a multiple of `count` rows is needed): what each
            process of a multi-process JAX run feeds, every process reading the same batches.
        epoch: a tf.Variable (int64) read when each iteration begins: the pass is shuffled in
            (seed, epoch)'s order, so a run resumed at epoch k takes epoch k's order (the
            train job sets it at each epoch's start, `callbacks.DataPosition`).
    """
    max_length = text_path.max_length
    if batch_tokens < max_length:
        raise ValueError(f"batch_tokens ({batch_tokens}) must be at least max_length ({max_length})")
    streamed = isinstance(data, (str, Path))
    cache = not streamed if cache is None else cache

    def tokenized(pairs):
        return (pairs.batch(_ENCODE_BATCH)
                .map(text_path.training_example, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
                .unbatch()
                .map(lambda inputs, target_out: (inputs, target_out)))  # ragged rows -> dense

    def one_pass(pass_seed):
        """The batches of one pass, shuffled by `pass_seed` (a reshuffle each iteration when it
        is the int `seed`; exactly that order when it is a tensor)."""
        explicit = tf.is_tensor(pass_seed)
        if explicit:
            # Traced (inside flat_map), this sets the seed of this function's graph only: with
            # the graph seed 0 (a run seeded 0) tf.data's seed helper would compare the tensor
            # seed with 0 in Python and fail; the order is then (1, pass_seed)'s.
            tf.random.set_seed(1)
        if cache:
            dataset = cached
            if shuffle:
                size = shuffle_buffer or (len(data) if not streamed else STREAM_SHUFFLE_BUFFER)
                dataset = dataset.shuffle(size, seed=pass_seed,
                                          reshuffle_each_iteration=not explicit)
        else:
            dataset = tokenized(text_pairs(data, (shuffle_buffer or STREAM_SHUFFLE_BUFFER)
                                           if shuffle else 0, pass_seed,
                                           reshuffle=not explicit))
        return _batched(dataset)

    def _batched(dataset):
        if bucketing:
            # Buckets of lengths 1..w, w+1..2w, ..., the last one ending at max_length.
            boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width))
            if pad_to_bucket:  # padding to a boundary needs an upper bound on the last bucket too
                boundaries.append(max_length + 1)
            longest = [bound - 1 for bound in boundaries] + [max_length]
            dataset = dataset.bucket_by_sequence_length(
                lambda inputs, target_out: tf.maximum(tf.shape(inputs[0])[0],
                                                      tf.shape(target_out)[0]),
                boundaries, [batch_tokens // length for length in longest],
                pad_to_bucket_boundary=pad_to_bucket, drop_remainder=drop_remainder)
        else:
            dataset = dataset.padded_batch(batch_tokens // max_length,
                                           drop_remainder=drop_remainder)
        if batch_multiple > 1:
            dataset = dataset.map(lambda inputs, target_out: pad_rows_to_multiple(
                (inputs, target_out), batch_multiple))
        if process_share is not None:
            dataset = dataset.map(lambda inputs, target_out: rows_of_process(
                (inputs, target_out), *process_share))
        return dataset

    if cache:
        cached = tokenized(text_pairs(data)).cache()
    if epoch is None:
        dataset = one_pass(seed)
    else:  # read when an iteration (a pass) begins: its order is (seed, epoch)'s
        dataset = tf.data.Dataset.from_tensors(0).flat_map(
            lambda _: one_pass(pass_seed(seed, epoch.read_value())))
    return dataset.prefetch(tf.data.AUTOTUNE)


def pass_seed(seed, epoch):
    """The shuffle seed of pass `epoch` (an int64 tensor) of a run seeded `seed`: distinct for
    every (seed, epoch), the same on every machine."""
    return tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64) + 1


def continued(stream, steps):
    """`stream` (an endless dataset) from its `steps`-th batch on, `steps` (a tf.Variable) read
    when an iteration begins: what a resumed run trains on is what the uninterrupted run would
    have trained on from there."""
    return tf.data.Dataset.from_tensors(0).flat_map(lambda _: stream.skip(steps.read_value()))


def rows_of_process(batch, index, count):
    """Process `index`'s slice of `batch` (a nest of (B, ...) tensors, B a multiple of `count`)."""
    rows = tf.shape(tf.nest.flatten(batch)[0])[0] // count
    return tf.nest.map_structure(lambda ids: ids[index * rows:(index + 1) * rows], batch)


def pad_rows_to_multiple(batch, multiple):
    """`batch` (a nest of (B, ...) tensors) with all-[PAD] rows added up to a multiple of
    `multiple` rows."""
    rows = tf.shape(tf.nest.flatten(batch)[0])[0]
    extra = (multiple - rows % multiple) % multiple

    def pad(ids):
        padding = [[0, extra]] + [[0, 0]] * (len(ids.shape) - 1)
        return tf.pad(ids, padding, constant_values=PAD_ID)
    return tf.nest.map_structure(pad, batch)


def padding_fraction(dataset: tf.data.Dataset) -> float:
    """The fraction of [PAD] among all source and target_in slots of one pass over `dataset`."""
    padding = slots = 0
    for (source, target_in), _ in dataset:
        for ids in (source, target_in):
            padding += int(tf.math.count_nonzero(ids == PAD_ID))
            slots += int(tf.size(ids))
    return padding / slots
