"""The boxes of the paper's Figure 1, one module each, written with keras.ops only."""

from keras_transformer.layers.add_norm import SublayerConnection
from keras_transformer.layers.attention import (
    MultiHeadAttention,
    fused_dot_product_attention,
    masked_softmax,
    scaled_dot_product_attention,
)
from keras_transformer.layers.decoder import DecoderBlock
from keras_transformer.layers.encoder import EncoderBlock
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.masks import (
    PAD_ID,
    causal_mask,
    decoder_self_attention_mask,
    key_padding_mask,
    padding_mask,
)
from keras_transformer.layers.output_bias import OutputBias
from keras_transformer.layers.positional import PositionalEmbedding, sinusoidal_encoding

__all__ = ["DecoderBlock", "EncoderBlock", "FeedForward", "MultiHeadAttention", "OutputBias", "PAD_ID",
           "PositionalEmbedding", "SublayerConnection", "causal_mask", "decoder_self_attention_mask",
           "fused_dot_product_attention", "key_padding_mask", "masked_softmax", "padding_mask",
           "scaled_dot_product_attention", "sinusoidal_encoding"]
