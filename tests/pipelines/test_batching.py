"""tf.data batches: teacher-forcing shift, padding, truncation, token budgets, seeded shuffling, bucketing,
and the same batches streamed from a file as from a list."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.batching import count_truncated, make_dataset, padding_fraction
from pipelines.corpus import write_tsv
from pipelines.default_data import generate_pairs
from pipelines.text_path import TextPath
from pipelines.tokenizers import END_ID, PAD_ID, START_ID, build_tokenizers


@pytest.fixture(scope="module")
def pairs():
    return generate_pairs(1500, seed=31)


@pytest.fixture(scope="module")
def tokenizers(pairs):
    return build_tokenizers(pairs, vocab_size=500)


def dataset(pairs, tokenizers, max_length=32, **options):
    settings = dict(batch_tokens=512, shuffle=True, seed=0) | options
    return make_dataset(pairs, TextPath(*tokenizers, max_length), **settings)


@pytest.fixture(scope="module")
def text_path(tokenizers):
    return TextPath(*tokenizers, 32)


def epoch(dataset):
    """One pass as numpy: [((source, target_in), target_out), ...]."""
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in dataset]


def rows(ids):
    """The unpadded rows of a (B, T) batch."""
    return [row[:np.count_nonzero(row)].tolist() for row in ids]


def test_batches_are_shifted_marked_and_zero_padded(pairs, tokenizers):
    data = dataset(pairs, tokenizers)
    spec = tf.TensorSpec([None, None], tf.int32)
    assert data.element_spec == ((spec, spec), spec)
    for (source, target_in), target_out in epoch(data):
        assert target_in.shape == target_out.shape and source.shape[0] == target_in.shape[0]
        for ids in (source, target_in, target_out):
            lengths = np.count_nonzero(ids, axis=1)
            assert (ids[np.arange(ids.shape[1]) >= lengths[:, None]] == PAD_ID).all()  # padding only at the end
            assert lengths.max() == ids.shape[1]  # padded to the longest row of the batch, no further
        for x, y_in, y_out in zip(rows(source), rows(target_in), rows(target_out)):
            assert x[0] == START_ID and x[-1] == END_ID and START_ID not in x[1:] and END_ID not in x[:-1]
            assert y_in[0] == START_ID and END_ID not in y_in
            assert y_out[-1] == END_ID and y_in[1:] == y_out[:-1]


def test_an_epoch_holds_every_pair_once(pairs, tokenizers):
    source_tokenizer, target_tokenizer = tokenizers
    sources, targets = [], []
    for (source, _), target_out in epoch(dataset(pairs, tokenizers, max_length=64)):  # nothing truncated
        sources += [text.decode() for text in source_tokenizer.detokenize(source).numpy()]
        targets += [text.decode() for text in target_tokenizer.detokenize(target_out).numpy()]
    assert sorted(zip(sources, targets)) == sorted(pairs)
    assert list(zip(sources, targets)) != pairs  # shuffled


def test_unshuffled_plain_batches_keep_the_order(pairs, tokenizers):
    batches = epoch(dataset(pairs[:100], tokenizers, shuffle=False, bucketing=False, batch_tokens=32 * 16))
    assert [len(target_out) for _, target_out in batches] == [16] * 6 + [4]
    sources = [x for (source, _), _ in batches for x in rows(source)]
    expected = tokenizers[0].tokenize([source for source, _ in pairs[:100]]).to_list()
    assert sources == [[START_ID, *ids, END_ID] for ids in expected]


def test_long_sentences_are_truncated_keeping_end(pairs, tokenizers):
    max_length = 8
    source_lengths = tokenizers[0].tokenize([source for source, _ in pairs]).row_lengths().numpy()
    target_lengths = tokenizers[1].tokenize([target for _, target in pairs]).row_lengths().numpy()
    expected = np.count_nonzero((source_lengths + 2 > max_length) | (target_lengths + 1 > max_length))
    assert 0 < expected < len(pairs)
    assert count_truncated(pairs, TextPath(*tokenizers, max_length)) == expected
    assert count_truncated(pairs, TextPath(*tokenizers, 64)) == 0
    for (source, target_in), target_out in epoch(dataset(pairs, tokenizers, max_length=max_length)):
        assert source.shape[1] <= max_length and target_in.shape[1] <= max_length
        assert all(x[-1] == END_ID for x in rows(source)) and all(y[-1] == END_ID for y in rows(target_out))


@pytest.mark.parametrize("bucketing", [True, False])
def test_batches_stay_within_the_token_budget(pairs, tokenizers, bucketing):
    batches = epoch(dataset(pairs, tokenizers, batch_tokens=256, bucketing=bucketing, drop_remainder=True))
    sizes = set()
    for (source, target_in), _ in batches:
        assert len(source) * max(source.shape[1], target_in.shape[1]) <= 256
        sizes.add(len(source))
    if bucketing:
        assert len(sizes) > 2  # shorter sentences come in bigger batches
    else:
        assert sizes == {256 // 32}


def test_shuffling_depends_only_on_the_seed(pairs, tokenizers):
    def two_epochs(seed):
        data = dataset(pairs[:300], tokenizers, seed=seed)
        return [epoch(data), epoch(data)]

    first, second = two_epochs(seed=5)
    same = two_epochs(seed=5)
    for mine, theirs in zip((first, second), same):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    def sources(batches):
        return [x for (source, _), _ in batches for x in rows(source)]

    assert sources(first) != sources(second)  # reshuffled each epoch
    assert sources(first) != sources(two_epochs(seed=6)[0])


def test_bucketing_cuts_padding(pairs, tokenizers):
    bucketed = padding_fraction(dataset(pairs, tokenizers, bucketing=True))
    plain = padding_fraction(dataset(pairs, tokenizers, bucketing=False))
    assert bucketed < 0.75 * plain


def test_padding_fraction_counts_pad_slots():
    source = tf.constant([[2, 5, 3, 0], [2, 3, 0, 0]])  # 3 pads of 8
    target_in = tf.constant([[2, 7], [2, 0]])  # 1 pad of 4
    data = tf.data.Dataset.from_tensors(((source, target_in), target_in))
    assert padding_fraction(data) == pytest.approx(4 / 12)


def test_a_file_streams_the_same_batches_as_the_list(pairs, tokenizers, tmp_path):
    path = tmp_path / "train.tsv"
    write_tsv(pairs[:400], path)
    for options in (dict(shuffle=False), dict(shuffle=False, bucketing=False)):
        from_list, from_file = epoch(dataset(pairs[:400], tokenizers, **options)), epoch(dataset(path, tokenizers, **options))
        assert len(from_list) == len(from_file)
        for a, b in zip(from_list, from_file):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("cache", [False, True])
def test_a_shuffled_stream_holds_every_pair_once_per_epoch(pairs, tokenizers, tmp_path, cache):
    path = tmp_path / "train.tsv"
    write_tsv(pairs[:400], path)
    data = dataset(path, tokenizers, max_length=64, cache=cache, shuffle_buffer=50)
    epochs = []
    for _ in range(2):
        epochs.append([x for (source, _), _ in epoch(data) for x in rows(source)])
    expected = [[START_ID, *ids, END_ID] for ids in tokenizers[0].tokenize([s for s, _ in pairs[:400]]).to_list()]
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(expected)
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def _batches(dataset, count=None):
    """The batches of `dataset` (the first `count`) as tuples of lists, for comparison."""
    found = []
    for (source, target_in), target_out in dataset:
        found.append((source.numpy().tolist(), target_out.numpy().tolist()))
        if count is not None and len(found) == count:
            break
    return found


def test_a_pass_takes_its_epochs_order_however_often_the_dataset_was_read(text_path, pairs):
    """What a run resumed at epoch k reads (the dataset read for the first time in its process)
    is what the uninterrupted run read at epoch k (the dataset's (k+1)-th reading)."""
    epoch = tf.Variable(0, dtype=tf.int64)

    def data():
        return make_dataset(pairs, text_path, batch_tokens=256, shuffle=True, seed=3,
                            epoch=epoch)

    uninterrupted = data()
    orders = []
    for k in range(3):
        epoch.assign(k)
        orders.append(_batches(uninterrupted))
    assert orders[0] != orders[1] != orders[2]  # a new order each epoch
    epoch.assign(2)
    assert _batches(data()) == orders[2]  # a fresh dataset (a resumed run) at epoch 2


def test_an_endless_stream_continues_after_the_steps_taken(text_path, pairs):
    from pipelines.batching import continued

    stream = make_dataset(pairs, text_path, batch_tokens=256, shuffle=True, seed=3).repeat()
    whole = _batches(continued(stream, tf.Variable(0, dtype=tf.int64)), 40)
    steps = tf.Variable(0, dtype=tf.int64)
    resumed = continued(make_dataset(pairs, text_path, batch_tokens=256, shuffle=True,
                                     seed=3).repeat(), steps)
    steps.assign(25)  # read when the iteration begins: after BackupAndRestore restored them
    assert _batches(resumed, 15) == whole[25:]
