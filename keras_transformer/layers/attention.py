"""Multi-head attention (paper section 3.2): scaled dot-product attention over h heads.

Two computations of the same attention: the explicit one (`scaled_dot_product_attention`), which
returns the weights (for pictures, for incremental decoding, for dropout on the weights), and the
fused one (`fused_dot_product_attention`, the backend's `dot_product_attention`: cuDNN flash
attention on GPUs under JAX where it applies), which never materializes them for the caller.
`MultiHeadAttention.__call__` takes the fused one whenever no weights are needed.
"""

import math

import keras
from keras import ops


def masked_softmax(scores, mask=None):
    """Softmax over the last axis where masked scores count as -inf.

    Computed in float32 whatever the input dtype. Masked scores are set to -inf, so their
    weights are exp(-inf) = 0 exactly and every row with at least one allowed key sums
    to 1. A row with no allowed key (an all-padding source) would be -inf - -inf = NaN:
    such rows are softmaxed as zeros and then given all-zero weights. The softmax itself
    is the backend's fused kernel (its gradient never touches the -inf scores).

    Args:
        scores: (..., T, S) attention logits.
        mask: bool, broadcastable to `scores`; True where attention is allowed.
    Returns:
        (..., T, S) float32 weights.
    """
    scores = ops.cast(scores, "float32")
    if mask is None:
        return ops.softmax(scores, axis=-1)
    sees_a_key = ops.any(mask, axis=-1, keepdims=True)
    scores = ops.where(mask, scores, float("-inf"))
    weights = ops.softmax(ops.where(sees_a_key, scores, 0.0), axis=-1)
    return ops.where(sees_a_key, weights, 0.0)


def scaled_dot_product_attention(query, key, value, mask=None, dropout=None,
                                 training=None):
    """softmax(Q K^T / sqrt(d_k)) V for already split heads.

    Args:
        query: (B, h, T, d_k); key: (B, h, S, d_k); value: (B, h, S, d_v).
        mask: bool broadcastable to (B, h, T, S), True where attention is allowed.
        dropout: optional Dropout layer applied to the weights.
    Returns:
        output (B, h, T, d_v) and weights (B, h, T, S) in float32.
    """
    depth = ops.shape(query)[-1]
    query = query * ops.cast(1.0 / math.sqrt(depth), query.dtype)
    scores = ops.einsum("bhtd,bhsd->bhts", query, key)
    weights = masked_softmax(scores, mask)
    attended = ops.cast(weights, value.dtype)
    if dropout is not None:
        attended = dropout(attended, training=training)
    return ops.einsum("bhts,bhsd->bhtd", attended, value), weights


def fused_dot_product_attention(query, key, value, mask=None):
    """softmax(Q K^T / sqrt(d_k)) V by `keras.ops.dot_product_attention`, heads second to last.

    Masked scores become the dtype's large negative in float32 logits: their weights underflow to
    exactly 0 (as in the explicit path). A query row with no allowed key gives 0, as there.

    Args:
        query: (B, T, h, d_k); key: (B, S, h, d_k); value: (B, S, h, d_v).
        mask: bool broadcastable to (B, h, T, S), True where attention is allowed.
    Returns:
        (B, T, h, d_v) in the inputs' dtype.
    """
    attended = ops.dot_product_attention(query, key, value, mask=mask)
    if mask is None:
        return attended
    sees_a_key = ops.any(mask, axis=-1)  # (B, h or 1, T or 1)
    sees_a_key = ops.expand_dims(ops.transpose(sees_a_key, (0, 2, 1)), -1)  # (B, T, h, 1)
    return ops.where(sees_a_key, attended, ops.zeros_like(attended))


