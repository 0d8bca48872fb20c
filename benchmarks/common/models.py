"""The models the benchmarks compare: ours, its keras-hub twin of identical shape, and ours with
dropout bits from XLA's RngBitGenerator; their common compile; keras-hub's cached greedy decode;
the full forward pass that checks a cached decoder."""

import keras
import numpy as np
from keras import ops

from common.device import backend
from pipelines.special_tokens import PAD_ID, START_ID


def our_config(preset_name, vocab_size, max_length, dropout=None, position_encoding="learned"):
    """Our preset with the benchmark's vocabulary; learned positions by default so the
    parameter count equals keras-hub's TokenAndPositionEmbedding (which has no sinusoid)."""
    from keras_transformer.config import preset
    overrides = dict(source_vocab_size=vocab_size, target_vocab_size=vocab_size,
                     position_encoding=position_encoding)
    if dropout is not None:
        overrides["dropout"] = dropout
    config = preset(preset_name, **overrides)
    return config.replace(max_length=max(config.max_length, max_length))


def build_ours(config):
    from keras_transformer.model import build_transformer
    return build_transformer(config, name="ours")


def rbg_dropout(inputs, rate, seed):
    """Dropout of a JAX array with its mask's bits from XLA's RngBitGenerator (jax's `rbg` key:
    Philox on CPU and GPU) instead of Threefry; one Threefry hash of `seed` (a raw uint32 (2,)
    key) makes the rbg key. Same rate (exact to 2^-32), same 1 / (1 - rate) scale."""
    import jax
    import jax.numpy as jnp

    philox_state = jax.random.bits(seed, (4,), jnp.uint32)
    bits = jax.random.bits(jax.random.wrap_key_data(philox_state, impl="rbg"), inputs.shape,
                           jnp.uint32)
    kept = bits >= np.uint32(min(round(rate * 2 ** 32), 2 ** 32 - 1))
    scale = jnp.asarray(1.0 / (1.0 - rate), inputs.dtype)
    return jnp.where(kept, inputs * scale, jnp.zeros((), inputs.dtype))


def rbg_dropout_call(self, inputs, training=False):
    """keras.layers.Dropout.call by `rbg_dropout` (JAX backend only)."""
    if not training or self.rate == 0.0:
        return inputs
    return rbg_dropout(inputs, self.rate, self.seed_generator.next())


def build_ours_rbg_dropout(config):
    """Ours with every Dropout drawing its bits from XLA's generator (`rbg_dropout_call`)."""

    class RbgDropout(keras.layers.Dropout):
        call = rbg_dropout_call

    model = build_ours(config)
    for layer in model._flatten_layers():
        if type(layer) is keras.layers.Dropout:
            layer.__class__ = RbgDropout
    return model


def build_hub(config, name="keras_hub"):
    """A keras-hub model of identical shape to `build_transformer(config)`.

    TokenAndPositionEmbedding (learned positions) + dropout, post-norm TransformerEncoder /
    TransformerDecoder layers (normalize_first=False, epsilon as ours), padding masks passed
    explicitly, logits from the target embedding matrix (tied, computed in float32 like ours);
    with `config.share_embeddings` one embedding layer serves both sides, as in ours.
    Returns the model; `model.hub_parts` holds the layers decoding needs.
    """
    import keras_hub
    if config.norm_position != "post" or not config.tie_output_embeddings:
        raise ValueError("the keras-hub twin mirrors post-norm, tied-output configs")
    source_embedding, target_embedding = _hub_embeddings(config)
    block = dict(intermediate_dim=config.d_ff, num_heads=config.num_heads,
                 dropout=config.dropout, layer_norm_epsilon=config.layer_norm_epsilon,
                 normalize_first=False)
    encoders = [keras_hub.layers.TransformerEncoder(**block, name=f"encoder_{i}")
                for i in range(config.num_layers)]
    decoders = [keras_hub.layers.TransformerDecoder(**block, name=f"decoder_{i}")
                for i in range(config.num_layers)]
    source_dropout = keras.layers.Dropout(config.dropout, name="source_dropout")
    target_dropout = keras.layers.Dropout(config.dropout, name="target_dropout")

    source = keras.Input((None,), dtype="int32", name="source_tokens")
    target = keras.Input((None,), dtype="int32", name="target_tokens")
    source_padding = ops.not_equal(source, PAD_ID)
    target_padding = ops.not_equal(target, PAD_ID)
    x = source_dropout(source_embedding(source))
    for layer in encoders:
        x = layer(x, padding_mask=source_padding)
    y = target_dropout(target_embedding(target))
    for layer in decoders:
        y = layer(y, x, decoder_padding_mask=target_padding, encoder_padding_mask=source_padding)
    scores = target_embedding.token_embedding(y, reverse=True)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(scores)
    model = keras.Model([source, target], logits, name=name)
    model.hub_parts = dict(source_embedding=source_embedding, target_embedding=target_embedding,
                           encoders=encoders, decoders=decoders)
    return model


