"""Greedy decode latency: our KV cache vs full recomputation, and ours vs keras-hub's cached decoder.

For each output length (16/32/64/128) and batch size (1, 32), three decoders of the same model
shape (small preset, learned positions, vocabulary 8000, random weights) generate exactly
`length` tokens (end_id=None: no early stop) from the same (batch, 32) source tokens:

  ours cached     keras_transformer.generation.decoding.greedy_decode: fixed-size (B, h, L, d_k)
                  cache per layer, cross-attention keys/values computed once
  ours uncached   greedy_decode_uncached: re-runs the whole decoder over the L-wide target
                  buffer at every step (its cost grows ~quadratically with L)
  keras-hub       keras_hub.samplers.GreedySampler over TransformerDecoder with
                  self_attention_cache / self_attention_cache_update_index and a cross-attention
                  cache computed once (cross_attention_cache, update index None), the
                  (B, layers, 2, L, h, d_k) layout keras-hub's own seq2seq models (BART) use
                  (common/models.py: hub_greedy_decode)

Each runs inside `tf.function` ("graph") and/or `tf.function(jit_compile=True)` ("xla"), traced
and compiled first; then the variants of one (length, batch) are timed in rotating order.
Reported: ms per decode call, ms per sequence (call / batch), ms per generated token step
(call / length: roughly flat when the cached cost grows linearly with length), and the paired
ratios uncached/cached and keras-hub/ours. The uncached decoder is skipped where its estimated
work exceeds --uncached-max-gflop (printed as "skip"); raise it to time everything.

    python benchmarks/regression/decode_latency.py              # tf.function, lengths 16..128, batch 1 and 32
    python benchmarks/regression/decode_latency.py --modes xla  # the same under XLA (jit_compile=True)
    python benchmarks/regression/decode_latency.py --quick      # lengths 16,64, 2 rounds
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from keras import ops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import data, device, models, process  # noqa: E402
from common.flops import uncached_decode_gflop  # noqa: E402
from common.timing import interleaved, paired_ratio, spread  # noqa: E402

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


def compiled(function, mode):
    """`function(source)` inside tf.function (graph) or tf.function(jit_compile=True) (xla);
    jax.jit on the JAX backend (its only mode)."""
    if device.backend() == "jax":
        import jax
        return jax.jit(function)
    import tensorflow as tf
    return tf.function(function, jit_compile=(mode == "xla"), reduce_retracing=False)


def main(argv=None):
    args = parse_args(argv)
    lengths = [int(v) for v in args.lengths.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    modes = ["xla"] if device.backend() == "jax" else [m.strip() for m in args.modes.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]

    config = models.our_config(args.preset, args.vocab_size, max(lengths) + 1, dropout=None)
    ours = models.build_ours(config)
    hub = models.build_hub(config) if "keras_hub" in variants else None
    print(device.machine_line())
    print(f"preset {args.preset} (layers {config.num_layers}, d_model {config.d_model}, heads "
          f"{config.num_heads}, d_ff {config.d_ff}), vocab {args.vocab_size}, learned positions; "
          f"parameters ours {ours.count_params():,}"
          + (f", keras-hub {hub.count_params():,}" if hub else "")
          + f"; source length {SOURCE_LENGTH}; every decode runs all `length` steps")

    rng = np.random.default_rng(args.seed)
    functions = decoders(ours, hub)
    rows, checks = [], []
    started = time.perf_counter()
    for mode in modes:
        for batch in batches:
            source_np = data.decode_source(batch, SOURCE_LENGTH, args.vocab_size, args.seed, rng)
            source = ops.convert_to_tensor(source_np)
            for length in lengths:
                samples, first_call = measure((mode, batch, length), source, source_np, variants,
                                              functions, hub, config, checks, args)
                rows.append((mode, batch, length, samples, first_call))
                print(f"  measured {mode} batch {batch} length {length} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)

    print_latencies(rows, variants, config)
    print_ratios(rows)
    if "cached" in variants and len(lengths) > 1:
        print_linearity(rows, modes, batches, lengths)
    print_checks(checks)
    print(f"total {time.perf_counter() - started:.0f} s")
    print("\nreproduce: " + process.reproduce_line(__file__, args))


def decoders(ours, hub):
    """{variant: length -> decode(source)}: ours cached and uncached, keras-hub's."""
    from keras_transformer.generation.decoding import greedy_decode, greedy_decode_uncached
    return {
        "cached": lambda length: (lambda s: greedy_decode(ours, s, length, end_id=None)),
        "uncached": lambda length: (lambda s: greedy_decode_uncached(ours, s, length, end_id=None)),
        "keras_hub": lambda length: (lambda s: models.hub_greedy_decode(hub, s, length)),
    }


