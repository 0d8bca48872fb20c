"""Our masked softmax vs a leaner candidate: same invariants, then time (attention core and whole model).

Candidates for `keras_transformer.layers.attention.masked_softmax(scores, mask)`:
  current        the library's function as imported: since 2026-11-25 where(mask, scores, -inf),
                 rows with no allowed key set to 0, the backend's fused softmax, then those rows
                 zeroed (it was: row max over allowed scores, `any` guard, exp, sum, guarded
                 divide, 8-9 ops on the (B, h, T, S) tensor; where_softmax below beat it by 1-4%)
  where_softmax  float32; where(mask, scores, -1e9) -> softmax -> where(mask, weights, 0):
                 the form keras.layers.Softmax uses; a fully masked row is softmax of equal
                 finite values (uniform, no NaN) then zeroed by the final where
Part 1 checks the invariants the library promises (masked weights exactly 0, rows sum to 1, a
fully masked row all 0 and NaN-free gradients, float32 and bfloat16 inputs, agreement with
current). Part 2 times softmax(QK^T/sqrt(d))V forward+backward on attention-shaped tensors.
Part 3 times whole training steps of our model with each candidate patched in (the module
global is swapped around every call, so each compiled step traced its own candidate) and the
keras-hub twin (common/models.py: build_hub) as a reference. Part 3 variants besides the softmax:
  fused_qkv       self-attention projects Q, K, V with one (d, 3d) matmul (kernels concatenated)
  no_ffn_dropout  no dropout on the d_ff-wide ReLU output of the feed-forward networks (our
                  FeedForward has it, as tensor2tensor's relu_dropout; the paper and keras-hub
                  do not): the cost of that dropout, not a drop-in change of semantics
All timings are interleaved (rotating order) after warm-up; ratios are medians of per-round
ratios.

    python benchmarks/regression/attention_variants.py            # ~2 min
    python benchmarks/regression/attention_variants.py --jit      # the same under XLA
    python benchmarks/regression/attention_variants.py --skip-core --preset base --layers 2 \
        --mixed-precision bfloat16 --jit --model-shapes 8x32   # bf16 at base width
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
from common.timing import interleaved, paired_ratio, spread  # noqa: E402
from keras_transformer.layers import attention as attention_module  # noqa: E402

CURRENT = attention_module.masked_softmax


def where_softmax(scores, mask=None):
    """Softmax over the last axis in float32; masked weights exactly 0, a fully masked row all 0."""
    scores = ops.cast(scores, "float32")
    if mask is None:
        return ops.softmax(scores, axis=-1)
    # a finite fill: a row with no allowed key is softmax of equal values, not NaN
    weights = ops.softmax(ops.where(mask, scores, -1e9), axis=-1)
    return ops.where(mask, weights, 0.0)


CANDIDATES = {"current": CURRENT, "where_softmax": where_softmax}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--core-shapes", default="64x4x32x32,16x4x256x256",
                        help="B x h x T x S attention shapes for part 2 (head dim 32)")
    parser.add_argument("--model-shapes", default="64x32",
                        help="batch x length training steps for part 3 (small preset)")
    parser.add_argument("--preset", default="small", help="part 3 model preset")
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    parser.add_argument("--layers", type=int, default=None, help="override the preset's num_layers")
    parser.add_argument("--mixed-precision", choices=["bfloat16", "float16"], default=None,
                        help="part 3 dtype policy")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model-rounds", type=int, default=4)
    parser.add_argument("--variants", default="current,where_softmax,fused_qkv,no_ffn_dropout",
                        help="part 3 variants: current, where_softmax, fused_qkv, no_ffn_dropout, "
                             "where+no_ffn_drop")
    parser.add_argument("--skip-core", action="store_true", help="skip part 2")
    parser.add_argument("--jit", action="store_true", help="XLA (jit_compile) in parts 2 and 3")
    parser.add_argument("--no-hub", action="store_true", help="leave keras-hub out of part 3")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.core_shapes, args.rounds, args.model_rounds = "16x4x256x256", 3, 3
    return args


# ----------------------------------------------------------------------------- part 1


def check_invariants():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 2, 5, 7)).astype("float32") * 4
    mask = rng.random((3, 1, 5, 7)) > 0.5
    mask[..., 0] = True
    mask[1, :, 2, :] = False  # a fully masked row (an all-padding source)
    mask[2] = False  # a fully masked batch row
    rows_with_keys = mask.any(-1)
    print("part 1: invariants (scores (3, 2, 5, 7) with fully masked rows)")
    print(f"{'candidate':<14} {'dtype':<9} {'masked==0':>9} {'rows sum 1':>10} {'empty rows 0':>12} "
          f"{'grad finite':>11} {'max |diff| vs current':>22}")
    reference = {}
    ok = True
    for dtype in ("float32", "bfloat16"):
        x = ops.cast(ops.convert_to_tensor(scores), dtype)
        for name, function in CANDIDATES.items():
            weights = np.asarray(function(x, mask), dtype=np.float32)
            full = np.broadcast_to(mask, weights.shape)
            masked_zero = bool(np.all(weights[~full] == 0.0))
            sums = weights.sum(-1)
            keys = np.broadcast_to(rows_with_keys, sums.shape)
            sums_one = bool(np.allclose(sums[keys], 1.0, atol=1e-5))
            empty_zero = bool(np.all(weights[np.broadcast_to(~rows_with_keys[..., None],
                                                             weights.shape)] == 0.0))
            grad = np.asarray(_gradient(function, x, mask), dtype=np.float32)
            finite = bool(np.all(np.isfinite(grad)))
            if name == "current":
                reference[dtype] = weights
            diff = float(np.abs(weights - reference[dtype]).max())
            ok &= masked_zero and sums_one and empty_zero and finite and diff < 1e-6
            print(f"{name:<14} {dtype:<9} {_yes(masked_zero):>9} {_yes(sums_one):>10} "
                  f"{_yes(empty_zero):>12} {_yes(finite):>11} {diff:>22.2e}")
    print(f"all invariants hold and candidates agree: {_yes(ok)}\n")
    return ok


def _gradient(function, x, mask):
    if device.backend() == "tensorflow":
        import tensorflow as tf
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(function(x, mask) * tf.cast(tf.range(7), "float32"))
        return tape.gradient(loss, x)
    import jax
    weights = ops.cast(ops.arange(7), "float32")
    return jax.grad(lambda s: ops.sum(function(s, mask) * weights))(x)


def _yes(flag):
    return "yes" if flag else "NO"


# ----------------------------------------------------------------------------- part 2


def attention_core(function, query, key, value, mask):
    """softmax(Q K^T / sqrt(d)) V with `function` as the masked softmax."""
    query = query * (1.0 / np.sqrt(query.shape[-1]))
    scores = ops.einsum("bhtd,bhsd->bhts", query, key)
    return ops.einsum("bhts,bhsd->bhtd", function(scores, mask), value)


def core_step(function, jit):
    """A compiled forward+backward of the attention core -> callable(q, k, v, mask)."""
    if device.backend() == "tensorflow":
        import tensorflow as tf

        def step(q, k, v, mask):
            with tf.GradientTape() as tape:
                tape.watch([q, k, v])
                loss = tf.reduce_sum(attention_core(function, q, k, v, mask))
            return tape.gradient(loss, [q, k, v])
        return tf.function(step, jit_compile=jit)
    import jax
    return jax.jit(jax.grad(lambda q, k, v, mask: ops.sum(attention_core(function, q, k, v, mask)),
                            argnums=(0, 1, 2)))


def time_core(args):
    print(f"part 2: attention core forward+backward, causal + key padding mask, "
          f"XLA {'on' if args.jit or device.backend() == 'jax' else 'off'}")
    print(f"{'B x h x T x S':<16} {'candidate':<14} {'ms':>8} {'spread':>7} {'vs current':>10} "
          f"{'CPU ms':>8} {'spread':>7} {'CPU vs current':>14}")
    rng = np.random.default_rng(1)
    for shape in args.core_shapes.split(","):
        b, h, t, s = (int(v) for v in shape.split("x"))
        q, k, v = (ops.convert_to_tensor(rng.normal(size=(b, h, n, 32)).astype("float32"))
                   for n in (t, s, s))
        lengths = rng.integers(s // 2, s + 1, size=b)
        padding = np.arange(s)[None, :] < lengths[:, None]  # (B, S)
        causal = np.tril(np.ones((t, s), bool))
        mask = ops.convert_to_tensor(padding[:, None, None, :] & causal[None, None])
        steps = {name: core_step(function, args.jit) for name, function in CANDIDATES.items()}
        for step in steps.values():
            device.sync(step(q, k, v, mask))
        single = time.perf_counter()
        device.sync(steps["current"](q, k, v, mask))
        reps = max(1, int(0.1 / max(time.perf_counter() - single, 1e-6)))
        cpu = {}
        samples = interleaved(
            {name: (lambda f: lambda: [device.sync(f(q, k, v, mask)) for _ in range(reps)])(step)
             for name, step in steps.items()}, args.rounds, cpu=cpu)
        for name in steps:
            values = [x / reps for x in samples[name]]
            cpu_values = [x / reps for x in cpu[name]]
            print(f"{shape:<16} {name:<14} {statistics.median(values) * 1e3:>8.2f} {spread(values):>7.0%} "
                  f"{paired_ratio(samples[name], samples['current']):>10.2f} "
                  f"{statistics.median(cpu_values) * 1e3:>8.2f} {spread(cpu_values):>7.0%} "
                  f"{paired_ratio(cpu[name], cpu['current']):>14.2f}")
    print()


# ----------------------------------------------------------------------------- part 3


def _ffn_without_hidden_dropout(self, inputs, training=None):
    """FeedForward.call without the dropout on the d_ff-wide ReLU output (keras-hub has none)."""
    return self.outer_dense(self.inner_dense(inputs))


def _attend_fused_qkv(self, query, value, key=None, attention_mask=None, training=None):
    """MultiHeadAttention.attend with one (d, 3 h d_k) matmul for self-attention, built from the
    same three kernels (concatenated per call, so checkpoints are unchanged)."""
    if key is not None or value is not query:
        return ORIGINAL_ATTEND(self, query, value, key, attention_mask, training)
    width = self.num_heads * self.head_dim
    kernel = ops.concatenate([self.query_dense.kernel, self.key_dense.kernel,
                              self.value_dense.kernel], axis=1)
    projected = ops.matmul(query, ops.cast(kernel, query.dtype))  # (B, T, 3 h d_k)
    if self.use_bias:
        bias = ops.concatenate([self.query_dense.bias, self.key_dense.bias,
                                self.value_dense.bias], axis=0)
        projected = projected + ops.cast(bias, projected.dtype)
    query_heads, key_heads, value_heads = (
        self.split_heads(projected[..., i * width:(i + 1) * width]) for i in range(3))
    mask = None if attention_mask is None else ops.expand_dims(attention_mask, 1)
    attended, weights = attention_module.scaled_dot_product_attention(
        query_heads, key_heads, value_heads, mask, self.weights_dropout, training)
    return self.output_dense(self.merge_heads(attended)), weights


ORIGINAL_ATTEND = attention_module.MultiHeadAttention.attend


def model_variants():
    """name -> [(owner, attribute, replacement)] patched in while that model runs."""
    from keras_transformer.layers.feed_forward import FeedForward
    mha = attention_module.MultiHeadAttention
    return {
        "current": [],
        "where_softmax": [(attention_module, "masked_softmax", where_softmax)],
        "fused_qkv": [(mha, "attend", _attend_fused_qkv)],
        "no_ffn_dropout": [(FeedForward, "call", _ffn_without_hidden_dropout)],
        "where+no_ffn_drop": [(attention_module, "masked_softmax", where_softmax),
                              (FeedForward, "call", _ffn_without_hidden_dropout)],
    }


def time_model(args):
    policy = device.set_precision(args.mixed_precision)
    print(f"part 3: training steps of our model ({args.preset} preset, {policy}, "
          f"layers {args.layers or 'preset'}, dropout "
          f"{'preset' if args.dropout is None else args.dropout}, vocab {args.vocab_size}), "
          f"XLA {'on' if args.jit or device.backend() == 'jax' else 'off'}")
    print(f"{'batch x len':<12} {'variant':<18} {'ms/step':>9} {'spread':>7} {'vs current':>10} "
          f"{'CPU ms':>8} {'spread':>7} {'CPU vs current':>14}")
    variants = {name: patches for name, patches in model_variants().items()
                if name in args.variants.split(",")}
    results = []
    for shape in args.model_shapes.split(","):
        batch, length = (int(v) for v in shape.split("x"))
        config = models.our_config(args.preset, args.vocab_size, length, args.dropout)
        if args.layers:
            config = config.replace(num_layers=args.layers)
        batches = data.to_backend(data.synthetic_batches(2, batch, length, args.vocab_size))
        compiled = {name: models.compile_for_benchmark(models.build_ours(config), args.jit)
                    for name in variants}
        if not args.no_hub:
            compiled["keras_hub"] = models.compile_for_benchmark(models.build_hub(config),
                                                                 args.jit)
        counter = {"i": 0}

        def runner(name):
            patches = variants.get(name, [])

            def run():
                saved = [(owner, attribute, getattr(owner, attribute))
                         for owner, attribute, _ in patches]
                for owner, attribute, replacement in patches:
                    setattr(owner, attribute, replacement)
                try:
                    x, y = batches[counter["i"] % 2]
                    counter["i"] += 1
                    compiled[name].train_on_batch(x, y)
                finally:
                    for owner, attribute, original in saved:
                        setattr(owner, attribute, original)
            return run

        runners = {name: runner(name) for name in compiled}
        for run in runners.values():  # trace/compile, then one steady step
            run()
            run()
        cpu = {}
        samples = interleaved(runners, args.model_rounds, cpu=cpu)
        for name in compiled:
            ratio = paired_ratio(samples[name], samples["current"])
            cpu_ratio = paired_ratio(cpu[name], cpu["current"])
            print(f"{shape:<12} {name:<18} {statistics.median(samples[name]) * 1e3:>9.1f} "
                  f"{spread(samples[name]):>7.0%} {ratio:>10.2f} {statistics.median(cpu[name]) * 1e3:>8.1f} "
                  f"{spread(cpu[name]):>7.0%} {cpu_ratio:>14.2f}")
            results.append((shape, name, ratio, cpu_ratio))
    print()
    return results


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    print(device.machine_line() + "\n")
    check_invariants()
    if not args.skip_core:
        time_core(args)
    time_model(args)
    print(f"total {time.perf_counter() - started:.0f} s")
    print("\nreproduce: " + process.reproduce_line(__file__, args))


if __name__ == "__main__":
    main()
