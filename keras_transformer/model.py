"""The Transformer (paper Figure 1) assembled with the functional API.

`build_transformer(config)` returns `keras.Model([source_tokens, target_tokens]) -> logits`.
`TransformerParts(model)` exposes the same layers piecewise (encode once, decode one
step at a time with a key/value cache) for generation and attention plots.
"""

import keras
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.layers import (
    DecoderBlock, EncoderBlock, PositionalEmbedding, decoder_self_attention_mask,
    key_padding_mask)

SOURCE_INPUT = "source_tokens"
TARGET_INPUT = "target_tokens"


def build_transformer(config: TransformerConfig, name="transformer") -> keras.Model:
    """(source (B, S) int32, target (B, T) int32) -> logits (B, T, target_vocab) float32.

    Padding id 0 is masked in every attention; the decoder is causal. Layer names
    (`source_embedding`, `encoder_block_0`, ..., `logits`) are what `TransformerParts`
    looks up.
    """
    source = keras.Input((None,), dtype="int32", name=SOURCE_INPUT)
    target = keras.Input((None,), dtype="int32", name=TARGET_INPUT)

    def embedding(vocab_size, layer_name):
        return PositionalEmbedding(vocab_size, config.d_model, config.max_length,
                                   config.position_encoding, config.dropout, name=layer_name)

    def block_args():
        return dict(num_heads=config.num_heads, d_ff=config.d_ff, dropout=config.dropout,
                    norm_position=config.norm_position,
                    layer_norm_epsilon=config.layer_norm_epsilon,
                    ffn_dropout=config.ffn_dropout)

    if config.share_embeddings:
        source_embedding = target_embedding = embedding(config.source_vocab_size,
                                                        "shared_embedding")
    else:
        source_embedding = embedding(config.source_vocab_size, "source_embedding")
        target_embedding = embedding(config.target_vocab_size, "target_embedding")

    source_mask = key_padding_mask(source)  # (B, 1, S)
    x = source_embedding(source)
    for i in range(config.num_layers):
        x = EncoderBlock(**block_args(), name=f"encoder_block_{i}")(
            x, attention_mask=source_mask)
    if config.norm_position == "pre":  # pre-norm leaves the last residual sum unnormalized
        x = keras.layers.LayerNormalization(epsilon=config.layer_norm_epsilon,
                                            name="encoder_norm")(x)

    target_mask = decoder_self_attention_mask(target)  # (B, T, T)
    y = target_embedding(target)
    for i in range(config.num_layers):
        y = DecoderBlock(**block_args(), name=f"decoder_block_{i}")(
            y, x, self_attention_mask=target_mask, cross_attention_mask=source_mask)
    if config.norm_position == "pre":
        y = keras.layers.LayerNormalization(epsilon=config.layer_norm_epsilon,
                                            name="decoder_norm")(y)

    if config.tie_output_embeddings:
        scores = target_embedding(y, reverse=True)
    else:
        scores = keras.layers.Dense(config.target_vocab_size, name="output_projection")(y)
    # Logits stay float32 under mixed precision: the softmax and loss need the range.
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(scores)
    return keras.Model([source, target], logits, name=name)


class TransformerParts:
    """The layers of a built Transformer, callable piecewise for generation.

    `encode` once per source, `cross_key_values` once per source, then `decode_step`
    per generated token with a fixed-size cache. `decode` recomputes the whole target
    (the reference that cached decoding, its logits and its attention weights, must equal).
    """

    def __init__(self, model: keras.Model):
        names = {layer.name for layer in model.layers}
        shared = "shared_embedding" in names
        self.source_embedding = model.get_layer("shared_embedding" if shared
                                                else "source_embedding")
        self.target_embedding = model.get_layer("shared_embedding" if shared
                                                else "target_embedding")
        self.encoder_blocks = _numbered_layers(model, "encoder_block_")
        self.decoder_blocks = _numbered_layers(model, "decoder_block_")
        self.encoder_norm = model.get_layer("encoder_norm") if "encoder_norm" in names else None
        self.decoder_norm = model.get_layer("decoder_norm") if "decoder_norm" in names else None
        self.output_projection = (model.get_layer("output_projection")
                                  if "output_projection" in names else None)
        attention = self.decoder_blocks[0].self_attention
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim
        self.compute_dtype = self.target_embedding.compute_dtype

    @property
    def num_layers(self):
        return len(self.decoder_blocks)

    def encode(self, source_tokens):
        """(B, S) -> encoder output (B, S, d_model) and source mask (B, 1, S)."""
        x, source_mask, _ = self.encode_with_attention(source_tokens)
        return x, source_mask

    def encode_with_attention(self, source_tokens):
        """`encode`, plus each encoder layer's self-attention weights (B, h, S, S)."""
        source_mask = key_padding_mask(source_tokens)
        x = self.source_embedding(source_tokens)
        self_weights = []
        for block in self.encoder_blocks:
            x, weights = block.forward(x, attention_mask=source_mask)
            self_weights.append(weights)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, source_mask, tuple(self_weights)

    def logits(self, hidden):
        """(B, T, d_model) decoder output -> (B, T, vocab) float32."""
        if self.decoder_norm is not None:
            hidden = self.decoder_norm(hidden)
        if self.output_projection is None:
            return self.target_embedding(hidden, reverse=True)
        return ops.cast(self.output_projection(hidden), "float32")

    def decode(self, target_tokens, encoder_outputs, source_mask):
        """Full recomputation: logits (B, T, vocab) and, per layer, the masked self weights
        (B, h, T, T) and the cross weights (B, h, T, S)."""
        y = self.target_embedding(target_tokens)
        target_mask = decoder_self_attention_mask(target_tokens)
        self_weights, cross_weights = [], []
        for block in self.decoder_blocks:
            y, layer_self_weights, layer_cross_weights = block.forward(
                y, encoder_outputs, target_mask, source_mask)
            self_weights.append(layer_self_weights)
            cross_weights.append(layer_cross_weights)
        return self.logits(y), tuple(self_weights), tuple(cross_weights)

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


def _numbered_layers(model, prefix):
    layers = [layer for layer in model.layers if layer.name.startswith(prefix)]
    return sorted(layers, key=lambda layer: int(layer.name[len(prefix):]))
