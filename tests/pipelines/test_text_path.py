"""The one text path: framing for serving equals framing for training, truncation, empty in -> empty out."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.default_data import generate_pairs
from pipelines.text_path import TextPath
from pipelines.tokenizers import END_ID, PAD_ID, START_ID, build_tokenizers


@pytest.fixture(scope="module")
def text_path():
    return TextPath(*build_tokenizers(generate_pairs(800, seed=41), vocab_size=300), max_length=12)


def test_source_ids_are_framed_truncated_and_padded(text_path):
    sentences = ["The dog runs.", "The three black cats see the red houses of my sister and her brother.", ""]
    ids = text_path.source_ids(tf.constant(sentences)).numpy()
    pieces = text_path.source_tokenizer.tokenize(sentences).to_list()
    assert ids.dtype == np.int32 and ids.shape[1] <= text_path.max_length
    for row, piece_ids in zip(ids, pieces):
        kept = piece_ids[:text_path.max_length - 2]
        framed = [START_ID, *kept, END_ID]
        assert row.tolist() == framed + [PAD_ID] * (ids.shape[1] - len(framed))
    assert len(pieces[1]) > text_path.max_length - 2  # the long one was truncated, keeping [END]


def test_serving_and_training_frame_a_source_alike(text_path):
    sources = [source for source, _ in generate_pairs(20, seed=42)]
    (source, _), _ = text_path.training_example(tf.constant(sources), tf.constant(sources))
    np.testing.assert_array_equal(source.to_tensor().numpy(), text_path.source_ids(tf.constant(sources)).numpy())


def test_training_targets_are_shifted(text_path):
    (_, target_in), target_out = text_path.training_example(tf.constant(["a"]), tf.constant(["El perro corre."]))
    target_in, target_out = target_in.to_list()[0], target_out.to_list()[0]
    assert target_in[0] == START_ID and target_out[-1] == END_ID and target_in[1:] == target_out[:-1]


def test_wordless_sources_get_empty_answers(text_path):
    source = text_path.source_ids(tf.constant(["The dog runs.", "", "   ", "\u200b\ufeff"]))
    assert text_path.has_words(source).numpy().tolist() == [True, False, False, False]
    output = tf.fill([4, 5], 7)
    assert text_path.answer_ids(source, output).numpy()[:, 0].tolist() == [7, 0, 0, 0]
    beams = tf.fill([4, 3, 5], 7)
    assert (text_path.answer_ids(source, beams).numpy()[1:] == 0).all()
    texts = text_path.translations(text_path.answer_ids(source, output)).numpy()
    assert texts[1:].tolist() == [b"", b"", b""] and texts[0] != b""


def test_max_length_must_leave_room(text_path):
    with pytest.raises(ValueError, match="max_length"):
        TextPath(text_path.source_tokenizer, text_path.target_tokenizer, 2)
