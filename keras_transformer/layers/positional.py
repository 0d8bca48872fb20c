"""Input embedding and positional encoding (paper sections 3.4 and 3.5)."""

import math

import keras
from keras import ops


def sinusoidal_encoding(length, d_model, start_position=0, layout="interleaved"):
    """The paper's positional encoding, (length, d_model) float32.

    PE(pos, 2i) = sin(pos / 10000^(2i / d_model)), PE(pos, 2i + 1) = cos(same angle).
    Computed from positions rather than read from a table, so any length and any
    (traced) start position work. `layout="sines_then_cosines"` holds the same values as
    Marian (and Hugging Face's MarianMTModel) place them: every sine, then every cosine.
    """
    positions = ops.cast(ops.arange(length) + start_position, "float32")
    # 1 / 10000^(2i / d_model) for i = 0 .. d_model / 2 - 1
    inverse_frequencies = ops.exp(
        ops.arange(0, d_model, 2, dtype="float32") * (-math.log(10000.0) / d_model))
    angles = ops.expand_dims(positions, 1) * ops.expand_dims(inverse_frequencies, 0)
    if layout == "sines_then_cosines":
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    # interleave: (length, d_model / 2, 2) -> (length, d_model) puts sin at 2i, cos at 2i+1
    pairs = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(pairs, (length, d_model))


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding * sqrt(d_model) + positional encoding, then dropout.

    `scale=False` leaves the embedding unscaled; `layout` is the sinusoids' (see
    `sinusoidal_encoding`).

    `call(tokens, start_position=0)`: (B, T) int -> (B, T, d_model); tokens are taken
    to sit at positions start_position .. start_position + T - 1, so incremental
    decoding embeds one token at position t. `call(hidden, reverse=True)` projects
    (B, T, d_model) onto the transposed embedding matrix, (B, T, vocab) in the compute dtype:
    the paper's pre-softmax weights shared with the embedding. With `position_encoding="learned"`,
    a sequence longer than `max_length` is an error where its length is known when the layer is
    called; where it is known only at run time (inside a traced function), positions beyond
    `max_length - 1` read the last learned one.
    """

    def __init__(self, vocab_size, d_model, max_length=256, position_encoding="sinusoidal",
                 dropout=0.0, layout="interleaved", scale=True, **kwargs):
        super().__init__(**kwargs)
        if position_encoding not in ("sinusoidal", "learned"):
            raise ValueError(f"unknown position_encoding {position_encoding!r}")
        if layout not in ("interleaved", "sines_then_cosines"):
            raise ValueError(f"unknown layout {layout!r}")
        self.layout = layout
        self.scale = scale
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.max_length = max_length
        self.position_encoding = position_encoding
        self.dropout = dropout
        self.token_embedding = keras.layers.Embedding(
            vocab_size, d_model, name="token_embedding", dtype=self.dtype_policy,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=d_model ** -0.5))
        self.position_embedding = None
        if position_encoding == "learned":
            self.position_embedding = keras.layers.Embedding(
                max_length, d_model, name="position_embedding", dtype=self.dtype_policy)
        self.output_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build((None,))
        self.built = True

    def positions(self, length, start_position=0):
        """(length, d_model) position encodings for positions start .. start + length - 1."""
        if self.position_embedding is None:
            return sinusoidal_encoding(length, self.d_model, start_position, self.layout)
        indices = ops.minimum(ops.arange(length) + start_position, self.max_length - 1)
        return self.position_embedding(indices)

    def call(self, inputs, start_position=0, reverse=False, training=None):
        if reverse:
            return self.logits(inputs)
        return self.embed(inputs, start_position, training)

    def embed(self, tokens, start_position=0, training=None):
        length = tokens.shape[1]
        if (self.position_embedding is not None and isinstance(length, int)
                and isinstance(start_position, int) and start_position + length > self.max_length):
            raise ValueError(
                f"{start_position + length} positions, and the learned position table holds "
                f"max_length={self.max_length}: cut the sequences to max_length (the text path "
                "does), or build the model with a larger max_length")
        embedded = self.token_embedding(tokens)
        if self.scale:
            embedded = embedded * ops.cast(math.sqrt(self.d_model), embedded.dtype)
        positions = self.positions(ops.shape(tokens)[1], start_position)
        embedded = embedded + ops.cast(ops.expand_dims(positions, 0), embedded.dtype)
        return self.output_dropout(embedded, training=training)

    def logits(self, hidden):
        """(B, T, d_model) -> (B, T, vocab_size) scores against each token embedding, in the
        compute dtype (bfloat16 under mixed precision: the cross-entropy takes them as they
        are, `keras_transformer.training.cross_entropy`)."""
        matrix = ops.cast(self.token_embedding.embeddings, self.compute_dtype)
        return ops.matmul(ops.cast(hidden, self.compute_dtype), ops.transpose(matrix))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "d_model": self.d_model, "max_length": self.max_length,
                "position_encoding": self.position_encoding, "dropout": self.dropout,
                "layout": self.layout, "scale": self.scale}
