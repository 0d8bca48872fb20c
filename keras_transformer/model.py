"""The Transformer (paper Figure 1): its layers, the encode and decode passes over them, and the
functional model those passes make.

`build_transformer(config)` returns a `Transformer`: a functional `keras.Model([source_tokens,
target_tokens]) -> logits` that keeps its layers as `model.parts` (a `TransformerParts`). The
model's graph is `parts.decode(target, *parts.encode(source))`: the same two methods that
generation (`keras_transformer.generation.decoding`) calls, piecewise, with a key/value cache.
"""

import keras
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.layers import (
    DecoderBlock,
    EncoderBlock,
    OutputBias,
    PositionalEmbedding,
    decoder_self_attention_mask,
    key_padding_mask,
)

SOURCE_INPUT = "source_tokens"
TARGET_INPUT = "target_tokens"


class TransformerParts:
    """The layers of one Transformer and the passes over them.

    `encode` and `decode` run the whole model (symbolically when the functional model is built,
    eagerly or traced when it runs); generation calls `encode` once per source,
    `cross_key_values` once per source, then `decode_step` per token with a fixed-size cache.
    The `*_with_attention` variants also return every attention weight (for pictures, and as
    the full recomputation that cached decoding must equal).

    Shapes: B sentences, S source and T target positions, h heads, d_k = d_model / h.
    """

    def __init__(self, config: TransformerConfig):
        def embedding(vocab_size, name):
            return PositionalEmbedding(vocab_size, config.d_model, config.max_length,
                                       config.position_encoding, config.dropout,
                                       layout=config.position_layout,
                                       scale=config.scale_embeddings, name=name)

        def norm(name):  # pre-norm leaves the last residual sum unnormalized: one more norm
            return (keras.layers.LayerNormalization(epsilon=config.layer_norm_epsilon, name=name)
                    if config.norm_position == "pre" else None)

        blocks = dict(num_heads=config.num_heads, d_ff=config.d_ff, dropout=config.dropout,
                      norm_position=config.norm_position,
                      layer_norm_epsilon=config.layer_norm_epsilon, ffn_dropout=config.ffn_dropout,
                      attention_dropout=config.attention_dropout, activation=config.activation)
        if config.share_embeddings:
            self.source_embedding = self.target_embedding = embedding(
                config.source_vocab_size, "shared_embedding")
        else:
            self.source_embedding = embedding(config.source_vocab_size, "source_embedding")
            self.target_embedding = embedding(config.target_vocab_size, "target_embedding")
        self.encoder_blocks = [EncoderBlock(**blocks, name=f"encoder_block_{i}")
                               for i in range(config.num_layers)]
        self.decoder_blocks = [DecoderBlock(**blocks, name=f"decoder_block_{i}")
                               for i in range(config.num_layers)]
        self.encoder_norm, self.decoder_norm = norm("encoder_norm"), norm("decoder_norm")
        self.output_projection = (None if config.tie_output_embeddings else
                                  keras.layers.Dense(config.target_vocab_size,
                                                     name="output_projection"))
        self.output_bias = (OutputBias(name="output_bias")
                            if config.output_bias and self.output_projection is None else None)
        # The model's logits keep the compute dtype (bfloat16 under mixed precision): the fused
        # cross-entropy reads them as they are and is float32 a chunk of tokens at a time.
        self.logits_layer = keras.layers.Activation("linear", name="logits")
        self.num_heads, self.head_dim = config.num_heads, config.head_dim

    @property
    def num_layers(self):
        return len(self.decoder_blocks)

    @property
    def compute_dtype(self):
        return self.target_embedding.compute_dtype

    # ------------------------------------------------------------------- whole sequences

    def encode(self, source_tokens):
        """(B, S) -> encoder output (B, S, d_model) and source padding mask (B, 1, S)."""
        source_mask = key_padding_mask(source_tokens)
        x = self.source_embedding(source_tokens)
        for block in self.encoder_blocks:
            x = block(x, attention_mask=source_mask)
        return self._norm(self.encoder_norm, x), source_mask

    def decode(self, target_tokens, encoder_outputs, source_mask):
        """(B, T) target tokens -> logits (B, T, vocab) in the compute dtype; causal."""
        target_mask = decoder_self_attention_mask(target_tokens)
        y = self.target_embedding(target_tokens)
        for block in self.decoder_blocks:
            y = block(y, encoder_outputs, self_attention_mask=target_mask,
                      cross_attention_mask=source_mask)
        return self.logits_layer(self.scores(y))

    def encode_with_attention(self, source_tokens):
        """`encode`, plus each encoder layer's self-attention weights (B, h, S, S)."""
        source_mask = key_padding_mask(source_tokens)
        x = self.source_embedding(source_tokens)
        self_weights = []
        for block in self.encoder_blocks:
            x, weights = block.forward(x, attention_mask=source_mask)
            self_weights.append(weights)
        return self._norm(self.encoder_norm, x), source_mask, tuple(self_weights)

    def decode_with_attention(self, target_tokens, encoder_outputs, source_mask):
        """`decode`, plus per layer the masked self weights (B, h, T, T) and the cross weights
        (B, h, T, S)."""
        y = self.target_embedding(target_tokens)
        target_mask = decoder_self_attention_mask(target_tokens)
        self_weights, cross_weights = [], []
        for block in self.decoder_blocks:
            y, layer_self_weights, layer_cross_weights = block.forward(
                y, encoder_outputs, target_mask, source_mask)
            self_weights.append(layer_self_weights)
            cross_weights.append(layer_cross_weights)
        return self.logits(y), tuple(self_weights), tuple(cross_weights)

    def scores(self, hidden):
        """(B, T, d_model) decoder output -> (B, T, vocab) logits in the compute dtype."""
        hidden = self._norm(self.decoder_norm, hidden)
        if self.output_projection is not None:
            return self.output_projection(hidden)
        logits = self.target_embedding(hidden, reverse=True)  # tied to the embedding
        return logits if self.output_bias is None else self.output_bias(logits)

    def logits(self, hidden):
        """(B, T, d_model) decoder output -> (B, T, vocab) float32, for search and pictures."""
        return ops.cast(self.scores(hidden), "float32")

    @staticmethod
    def _norm(layer, x):
        return x if layer is None else layer(x)

    # ------------------------------------------------------------------- one step at a time

    def cross_key_values(self, encoder_outputs):
        """Per decoder layer, cross-attention (keys, values), each (B, h, S, d_k)."""
        return tuple(block.cross_key_value(encoder_outputs) for block in self.decoder_blocks)

    def empty_cache(self, batch_size, max_length):
        """Per decoder layer, zero (keys, values), each (B, h, max_length, d_k)."""
        shape = (batch_size, self.num_heads, max_length, self.head_dim)
        return tuple((ops.zeros(shape, self.compute_dtype), ops.zeros(shape, self.compute_dtype))
                     for _ in self.decoder_blocks)

    def decode_step(self, tokens, position, cache, cross_key_values, source_mask):
        """One position for every sentence in the batch.

        Args:
            tokens: (B, 1) the tokens at `position` (a traced int is fine).
            cache: from `empty_cache` or the previous step.
        Returns:
            logits (B, vocab) float32, the updated cache and, per layer, the self weights
            (B, h, 1, max_length) over the cache and the cross weights (B, h, 1, S).
        """
        y = self.target_embedding(tokens, start_position=position)
        new_cache, self_weights, cross_weights = [], [], []
        for block, layer_cache, key_value in zip(self.decoder_blocks, cache, cross_key_values):
            y, layer_cache, layer_self_weights, layer_cross_weights = block.step(
                y, position, layer_cache, key_value, source_mask)
            new_cache.append(layer_cache)
            self_weights.append(layer_self_weights)
            cross_weights.append(layer_cross_weights)
        return self.logits(y)[:, 0, :], tuple(new_cache), tuple(self_weights), tuple(cross_weights)


