"""Greedy decode latency: our KV cache vs full recomputation, and ours vs keras-hub's cached decoder.

For each output length (16/32/64/128) and batch size (1, 32), three decoders of the same model
shape (small preset, learned positions, vocabulary 8000, random weights) generate exactly
`length` tokens (end_id=None: no early stop) from the same (batch, 32) source tokens:

  ours cached     keras_transformer.generation.decoding.greedy_decode: fixed-size (B, h, L, d_k) cache per
                  layer, cross-attention keys/values computed once
  ours uncached   greedy_decode_uncached: re-runs the whole decoder over the L-wide target
                  buffer at every step (its cost grows ~quadratically with L)
  keras-hub       keras_hub.samplers.GreedySampler over TransformerDecoder with
                  self_attention_cache / self_attention_cache_update_index and a cross-attention
                  cache computed once (cross_attention_cache, update index None), the
                  (B, layers, 2, L, h, d_k) layout keras-hub's own seq2seq models (BART) use

Each runs inside `tf.function` ("graph") and/or `tf.function(jit_compile=True)` ("xla"), traced
and compiled first; then the variants of one (length, batch) are timed in rotating order.
Reported: ms per decode call, ms per sequence (call / batch), ms per generated token step
(call / length: roughly flat when the cached cost grows linearly with length), and the paired
ratios uncached/cached and keras-hub/ours. The uncached decoder is skipped where its estimated
work exceeds --uncached-max-gflop (printed as "skip"); raise it to time everything.

    python benchmarks/decode_latency.py                 # tf.function, lengths 16..128, batch 1 and 32
    python benchmarks/decode_latency.py --modes xla     # the same under XLA (jit_compile=True)
    python benchmarks/decode_latency.py --quick         # lengths 16,64, 2 rounds
"""

import argparse
import statistics
import time

import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import common  # noqa: E402
from common import paired_ratio, spread  # noqa: E402

