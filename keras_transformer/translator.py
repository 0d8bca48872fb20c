"""Text in, text out: tokenize, decode with the cached search of `decoding`, detokenize.

TensorFlow-only (the tokenizers are tensorflow-text ops); imported where it is used.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_transformer import decoding
from keras_transformer.model import TransformerParts
from keras_transformer.run_dir import RunDir

SEARCHES = ("greedy", "beam", "sample")


class Translator:
    """Translates lists of sentences with a trained model and its two tokenizers.

    Sources are wrapped as [START] tokens [END] and truncated to `max_length` tokens,
    as in training; outputs stop at [END] or after `max_length` tokens. Each search is
    traced once as a `tf.function` over (B, S) int32 ids (optionally XLA-compiled).
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, max_length,
                 jit_compile=False):
        self.parts = TransformerParts(model)
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_length = max_length
        self.jit_compile = jit_compile
        self._traced = {}

    def source_ids(self, sentences):
        """list[str] -> (B, S) int32 [START] ids [END], padded with 0."""
        pieces = self.source_tokenizer.tokenize(tf.constant(sentences, tf.string))
        pieces = pieces[:, : self.max_length - 2]
        batch = pieces.nrows()
        start = tf.fill([batch, 1], decoding.START_ID)
        end = tf.fill([batch, 1], decoding.END_ID)
        wrapped = tf.concat([start, tf.cast(pieces, tf.int32), end], axis=1)
        return wrapped.to_tensor(0)

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
        lengths = self.source_tokenizer.tokenize(tf.constant(sentences)).row_lengths().numpy()
        order = np.argsort(lengths, kind="stable")
        translations = [None] * len(sentences)
        for begin in range(0, len(sentences), batch_size):
            chosen = order[begin:begin + batch_size]
            ids = self.translate_ids(self.source_ids([sentences[i] for i in chosen]), search,
                                     **options)
            texts = self.target_tokenizer.detokenize(ids).numpy()
            for i, text in zip(chosen, texts):
                # nothing to translate (empty or whitespace): nothing, as the exports answer
                translations[i] = text.decode("utf-8") if lengths[i] else ""
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
    """The Translator of a trained run directory (its best model and vocabularies)."""
    from pipelines.tokenizers import SubwordTokenizer

    run = RunDir(run_dir)
    run.require_trained()
    config = run.load_config()
    model = keras.models.load_model(run.best_model, compile=False)  # inference: no optimizer
    return Translator(model, SubwordTokenizer.load(run.source_vocab),
                      SubwordTokenizer.load(run.target_vocab), config.max_length,
                      jit_compile=jit_compile)
