"""SentencePiece tokenizers: reserved ids, exact round trips over any script, robustness to any text,
the vocabulary size asked for, and the same ids in Python, tf.data, a SavedModel and TFLite."""

import warnings

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPORA, needs_corpora
from pipelines.default_data import generate_pairs
from pipelines.normalization import normalize
from pipelines.tokenizers import (
    END_ID,
    PAD_ID,
    RESERVED_TOKENS,
    START_ID,
    UNK_ID,
    SentencePieceTokenizer,
    build_tokenizers,
    learn_tokenizer,
)

# One line of each script a user may bring, and the characters real corpora hide in text.
SCRIPTS = ["¿Dónde está el niño? Él está aquí.", "naïve café, über! ÆØÅ ßẞ", "Tôi đã rất tự hào về đất nước tôi.",
           "彼らはついにそれが真実だと認めた。", "カタカナとひらがな", "ภาษาไทยไม่มีช่องว่าง", "مرحبا بالعالم",
           "Привет, мир!", "שלום עולם", "नमस्ते दुनिया", "😀 👍🏽 🎉", "1234567890 +-*/=()[]{}<>\"'#$%&@"]
ODD = ["\u00a0", "\u200b", "\ufeff", "\x07", "\t", "\u0301", "\u3000", "\u200d"]


@pytest.fixture(scope="module")
def pairs():
    return generate_pairs(2000, seed=21)


@pytest.fixture(scope="module")
def tokenizers(pairs):
    return build_tokenizers(pairs, vocab_size=600)


@pytest.fixture(scope="module")
def polyglot():
    """A tokenizer that has seen every character of SCRIPTS (so any text over them is covered)."""
    return learn_tokenizer(SCRIPTS * 20, vocab_size=400)


def texts(strings):
    return [text.decode("utf-8") for text in strings.numpy()]


def test_reserved_tokens_come_first(tokenizers):
    assert (PAD_ID, UNK_ID, START_ID, END_ID) == (0, 1, 2, 3)
    for tokenizer in tokenizers:
        assert tuple(tokenizer.id_to_token(i) for i in range(4)) == RESERVED_TOKENS == ("[PAD]", "[UNK]", "[START]", "[END]")
        assert [tokenizer.token_to_id(token) for token in RESERVED_TOKENS] == [0, 1, 2, 3]
        assert 300 < tokenizer.vocab_size <= 600


def test_unseen_default_sentences_round_trip_exactly(tokenizers):
    held_out = generate_pairs(300, seed=22)
    for tokenizer, side in zip(tokenizers, zip(*held_out)):
        ids = tokenizer.tokenize(list(side))
        assert ids.dtype == tf.int32 and ids.shape.rank == 2 and ids.shape[0] == len(side)
        assert int(tf.reduce_min(ids.flat_values)) > END_ID  # no [UNK], no reserved id
        assert texts(tokenizer.detokenize(ids)) == list(side)


def test_every_script_round_trips(polyglot):
    assert texts(polyglot.detokenize(polyglot.tokenize(SCRIPTS))) == SCRIPTS
    assert UNK_ID not in polyglot.tokenize(SCRIPTS).flat_values.numpy()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(sorted(set("".join(SCRIPTS))) + ODD + [" "])), min_size=1, max_size=4))
def test_tokenize_then_detokenize_gives_the_normalized_text(polyglot, sentences):
    ids = polyglot.tokenize(sentences)
    for sentence, row, text in zip(sentences, ids.to_list(), texts(polyglot.detokenize(ids))):
        if UNK_ID not in row:  # e.g. a combining mark that composes with nothing the text had
            assert text == normalize(sentence)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(), st.text(alphabet=st.sampled_from(ODD))), max_size=5))
def test_any_text_tokenizes_and_detokenizes(polyglot, sentences):
    ids = polyglot.tokenize(sentences)
    assert ids.shape[0] == len(sentences)
    assert ids.flat_values.dtype == tf.int32 and set(ids.flat_values.numpy()) & {PAD_ID, START_ID, END_ID} == set()
    assert len(texts(polyglot.detokenize(ids))) == len(sentences)


@settings(max_examples=12, deadline=None)
@given(st.lists(st.text(min_size=1), min_size=1, max_size=30))
def test_learning_a_vocabulary_never_crashes(sentences):
    if not any(normalize(sentence) for sentence in sentences):
        with pytest.raises(ValueError, match="no text"):
            learn_tokenizer(sentences, vocab_size=64)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the vocabulary may grow to hold every character: allowed
        tokenizer = learn_tokenizer(sentences, vocab_size=64)
    assert 4 < tokenizer.vocab_size
    assert tokenizer.tokenize(sentences).shape[0] == len(sentences)


def test_detokenize_skips_markers_and_stops_at_end(polyglot):
    ids = polyglot.tokenize(SCRIPTS[:2]).to_tensor()  # padded with [PAD]
    column = tf.fill([2, 1], START_ID)
    noisy = tf.concat([column, ids, tf.fill([2, 1], END_ID), ids], axis=1)  # pieces after [END] are ignored
    assert texts(polyglot.detokenize(noisy)) == SCRIPTS[:2]
    assert texts(polyglot.detokenize(tf.RaggedTensor.from_tensor(noisy, padding=PAD_ID))) == SCRIPTS[:2]


