"""Text in, text out: tokenize, decode with the cached search of `decoding`, detokenize.

TensorFlow-only (the tokenizers are tensorflow-text ops); imported where it is used.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.generation import decoding, defaults
from keras_transformer.generation.defaults import BATCH_ROWS
from keras_transformer.model import float32_copy
from pipelines.normalization import utf8


def sentences_per_batch(batch_size, search, beam_size=defaults.BEAM_SIZE):
    """`batch_size` if given, else BATCH_ROWS hypotheses' worth of sentences."""
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return batch_size
    return max(1, BATCH_ROWS // beam_size) if search == "beam" else BATCH_ROWS


def _jax_jitted(model, function):
    """`decoding.jax_compiled(model, function)` called on tf.Tensors (between the
    tensorflow-text tokenizers), returning tf.Tensors."""
    compiled = decoding.jax_compiled(model, function)

    def call(*args):
        outputs = compiled(*(np.asarray(arg) for arg in args))
        return tf.nest.map_structure(lambda x: tf.convert_to_tensor(np.asarray(x)), outputs)
    return call


class Translator:
    """Translates lists of sentences with a trained model and its `TextPath`.

    Sources are normalized, tokenized, framed as [START] pieces [END] and truncated to
    `max_length` tokens, as in training; outputs stop at [END] or after `max_length` tokens.
    A source with no piece (empty, or spaces) gives "". Each search is traced once as a
    `tf.function` over (B, S) int32 ids (optionally XLA-compiled); on JAX, compiled by `jax.jit`
    once per input shape. The model translates in float32 whatever precision it trained in
    (`model.float32_copy`): a mixed-precision model is copied.
    """

    def __init__(self, model, text_path, jit_compile=False):
        self.model = float32_copy(model)
        self.parts = self.model.parts
        self.text_path = text_path
        self.source_tokenizer = text_path.source_tokenizer
        self.target_tokenizer = text_path.target_tokenizer
        self.max_length = text_path.max_length
        self.jit_compile = jit_compile
        self._traced = {}

    def source_ids(self, sentences):
        """list[str] -> (B, S) int32 [START] ids [END], padded with 0."""
        return self.text_path.source_ids(_strings(sentences))

    def _search(self, search, prefixed=False, **options):
        """The traced search: (B, S) ids -> (B, max_length) ids; for "beam", (B, K, max_length)
        ids and (B, K) scores, best first. Beam search's alpha is an input of the trace, not part
        of it, so trying several alphas (`beam_alpha`) traces once. `prefixed`: the search also
        takes (B, max_length) target prefix ids (`decoding.force_prefix`) after the source."""
        if search not in defaults.SEARCHES:
            raise ValueError(f"unknown search {search!r}; choose from {defaults.SEARCHES}")
        alpha = options.pop("alpha", defaults.ALPHA) if search == "beam" else None
        # defaults written out, so a default and the same value given explicitly share a trace
        options = {"no_repeat_ngram": 0, **({"beam_size": defaults.BEAM_SIZE}
                                            if search == "beam" else {}), **options}
        key = (search, prefixed, tuple(sorted(options.items())))
        ids = tf.TensorSpec([None, None], tf.int32)
        if key not in self._traced:
            if search == "beam":
                def decode(source, alpha, *prefix):
                    return decoding.beam_search(self.parts, source, self.max_length, alpha=alpha,
                                                prefix=prefix[0] if prefix else None,
                                                **options)[:2]
                signature = [ids, tf.TensorSpec([], tf.float32)]
            else:
                search_function = {"greedy": decoding.greedy_decode,
                                   "sample": decoding.sample_decode}[search]

                def decode(source, *prefix):
                    return search_function(self.parts, source, self.max_length,
                                           prefix=prefix[0] if prefix else None, **options)
                signature = [ids]
            signature += [ids] if prefixed else []
            if keras.backend.backend() == "tensorflow":
                self._traced[key] = tf.function(decode, input_signature=signature,
                                                jit_compile=self.jit_compile, autograph=False)
            else:
                self._traced[key] = _jax_jitted(self.model, decode)
        traced = self._traced[key]
        if search == "beam":
            return lambda source, *prefix: traced(source, tf.constant(alpha, tf.float32), *prefix)
        return traced

    def translate_ids(self, source_ids, search="greedy", prefix_ids=None, **options):
        """(B, S) int32 -> (B, max_length) int32 output ids (beam search: the best hypothesis).
        `prefix_ids`: optional (B, max_length) target ids every output starts with, 0-padded."""
        prefix = () if prefix_ids is None else (tf.convert_to_tensor(prefix_ids, tf.int32),)
        output = self._search(search, bool(prefix), **options)(
            tf.convert_to_tensor(source_ids, tf.int32), *prefix)
        return output[0][:, 0] if search == "beam" else output

    def translate(self, sentences, search="greedy", batch_size=None, prefixes=None, **options):
        """list[str] -> list[str]. Sentences are batched by length to waste little on padding,
        `batch_size` at a time (default: BATCH_ROWS hypotheses' worth).

        `prefixes`: optional target text per sentence that its translation must start with (at
        most max_length - 1 pieces; "" leaves a sentence free): the search continues it.
        `options`: beam_size and alpha for "beam"; temperature, top_k, top_p, seed for "sample";
        no_repeat_ngram for all three.
        """
        sentences = list(sentences)
        if not sentences:
            return []
        if prefixes is not None and len(prefixes) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(prefixes)} prefixes")
        batch_size = sentences_per_batch(batch_size, search,
                                         options.get("beam_size", defaults.BEAM_SIZE))
        lengths = self.text_path.source_lengths(_strings(sentences)).numpy()
        order = np.argsort(lengths, kind="stable")
        translations = [None] * len(sentences)
        for begin in range(0, len(sentences), batch_size):
            chosen = order[begin:begin + batch_size]
            source = self.source_ids([sentences[i] for i in chosen])
            prefix = None if prefixes is None else self.text_path.prefix_ids(
                _strings([prefixes[i] for i in chosen]))
            output = self.text_path.answer_ids(
                source, self.translate_ids(source, search, prefix, **options))
            texts = self.text_path.translations(output).numpy()
            for i, text in zip(chosen, texts):
                translations[i] = text.decode("utf-8")
        return translations

    def translate_nbest(self, sentences, n=defaults.BEAM_SIZE, batch_size=None, **options):
        """Beam search's `n` best hypotheses of each sentence: list[list[(score, text)]], best
        first; the score is the length-normalized log-probability. `options`: beam_size (at
        least n; default n), alpha, no_repeat_ngram."""
        options = {"beam_size": max(n, options.pop("beam_size", n)), **options}
        if not 1 <= n <= options["beam_size"]:
            raise ValueError(f"n-best must be between 1 and the beam size, got {n}")
        batch_size = sentences_per_batch(batch_size, "beam", options["beam_size"])
        results = []
        for begin in range(0, len(sentences), batch_size):
            source = self.source_ids(list(sentences[begin:begin + batch_size]))
            tokens, scores = self._search("beam", **options)(source)
            tokens = self.text_path.answer_ids(source, tokens)[:, :n]
            batch = tf.shape(tokens)[0]
            texts = self.text_path.translations(tf.reshape(tokens, [batch * n, self.max_length]))
            texts = np.asarray(texts).reshape(-1, n)
            has_words = self.text_path.has_words(source).numpy()
            for row_texts, row_scores, words in zip(texts, np.asarray(scores)[:, :n], has_words):
                results.append([(float(score) if words else 0.0, text.decode("utf-8"))
                                for score, text in zip(row_scores, row_texts)])
        return results

    def score(self, sources, targets, alpha=defaults.ALPHA, batch_size=None):
        """Forced decoding: the model's `scoring.PairScore` of each (source, target), in order.

        Targets are framed as in training (`TextPath.target_ids`: cut at max_length - 1 pieces);
        sources as for `translate`. Pairs are batched by source length, `batch_size` at a time
        (default BATCH_ROWS). Any text scores, an empty target too (the probability of [END]).
        """
        from keras_transformer.generation.scoring import PairScore

        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")

        def log_probs(source, target):
            return decoding.target_log_probs(self.model, source, target)

        if "score" not in self._traced:
            signature = [tf.TensorSpec([None, None], tf.int32)] * 2
            self._traced["score"] = (
                tf.function(log_probs, input_signature=signature, jit_compile=self.jit_compile,
                            autograph=False)
                if keras.backend.backend() == "tensorflow" else _jax_jitted(self.model, log_probs))
        batch_size = sentences_per_batch(batch_size, "greedy")
        order = np.argsort(self.text_path.source_lengths(_strings(sources)).numpy(), kind="stable")
        scores = [None] * len(sources)
        for begin in range(0, len(sources), batch_size):
            chosen = order[begin:begin + batch_size]
            source = self.source_ids([sources[i] for i in chosen])
            target = self.text_path.target_ids(_strings([targets[i] for i in chosen]))
            rows = np.asarray(self._traced["score"](source, target))
            counts = np.asarray(target[:, 1:] != 0).sum(axis=1)
            for i, row, count in zip(chosen, rows, counts):
                scores[i] = PairScore.of(row[:count].tolist(), alpha)
        return scores

    def attention(self, sentence):
        """Greedy translation of one sentence and every attention weight that produced it.

        The weights are the ones the cached decoding computed step by step (its tokens are
        `translate_ids`'s greedy output). Returns an `attention_maps.AttentionMaps`.
        """
        from keras_transformer.generation.attention_maps import AttentionMaps

        source = np.asarray(self.source_ids([sentence]))
        decoded = decoding.greedy_decode_with_attention(self.parts, source, self.max_length)
        return AttentionMaps.from_decoding(sentence, source[0], decoded,
                                           self.source_tokenizer.id_to_token,
                                           self.target_tokenizer.id_to_token)


def _strings(sentences):
    """list[str] -> a string tensor of their UTF-8 bytes (a lone surrogate, no valid Unicode,
    becomes bytes the tokenizer reads as [UNK], as any invalid UTF-8)."""
    return tf.constant([utf8(sentence) for sentence in sentences], tf.string)
