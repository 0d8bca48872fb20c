"""Training step time and peak memory of our model vs sequence length and vs batch size.

Two sweeps on one compiled model (small preset, vocabulary 8000, sinusoidal positions, Adam and
the paper's label-smoothed loss), synthetic batches with source length = target length:
  length sweep: batch --batch, lengths --lengths (default 16 x 64/128/256/512)
  batch sweep:  length --batch-sweep-length, batches --batches (default 64 x 16/32/64/128)
Every configuration is warmed up (traced, compiled under --jit) first, then all are timed in
rotating order for --rounds rounds (median step time). Peak memory of training:
  CPU: TensorFlow keeps freed memory (RSS does not drop after a step), so a per-step "peak minus
       before" undercounts badly. Instead configurations run in increasing estimated size and
       each reports the process high-water mark (VmHWM) after its steps minus the RSS of the built
       model before any step (weights, optimizer state, activations, traced graphs); "<=" marks
       one that did not raise the mark. --isolate measures each configuration in a fresh process
       (peak RSS of 3 steps minus the built model's RSS): cleaner, ~15 s more per configuration.
  GPU: tf.config.experimental.get_memory_info("GPU:0")["peak"] after reset_memory_stats (TF), or
       the device's peak_bytes_in_use (JAX; never reset, hence the increasing order too).
The "x time / x tokens" column divides the step-time growth by the token growth from the first
configuration of the sweep: 1.0 = linear in tokens; above 1 with length = the quadratic
attention terms (and cache effects) showing.

    python benchmarks/regression/scaling.py                  # ~2-3 min on 2 shared CPU cores
    python benchmarks/regression/scaling.py --quick          # lengths 64,128,256; batches 16,32,64; 2 rounds
    python benchmarks/regression/scaling.py --jit --isolate  # XLA, memory measured in one process per config
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import data, device, flops, memory, models, process  # noqa: E402
from common.timing import interleaved, spread  # noqa: E402

MIB = 2 ** 20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=16, help="batch of the length sweep")
    parser.add_argument("--lengths", default="64,128,256,512")
    parser.add_argument("--batch-sweep-length", type=int, default=64)
    parser.add_argument("--batches", default="16,32,64,128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="jit_compile=True (XLA)")
    parser.add_argument("--mixed-precision", choices=["bfloat16", "float16"], default=None)
    parser.add_argument("--isolate", action="store_true",
                        help="measure memory in a fresh process per configuration")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # "B,L": memory of one config
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.batches, args.rounds = "64,128,256", "16,32,64", 2
    return args


def estimated_bytes(config, batch, length):
    """Rough activation size, only to order the memory measurements."""
    d, f, v, h = config.d_model, config.d_ff, config.target_vocab_size, config.num_heads
    tokens = batch * length
    return 4 * config.num_layers * (tokens * (20 * d + 2 * f) + 3 * batch * h * length * length) \
        + 8 * tokens * v


def build(args, max_length):
    device.set_precision(args.mixed_precision)
    config = models.our_config(args.preset, args.vocab_size, max_length,
                               position_encoding="sinusoidal")
    model = models.compile_for_benchmark(models.build_ours(config), args.jit)
    return config, model


def device_step_memory(model, batch_tensors):
    """Accelerator peak (bytes) of one training step on an already warmed-up shape, or None."""
    probes = memory.device_memory()
    if probes is None:
        return None
    probes[0]()
    model.train_on_batch(*batch_tensors)
    return probes[1]()


def isolated_memory(args, batch, length):
    """Run this script with --only B,L in a fresh process; returns (bytes, how)."""
    command = [sys.executable, os.path.abspath(__file__), "--only", f"{batch},{length}",
               "--preset", args.preset, "--vocab-size", str(args.vocab_size)]
    if args.jit:
        command.append("--jit")
    if args.mixed_precision:
        command += ["--mixed-precision", args.mixed_precision]
    result = subprocess.run(command, capture_output=True, text=True, check=True,
                            env=process.child_env())
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    return payload["bytes"], payload["how"] + ", one process per configuration"


def only(args):
    """Memory of one configuration in this (fresh) process: peak RSS (VmHWM) over three training
    steps minus the RSS of the built model before its first step (on a GPU: the device peak)."""
    batch, length = (int(v) for v in args.only.split(","))
    config, model = build(args, length)
    batch_tensors = data.to_backend(
        data.synthetic_batches(1, batch, length, args.vocab_size, args.seed))[0]
    probes = memory.device_memory()
    before = memory.rss_bytes()
    for _ in range(3):
        model.train_on_batch(*batch_tensors)
    if probes is not None:
        print(json.dumps({"bytes": probes[1](), "how": "device peak"}))
    else:
        print(json.dumps({"bytes": memory.peak_rss_bytes() - before,
                          "how": "peak RSS of 3 steps - RSS of the built model"}))


def main(argv=None):
    args = parse_args(argv)
    if args.only:
        return only(args)
    lengths = [int(v) for v in args.lengths.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    sweeps = {"length": [(args.batch, length) for length in lengths],
              "batch": [(batch, args.batch_sweep_length) for batch in batches]}
    configs = sorted({c for sweep in sweeps.values() for c in sweep})
    config, model = build(args, max(lengths + [args.batch_sweep_length]))
    print(device.machine_line())
    print(f"our model, preset {args.preset} (layers {config.num_layers}, d_model {config.d_model}, "
          f"heads {config.num_heads}, d_ff {config.d_ff}, dropout {config.dropout}), vocab "
          f"{args.vocab_size}, {model.count_params():,} parameters; "
          f"XLA {'on' if args.jit or device.backend() == 'jax' else 'off'}; "
          f"policy {keras_policy()}")

    numpy_batches = {c: data.synthetic_batches(2, c[0], c[1], args.vocab_size, args.seed)
                     for c in configs}
    batches = {c: data.to_backend(numpy_batches[c]) for c in configs}
    target_tokens = {c: sum(data.target_tokens(numpy_batches[c])) / 2 for c in configs}
    started = time.perf_counter()
    first_step, peaks = {}, {}
    # CPU memory: TensorFlow's allocator keeps freed memory, so RSS never drops between steps and
    # "peak - before" per step says little. The high-water mark does: configurations run in
    # increasing estimated size, and each one's peak is VmHWM after its steps minus the RSS of the
    # built model before any step. A configuration that does not raise VmHWM is reported as "<=".
    baseline = memory.rss_bytes()
    high_water = baseline
    for c in sorted(configs, key=lambda c: estimated_bytes(config, *c)):
        start = time.perf_counter()
        model.train_on_batch(*batches[c][0])  # trace / compile this shape
        first_step[c] = time.perf_counter() - start
        device_peak = device_step_memory(model, batches[c][1])
        if device_peak is not None:
            peaks[c] = (device_peak, "", "device peak of one step")
        else:
            model.train_on_batch(*batches[c][1])
            peak = memory.peak_rss_bytes()
            peaks[c] = (peak - baseline, "" if peak > high_water else "<=",
                         "process VmHWM after the configuration's steps - RSS of the built model "
                         "(in increasing size; includes tracing)")
            high_water = max(high_water, peak)
        print(f"  warmed up batch {c[0]} length {c[1]} ({time.perf_counter() - started:.0f} s)",
              flush=True)
    if args.isolate:
        for c in sorted(configs, key=lambda c: estimated_bytes(config, *c)):
            size, how = isolated_memory(args, *c)
            peaks[c] = (size, "", how)

    counters = {c: 0 for c in configs}

    def runner(c):
        def run():
            x, y = batches[c][counters[c] % 2]
            counters[c] += 1
            model.train_on_batch(x, y)
        return run

    samples = interleaved({c: runner(c) for c in configs}, args.rounds)
    print(f"timed {args.rounds} rounds in {time.perf_counter() - started:.0f} s total\n")

    for sweep, points in sweeps.items():
        print(f"{sweep} sweep:")
        print(f"{'batch':>6} {'length':>6} {'ms/step':>9} {'spread':>7} {'tokens/s':>9} "
              f"{'GFLOP/s':>8} {'x time':>7} {'x tokens':>8} {'x time / x tokens':>17} "
              f"{'peak MiB':>9} {'first step s':>12}")
        base = points[0]
        for c in points:
            seconds = statistics.median(samples[c])
            step_flops = flops.transformer_train_flops(config, c[0], c[1], c[1])
            growth = seconds / statistics.median(samples[base])
            tokens = target_tokens[c] / target_tokens[base]
            print(f"{c[0]:>6} {c[1]:>6} {seconds * 1e3:>9.1f} {spread(samples[c]):>7.0%} "
                  f"{target_tokens[c] / seconds:>9,.0f} {step_flops / seconds / 1e9:>8.1f} "
                  f"{growth:>7.2f} {tokens:>8.2f} {growth / tokens:>17.2f} "
                  f"{peaks[c][1] + format(peaks[c][0] / MIB, '.0f'):>9} {first_step[c]:>12.1f}")
        print()
    print(f"peak MiB: {peaks[configs[0]][2]}")
    print("\nreproduce: " + process.reproduce_line(__file__, args, skip=("only",)))


def keras_policy():
    import keras
    return keras.mixed_precision.global_policy().name


if __name__ == "__main__":
    main()