SOURCE_LENGTH = 32


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--lengths", default="16,32,64,128", help="output lengths")
    parser.add_argument("--batches", default="1,32", help="batch sizes")
    parser.add_argument("--modes", default="graph", help="comma list: graph (tf.function), xla (jit_compile)")
    parser.add_argument("--variants", default="cached,uncached,keras_hub")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-sample-seconds", type=float, default=0.15,
                        help="repeat a decode call until a sample lasts this long")
    parser.add_argument("--uncached-max-gflop", type=float, default=120.0,
                        help="skip the uncached decoder above this estimated work per call")
    parser.add_argument("--quick", action="store_true", help="lengths 16,64; 2 rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.rounds = "16,64", 2
    return args


def uncached_gflop(config, batch, length):
    """Forward matmul work of greedy_decode_uncached: `length` steps, each a full decoder
    pass over the (length + 1)-wide buffer with logits at every position."""
    d, f, n, v = config.d_model, config.d_ff, config.num_layers, config.target_vocab_size
    t, s = length + 1, SOURCE_LENGTH
    per_step = batch * (n * (t * (6 * d * d + 2 * d * f) + s * 2 * d * d + 2 * t * t * d
                             + 2 * t * s * d) + t * d * v)
    return 2 * length * per_step / 1e9


def hub_greedy(model, source, length):
    """Greedy decode with keras-hub's cached TransformerDecoder and GreedySampler: (B, S) -> (B, L)."""
    import keras_hub
    parts = model.hub_parts
    decoders = parts["decoders"]
    batch = ops.shape(source)[0]
    source_padding = ops.not_equal(source, common.PAD_ID)
    encoded = parts["source_embedding"](source)
    for layer in parts["encoders"]:
        encoded = layer(encoded, padding_mask=source_padding)
    heads = decoders[0].num_heads
    head_dim = ops.shape(encoded)[-1] // heads
    cache = ops.zeros((batch, len(decoders), 2, length + 1, heads, head_dim), encoded.dtype)
    prompt = ops.concatenate([ops.full((batch, 1), common.START_ID, "int32"),
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


def compiled(function, mode):
    """`function(source)` inside tf.function (graph) or tf.function(jit_compile=True) (xla);
    jax.jit on the JAX backend (its only mode)."""
    if common.backend() == "jax":
        import jax
        return jax.jit(function)
    import tensorflow as tf
    return tf.function(function, jit_compile=(mode == "xla"), reduce_retracing=False)


def main(argv=None):
    args = parse_args(argv)
    from keras_transformer.generation.decoding import greedy_decode, greedy_decode_uncached
    lengths = [int(v) for v in args.lengths.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    modes = ["xla"] if common.backend() == "jax" else [m.strip() for m in args.modes.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]

    config = common.our_config(args.preset, args.vocab_size, max(lengths) + 1, dropout=None)
    ours = common.build_ours(config)
    hub = common.build_hub(config) if "keras_hub" in variants else None
    print(common.machine_line())
    print(f"preset {args.preset} (layers {config.num_layers}, d_model {config.d_model}, heads "
          f"{config.num_heads}, d_ff {config.d_ff}), vocab {args.vocab_size}, learned positions; "
          f"parameters ours {ours.count_params():,}"
          + (f", keras-hub {hub.count_params():,}" if hub else "")
          + f"; source length {SOURCE_LENGTH}; every decode runs all `length` steps")

    rng = np.random.default_rng(args.seed)
    functions = {
        "cached": lambda length: (lambda s: greedy_decode(ours, s, length, end_id=None)),
        "uncached": lambda length: (lambda s: greedy_decode_uncached(ours, s, length, end_id=None)),
        "keras_hub": lambda length: (lambda s: hub_greedy(hub, s, length)),
    }
    rows, checks = [], []
    started = time.perf_counter()
    for mode in modes:
        for batch in batches:
            source_np = common.synthetic_batches(1, batch, SOURCE_LENGTH, args.vocab_size,
                                                 args.seed + batch)[0][0][0]
            if batch == 1:  # a full-length sentence
                source_np[0, :] = rng.integers(common.FIRST_WORD_ID, args.vocab_size, SOURCE_LENGTH)
            source = ops.convert_to_tensor(source_np)
            for length in lengths:
                runners, first_call, outputs = {}, {}, {}
                for name in variants:
                    if name == "uncached" and uncached_gflop(config, batch, length) > args.uncached_max_gflop:
                        continue
                    function = compiled(functions[name](length), mode)
                    start = time.perf_counter()
                    outputs[name] = np.asarray(common.sync(function(source)))
                    first_call[name] = time.perf_counter() - start
                    single = time.perf_counter()
                    common.sync(function(source))
                    single = time.perf_counter() - single
                    reps = max(1, int(np.ceil(args.min_sample_seconds / max(single, 1e-6))))
                    runners[name] = (lambda f, r: (lambda: [common.sync(f(source)) for _ in range(r)]))(
                        function, reps)
                    runners[name].reps = reps
                if "cached" in outputs and "uncached" in outputs:
                    checks.append(("ours cached == ours uncached", mode, batch, length,
                                   bool(np.array_equal(outputs["cached"], outputs["uncached"]))))
                if "keras_hub" in outputs:  # its cached tokens == argmax of its full forward pass
                    tokens = outputs["keras_hub"]
                    target_in = np.concatenate([np.full((batch, 1), common.START_ID), tokens[:, :-1]],
                                               axis=1).astype("int32")
                    full = np.asarray(hub([source_np, target_in])).argmax(-1)
                    checks.append(("keras-hub cached == its full forward", mode, batch, length,
                                   bool(np.array_equal(full, tokens))))
                samples = common.interleaved(runners, args.rounds)
                samples = {name: [s / runners[name].reps for s in values]
                           for name, values in samples.items()}
                rows.append((mode, batch, length, samples, first_call))
                print(f"  measured {mode} batch {batch} length {length} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)

    print(f"\n{'mode':<5} {'batch':>5} {'len':>4} {'variant':<10} {'ms/call':>9} {'ms/seq':>8} "
          f"{'ms/token':>9} {'tokens/s':>9} {'spread':>7} {'first call s':>12}")
    for mode, batch, length, samples, first_call in rows:
        for name in variants:
            if name not in samples:
                print(f"{mode:<5} {batch:>5} {length:>4} {name:<10} {'skip':>9}   (est. "
                      f"{uncached_gflop(config, batch, length):.0f} GFLOP > --uncached-max-gflop)")
                continue
            seconds = statistics.median(samples[name])
            print(f"{mode:<5} {batch:>5} {length:>4} {name:<10} {seconds * 1e3:>9.2f} "
                  f"{seconds * 1e3 / batch:>8.3f} {seconds * 1e3 / length:>9.3f} "
                  f"{batch * length / seconds:>9,.0f} {spread(samples[name]):>7.0%} "
                  f"{first_call[name]:>12.1f}")

    print("\nratios (median of per-round ratios of call time):")
    print(f"{'mode':<5} {'batch':>5} {'len':>4} {'uncached/cached':>16} {'keras_hub/ours':>15}")
    for mode, batch, length, samples, _ in rows:
        def ratio(a, b):
            return f"{paired_ratio(samples[a], samples[b]):.2f}" if a in samples and b in samples else "-"
        print(f"{mode:<5} {batch:>5} {length:>4} {ratio('uncached', 'cached'):>16} "
              f"{ratio('keras_hub', 'cached'):>15}")

    if "cached" in variants and len(lengths) > 1:
        print("\ncached cost vs length: ms per token (call / length) and the marginal ms per extra "
              "token between\nconsecutive lengths (roughly constant = total cost linear in length):")
        for mode in modes:
            for batch in batches:
                ms = {length: statistics.median(samples["cached"]) * 1e3
                      for m, b, length, samples, _ in rows if m == mode and b == batch}
                steps = ", ".join(f"{a}->{b} {(ms[b] - ms[a]) / (b - a):.3f}"
                                  for a, b in zip(lengths, lengths[1:]))
                per_token = ", ".join(f"{length} {ms[length] / length:.3f}" for length in lengths)
                print(f"  {mode} batch {batch}: per token {per_token}; marginal {steps}")
    for check in sorted({c[0] for c in checks}):
        results = [c for c in checks if c[0] == check]
        print(f"check {check}: {sum(c[4] for c in results)}/{len(results)} settings")
        for _, mode, batch, length, equal in results:
            if not equal:
                print(f"WARNING: {check} fails ({mode}, batch {batch}, length {length})")
    print(f"total {time.perf_counter() - started:.0f} s")
    print("\nreproduce: " + common.reproduce_line("decode_latency.py", args))


if __name__ == "__main__":
    main()
