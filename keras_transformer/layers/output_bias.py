"""A learned bias on the output logits: what a tied output projection lacks (Marian's
`decoder_ff_logit_out_b`; Hugging Face's `final_logits_bias`)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class OutputBias(keras.layers.Layer):
    """(B, T, vocab) logits -> the same plus a (vocab,) bias, in the logits' dtype."""

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")
        self.built = True

    def call(self, logits):
        return logits + ops.cast(self.bias, logits.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
