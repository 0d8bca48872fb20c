"""The serving graph: frozen greedy and beam decoders over ids, and the model's text path around them.

Signatures (greedy and beam search decode with the key/value cache):
    serving_default   sentences [B] string -> translations [B] string
    beam_search       sentences [B] string -> translations [B] string (the best hypothesis),
                      hypotheses [B, K] string and scores [B, K] float32, best first
                      (log-probability / GNMT length penalty)
    translate_ids     source_ids [B, S] int32 ([START] ... [END], 0-padded)
                      -> output_ids [B, max_length] int32 (ends with [END], then 0s)
    score             sources [B] string, targets [B] string -> log_prob [B] float32, tokens
                      [B] int32, normalized [B] float32: forced decoding, as
                      `Translator.score` (`generation.scoring`)

Each signature is one hop from `decoding`: text path -> `FrozenDecoder` -> the frozen graph of
`decoding.greedy_decode` / `decoding.beam_search`.
"""

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_transformer.export.artifacts import ExportError
from keras_transformer.generation import decoding, defaults
from keras_transformer.model import float32_copy
from pipelines.tokenizers import UNK_ID

STRINGS_SPEC = tf.TensorSpec([None], tf.string, name="sentences")
IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="source_ids")


def clean_source(source_ids, vocab_size, max_length):
    """(B, S) -> (B, min(S, max_length)) int32; ids outside the vocabulary read as [UNK]."""
    source_ids = tf.cast(source_ids, tf.int32)[:, :max_length]
    outside = tf.logical_or(source_ids < 0, source_ids >= vocab_size)
    return tf.where(outside, UNK_ID, source_ids)


class FrozenDecoder:
    """A decoding function over (B, S) int32 ids, traced once and frozen: its variables become
    constants (TFLite cannot run a while loop whose body reads Keras variables, and a frozen
    graph converts with the stock converter).

    Args:
        function: ids -> a tensor or a tuple of tensors.
        shapes: the static shape of each output (a frozen function's outputs lose them).
        max_length: the width sources are padded to under XLA.
        jit_compile: also an XLA-compiled version, fed sources padded to max_length (XLA
            compiles once per input shape: one compilation per batch size).
    """

    def __init__(self, function, shapes, max_length, jit_compile=False, inputs=1):
        # `inputs`: how many (B, None) int32 arguments `function` takes (XLA: one only)
        traced = tf.function(function, input_signature=[IDS_SPEC] * inputs, autograph=False)
        # lower_control_flow=False keeps the functional While (the default lowers it to
        # Enter/Exit/Switch/Merge, which XLA cannot compile)
        self.frozen = convert_variables_to_constants_v2(traced.get_concrete_function(),
                                                        lower_control_flow=False)
        self.shapes, self.max_length = shapes, max_length
        self.compiled = (tf.function(self.run, jit_compile=True, autograph=False)
                         if jit_compile else None)

    def run(self, *ids):
        outputs = self.frozen(*ids)
        for output, shape in zip(outputs, self.shapes):
            output.set_shape(shape)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __call__(self, source_ids, xla=True):
        if self.compiled is None or not xla:
            return self.run(source_ids)
        source_ids = source_ids[:, :self.max_length]  # padded outside the compiled function
        width = self.max_length - tf.shape(source_ids)[1]
        return self.compiled(tf.pad(source_ids, [[0, 0], [0, width]]))


