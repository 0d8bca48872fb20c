"""One decoder layer (paper Figure 1, right): masked self-attention, cross-attention, feed-forward."""

import keras
from keras import ops

from keras_transformer.layers.add_norm import SublayerConnection
from keras_transformer.layers.attention import MultiHeadAttention
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.masks import causal_mask


@keras.saving.register_keras_serializable(package="keras_transformer")
class DecoderBlock(keras.layers.Layer):
    """Masked self-attention, cross-attention over the encoder output, feed-forward.

    Each sublayer is wrapped in Add & Norm. Cross-attention takes its queries from
    the decoder and its keys and values from the encoder output.

    `call(inputs, encoder_outputs, self_attention_mask=None, cross_attention_mask=None)`:
    inputs (B, T, d_model), encoder_outputs (B, S, d_model) -> (B, T, d_model).
    `self_attention_mask` is bool (B, T, T) (causal and target padding) and
    `cross_attention_mask` bool (B, T, S) or (B, 1, S) (source padding), True = attend.
    `step` runs one position against a fixed-size key/value cache for decoding.
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
        self.cross_attention_connection = SublayerConnection(name="cross_attention_norm",
                                                             **connection)
        self.feed_forward_connection = SublayerConnection(name="feed_forward_norm",
                                                          **connection)
        self.self_attention = None  # head_dim = d_model / h, known in build
        self.cross_attention = None
        self.feed_forward = FeedForward(d_ff, activation, ffn_dropout, name="feed_forward",
                                        dtype=self.dtype_policy)

    def build(self, inputs_shape, encoder_outputs_shape=None):
        encoder_outputs_shape = encoder_outputs_shape or inputs_shape
        d_model = inputs_shape[-1]
        if d_model % self.num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={self.num_heads}")
        attention = dict(num_heads=self.num_heads, head_dim=d_model // self.num_heads,
                         dropout=self.weights_dropout_rate, dtype=self.dtype_policy)
        self.self_attention = MultiHeadAttention(name="self_attention", **attention)
        self.cross_attention = MultiHeadAttention(name="cross_attention", **attention)
        self.self_attention.build(inputs_shape)
        self.cross_attention.build(inputs_shape, encoder_outputs_shape)
        self.feed_forward.build(inputs_shape)
        for connection in (self.self_attention_connection, self.cross_attention_connection,
                           self.feed_forward_connection):
            connection.build(inputs_shape)
        self.built = True

    @property
    def weights_dropout_rate(self):
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    def call(self, inputs, encoder_outputs, self_attention_mask=None,
             cross_attention_mask=None, training=None):
        return self.forward(inputs, encoder_outputs, self_attention_mask,
                            cross_attention_mask, training, return_weights=False)[0]

    def forward(self, inputs, encoder_outputs, self_attention_mask=None,
                cross_attention_mask=None, training=None, return_weights=True):
        """Output (B, T, d_model), self weights (B, h, T, T), cross weights (B, h, T, S); the
        weights are None with `return_weights=False` (then attention may take the fused
        kernel)."""
        if not self.built:  # called directly rather than through __call__
            self.build(tuple(inputs.shape), tuple(encoder_outputs.shape))
        x = self.self_attention_connection.start(inputs)
        attended, self_weights = self.self_attention.attend_or_call(
            x, x, self_attention_mask, training, return_weights)
        x = self.self_attention_connection.finish(inputs, attended, training)
        if return_weights:
            cross = self.cross_attention.project_key_value(encoder_outputs)
        else:
            cross = encoder_outputs
        outputs, cross_weights = self._cross_and_feed_forward(
            x, cross, cross_attention_mask, training, return_weights)
        return outputs, self_weights, cross_weights

    def _cross_and_feed_forward(self, x, cross, cross_attention_mask, training,
                                return_weights=True):
        """`cross`: the projected (keys, values) with `return_weights`, else the encoder
        output (B, S, d_model) for the fused kernel."""
        query = self.cross_attention_connection.start(x)
        if return_weights:
            attended, cross_weights = self.cross_attention.attend_projected(
                query, *cross, attention_mask=cross_attention_mask, training=training)
        else:
            attended, cross_weights = self.cross_attention(
                query, cross, attention_mask=cross_attention_mask, training=training), None
        x = self.cross_attention_connection.finish(x, attended, training)
        outputs = self.feed_forward_connection.finish(
            x, self.feed_forward(self.feed_forward_connection.start(x), training=training),
            training)
        return outputs, cross_weights

    def cross_key_value(self, encoder_outputs):
        """Cross-attention keys and values, each (B, h, S, d_k): computed once per source."""
        return self.cross_attention.project_key_value(encoder_outputs)

    def step(self, inputs, position, cache, cross_key_value, cross_attention_mask=None):
        """One decoding position against a fixed-size self-attention cache.

        Args:
            inputs: (B, 1, d_model), the embedded token at `position`.
            position: int scalar (may be traced), the token's position t.
            cache: (keys, values), each (B, h, L, d_k) preallocated for L positions; the
                new key and value are written at index t, positions > t are ignored.
            cross_key_value: from `cross_key_value(encoder_outputs)`.
            cross_attention_mask: bool (B, 1, S), source padding.
        Returns:
            output (B, 1, d_model), the updated cache, self weights (B, h, 1, L) (exactly 0
            after position t) and cross weights (B, h, 1, S).
        """
        x = self.self_attention_connection.start(inputs)
        new_key, new_value = self.self_attention.project_key_value(x)
        keys, values = cache
        start = [0, 0, position, 0]
        keys = ops.slice_update(keys, start, ops.cast(new_key, keys.dtype))
        values = ops.slice_update(values, start, ops.cast(new_value, values.dtype))
        visible = ops.expand_dims(causal_mask(1, ops.shape(keys)[2], position), 0)  # (1, 1, L)
        attended, self_weights = self.self_attention.attend_projected(x, keys, values, visible)
        x = self.self_attention_connection.finish(inputs, attended)
        outputs, cross_weights = self._cross_and_feed_forward(
            x, cross_key_value, cross_attention_mask, None)
        return outputs, (keys, values), self_weights, cross_weights

    def compute_output_shape(self, inputs_shape, encoder_outputs_shape=None):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "d_ff": self.d_ff,
                "dropout": self.dropout, "norm_position": self.norm_position,
                "layer_norm_epsilon": self.layer_norm_epsilon, "ffn_dropout": self.ffn_dropout,
                "attention_dropout": self.attention_dropout, "activation": self.activation}