@keras.saving.register_keras_serializable(package="keras_transformer")
class MultiHeadAttention(keras.layers.Layer):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    Wq, Wk, Wv are each one (d_model, h * d_k) projection, split into heads by reshape.
    `call` returns the output only, computed by the fused kernel unless dropout on the weights
    is active (training with dropout > 0 needs the weights); `attend` also returns the
    attention weights (explicit path), and
    `project_key_value` + `attend_projected` let incremental decoding reuse keys and
    values (a cross-attention source computed once, a self-attention cache).

    Shapes: B batch, T query length, S key length, h heads, d_k = head_dim.
    """

    def __init__(self, num_heads, head_dim, dropout=0.0, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or head_dim < 1:
            raise ValueError(
                f"num_heads and head_dim must be positive, got {num_heads}, {head_dim}")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.use_bias = use_bias
        width = num_heads * head_dim

        def projection(name, units=width):
            return keras.layers.Dense(units, use_bias=use_bias, name=name,
                                      dtype=self.dtype_policy)

        self.query_dense = projection("query")
        self.key_dense = projection("key")
        self.value_dense = projection("value")
        self.output_dense = None  # its width (the query's d_model) is known in build
        self.weights_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense = keras.layers.Dense(
            query_shape[-1], use_bias=self.use_bias, name="output",
            dtype=self.dtype_policy)
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * self.head_dim,))
        self.built = True

    def split_heads(self, x):
        """(B, T, h * d_k) -> (B, h, T, d_k)."""
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def merge_heads(self, x):
        """(B, h, T, d_k) -> (B, T, h * d_k)."""
        batch, length = ops.shape(x)[0], ops.shape(x)[2]
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (batch, length, self.num_heads * self.head_dim))

    def project_key_value(self, value, key=None):
        """(B, S, d) sources -> keys and values, each (B, h, S, d_k)."""
        key = value if key is None else key
        return self.split_heads(self.key_dense(key)), self.split_heads(self.value_dense(value))

    def attend_projected(self, query, key_heads, value_heads, attention_mask=None,
                         training=None):
        """Attention of (B, T, d) queries over projected keys/values (B, h, S, d_k).

        Returns the output (B, T, d) and the weights (B, h, T, S) in float32.
        """
        query_heads = self.split_heads(self.query_dense(query))
        mask = None
        if attention_mask is not None:
            mask = ops.expand_dims(attention_mask, 1)  # (B, 1, T, S): every head
        attended, weights = scaled_dot_product_attention(
            query_heads, key_heads, value_heads, mask, self.weights_dropout, training)
        return self.output_dense(self.merge_heads(attended)), weights

    def attend(self, query, value, key=None, attention_mask=None, training=None):
        """Output (B, T, d) and weights (B, h, T, S); `attention_mask` is bool (B, T, S)."""
        if not self.built:  # called directly rather than through __call__
            self.build(tuple(query.shape), tuple(value.shape),
                       None if key is None else tuple(key.shape))
        key_heads, value_heads = self.project_key_value(value, key)
        return self.attend_projected(query, key_heads, value_heads, attention_mask,
                                     training)

    def attend_or_call(self, query, value, attention_mask=None, training=None,
                       return_weights=True):
        """`attend` (output and weights) with `return_weights`, else `call` (output, None): the
        fused kernel where it applies."""
        if return_weights:
            return self.attend(query, value, attention_mask=attention_mask, training=training)
        return self(query, value, attention_mask=attention_mask, training=training), None

    def call(self, query, value, key=None, attention_mask=None, training=None):
        if training and self.dropout > 0:  # dropout on the weights: the explicit path
            return self.attend(query, value, key, attention_mask, training)[0]
        return self.fused_attend(query, value, key, attention_mask)

    def fused_attend(self, query, value, key=None, attention_mask=None):
        """Output (B, T, d) of (B, T, d) queries over (B, S, d) values by the fused kernel (no
        weights, no dropout on them); `attention_mask` is bool (B, T, S) or (B, 1, S)."""
        key = value if key is None else key
        batch, length = ops.shape(query)[0], ops.shape(query)[1]

        def heads(x):  # (B, L, h * d_k) -> (B, L, h, d_k): a reshape, no transpose
            return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.num_heads,
                                   self.head_dim))

        mask = None if attention_mask is None else ops.expand_dims(attention_mask, 1)
        attended = fused_dot_product_attention(
            heads(self.query_dense(query)), heads(self.key_dense(key)),
            heads(self.value_dense(value)), mask)
        return self.output_dense(
            ops.reshape(attended, (batch, length, self.num_heads * self.head_dim)))

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return query_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "head_dim": self.head_dim, "dropout": self.dropout,
                "use_bias": self.use_bias}
