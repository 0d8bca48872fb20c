"""WordPiece subword tokenizers built from tensorflow-text ops that also run in a SavedModel and in TFLite.

Text is cleaned (`FastBertNormalizer` without its lower-case/strip-accents step: accents are kept),
optionally lower-cased, split on whitespace only, and each whitespace-separated word is split into
WordPiece pieces. Punctuation therefore stays in its word as a suffix or prefix piece ("casa." ->
"casa", "##."; "¿Dónde" -> "¿", "##Dónde"), and `FastWordpieceTokenizer.detokenize`, which glues "##"
pieces to the previous one and puts a space between words, gives back naturally spaced text with no
regex. The vocabulary is learned on the same whitespace-separated words.

TFLite: `FastBertNormalize`, `WhitespaceTokenize`, `FastWordpieceTokenize`/`Detokenize` are
tensorflow-text custom ops (`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`); the rest are builtins,
except `lower_case=True`, whose `tf.strings.lower` (op `StringLower`) needs Flex.
"""

import collections
import unicodedata
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tft
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]"]
PAD_ID, UNK_ID, START_ID, END_ID = range(len(RESERVED_TOKENS))


class _WordSplitter(tf.Module):
    """Strings (B,) -> words (B, W): BERT text cleaning, optional lower-casing, whitespace split."""

    def __init__(self, lower_case):
        super().__init__()
        self.lower_case = lower_case
        self._normalizer = tft.FastBertNormalizer(lower_case_nfd_strip_accents=False)
        self._whitespace = tft.WhitespaceTokenizer()

    def __call__(self, strings):
        text = self._normalizer.normalize(tf.convert_to_tensor(strings, tf.string))
        if self.lower_case:
            text = tf.strings.lower(text, encoding="utf-8")
        return self._whitespace.tokenize(text)


def _split_trailing_punctuation(word):
    """"casa?!" -> ("casa", "?!")."""
    end = len(word)
    while end and unicodedata.category(word[end - 1]).startswith("P"):
        end -= 1
    return word[:end], word[end:]


def learn_vocabulary(texts, vocab_size: int, lower_case: bool = False) -> list[str]:
    """A WordPiece vocabulary of about `vocab_size` tokens, `RESERVED_TOKENS` first.

    Every character of `texts` gets a token and a "##" suffix token (so no seen word becomes [UNK]);
    frequent words and pieces fill the rest (a small corpus stops at whole words, below `vocab_size`).
    Trailing punctuation is counted apart from its word, so the vocabulary holds "casa" and "##."
    rather than both "casa" and "casa.".
    """
    counts = collections.Counter()
    for word in _WordSplitter(lower_case)(list(texts)).flat_values.numpy():
        core, punctuation = _split_trailing_punctuation(word.decode("utf-8"))
        if core:
            counts[core] += 1
        counts.update(punctuation)  # each mark as a one-character word: it gets "." and "##."
    return learner.learn(counts, vocab_size, RESERVED_TOKENS, lower_thresh=1)


class SubwordTokenizer(tf.Module):
    """Text <-> WordPiece ids for one language (or a shared vocabulary).

    Args:
        vocab: tokens, `RESERVED_TOKENS` first, "##" marking a piece that continues a word.
        lower_case: lower-case text before tokenizing (accents are kept either way).
    """

    def __init__(self, vocab, lower_case: bool = False):
        super().__init__()
        self.vocab = list(vocab)
        if self.vocab[:len(RESERVED_TOKENS)] != RESERVED_TOKENS:
            raise ValueError(f"the vocabulary must start with {RESERVED_TOKENS}, got {self.vocab[:4]}")
        self.lower_case = lower_case
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        self._words = _WordSplitter(lower_case)
        self._wordpiece = tft.FastWordpieceTokenizer(
            self.vocab, token_out_type=tf.int32, unknown_token="[UNK]", no_pretokenization=True,
            support_detokenization=True)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, strings) -> tf.RaggedTensor:
        """Strings (B,) -> ids (B, None) int32, without [START]/[END]; an unknown word is one [UNK]."""
        pieces = self._wordpiece.tokenize(self._words(strings)).merge_dims(1, 2)  # (B, W, P) -> (B, T)
        # A literal "[END]" (or other reserved token) in the text becomes [UNK], so it cannot end a sentence.
        return pieces.with_flat_values(
            tf.where(pieces.flat_values < len(RESERVED_TOKENS), UNK_ID, pieces.flat_values))

    def detokenize(self, ids) -> tf.Tensor:
        """Ids (B, T), dense or ragged -> strings (B,); stops at [END], drops [PAD] and [START]."""
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=PAD_ID)
        ids = tf.cast(ids, tf.int32)
        before_end = tf.cumsum(tf.cast(ids == END_ID, tf.int32), axis=1) == 0
        keep = before_end & (ids != PAD_ID) & (ids != START_ID)
        # Built from row lengths rather than tf.ragged.boolean_mask: no RaggedRange (no TFLite kernel).
        tokens = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(ids, keep), tf.reduce_sum(tf.cast(keep, tf.int64), axis=1), validate=False)
        return self._wordpiece.detokenize(tokens)

    def id_to_token(self, token_id: int) -> str:
        return self.vocab[token_id]

    def token_to_id(self, token: str) -> int:
        """The id of `token`, or UNK_ID."""
        return self._ids.get(token, UNK_ID)

    def save(self, path) -> None:
        """Writes the vocabulary, one token per line (UTF-8); `lower_case` is the caller's to record."""
        Path(path).write_text("".join(f"{token}\n" for token in self.vocab), encoding="utf-8")

    @classmethod
    def load(cls, path, lower_case: bool = False) -> "SubwordTokenizer":
        return cls(Path(path).read_text(encoding="utf-8").removesuffix("\n").split("\n"), lower_case)


def build_tokenizers(pairs, vocab_size: int, shared: bool = False,
                     lower_case: bool = False) -> tuple[SubwordTokenizer, SubwordTokenizer]:
    """(source, target) tokenizers learned on `pairs`; with `shared`, one tokenizer on both sides, twice."""
    sources, targets = zip(*pairs)
    if shared:
        tokenizer = SubwordTokenizer(learn_vocabulary(sources + targets, vocab_size, lower_case), lower_case)
        return tokenizer, tokenizer
    return (SubwordTokenizer(learn_vocabulary(sources, vocab_size, lower_case), lower_case),
            SubwordTokenizer(learn_vocabulary(targets, vocab_size, lower_case), lower_case))
