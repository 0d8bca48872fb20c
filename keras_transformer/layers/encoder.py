"""One encoder layer (paper Figure 1, left): self-attention and feed-forward, each with Add & Norm."""

import keras

from keras_transformer.layers.add_norm import SublayerConnection
from keras_transformer.layers.attention import MultiHeadAttention
from keras_transformer.layers.feed_forward import FeedForward


@keras.saving.register_keras_serializable(package="keras_transformer")
class EncoderBlock(keras.layers.Layer):
    """Self-attention then feed-forward, each wrapped in Add & Norm.

    `call(inputs, attention_mask=None)`: (B, S, d_model) -> (B, S, d_model);
    `attention_mask` is bool (B, S, S) or (B, 1, S) (source padding), True = attend.
    """

    def __init__(self, num_heads, d_ff, dropout=0.0, norm_position="post",
                 layer_norm_epsilon=1e-6, ffn_dropout=0.0, attention_dropout=None,
                 activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.ffn_dropout = ffn_dropout  # inside the FFN; the paper has none
        self.attention_dropout = attention_dropout  # None: `dropout`
        self.norm_position = norm_position
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        connection = dict(dropout=dropout, norm_position=norm_position,
                          epsilon=layer_norm_epsilon, dtype=self.dtype_policy)
        self.self_attention_connection = SublayerConnection(name="self_attention_norm",
                                                            **connection)
        self.feed_forward_connection = SublayerConnection(name="feed_forward_norm",
                                                          **connection)
        self.self_attention = None  # head_dim = d_model / h, known in build
        self.feed_forward = FeedForward(d_ff, activation, ffn_dropout, name="feed_forward",
                                        dtype=self.dtype_policy)

    def build(self, input_shape):
        d_model = input_shape[-1]
        if d_model % self.num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={self.num_heads}")
        self.self_attention = MultiHeadAttention(
            self.num_heads, d_model // self.num_heads, dropout=self.weights_dropout_rate,
            name="self_attention", dtype=self.dtype_policy)
        self.self_attention.build(input_shape)
        self.feed_forward.build(input_shape)
        self.self_attention_connection.build(input_shape)
        self.feed_forward_connection.build(input_shape)
        self.built = True

    @property
    def weights_dropout_rate(self):
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    def call(self, inputs, attention_mask=None, training=None):
        return self.forward(inputs, attention_mask, training, return_weights=False)[0]

    def forward(self, inputs, attention_mask=None, training=None, return_weights=True):
        """Output (B, S, d_model) and self-attention weights (B, h, S, S), or None for them
        with `return_weights=False` (then attention may take the fused kernel)."""
        if not self.built:  # called directly rather than through __call__
            self.build(tuple(inputs.shape))
        x = self.self_attention_connection.start(inputs)
        attended, weights = self.self_attention.attend_or_call(
            x, x, attention_mask, training, return_weights)
        x = self.self_attention_connection.finish(inputs, attended, training)
        outputs = self.feed_forward_connection.finish(
            x, self.feed_forward(self.feed_forward_connection.start(x), training=training),
            training)
        return outputs, weights

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "d_ff": self.d_ff,
                "dropout": self.dropout, "norm_position": self.norm_position,
                "layer_norm_epsilon": self.layer_norm_epsilon, "ffn_dropout": self.ffn_dropout,
                "attention_dropout": self.attention_dropout, "activation": self.activation}
