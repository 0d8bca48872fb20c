"""SentencePiece subword tokenizers, learned with `sentencepiece` and run with tensorflow-text.

`learn_tokenizer` trains a unigram SentencePiece model (the subword model of fairseq, OpenNMT and
Marian) on a bounded sample of sentences: it works for every script, with or without spaces between
words, and gives the vocabulary size asked for when the text has that many pieces. The model carries
our normalization rules (`pipelines.normalization`), so tokenizing normalizes first, the same way in
Python, in a tf.data pipeline, in a SavedModel and in TFLite.

`SentencePieceTokenizer` tokenizes with `tensorflow_text.FastSentencepieceTokenizer` and detokenizes
with a table lookup and tensorflow-text's string join; in TFLite these are builtins and
tensorflow-text custom ops (`TFText>FastSentencepieceTokenize`, `TFText>NgramsStringJoin`, registered
by `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`); no Flex.

Reserved ids, the same in every model: [PAD]=0, [UNK]=1, [START]=2, [END]=3. SentencePiece never
produces the last three from text: a literal "[END]" in a sentence is ordinary characters.
"""

import json
import os
import re
import warnings
from pathlib import Path

import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tft
from tensorflow_text.python.ops.ngrams_op import gen_ngrams_op

from pipelines.normalization import rules_tsv
from pipelines.pieces import piece_texts, vocabulary_texts
from pipelines.special_tokens import END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNK_ID

# A script with more distinct characters than this (Chinese, Japanese) leaves its rarest 0.05% of
# character occurrences to [UNK], as SentencePiece advises; smaller alphabets keep every character.
_MANY_CHARACTERS = 1000
_CJK_COVERAGE = 0.9995


def learn_tokenizer(sentences, vocab_size: int) -> "SentencePieceTokenizer":
    """A unigram SentencePiece tokenizer of `vocab_size` pieces (fewer when the text has fewer).

    Args:
        sentences: the sample to learn from (a list of strings; a few hundred thousand at most is
            plenty, and what SentencePiece holds in memory). Training is deterministic.
        vocab_size: pieces, the 4 reserved tokens included. When the characters that must have
            a piece (all of them for a small alphabet, 99.95% of the occurrences for a large
            one) outnumber it, the vocabulary grows to hold them, with a warning.
    Raises:
        ValueError: `vocab_size` below 8, or no sentence with a character left after normalization.
    """
    if vocab_size < 8:
        raise ValueError(f"vocab_size must be at least 8, got {vocab_size}")
    sentences = [sentence for sentence in sentences if sentence and not sentence.isspace()]
    coverage = _CJK_COVERAGE if len(set("".join(sentences))) > _MANY_CHARACTERS else 1.0
    spm.set_min_log_level(2)
    try:
        return SentencePieceTokenizer(_train(sentences, vocab_size, coverage))
    except _TooManyCharacters as error:
        size = error.required + 1
        warnings.warn(f"the text has {error.required - len(RESERVED_TOKENS)} distinct characters "
                      f"that must have pieces: the vocabulary grows from {vocab_size} to {size} "
                      "pieces")
        return SentencePieceTokenizer(_train(sentences, size, coverage))


class _TooManyCharacters(Exception):
    def __init__(self, required):
        super().__init__(required)
        self.required = required


def _train(sentences, vocab_size, coverage):
    """A serialized model; raises _TooManyCharacters when the characters kept outnumber vocab_size."""
    model = _BytesWriter()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
            model_type="unigram", character_coverage=coverage, hard_vocab_limit=False,
            normalization_rule_tsv=rules_tsv(), pad_id=PAD_ID, unk_id=UNK_ID, bos_id=START_ID,
            eos_id=END_ID, pad_piece=RESERVED_TOKENS[PAD_ID], unk_piece=RESERVED_TOKENS[UNK_ID],
            bos_piece=RESERVED_TOKENS[START_ID], eos_piece=RESERVED_TOKENS[END_ID],
            input_sentence_size=0, num_threads=os.cpu_count() or 1, minloglevel=2)
    except RuntimeError as error:
        message = str(error)
        required = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
        if required:
            raise _TooManyCharacters(int(required.group(1))) from None
        if "sentences_.empty()" in message or "all_chars_count" in message:
            raise ValueError("no text to learn a vocabulary from: every sentence is empty "
                             "after normalization") from None
        raise
    return model.value