def measure(setting, source, source_np, variants, functions, hub, config, checks, args):
    """One (mode, batch, length): each variant compiled and called once (its first call's
    seconds, its tokens), again to size a sample of --min-sample-seconds, then all timed in
    rounds. The tokens' checks go to `checks`. Returns ({variant: seconds per call, per
    round}, {variant: first call seconds})."""
    mode, batch, length = setting
    runners, reps, first_call, outputs = {}, {}, {}, {}
    for name in variants:
        if (name == "uncached" and uncached_decode_gflop(
                config, batch, SOURCE_LENGTH, length) > args.uncached_max_gflop):
            continue
        function = compiled(functions[name](length), mode)
        start = time.perf_counter()
        outputs[name] = np.asarray(device.sync(function(source)))
        first_call[name] = time.perf_counter() - start
        single = time.perf_counter()
        device.sync(function(source))
        single = time.perf_counter() - single
        reps[name] = max(1, int(np.ceil(args.min_sample_seconds / max(single, 1e-6))))
        runners[name] = (lambda f, r: (lambda: [device.sync(f(source)) for _ in range(r)]))(
            function, reps[name])
    if "cached" in outputs and "uncached" in outputs:
        checks.append(("ours cached == ours uncached", mode, batch, length,
                       bool(np.array_equal(outputs["cached"], outputs["uncached"]))))
    if "keras_hub" in outputs:  # its cached tokens == argmax of its full forward pass
        tokens = outputs["keras_hub"]
        full = models.full_forward_argmax(hub, source_np, tokens)
        checks.append(("keras-hub cached == its full forward", mode, batch, length,
                       bool(np.array_equal(full, tokens))))
    samples = interleaved(runners, args.rounds)
    return {name: [s / reps[name] for s in values] for name, values in samples.items()}, first_call


def print_latencies(rows, variants, config):
    print(f"\n{'mode':<5} {'batch':>5} {'len':>4} {'variant':<10} {'ms/call':>9} {'ms/seq':>8} "
          f"{'ms/token':>9} {'tokens/s':>9} {'spread':>7} {'first call s':>12}")
    for mode, batch, length, samples, first_call in rows:
        for name in variants:
            if name not in samples:
                gflop = uncached_decode_gflop(config, batch, SOURCE_LENGTH, length)
                print(f"{mode:<5} {batch:>5} {length:>4} {name:<10} {'skip':>9}   (est. "
                      f"{gflop:.0f} GFLOP > --uncached-max-gflop)")
                continue
            seconds = statistics.median(samples[name])
            print(f"{mode:<5} {batch:>5} {length:>4} {name:<10} {seconds * 1e3:>9.2f} "
                  f"{seconds * 1e3 / batch:>8.3f} {seconds * 1e3 / length:>9.3f} "
                  f"{batch * length / seconds:>9,.0f} {spread(samples[name]):>7.0%} "
                  f"{first_call[name]:>12.1f}")


def print_ratios(rows):
    print("\nratios (median of per-round ratios of call time):")
    print(f"{'mode':<5} {'batch':>5} {'len':>4} {'uncached/cached':>16} {'keras_hub/ours':>15}")
    for mode, batch, length, samples, _ in rows:
        def ratio(a, b):
            return f"{paired_ratio(samples[a], samples[b]):.2f}" if a in samples and b in samples else "-"
        print(f"{mode:<5} {batch:>5} {length:>4} {ratio('uncached', 'cached'):>16} "
              f"{ratio('keras_hub', 'cached'):>15}")


def print_linearity(rows, modes, batches, lengths):
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


def print_checks(checks):
    for check in sorted({c[0] for c in checks}):
        results = [c for c in checks if c[0] == check]
        print(f"check {check}: {sum(c[4] for c in results)}/{len(results)} settings")
        for _, mode, batch, length, equal in results:
            if not equal:
                print(f"WARNING: {check} fails ({mode}, batch {batch}, length {length})")


if __name__ == "__main__":
    main()
