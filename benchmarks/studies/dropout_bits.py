"""What a dropout mask's random bits cost on JAX: Keras's Threefry draw against cheaper ones.

Variants, all at rate --rate and scaled by 1 / (1 - rate):
  keras         keras.random.dropout: jax.random.bernoulli on the layer's Threefry key (a float per
                element from 32 bits)
  threefry32/16/8  Threefry bits of that width compared with an integer threshold (16 and 8 bits:
                half and a quarter of the hashes; the rate then exact to 2^-16 / 2^-8)
  rbg           common/models.py's rbg_dropout: one Threefry hash of the seed makes an `rbg` key; XLA's
                RngBitGenerator draws the 32-bit mask
Each is timed alone (the mask applied to a (batch, length, width) float32 array) and inside the
jitted gradient of six elementwise layers with a dropout in each, in rounds with the variants in
rotating order; ratios are medians of per-round ratios against `keras`. The whole-step figure
is `regression/train_throughput.py --models ours,ours_rbg_dropout`.

    KERAS_BACKEND=jax python benchmarks/studies/dropout_bits.py     # (32, 32, 128) and (64, 32, 2048)
    KERAS_BACKEND=jax python benchmarks/studies/dropout_bits.py --shapes 512x64x2048 --rounds 10  # a GPU
"""

import argparse
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import device, models, process  # noqa: E402
from common.timing import interleaved, paired_ratio  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="32x32x128,64x32x2048",
                        help="comma-separated batch x length x width shapes")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--calls", type=int, default=20, help="calls per timed sample")
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args(argv)


def variants(rate):
    keep = 1.0 - rate

    def keras_dropout(x, seed):
        mask = jax.random.bernoulli(seed, keep, x.shape)
        return jax.lax.select(mask, x / keep, jnp.zeros_like(x))

    def threefry(dtype):
        width = jnp.iinfo(dtype).bits
        threshold = np.array(min(round(rate * 2 ** width), 2 ** width - 1), dtype)

        def dropout(x, seed):
            return jnp.where(jax.random.bits(seed, x.shape, dtype) >= threshold, x / keep, 0.0)
        return dropout

    def rbg(x, seed):
        return models.rbg_dropout(x, rate, seed)

    return {"keras": keras_dropout, "threefry32": threefry(jnp.uint32),
            "threefry16": threefry(jnp.uint16), "threefry8": threefry(jnp.uint8), "rbg": rbg}


def in_gradient(dropout):
    """The jitted gradient of six elementwise layers, tanh(dropout(1.01 x + 0.1)): the masks and
    what autodiff keeps of them for the backward pass, without matmuls to hide them."""
    def loss(x, seed):
        for layer in range(6):
            x = jnp.tanh(dropout(1.01 * x + 0.1, seed + layer))
        return (x ** 2).sum()
    return jax.jit(jax.grad(loss))


def timed(function, x, calls):
    def run():
        out = None
        for i in range(calls):
            out = function(x, jnp.asarray([0, i], jnp.uint32))
        jax.block_until_ready(out)
    return run


def main(argv=None):
    args = parse_args(argv)
    print(device.machine_line())
    for text in args.shapes.split(","):
        shape = tuple(int(v) for v in text.split("x"))
        x = jnp.ones(shape, jnp.float32)
        runners, kept = {}, {}
        for name, dropout in variants(args.rate).items():
            alone = jax.jit(dropout)
            kept[name] = float((alone(x, jnp.asarray([0, 7], jnp.uint32)) != 0).mean())
            runners[f"{name} alone"] = timed(alone, x, args.calls)
            runners[f"{name} in gradient"] = timed(in_gradient(dropout), x, args.calls)
        for run in runners.values():
            run()  # compile
        samples = interleaved(runners, args.rounds)
        print(f"\nshape {shape}, rate {args.rate}, {args.rounds} rounds x {args.calls} calls")
        print(f"{'variant':<12} {'kept':>7} {'alone ms':>9} {'vs keras':>9} {'in grad ms':>11} "
              f"{'vs keras':>9}")
        for name in variants(args.rate):
            alone, grad = samples[f"{name} alone"], samples[f"{name} in gradient"]
            print(f"{name:<12} {kept[name]:>7.4f} {statistics.median(alone) / args.calls * 1e3:>9.3f} "
                  f"{paired_ratio(alone, samples['keras alone']):>9.2f} "
                  f"{statistics.median(grad) / args.calls * 1e3:>11.2f} "
                  f"{paired_ratio(grad, samples['keras in gradient']):>9.2f}")
    print("\nreproduce: " + process.reproduce_line(__file__, args))


if __name__ == "__main__":
    main()