class _BytesWriter:
    """The `model_writer` SentencePiece writes the serialized model to."""

    value = b""

    def write(self, data):
        self.value += data


class SentencePieceTokenizer(tf.Module):
    """Text <-> subword ids for one language (or both, when the vocabulary is shared).

    Args:
        model: a serialized SentencePiece model (`learn_tokenizer`, or a `.spm` file's bytes) whose
            first four pieces are `RESERVED_TOKENS`; or, with `vocabulary`, any SentencePiece model.
        vocabulary: the model's pieces id by id, `RESERVED_TOKENS` first, when the model's ids
            are not SentencePiece's (an imported Marian model's: `keras_transformer.pretrained`).
            Pieces then map to these ids by a table lookup (GATHER, a TFLite builtin), a piece the
            vocabulary lacks to [UNK], as Marian's tokenizer does.
    """

    def __init__(self, model: bytes, vocabulary=None):
        super().__init__()
        self.model = bytes(model)
        self._processor = spm.SentencePieceProcessor(model_proto=self.model)
        self.vocabulary = None if vocabulary is None else tuple(vocabulary)
        if self.vocabulary is None:
            reserved = tuple(self._processor.id_to_piece(i) for i in range(len(RESERVED_TOKENS)))
            if reserved != RESERVED_TOKENS:
                raise ValueError(
                    f"the model's first pieces must be {RESERVED_TOKENS}, got {reserved}")
            self._ids = None
            self._piece_texts = tf.constant(piece_texts(self._processor))
            bare = self._processor.piece_to_id("▁")
            self._bare_word_start = -1 if self._processor.is_unknown(bare) else bare
        else:
            if self.vocabulary[:len(RESERVED_TOKENS)] != RESERVED_TOKENS:
                raise ValueError(f"the vocabulary's first pieces must be {RESERVED_TOKENS}, got "
                                 f"{self.vocabulary[:len(RESERVED_TOKENS)]}")
            self._index = {piece: i for i, piece in enumerate(self.vocabulary)}
            self._index.update({piece: i for i, piece in enumerate(RESERVED_TOKENS)})
            pieces = (self._processor.id_to_piece(i)
                      for i in range(self._processor.get_piece_size()))
            # SentencePiece's own control pieces (<s>, </s>) never come from text
            self._ids = tf.constant([self._index.get(piece, UNK_ID) for piece in pieces], tf.int32)
            self._piece_texts = tf.constant(vocabulary_texts(self.vocabulary))
            self._bare_word_start = self._index.get("▁", -1)
        self._tokenizer = tft.FastSentencepieceTokenizer(self.model)

    @property
    def vocab_size(self) -> int:
        if self.vocabulary is not None:
            return len(self.vocabulary)
        return self._processor.get_piece_size()

    def tokenize(self, strings) -> tf.RaggedTensor:
        """Strings (B,) -> ids (B, None) int32, normalized, without [START]/[END]."""
        ids = self._tokenizer.tokenize(tf.convert_to_tensor(strings, tf.string))
        if self._ids is None:
            return ids
        return tf.ragged.map_flat_values(lambda flat: tf.gather(self._ids, flat), ids)

    def tokenize_dense(self, strings):
        """Strings (B,) -> ids (B, L) int32 padded with [PAD], and pieces per sentence (B,)
        int64: the serving graphs' form (`TextPath.source_ids`), the vocabulary lookup on the
        dense ids."""
        pieces = self._tokenizer.tokenize(tf.convert_to_tensor(strings, tf.string))
        lengths = pieces.row_lengths()
        dense = pieces.to_tensor(PAD_ID)
        if self._ids is None:
            return dense, lengths
        inside = tf.range(tf.shape(dense)[1])[None, :] < tf.cast(lengths, tf.int32)[:, None]
        return tf.where(inside, tf.gather(self._ids, dense), PAD_ID), lengths

    def detokenize(self, ids) -> tf.Tensor:
        """Ids (B, T), dense or ragged -> strings (B,); stops at [END], drops [PAD] and [START].

        Pieces are looked up in a table and joined: "▁" (a word start) is a space except on the
        first piece, and [UNK] reads as "⁇". Not tensorflow-text's SentencePiece detokenizer,
        whose TFLite kernel returns one string, or crashes, for a batch of more than one
        sentence; the lookup (GATHER) and the join (tensorflow-text's NgramsStringJoin) run in
        TFLite too, given ids of a static width (as decoding outputs are).
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=PAD_ID)
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
        before_end = tf.cumsum(tf.cast(ids == END_ID, tf.int32), axis=1) == 0
        keep = before_end & ((ids == UNK_ID) | (ids > END_ID))
        # pieces with text before this one (a bare "▁" has none at the start of a sentence)
        earlier = tf.cumsum(tf.cast(keep & (ids != self._bare_word_start), tf.int32), axis=1,
                            exclusive=True)
        index = tf.where(keep, ids, PAD_ID) + self.vocab_size * tf.cast(earlier > 0, tf.int32)
        pieces = tf.gather(self._piece_texts, index)  # (B, T)
        width = pieces.shape[1]
        if width == 0:
            return tf.fill(tf.shape(pieces)[:1], "")
        if width is None:  # a width known only at run time: TensorFlow's join (no TFLite kernel)
            return tf.strings.reduce_join(pieces, axis=1)
        # One `width`-gram per row, by tensorflow-text's NgramsStringJoin op called directly:
        # `tft.ngrams` first builds a sliding window that it does not use for joins (a graph of
        # `width` slices: 30 s more to convert to TFLite), and its dense-input kernel crashes
        # on more than 16 rows (tensorflow-text 2.21). Rows are given by splits instead.
        batch = tf.shape(pieces)[0]
        joined, _ = gen_ngrams_op.tf_text_ngrams_string_join(
            input_values=tf.reshape(pieces, [-1]),
            input_row_splits=[tf.range(batch + 1, dtype=tf.int64) * width], width=width,
            axis=-1, string_separator="")
        return joined  # (B,)

    def id_to_token(self, token_id: int) -> str:
        if self.vocabulary is not None:
            return self.vocabulary[int(token_id)]
        return self._processor.id_to_piece(int(token_id))

    def token_to_id(self, token: str) -> int:
        """The id of `token`, or UNK_ID."""
        if self.vocabulary is not None:
            return self._index.get(token, UNK_ID)
        return self._processor.piece_to_id(token)

    def pieces(self) -> list[str]:
        """Every piece, id by id: the model's vocabulary."""
        return [self.id_to_token(i) for i in range(self.vocab_size)]

    def save(self, path, vocabulary_path=None) -> None:
        """Writes the SentencePiece model (the `sentencepiece` library and `spm_encode` read it too),
        and the vocabulary, if it has its own, to `vocabulary_path` (JSON), whole or not at all."""
        _write_whole(path, self.model)
        if self.vocabulary is not None:
            if vocabulary_path is None:
                raise ValueError("this tokenizer has its own vocabulary: give vocabulary_path")
            _write_whole(vocabulary_path, json.dumps(list(self.vocabulary), ensure_ascii=False))

    @classmethod
    def load(cls, path, vocabulary_path=None) -> "SentencePieceTokenizer":
        """The tokenizer `save` wrote; its vocabulary from `vocabulary_path` when that file
        exists."""
        vocabulary = None
        if vocabulary_path is not None and Path(vocabulary_path).exists():
            vocabulary = json.loads(Path(vocabulary_path).read_text(encoding="utf-8"))
        return cls(Path(path).read_bytes(), vocabulary)


def _write_whole(path, content):
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    if isinstance(content, str):
        content = content.encode("utf-8")
    partial.write_bytes(content)
    os.replace(partial, path)


def build_tokenizers(pairs, vocab_size: int, shared: bool = False,
) -> tuple[SentencePieceTokenizer, SentencePieceTokenizer]:
    """(source, target) tokenizers learned on `pairs` (a sample of the training pairs); with
    `shared`, one tokenizer of `vocab_size` pieces learned on both sides, twice."""
    sources, targets = zip(*pairs) if pairs else ((), ())
    if shared:
        tokenizer = learn_tokenizer(list(sources) + list(targets), vocab_size)
        return tokenizer, tokenizer
    return learn_tokenizer(sources, vocab_size), learn_tokenizer(targets, vocab_size)