def test_unknown_characters_invalid_bytes_and_literal_reserved_tokens(tokenizers):
    source = tokenizers[0]
    ids = source.tokenize(["the 東京 dog"])[0].numpy().tolist()
    assert ids.count(UNK_ID) == 1
    assert texts(source.detokenize(source.tokenize(["the 東京 dog", "東京 dog"]))) == ["the ⁇ dog", "⁇ dog"]
    # a literal "[END]" is characters, never the id that ends a sentence
    assert not {START_ID, END_ID, PAD_ID} & set(source.tokenize(["[END] [START] [PAD]"]).flat_values.numpy())
    # bytes that are not UTF-8 read as U+FFFD: an [UNK] piece, the same ids as repaired text
    raw = source.tokenize(tf.constant([b"the \xff dog"])).to_list()
    assert raw == source.tokenize(["the \ufffd dog"]).to_list() and UNK_ID in raw[0]


def test_empty_and_blank_text_has_no_pieces(tokenizers):
    assert tokenizers[0].tokenize(["", "   ", "\u200b\ufeff"]).to_list() == [[], [], []]


def test_save_and_load_give_the_same_ids(polyglot, tmp_path):
    path = tmp_path / "source.spm"
    polyglot.save(path)
    processor = spm.SentencePieceProcessor(model_file=str(path))  # a plain SentencePiece model file
    assert [processor.encode(text) for text in SCRIPTS] == polyglot.tokenize(SCRIPTS).to_list()
    loaded = SentencePieceTokenizer.load(path)
    assert loaded.tokenize(SCRIPTS + ODD).to_list() == polyglot.tokenize(SCRIPTS + ODD).to_list()


def test_a_model_without_our_reserved_ids_is_refused(tmp_path):
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SCRIPTS * 5), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=300, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(ValueError, match="first pieces must be"):
        SentencePieceTokenizer.load(tmp_path / "plain.model")


def test_shared_or_separate_vocabularies(pairs, tokenizers):
    source, target = tokenizers
    assert target.token_to_id("▁está") != UNK_ID and source.token_to_id("▁está") == UNK_ID
    shared_source, shared_target = build_tokenizers(pairs[:300], vocab_size=400, shared=True)
    assert shared_source is shared_target
    for side in zip(*pairs[:300]):
        assert texts(shared_source.detokenize(shared_source.tokenize(list(side)))) == list(side)


def test_learning_is_deterministic(pairs):
    sentences = [target for _, target in pairs[:500]]
    assert learn_tokenizer(sentences, 200).model == learn_tokenizer(sentences, 200).model


def test_too_many_characters_for_the_vocabulary_grows_it_with_a_warning():
    sentences = ["".join(chr(0x4E00 + i) for i in range(k, k + 40)) for k in range(0, 400, 40)]
    with pytest.warns(UserWarning, match="vocabulary grows"):
        tokenizer = learn_tokenizer(sentences, vocab_size=64)
    assert tokenizer.vocab_size > 64
    assert texts(tokenizer.detokenize(tokenizer.tokenize(sentences))) == sentences


def read_lines(path, limit):
    with open(path, encoding="utf-8") as file:
        return [line.rstrip("\n") for _, line in zip(range(limit), file)]


@needs_corpora
@pytest.mark.parametrize("corpus, side, size", [
    pytest.param("iwslt15-en-vi", "en", 4000, marks=pytest.mark.slow),
    ("iwslt15-en-vi", "vi", 4000),
    pytest.param("tanaka-en-ja", "en", 2500, marks=pytest.mark.slow),
    pytest.param("tanaka-en-ja", "ja", 4000, marks=pytest.mark.slow)])  # raw Japanese: test_real_text
def test_the_vocabulary_size_asked_for_on_real_corpora(corpus, side, size):
    # A unigram model keeps only the pieces its best segmentations of the text use: 20,000
    # lower-cased Tanaka English sentences (4,623 distinct words) give at most 2,592 pieces
    # whatever is asked. Up to what the text holds, the size asked for is what comes out.
    tokenizer = learn_tokenizer(read_lines(CORPORA / corpus / f"train.{side}", 20000), vocab_size=size)
    assert abs(tokenizer.vocab_size - size) <= size // 100
    test = read_lines(CORPORA / corpus / f"test.{side}", 1000)
    ids = tokenizer.tokenize(test).flat_values.numpy()
    assert np.mean(ids == UNK_ID) < 0.005  # unknown pieces on the test side, raw Japanese included


def test_tokenizer_runs_in_a_saved_model(polyglot, tmp_path):
    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = polyglot

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, text):
            return self.tokenizer.detokenize(self.tokenizer.tokenize(text).to_tensor())

    module = Module()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.round_trip})
    del module
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    sentences = SCRIPTS + [f"dónde{character}niño" for character in ODD]
    assert texts(loaded.signatures["serving_default"](tf.constant(sentences))["output_0"]) == \
        texts(polyglot.detokenize(polyglot.tokenize(sentences))) == [normalize(text) for text in sentences]


def test_tflite_gives_the_same_ids_with_only_tensorflow_text_custom_ops(polyglot):
    import tensorflow_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, text):
            ids = polyglot.tokenize(text).to_tensor(shape=[None, 64])  # a static width, as decoding gives
            return {"ids": ids, "text": polyglot.detokenize(ids)}

    module = Module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.round_trip.get_concrete_function()], module)
    converter.allow_custom_ops = True  # builtins and tensorflow-text ops only: no SELECT_TF_OPS (Flex)
    interpreter = InterpreterWithCustomOps(
        model_content=converter.convert(),
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)
    sentences = (SCRIPTS + [f"dónde{character}niño" for character in ODD]) * 3  # batches > 16 rows too
    outputs = interpreter.get_signature_runner()(text=np.array([s.encode() for s in sentences], dtype=object))
    np.testing.assert_array_equal(outputs["ids"], polyglot.tokenize(sentences).to_tensor(shape=[None, 64]).numpy())
    assert [text.decode("utf-8") for text in outputs["text"]] == [normalize(text) for text in sentences]
