"""Pieces as text: the Python detokenizer reads any ids as the graph's detokenizer does."""

import numpy as np
import pytest

from pipelines.pieces import detokenize_pieces
from pipelines.tokenizers import END_ID, learn_tokenizer

SENTENCES = ["the red house is big", "él está aquí", "a dog, a cat; two birds!", "no",
             "ünïcödé wörds", "mañana"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return learn_tokenizer(SENTENCES, 40)


def test_any_ids_read_as_the_graph_reads_them(tokenizer):
    rng = np.random.default_rng(0)
    vocab = tokenizer.vocab_size
    bare = tokenizer.token_to_id("▁")
    ids = rng.integers(0, vocab, size=(200, 12)).astype("int32")
    ids[::3, 0] = bare  # a bare word start first, then [UNK] or a piece
    ids[1::3, 1] = 1
    ids[2::5, 6] = END_ID  # pieces after [END] are ignored
    graph = [text.decode("utf-8") for text in tokenizer.detokenize(ids).numpy()]
    python = [detokenize_pieces([tokenizer.id_to_token(i) for i in row]) for row in ids]
    assert python == graph
    assert any(text.startswith("⁇") for text in python)
