"""Text in, text out: tokenize, decode with the cached search of `decoding`, detokenize.

TensorFlow-only (the tokenizers are tensorflow-text ops); imported where it is used.
"""

import numpy as np
import tensorflow as tf

from keras_transformer import decoding
from keras_transformer.model import TransformerParts
from keras_transformer.run_dir import RunDir

SEARCHES = ("greedy", "beam", "sample")


class Translator:
    """Translates lists of sentences with a trained model and its `TextPath`.

    Sources are normalized, tokenized, framed as [START] pieces [END] and truncated to
    `max_length` tokens, as in training; outputs stop at [END] or after `max_length` tokens.
    A source with no piece (empty, or spaces) gives "". Each search is traced once as a
    `tf.function` over (B, S) int32 ids (optionally XLA-compiled).
    """

    def __init__(self, model, text_path, jit_compile=False):
        self.parts = TransformerParts(model)
        self.text_path = text_path
        self.source_tokenizer = text_path.source_tokenizer
        self.target_tokenizer = text_path.target_tokenizer
        self.max_length = text_path.max_length
        self.jit_compile = jit_compile
        self._traced = {}

    def source_ids(self, sentences):
        """list[str] -> (B, S) int32 [START] ids [END], padded with 0."""
        return self.text_path.source_ids(tf.constant(sentences, tf.string))

    def _search(self, search, **options):
        key = (search, tuple(sorted(options.items())))
        if key not in self._traced:
            def run(source):
                if search == "greedy":
                    return decoding.greedy_decode(self.parts, source, self.max_length)
                if search == "beam":
                    return decoding.beam_search(self.parts, source, self.max_length,
                                                **options)[0][:, 0]
                return decoding.sample_decode(self.parts, source, self.max_length, **options)
            self._traced[key] = tf.function(
                run, input_signature=[tf.TensorSpec([None, None], tf.int32)],
                jit_compile=self.jit_compile, autograph=False)
        return self._traced[key]

    def translate_ids(self, source_ids, search="greedy", **options):
        """(B, S) int32 -> (B, max_length) int32 output ids."""
        if search not in SEARCHES:
            raise ValueError(f"unknown search {search!r}; choose from {SEARCHES}")
        return self._search(search, **options)(tf.convert_to_tensor(source_ids, tf.int32))

    def translate(self, sentences, search="greedy", batch_size=64, **options):
        """list[str] -> list[str]. Sentences are batched by length to waste little on padding.

        `options`: beam_size and alpha for "beam"; temperature, top_k, top_p, seed for "sample".
        """
        sentences = list(sentences)
        if not sentences:
            return []
        lengths = self.text_path.source_lengths(tf.constant(sentences)).numpy()
        order = np.argsort(lengths, kind="stable")
        translations = [None] * len(sentences)
        for begin in range(0, len(sentences), batch_size):
            chosen = order[begin:begin + batch_size]
            source = self.source_ids([sentences[i] for i in chosen])
            output = self.text_path.answer_ids(source, self.translate_ids(source, search, **options))
            texts = self.text_path.translations(output).numpy()
            for i, text in zip(chosen, texts):
                translations[i] = text.decode("utf-8")
        return translations

    def attention(self, sentence):
        """Greedy translation of one sentence and every attention weight that produced it.

        The weights are the ones the cached decoding computed step by step (its tokens are
        `translate_ids`'s greedy output). Returns an `attention_maps.AttentionMaps`.
        """
        from keras_transformer.attention_maps import AttentionMaps

        source = np.asarray(self.source_ids([sentence]))
        decoded = decoding.greedy_decode_with_attention(self.parts, source, self.max_length)
        return AttentionMaps.from_decoding(sentence, source[0], decoded,
                                           self.source_tokenizer.id_to_token,
                                           self.target_tokenizer.id_to_token)


def load_translator(run_dir, jit_compile=False):
    """The Translator of a trained run directory (its best model and tokenizers)."""
    model, text_path, _ = RunDir(run_dir).load_trained()
    return Translator(model, text_path, jit_compile=jit_compile)
