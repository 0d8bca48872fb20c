"""Position-wise feed-forward network (paper section 3.3)."""

import keras
from keras import ops


def gelu_sigmoid(x):
    """x * sigmoid(1.702 x): Marian's "gelu" (CTranslate2's GELUSigmoid)."""
    return x * ops.sigmoid(ops.cast(1.702, x.dtype) * x)


ACTIVATIONS = {
    "relu": ops.relu,
    # x * sigmoid(x), written out: TensorFlow's silu kernel carries a custom gradient that
    # tf.saved_model.save refuses to save
    "swish": lambda x: x * ops.sigmoid(x),
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "gelu_sigmoid": gelu_sigmoid,
}


@keras.saving.register_keras_serializable(package="keras_transformer")
class FeedForward(keras.layers.Layer):
    """FFN(x) = max(0, x W1 + b1) W2 + b2, applied to each position alike (`activation`: relu,
    the paper's, or one of `ACTIVATIONS` in place of max(0, .)).

    (B, T, d_model) -> (B, T, d_model) through a hidden width d_ff. `dropout` acts on the
    hidden activations (tensor2tensor's relu_dropout); the blocks pass 0 by default, as the
    paper drops only sublayer outputs.
    """

    def __init__(self, d_ff, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_ff = d_ff
        self.activation = activation
        self.dropout = dropout
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; expected one of {tuple(ACTIVATIONS)}")
        self.inner_dense = keras.layers.Dense(d_ff, name="inner",
                                              dtype=self.dtype_policy)
        self.hidden_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.outer_dense = None  # back to the input width, known in build

    def build(self, input_shape):
        self.inner_dense.build(input_shape)
        self.outer_dense = keras.layers.Dense(input_shape[-1], name="outer",
                                              dtype=self.dtype_policy)
        self.outer_dense.build(tuple(input_shape[:-1]) + (self.d_ff,))
        self.built = True

    def call(self, inputs, training=None):
        hidden = ACTIVATIONS[self.activation](self.inner_dense(inputs))
        hidden = self.hidden_dropout(hidden, training=training)
        return self.outer_dense(hidden)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "d_ff": self.d_ff,
                "activation": self.activation, "dropout": self.dropout}
