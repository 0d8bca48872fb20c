"""Shared pieces of the benchmarks: the keras-hub twin of our model, synthetic batches,
paired (interleaved) timing, FLOP counting, the reference matmul and memory probes.

Written with `keras.ops` where it can be, so the scripts also run with `KERAS_BACKEND=jax`
on a machine without TensorFlow (the GPU machines); the few backend-specific pieces
(jit of the reference matmul, device memory) branch on `keras.backend.backend()`.
"""

import os
import platform
import statistics
import time

import keras
import numpy as np
from keras import ops

import keras_transformer  # noqa: F401  (the installed package, `pip install -e .`; a quiet start)
from keras_transformer.training.precision import POLICIES
from pipelines.special_tokens import END_ID, PAD_ID, RESERVED_TOKENS, START_ID  # noqa: F401

FIRST_WORD_ID = len(RESERVED_TOKENS)  # synthetic words: every id after the reserved ones


def backend():
    return keras.backend.backend()


def machine_line():
    """One line naming the stack and the hardware the figures come from."""
    parts = [f"keras {keras.__version__} ({backend()})"]
    if backend() == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        parts.append(f"tensorflow {tf.__version__}")
        parts.append(f"{len(gpus)} GPU" if gpus else "no GPU")
    elif backend() == "jax":
        import jax
        parts.append(f"jax {jax.__version__}, devices {[d.device_kind for d in jax.devices()]}")
    parts.append(f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    try:
        parts.append(f"load avg {os.getloadavg()[0]:.1f}")
    except OSError:
        pass
    return "; ".join(parts)


def has_gpu():
    if backend() == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend() == "jax":
        import jax
        return jax.devices()[0].platform == "gpu"
    return False


def set_precision(mixed_precision):
    """None / 'bfloat16' / 'float16' -> the global dtype policy; returns its name."""
    name = POLICIES[mixed_precision or "float32"]
    keras.mixed_precision.set_global_policy(name)
    return name


# ---------------------------------------------------------------------------------------------
# Models


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
    Returns the model and the layers decoding needs.
    """
    import keras_hub
    if config.norm_position != "post" or not config.tie_output_embeddings:
        raise ValueError("the keras-hub twin mirrors post-norm, tied-output configs")
    d, heads, d_ff, eps = config.d_model, config.num_heads, config.d_ff, config.layer_norm_epsilon
    source = keras.Input((None,), dtype="int32", name="source_tokens")
    target = keras.Input((None,), dtype="int32", name="target_tokens")
    # tie_weights=True on both: an untied ReversibleEmbedding adds a (V, d) output matrix
    if config.share_embeddings:  # one table (tokens and positions) for both sides, as ours
        source_embedding = target_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            config.source_vocab_size, config.max_length, d, tie_weights=True,
            name="shared_embedding")
    else:
        source_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            config.source_vocab_size, config.max_length, d, tie_weights=True,
            name="source_embedding")
        target_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            config.target_vocab_size, config.max_length, d, tie_weights=True,
            name="target_embedding")
    target_embedding.token_embedding.reverse_dtype = "float32"  # logits in float32, as ours
    block = dict(intermediate_dim=d_ff, num_heads=heads, dropout=config.dropout,
                 layer_norm_epsilon=eps, normalize_first=False)
    encoders = [keras_hub.layers.TransformerEncoder(**block, name=f"encoder_{i}")
                for i in range(config.num_layers)]
    decoders = [keras_hub.layers.TransformerDecoder(**block, name=f"decoder_{i}")
                for i in range(config.num_layers)]
    source_dropout = keras.layers.Dropout(config.dropout, name="source_dropout")
    target_dropout = keras.layers.Dropout(config.dropout, name="target_dropout")

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


def compile_for_benchmark(model, jit_compile):
    """The same optimizer (Adam with the paper's betas) and loss (ours, label-smoothed) for both.

    On JAX the step is always jit-compiled (jit_compile=False would run op by op, eagerly)."""
    from keras_transformer.training.loss import MaskedSparseCrossEntropy
    if backend() == "jax":
        jit_compile = True
    model.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
                  loss=MaskedSparseCrossEntropy(0.1), jit_compile=jit_compile)
    return model


def matmul_parameter_count(model, config):
    """Parameters that take part in a matmul: every Dense / EinsumDense kernel plus the
    (tied) output matrix, target_vocab x d_model. Embedding lookups and norms are not matmuls."""
    kernels = sum(int(np.prod(w.shape)) for w in model.trainable_weights
                  if w.path.split("/")[-1] == "kernel")
    return kernels + config.target_vocab_size * config.d_model


# ---------------------------------------------------------------------------------------------
# Data


def synthetic_batches(count, batch, length, vocab_size, seed=0, min_fraction=0.5):
    """`count` fixed-shape ((source, target_in), target_out) int32 batches of shape (batch, length).

    Sentence lengths are uniform in [min_fraction * length, length] (source and target drawn
    independently), padded with 0; target_in = [START] + words, target_out = words + [END].
    Returns numpy arrays (the same arrays feed every model).
    """
    rng = np.random.default_rng(seed)
    batches = []
    low = max(2, int(round(min_fraction * length)))
    for _ in range(count):
        source = np.zeros((batch, length), np.int32)
        target_in = np.zeros((batch, length), np.int32)
        target_out = np.zeros((batch, length), np.int32)
        for row in range(batch):
            n = rng.integers(low, length + 1)
            source[row, :n] = rng.integers(FIRST_WORD_ID, vocab_size, n)
            m = rng.integers(low, length + 1)  # target words + 1 special token
            words = rng.integers(FIRST_WORD_ID, vocab_size, m - 1)
            target_in[row, :m] = np.concatenate([[START_ID], words])
            target_out[row, :m] = np.concatenate([words, [END_ID]])
        batches.append(((source, target_in), target_out))
    return batches


def to_backend(batches):
    """Convert numpy batches to backend tensors once, so timing excludes the copy."""
    return [((ops.convert_to_tensor(s), ops.convert_to_tensor(t)), ops.convert_to_tensor(y))
            for (s, t), y in batches]


# ---------------------------------------------------------------------------------------------
# FLOPs


def transformer_train_flops(config, batch, source_length, target_length):
    """Model FLOPs of one training step on padded (batch, length) shapes (the work done).

    Counts matmuls only (2 FLOPs per multiply-add), forward x 3 for forward + backward:
      encoder, per layer:  B*S*(4 d^2 + 2 d f)            projections Q,K,V,O and the FFN
                           + 2 B S^2 d                     Q K^T and weights @ V
      decoder, per layer:  B*T*(4 d^2 + 2 d^2 + 2 d f)    self Q,K,V,O; cross Q,O; FFN
                           + B*S*2 d^2                     cross K,V over the source
                           + 2 B T^2 d + 2 B T S d         self and cross attention
      output:              B*T*d*V                         logits against the tied embedding
    Embedding lookups, norms, softmax and the loss are left out (they are not matmuls).
    """
    d, f, n, v = config.d_model, config.d_ff, config.num_layers, config.target_vocab_size
    b, s, t = batch, source_length, target_length
    encoder = n * (b * s * (4 * d * d + 2 * d * f) + 2 * b * s * s * d)
    decoder = n * (b * t * (6 * d * d + 2 * d * f) + b * s * 2 * d * d
                   + 2 * b * t * t * d + 2 * b * t * s * d)
    output = b * t * d * v
    return 2 * 3 * (encoder + decoder + output)


# ---------------------------------------------------------------------------------------------
# Timing


def sync(value):
    """Block until `value` (a tensor or nested structure) is computed."""
    for leaf in keras.tree.flatten(value):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
        elif hasattr(leaf, "numpy"):
            leaf.numpy()
    return value


def interleaved(runners, rounds, reps=1, cpu=None):
    """Time each runner `reps` times per round, runners in rotating order every round.

    runners: {name: zero-argument callable that does one unit of work and waits for it}.
    Returns {name: [wall seconds per unit, one per round]}; if `cpu` is a dict it receives the
    same for this process's CPU time (all threads, user + system), which waiting for a core
    on a shared machine does not inflate. Rotation spreads slow drifts of the shared machine
    over every runner; pair the per-round samples to compute ratios.
    """
    names = list(runners)
    samples = {name: [] for name in names}
    if cpu is not None:
        cpu.update({name: [] for name in names})
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        if r % 2:
            order = order[::-1]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(reps):
                runners[name]()
            samples[name].append((time.perf_counter() - start) / reps)
            if cpu is not None:
                cpu[name].append((time.process_time() - start_cpu) / reps)
    return samples


def paired_ratio(numerator, denominator):
    """Median over rounds of numerator[r] / denominator[r] (both sampled in the same round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def spread(values):
    """(max - min) / median: how noisy the samples were."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


# ---------------------------------------------------------------------------------------------
# Reference matmul


def make_matmul(size, dtype="float32", seed=0):
    """A jit-compiled (size, size) @ (size, size) on the current backend -> (callable, FLOPs)."""
    rng = np.random.default_rng(seed)
    a = ops.cast(ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)
    b = ops.cast(ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)
    if backend() == "tensorflow":
        import tensorflow as tf
        compiled = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
    elif backend() == "jax":
        import jax
        compiled = jax.jit(lambda x, y: x @ y)
    else:
        compiled = ops.matmul

    def run():
        sync(compiled(a, b))

    return run, 2 * size ** 3


# ---------------------------------------------------------------------------------------------
# Memory


def rss_bytes():
    """Current resident set size (VmRSS) of this process, bytes."""
    return _status_field("VmRSS")


def peak_rss_bytes():
    """Peak resident set size (VmHWM) of this process since it started."""
    return _status_field("VmHWM")


def _status_field(name):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(name)


def device_memory():
    """(reset, peak) callables for accelerator memory, or None on CPU."""
    if not has_gpu():
        return None
    if backend() == "tensorflow":
        import tensorflow as tf
        return (lambda: tf.config.experimental.reset_memory_stats("GPU:0"),
                lambda: tf.config.experimental.get_memory_info("GPU:0")["peak"])
    if backend() == "jax":
        import jax
        device = jax.devices()[0]
        # jax has no reset; report the peak seen so far (run configurations in ascending size)
        return (lambda: None, lambda: device.memory_stats().get("peak_bytes_in_use", 0))
    return None


def reproduce_line(script, args):
    """'python benchmarks/<script> --flag value ...' from an argparse namespace."""
    words = [f"python benchmarks/{script}"]
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                words.append(flag)
        elif value is not None:
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            words.append(f"{flag} {value}")
    prefix = "" if backend() == "tensorflow" else f"KERAS_BACKEND={backend()} "
    return prefix + " ".join(words)
