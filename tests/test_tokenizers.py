"""WordPiece tokenizers: reserved ids, exact text round trips (accents, punctuation), in-graph and TFLite use."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.default_data import generate_pairs
from pipelines.tokenizers import (END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNK_ID, SubwordTokenizer,
                                  build_tokenizers, learn_vocabulary)

UNICODE = ["¿Dónde está el niño?", "Él está aquí.", "naïve café, über!"]


@pytest.fixture(scope="module")
def pairs():
    return generate_pairs(2000, seed=21)


@pytest.fixture(scope="module")
def tokenizers(pairs):
    return build_tokenizers(pairs, vocab_size=600)


@pytest.fixture(scope="module")
def spanish(pairs):
    """A Spanish tokenizer that has also seen `UNICODE`."""
    return SubwordTokenizer(learn_vocabulary([target for _, target in pairs] + UNICODE, vocab_size=600))


def texts(strings):
    return [text.decode("utf-8") for text in strings.numpy()]


def tokens(tokenizer, text):
    return [tokenizer.id_to_token(i) for i in tokenizer.tokenize([text])[0].numpy()]


def test_reserved_tokens_come_first(tokenizers):
    assert (PAD_ID, UNK_ID, START_ID, END_ID) == (0, 1, 2, 3)
    for tokenizer in tokenizers:
        assert tokenizer.vocab[:4] == RESERVED_TOKENS == ["[PAD]", "[UNK]", "[START]", "[END]"]
        assert [tokenizer.token_to_id(token) for token in RESERVED_TOKENS] == [0, 1, 2, 3]
        assert 300 < tokenizer.vocab_size <= 600


def test_unseen_default_sentences_round_trip_exactly(tokenizers):
    held_out = generate_pairs(300, seed=22)
    for tokenizer, side in zip(tokenizers, zip(*held_out)):
        ids = tokenizer.tokenize(list(side))
        assert ids.dtype == tf.int32 and ids.shape.rank == 2 and ids.shape[0] == len(side)
        assert int(tf.reduce_min(ids.flat_values)) > END_ID  # no [UNK], no reserved id
        assert texts(tokenizer.detokenize(ids)) == list(side)


def test_accents_and_punctuation_round_trip(spanish):
    assert texts(spanish.detokenize(spanish.tokenize(UNICODE))) == UNICODE
    assert "está" in tokens(spanish, "Él está aquí.")  # accents kept
    assert tokens(spanish, "la casa.")[-1] == "##."  # punctuation is a suffix piece of its word


def test_detokenize_skips_markers_and_stops_at_end(spanish):
    ids = spanish.tokenize(UNICODE[:2]).to_tensor()  # padded with [PAD]
    column = tf.fill([2, 1], START_ID)
    noisy = tf.concat([column, ids, tf.fill([2, 1], END_ID), ids], axis=1)  # words after [END] are ignored
    assert texts(spanish.detokenize(noisy)) == UNICODE[:2]
    assert texts(spanish.detokenize(tf.RaggedTensor.from_tensor(noisy, padding=PAD_ID))) == UNICODE[:2]


def test_unknown_words_and_literal_reserved_tokens_become_unk(spanish):
    ids = spanish.tokenize(["el 東京 [END] [PAD] casa"])[0].numpy().tolist()
    assert ids[1:4] == [UNK_ID] * 3 and ids[4] > END_ID
    assert texts(spanish.detokenize([ids])) == ["el [UNK] [UNK] [UNK] casa"]


def test_lower_case_keeps_accents():
    vocab = learn_vocabulary(["Él ESTÁ aquí."], vocab_size=100, lower_case=True)
    tokenizer = SubwordTokenizer(vocab, lower_case=True)
    assert texts(tokenizer.detokenize(tokenizer.tokenize(["ÉL Está AQUÍ."]))) == ["él está aquí."]


def test_save_and_load_give_the_same_ids(spanish, tmp_path):
    path = tmp_path / "vocab.es.txt"
    spanish.save(path)
    assert path.read_text(encoding="utf-8").split("\n")[:5] == [*RESERVED_TOKENS, spanish.vocab[4]]
    loaded = SubwordTokenizer.load(path)
    assert loaded.vocab == spanish.vocab
    assert loaded.tokenize(UNICODE).to_list() == spanish.tokenize(UNICODE).to_list()


def test_vocabulary_must_start_with_reserved_tokens():
    with pytest.raises(ValueError, match="must start with"):
        SubwordTokenizer(["a", "b", "[PAD]", "[UNK]", "[START]", "[END]"])


def test_shared_or_separate_vocabularies(pairs, tokenizers):
    source, target = tokenizers
    assert "está" in target.vocab and "está" not in source.vocab
    shared_source, shared_target = build_tokenizers(pairs[:300], vocab_size=400, shared=True)
    assert shared_source is shared_target
    for side in zip(*pairs[:300]):
        assert texts(shared_source.detokenize(shared_source.tokenize(list(side)))) == list(side)


def test_tokenizer_runs_in_a_saved_model(spanish, tmp_path):
    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = spanish

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, text):
            return self.tokenizer.detokenize(self.tokenizer.tokenize(text).to_tensor())

    module = Module()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.round_trip})
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert texts(loaded.signatures["serving_default"](tf.constant(UNICODE))["output_0"]) == UNICODE


def test_tflite_round_trip_needs_only_tensorflow_text_custom_ops(spanish):
    import tensorflow_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, text):
            ids = spanish.tokenize(text).to_tensor()
            return {"ids": ids, "text": spanish.detokenize(ids)}

    module = Module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.round_trip.get_concrete_function()], module)
    converter.allow_custom_ops = True  # builtins and tensorflow-text ops only: no SELECT_TF_OPS (Flex)
    interpreter = InterpreterWithCustomOps(
        model_content=converter.convert(),
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)
    outputs = interpreter.get_signature_runner()(text=np.array(UNICODE))
    np.testing.assert_array_equal(outputs["ids"], spanish.tokenize(UNICODE).to_tensor().numpy())
    assert [text.decode("utf-8") for text in outputs["text"]] == UNICODE
