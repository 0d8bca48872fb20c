"""Add & Norm (paper Figure 1): the residual connection and layer norm around every sublayer."""

import keras


@keras.saving.register_keras_serializable(package="keras_transformer")
class SublayerConnection(keras.layers.Layer):
    """The residual connection around a sublayer, with its layer norm and dropout.

    post-norm (the paper): LayerNorm(x + Dropout(Sublayer(x))).
    pre-norm:              x + Dropout(Sublayer(LayerNorm(x))).
    Used as `y = connection.finish(x, sublayer(connection.start(x)))`.
    """

    def __init__(self, dropout=0.0, norm_position="post", epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if norm_position not in ("post", "pre"):
            raise ValueError(f"norm_position must be 'post' or 'pre', got {norm_position!r}")
        self.dropout = dropout
        self.norm_position = norm_position
        self.epsilon = epsilon
        self.norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm",
                                                    dtype=self.dtype_policy)
        self.residual_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.built = True

    def start(self, inputs):
        """The sublayer's input: normalized first under pre-norm."""
        return self.norm(inputs) if self.norm_position == "pre" else inputs

    def finish(self, inputs, sublayer_output, training=None):
        """Dropout, residual add, and (post-norm) normalization."""
        outputs = inputs + self.residual_dropout(sublayer_output, training=training)
        return self.norm(outputs) if self.norm_position == "post" else outputs

    def call(self, inputs, sublayer_output, training=None):
        return self.finish(inputs, sublayer_output, training)

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout,
                "norm_position": self.norm_position, "epsilon": self.epsilon}