@keras.saving.register_keras_serializable(package="keras_transformer")
class Transformer(keras.Model):
    """(source (B, S) int32, target (B, T) int32) -> logits (B, T, target_vocab) in the compute
    dtype (float32, or bfloat16/float16 under mixed precision: the fused cross-entropy reads them
    as they are).

    A functional model whose graph is `parts.decode(target, *parts.encode(source))`; it keeps
    its `TransformerConfig` as `config` and its layers as `parts`. Padding id 0 is masked in
    every attention; the decoder is causal. Saved and loaded whole (`get_config` is the config).
    """

    def __init__(self, config: TransformerConfig, **kwargs):
        if isinstance(config, dict):
            config = TransformerConfig.from_dict(config)
        parts = TransformerParts(config)
        source = keras.Input((None,), dtype="int32", name=SOURCE_INPUT)
        target = keras.Input((None,), dtype="int32", name=TARGET_INPUT)
        super().__init__([source, target], parts.decode(target, *parts.encode(source)),
                         **kwargs)
        self.transformer_config, self.parts = config, parts

    def get_config(self):
        return {"config": self.transformer_config.to_dict(), "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def build_transformer(config: TransformerConfig, name="transformer") -> Transformer:
    """The functional Transformer of `config` (see `Transformer`)."""
    return Transformer(config, name=name)


def float32_copy(model: Transformer, weights_from=None, process_local=False) -> Transformer:
    """`model` computing in float32: itself if it does, else a float32 Transformer of the same
    config with its weights (a mixed-precision model keeps float32 weights). What inference
    uses, so translations do not depend on 16-bit arithmetic and TFLite (no bfloat16 kernels)
    converts it.

    Args:
        weights_from: an earlier copy to refresh instead of building a new one.
        process_local: a copy on this process's devices alone, always (under a multi-process
            `keras.distribution` the model's weights are global arrays that every process
            would have to compute on together; the copy holds them whole, replicated).
    """
    if model.compute_dtype == "float32" and not process_local:
        return model
    copy = weights_from
    if copy is None:
        policy, distribution = keras.config.dtype_policy(), keras.distribution.distribution()
        keras.config.set_dtype_policy("float32")
        if process_local:
            keras.distribution.set_distribution(None)
        try:
            copy = build_transformer(model.transformer_config, name=model.name)
        finally:
            keras.config.set_dtype_policy(policy)
            keras.distribution.set_distribution(distribution)
    copy.set_weights(model.get_weights())
    return copy