class TranslationModule(tf.Module):
    """The serving module: frozen greedy and beam decoders over ids, and the model's `TextPath`
    (normalize, tokenize, frame; detokenize) around them.

    Args:
        model: a trained `build_transformer` model.
        text_path: its `pipelines.text_path.TextPath`; its max_length bounds the source tokens
            kept (with [START] and [END]) and the output tokens made.
        beam_size, alpha: of the `beam_search` signature (GNMT length penalty exponent).
        jit_compile: compile decoding with XLA (in the SavedModel; never in TFLite).
    """

    def __init__(self, model, text_path, beam_size=defaults.BEAM_SIZE, alpha=defaults.ALPHA,
                 jit_compile=False):
        super().__init__(name="translation")
        if beam_size < 1:
            raise ExportError(f"beam_size must be positive, got {beam_size}")
        self.text_path = text_path
        self.max_length, self.beam_size = text_path.max_length, int(beam_size)
        self.alpha, self.jit_compile = float(alpha), bool(jit_compile)
        served = float32_copy(model)  # served in float32, whatever precision it trained in
        parts = served.parts
        vocab_size, length = parts.source_embedding.vocab_size, self.max_length

        def greedy(source_ids):
            source_ids = clean_source(source_ids, vocab_size, length)
            return text_path.answer_ids(source_ids, decoding.greedy_decode(parts, source_ids, length))

        def beam(source_ids):
            source_ids = clean_source(source_ids, vocab_size, length)
            tokens, scores, _ = decoding.beam_search(parts, source_ids, length, self.beam_size,
                                                     self.alpha)
            return (text_path.answer_ids(source_ids, tokens),
                    tf.where(text_path.has_words(source_ids)[:, None], scores, 0.0))

        def target_log_probs(source_ids, target_ids):
            source_ids = clean_source(source_ids, vocab_size, length)
            return decoding.target_log_probs(served, source_ids, target_ids)

        # Frozen once; every signature and TFLite file runs these graphs.
        self.scorer = FrozenDecoder(target_log_probs, [[None, None]], length, inputs=2)
        self.greedy = FrozenDecoder(greedy, [[None, length]], length, jit_compile)
        self.beam = FrozenDecoder(beam, [[None, self.beam_size, length], [None, self.beam_size]],
                                  length, jit_compile)
        self.translate = tf.function(self._translate, input_signature=[STRINGS_SPEC],
                                     autograph=False)
        self.beam_search = tf.function(self._beam_search, input_signature=[STRINGS_SPEC],
                                       autograph=False)
        self.translate_ids = tf.function(self._translate_ids, input_signature=[IDS_SPEC],
                                         autograph=False)
        self.score = tf.function(self._score, input_signature=[
            tf.TensorSpec([None], tf.string, name="sources"),
            tf.TensorSpec([None], tf.string, name="targets")], autograph=False)

    def _score(self, sources, targets):
        target = self.text_path.target_ids(targets)
        log_probs = self.scorer.run(self.text_path.source_ids(sources), target)
        tokens = tf.reduce_sum(tf.cast(target[:, 1:] != 0, tf.int32), axis=1)
        log_prob = tf.reduce_sum(log_probs, axis=1)
        penalty = tf.pow((5.0 + tf.cast(tokens, tf.float32)) / 6.0, self.alpha)
        return {"log_prob": log_prob, "tokens": tokens, "normalized": log_prob / penalty}

    def _translate(self, sentences):
        output = self.greedy(self.text_path.source_ids(sentences))
        return {"translations": self.text_path.translations(output)}

    def _beam_search(self, sentences):
        tokens, scores = self.beam(self.text_path.source_ids(sentences))
        batch = tf.shape(tokens)[0]
        flat = tf.reshape(tokens, [batch * self.beam_size, self.max_length])
        hypotheses = tf.reshape(self.text_path.translations(flat), [batch, self.beam_size])
        return {"translations": hypotheses[:, 0], "hypotheses": hypotheses, "scores": scores}

    def _translate_ids(self, source_ids):
        return {"output_ids": self.greedy(source_ids)}

    def signatures(self):
        return {"serving_default": self.translate.get_concrete_function(),
                "beam_search": self.beam_search.get_concrete_function(),
                "translate_ids": self.translate_ids.get_concrete_function(),
                "score": self.score.get_concrete_function()}

    def ids_module(self):
        """A module with `translate_ids` alone: core TensorFlow ops, no tokenizers."""
        module = tf.Module(name="translate_ids")
        module.translate_ids = tf.function(self._translate_ids, input_signature=[IDS_SPEC],
                                           autograph=False)
        return module

    def tflite_function(self, kind):
        """The function TFLite converts (`artifacts.TFLITE_VARIANTS`' kinds); never XLA.
            strings       sentences -> translations (greedy)
            ids           source_ids -> output_ids (greedy)
            beam_strings  sentences -> translations (beam search's best)
            beam_ids      source_ids -> output_ids [B, K, max_length] and scores [B, K],
                          best first"""
        def beam_ids(source_ids):
            tokens, scores = self.beam(source_ids, xla=False)
            return {"output_ids": tokens, "scores": scores}

        def beam_strings(sentences):
            tokens, _ = self.beam(self.text_path.source_ids(sentences), xla=False)
            return {"translations": self.text_path.translations(tokens[:, 0])}

        def strings(sentences):
            return {"translations": self.text_path.translations(
                self.greedy(self.text_path.source_ids(sentences), xla=False))}

        def ids(source_ids):
            return {"output_ids": self.greedy(source_ids, xla=False)}

        function = {"strings": strings, "ids": ids, "beam_strings": beam_strings,
                    "beam_ids": beam_ids}[kind]
        spec = STRINGS_SPEC if kind.endswith("strings") else IDS_SPEC
        return tf.function(function, input_signature=[spec], autograph=False)
