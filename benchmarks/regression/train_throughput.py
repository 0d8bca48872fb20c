"""Steady-state training throughput: our Transformer vs a keras-hub model of identical shape.

Both models: same preset (d_model, heads, d_ff, layers, dropout, post-norm), same vocabulary,
learned positions (keras-hub's TokenAndPositionEmbedding has no sinusoid, so ours uses
position_encoding="learned" to match parameter for parameter), tied output matrix, the same
Adam and the same label-smoothed loss, trained on the same synthetic fixed-shape batches
(sentence lengths drawn in [length/2, length], padded). Every variant (ours / keras-hub,
with and without XLA) is compiled and warmed up first, then timed in rounds with the variants
in rotating order (A B C D, D C B A, ...); ratios are medians of per-round ratios.

Throughput is in non-padding target tokens per second. Model FLOPs per step count the matmuls
on the padded shapes (common/flops.py: forward x 3 for forward+backward, attention terms
included); achieved FLOP/s is compared with a large jit-compiled matmul timed
in the same rounds (and, with --peak-tflops, with the device's datasheet peak: MFU).

    python benchmarks/regression/train_throughput.py            # small preset, float32, XLA on and off
    python benchmarks/regression/train_throughput.py --quick    # fewer rounds (~1 min)
    python benchmarks/regression/train_throughput.py --preset base --mixed-precision bfloat16 \
        --jit --batch 8 --rounds 1 --steps 2                    # the GPU configuration, smoke-run on CPU
    KERAS_BACKEND=jax python benchmarks/regression/train_throughput.py --preset base --batch 64 \
        --mixed-precision bfloat16 --jit --peak-tflops 989 --matmul-size 8192   # a GPU machine
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import data, device, flops, models, process  # noqa: E402
from common.timing import interleaved, paired_ratio, spread  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", help="tiny / small / base / big")
    parser.add_argument("--vocab-size", type=int, default=8000, help="source = target vocabulary")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=32, help="padded source and target length")
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed sample")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds (samples per variant)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    parser.add_argument("--mixed-precision", choices=["bfloat16", "float16"], default=None)
    parser.add_argument("--jit", action="store_true", help="only XLA (jit_compile=True) variants")
    parser.add_argument("--no-jit", action="store_true", help="only non-XLA variants")
    parser.add_argument("--models", default="ours,keras_hub",
                        help="comma list: ours, keras_hub, ours_rbg_dropout (ours with dropout "
                             "bits from XLA's rbg generator instead of Threefry; JAX only)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="reference matmul n (n^3)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak for MFU (e.g. 989 = H200 dense bf16)")
    parser.add_argument("--quick", action="store_true", help="rounds=3, steps=1, warmup=1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup = 3, 1, 1
    return args


def main(argv=None):
    args = parse_args(argv)
    policy = device.set_precision(args.mixed_precision)
    matmul_dtype = "float32" if policy == "float32" else args.mixed_precision
    jit_options = xla_options(args)
    model_names = [m.strip() for m in args.models.split(",") if m.strip()]

    config = models.our_config(args.preset, args.vocab_size, args.length, args.dropout)
    print(device.machine_line())
    print(f"preset {args.preset}: layers {config.num_layers}, d_model {config.d_model}, "
          f"heads {config.num_heads}, d_ff {config.d_ff}, dropout {config.dropout}, "
          f"vocab {args.vocab_size}, post-norm, learned positions, tied output; policy {policy}; "
          f"batch {args.batch} x length {args.length}")

    batches = data.synthetic_batches(4, args.batch, args.length, args.vocab_size, args.seed)
    target_tokens = data.target_tokens(batches)
    step = stepper(data.to_backend(batches))
    flops_per_step = flops.transformer_train_flops(config, args.batch, args.length, args.length)

    variants, params = build_variants(config, model_names, jit_options)
    compile_seconds = warm_up(variants, step, args.warmup)
    matmul, matmul_flops = device.make_matmul(args.matmul_size, matmul_dtype)
    matmul()  # compile
    started = time.perf_counter()
    step_seconds, step_cpu, matmul_seconds = time_variants(variants, step, matmul, args)
    timed_seconds = time.perf_counter() - started
    matmul_rate = matmul_flops / statistics.median(matmul_seconds)
    tokens_per_step = sum(target_tokens) / len(target_tokens)

    print(f"\nmodel FLOPs per step {flops_per_step / 1e9:.2f} G (matmuls, fwd+bwd = 3 x fwd, padded "
          f"shapes) = {flops_per_step / tokens_per_step / 1e6:.2f} MFLOP per non-padding target token; "
          f"6 x matmul-params x padded target tokens would say "
          f"{6 * params[model_names[0]][1] * args.batch * args.length / 1e9:.2f} G")
    print(f"reference matmul {args.matmul_size}^3 {matmul_dtype} (jit): "
          f"{statistics.median(matmul_seconds) * 1e3:.1f} ms = {matmul_rate / 1e9:,.1f} GFLOP/s "
          f"(spread {spread(matmul_seconds):.0%})")
    print(f"{args.rounds} rounds x {args.steps} steps per variant, {timed_seconds:.0f} s timed; "
          f"{tokens_per_step:,.0f} non-padding target tokens per step\n")
    print_table(step_seconds, step_cpu, compile_seconds, matmul_rate, tokens_per_step,
                flops_per_step, args)
    print_ratios(step_seconds, step_cpu, jit_options, model_names)
    print("\nreproduce: " + process.reproduce_line(__file__, args))


def xla_options(args):
    """The jit_compile settings to time: both unless --jit / --no-jit; XLA only on JAX (it
    has no eager-op fallback worth timing)."""
    if device.backend() == "jax":
        return [True]
    return [True] if args.jit else [False] if args.no_jit else [False, True]


def build_variants(config, model_names, jit_options):
    """{(name, jit): compiled model} and {name: (parameters, in matmuls)}, printed."""
    builders = {"ours": models.build_ours, "keras_hub": models.build_hub,
                "ours_rbg_dropout": models.build_ours_rbg_dropout}
    variants, params = {}, {}
    for name in model_names:
        for jit in jit_options:
            model = models.compile_for_benchmark(builders[name](config), jit)
            params[name] = (model.count_params(), models.matmul_parameter_count(model, config))
            variants[name, jit] = model
    for name, (total, matmul) in params.items():
        print(f"{name:<18} parameters {total:,} (in matmuls {matmul:,})")
    if len({total for total, _ in params.values()}) > 1:
        print("WARNING: the parameter counts differ; the comparison is not like for like")
    return variants, params


def stepper(tensors):
    """step(model): one training step on the next of `tensors` (one sequence for all models)."""
    counter = {"i": 0}

    def step(model):
        x, y = tensors[counter["i"] % len(tensors)]
        counter["i"] += 1
        model.train_on_batch(x, y)  # returns numpy logs: waits for the step

    return step


def warm_up(variants, step, steps):
    """Seconds of each variant's first steps: tracing (and XLA-compiling), reported so the
    compile cost is visible."""
    compile_seconds = {}
    for key, model in variants.items():
        start = time.perf_counter()
        for _ in range(steps):
            step(model)
        compile_seconds[key] = time.perf_counter() - start
    return compile_seconds


def time_variants(variants, step, matmul, args):
    """Interleaved rounds of every variant and the reference matmul (3 products a sample):
    (wall seconds per step, CPU seconds per step, seconds per matmul)."""
    def runner(model):
        def run():
            for _ in range(args.steps):
                step(model)
        return run

    runners = {key: runner(model) for key, model in variants.items()}
    runners["matmul"] = lambda: [matmul() for _ in range(3)]
    cpu = {}
    samples = interleaved(runners, args.rounds, cpu=cpu)
    step_seconds = {key: [s / args.steps for s in values]
                    for key, values in samples.items() if key != "matmul"}
    step_cpu = {key: [s / args.steps for s in values] for key, values in cpu.items() if key != "matmul"}
    return step_seconds, step_cpu, [s / 3 for s in samples["matmul"]]


def print_table(step_seconds, step_cpu, compile_seconds, matmul_rate, tokens_per_step,
                flops_per_step, args):
    """A row per variant: step time (wall, CPU), tokens/s, FLOP/s, its fraction of the
    matmul's (and of the datasheet peak: MFU), the first steps' seconds."""
    header = (f"{'model':<18} {'XLA':<4} {'ms/step':>8} {'spread':>7} {'CPU ms':>8} {'spread':>7} "
              f"{'tokens/s':>9} {'GFLOP/s':>8} {'vs matmul':>9}")
    if args.peak_tflops:
        header += f" {'MFU':>6}"
    header += f" {'first steps s':>13}"
    print(header)
    for (name, jit), values in step_seconds.items():
        seconds = statistics.median(values)
        rate = flops_per_step / seconds
        cpu_values = step_cpu[(name, jit)]
        line = (f"{name:<18} {'yes' if jit else 'no':<4} {seconds * 1e3:>8.1f} {spread(values):>7.0%} "
                f"{statistics.median(cpu_values) * 1e3:>8.1f} {spread(cpu_values):>7.0%} "
                f"{tokens_per_step / seconds:>9,.0f} {rate / 1e9:>8.1f} {rate / matmul_rate:>9.1%}")
        if args.peak_tflops:
            line += f" {rate / (args.peak_tflops * 1e12):>6.1%}"
        line += f" {compile_seconds[(name, jit)]:>13.1f}"
        print(line)


def print_ratios(step_seconds, step_cpu, jit_options, model_names):
    print("\nratios (median of per-round ratios of step time, wall clock and process CPU time; "
          "> 1 means the first is slower):")

    def ratio(a, b):
        return (f"{paired_ratio(step_seconds[a], step_seconds[b]):.2f} wall, "
                f"{paired_ratio(step_cpu[a], step_cpu[b]):.2f} CPU")

    for jit in jit_options:
        for other in ("keras_hub", "ours_rbg_dropout"):
            if ("ours", jit) in step_seconds and (other, jit) in step_seconds:
                print(f"  ours / {other}, XLA {'on ' if jit else 'off'}: "
                      f"{ratio(('ours', jit), (other, jit))}")
    if len(jit_options) == 2:
        for name in model_names:
            print(f"  {name}: no-XLA / XLA: {ratio((name, False), (name, True))}")


if __name__ == "__main__":
    main()
