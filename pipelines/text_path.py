"""The one text path of a translation model: normalize -> tokenize -> frame -> (decode) -> detokenize.

Training batches (`pipelines.batching`), `Translator`, the SavedModel and the TFLite models all go
through a `TextPath`, so a sentence gets the same ids wherever it runs. Normalization happens inside
the tokenizers (`pipelines.normalization`).

Framing (B = sentences, S/T = padded lengths, 0 = [PAD]):

    source      [START] x [END]      (B, S), S <= max_length: x keeps its first max_length - 2 pieces
                (x [END] with `source_start_token=False`, Marian's framing: max_length - 1 pieces;
                a multilingual Marian model's target-language token, `source_prefix_id`, first)
    target_in   [START] y            (B, T), T <= max_length: y keeps its first max_length - 1 pieces
    target_out  y [END]              (B, T)

A source with no piece between [START] and [END] (empty, spaces or only dropped characters) is
translated as "": its output ids are all [PAD].
"""

import tensorflow as tf

from pipelines.tokenizers import END_ID, PAD_ID, START_ID


class TextPath(tf.Module):
    """Text <-> framed ids for a (source, target) pair of tokenizers and a model's `max_length`."""

    def __init__(self, source_tokenizer, target_tokenizer, max_length: int,
                 source_start_token: bool = True, source_prefix_id: int | None = None):
        super().__init__(name="text_path")
        if max_length < 3:
            raise ValueError(f"max_length must leave room for [START], a token and [END], "
                             f"got {max_length}")
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_length = int(max_length)
        self.source_start_token = bool(source_start_token)
        self.source_prefix_id = None if source_prefix_id is None else int(source_prefix_id)
        # source pieces kept: room for [END], and [START] and the prefix where the framing has them
        self.source_budget = (self.max_length - 1 - int(self.source_start_token)
                              - int(self.source_prefix_id is not None))

    def source_ids(self, sentences) -> tf.Tensor:
        """Strings (B,) -> (B, S) int32 [START] pieces [END] (or pieces [END]), 0-padded,
        S <= max_length.

        Dense before slicing: slicing a ragged tensor emits RaggedRange, which TFLite lacks.
        """
        dense, lengths = self.source_tokenizer.tokenize_dense(sentences)
        keep = self.source_budget
        dense = dense[:, :keep]
        lengths = tf.cast(tf.minimum(lengths, keep), tf.int32)
        batch = tf.shape(dense)[0]
        start = [tf.fill([batch, 1], START_ID)] if self.source_start_token else []
        if self.source_prefix_id is not None:
            start.insert(0, tf.fill([batch, 1], self.source_prefix_id))
        ids = tf.concat(start + [dense, tf.zeros([batch, 1], tf.int32)], axis=1)
        positions = tf.range(tf.shape(ids)[1])
        end = lengths[:, None] + len(start)
        return tf.where(positions[None, :] == end, END_ID, ids)

    def source_lengths(self, sentences) -> tf.Tensor:
        """Strings (B,) -> (B,) int64 pieces per sentence, before truncation."""
        return self.source_tokenizer.tokenize(sentences).row_lengths()

    def training_example(self, sources, targets):
        """Strings (N,), (N,) -> ((source, target_in), target_out), each ragged (N, None) int32."""
        source = _framed(self.source_tokenizer.tokenize(sources), self.source_budget,
                         self.source_start_token, self.source_prefix_id)
        target = _framed(self.target_tokenizer.tokenize(targets), self.max_length - 1)
        return (source, target[:, :-1]), target[:, 1:]

    def target_ids(self, sentences) -> tf.Tensor:
        """Strings (B,) -> (B, T) int32 [START] pieces [END], 0-padded, T <= max_length + 1: a
        target framed as in training (at most max_length - 1 pieces), to score it whole."""
        return _framed(self.target_tokenizer.tokenize(sentences), self.max_length - 1).to_tensor()

    def prefix_ids(self, sentences) -> tf.Tensor:
        """Strings (B,) -> (B, max_length) int32: the pieces a translation must start with, at
        most max_length - 1 (room for [END]), 0-padded; "" forces nothing."""
        pieces = self.target_tokenizer.tokenize(sentences)[:, :self.max_length - 1]
        return pieces.to_tensor(shape=[None, self.max_length])

    def target_lengths(self, sentences) -> tf.Tensor:
        """Strings (B,) -> (B,) int64 pieces per target, before truncation."""
        return self.target_tokenizer.tokenize(sentences).row_lengths()

    def has_words(self, source_ids) -> tf.Tensor:
        """(B, S) -> (B,) bool: some token besides [PAD], [START], [END] and the prefix."""
        source_ids = tf.convert_to_tensor(source_ids)
        reserved = (source_ids == PAD_ID) | (source_ids == START_ID) | (source_ids == END_ID)
        if self.source_prefix_id is not None:
            reserved |= source_ids == self.source_prefix_id
        return tf.reduce_any(~reserved, axis=1)

    def answer_ids(self, source_ids, output_ids) -> tf.Tensor:
        """Output ids (B, T) or (B, K, T) with every row of a wordless source set to [PAD]."""
        output_ids = tf.convert_to_tensor(output_ids)
        # reshaped, not indexed with new axes: a strided slice of bools is no TFLite builtin
        has_words = tf.reshape(self.has_words(source_ids), [-1] + [1] * (output_ids.shape.rank - 1))
        return tf.where(has_words, output_ids, tf.zeros_like(output_ids))

    def translations(self, output_ids) -> tf.Tensor:
        """Output ids (B, T) -> strings (B,): the pieces before [END], detokenized."""
        return self.target_tokenizer.detokenize(output_ids)


def _framed(ids, budget, start_token=True, prefix_id=None):
    """Ragged (N, None) -> [START] ids[:budget] [END] (no [START] without `start_token`; the
    prefix id first when given), ragged (N, None)."""
    column = tf.ones([ids.nrows(), 1], tf.int32)
    start = [column * START_ID] if start_token else []
    if prefix_id is not None:
        start.insert(0, column * prefix_id)
    return tf.concat(start + [ids[:, :budget], column * END_ID], axis=1)