def _hub_embeddings(config):
    """(source, target) TokenAndPositionEmbedding: one table for both sides with
    `share_embeddings`, as ours; the target's reverse (logits) in float32, as ours."""
    import keras_hub

    def embedding(vocab_size, name):
        # tie_weights=True: an untied ReversibleEmbedding adds a (V, d) output matrix
        return keras_hub.layers.TokenAndPositionEmbedding(
            vocab_size, config.max_length, config.d_model, tie_weights=True, name=name)

    if config.share_embeddings:
        source = target = embedding(config.source_vocab_size, "shared_embedding")
    else:
        source = embedding(config.source_vocab_size, "source_embedding")
        target = embedding(config.target_vocab_size, "target_embedding")
    target.token_embedding.reverse_dtype = "float32"
    return source, target


def hub_greedy_decode(model, source, length):
    """Greedy decode with keras-hub's cached TransformerDecoder and GreedySampler, the
    (B, layers, 2, L, h, d_k) cache layout of keras-hub's BART: (B, S) -> (B, length)."""
    import keras_hub
    parts = model.hub_parts
    decoders = parts["decoders"]
    batch = ops.shape(source)[0]
    source_padding = ops.not_equal(source, PAD_ID)
    encoded = parts["source_embedding"](source)
    for layer in parts["encoders"]:
        encoded = layer(encoded, padding_mask=source_padding)
    heads = decoders[0].num_heads
    head_dim = ops.shape(encoded)[-1] // heads
    cache = ops.zeros((batch, len(decoders), 2, length + 1, heads, head_dim), encoded.dtype)
    prompt = ops.concatenate([ops.full((batch, 1), START_ID, "int32"),
                              ops.zeros((batch, length), "int32")], axis=1)
    # cross-attention keys/values once per source, each layer (B, 2, S, h, d_k), through the
    # layers' public cache arguments: a cache with an update index is computed and returned
    first = parts["target_embedding"](prompt[:, :1])
    empty = ops.zeros((batch, 2, ops.shape(encoded)[1], heads, head_dim), encoded.dtype)
    cross_caches = [layer(first, encoded, encoder_padding_mask=source_padding,
                          self_attention_cache=cache[:, i], self_attention_cache_update_index=0,
                          cross_attention_cache=empty, cross_attention_cache_update_index=0)[2]
                    for i, layer in enumerate(decoders)]

    def next_fn(prompt, cache, index):
        position = index - 1  # the token at `position` predicts the one at `index`
        tokens = ops.slice(prompt, [0, position], [batch, 1])
        hidden = parts["target_embedding"](tokens, start_index=position)
        layer_caches = []
        for i, layer in enumerate(decoders):
            hidden, layer_cache, _ = layer(
                hidden, encoded, encoder_padding_mask=source_padding,
                self_attention_cache=cache[:, i], self_attention_cache_update_index=position,
                cross_attention_cache=cross_caches[i], cross_attention_cache_update_index=None)
            layer_caches.append(layer_cache)
        logits = parts["target_embedding"].token_embedding(hidden, reverse=True)[:, 0, :]
        return logits, None, ops.stack(layer_caches, axis=1)

    output = keras_hub.samplers.GreedySampler()(next_fn, prompt, cache=cache, index=1)
    return output[:, 1:]


def full_forward_argmax(model, source, tokens, never=()):
    """The argmax of `model`'s own full forward pass (eager) over [START] + tokens[:, :-1]:
    equal to `tokens` where a cached decoder computes what the model does. `never`: token ids
    the decoder cannot emit (their logits are set to -inf first)."""
    target_in = np.concatenate([np.full((tokens.shape[0], 1), START_ID), tokens[:, :-1]],
                               axis=1).astype("int32")
    logits = np.asarray(model([ops.convert_to_tensor(np.asarray(source).astype("int32")),
                               ops.convert_to_tensor(target_in)], training=False))
    if never:
        logits = logits.astype("float32")
        logits[..., list(never)] = -np.inf
    return logits.argmax(-1)


def compile_for_benchmark(model, jit_compile, loss=None):
    """The same optimizer (Adam with the paper's betas) and loss (ours, label-smoothed, unless
    `loss` is given) for every model. On JAX the step is always jit-compiled
    (jit_compile=False would run op by op, eagerly)."""
    if loss is None:
        from keras_transformer.training.loss import MaskedSparseCrossEntropy
        loss = MaskedSparseCrossEntropy(0.1)
    if backend() == "jax":
        jit_compile = True
    model.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
                  loss=loss, jit_compile=jit_compile)
    return model


def matmul_parameter_count(model, config):
    """Parameters that take part in a matmul: every Dense / EinsumDense kernel plus the
    (tied) output matrix, target_vocab x d_model. Embedding lookups and norms are not matmuls."""
    kernels = sum(int(np.prod(w.shape)) for w in model.trainable_weights
                  if w.path.split("/")[-1] == "kernel")
    return kernels + config.target_vocab_size * config.d_model
