"""The GPU figures in one prepared run (JAX backend): matmul peak, base and big training
throughput and MFU, ours vs keras-hub, a profile of one step, cached greedy decode.

Made for one call on a lent GPU machine that has JAX but neither TensorFlow nor Keras
(`benchmarks/gpu_suite.sh` installs the carried Keras / keras-hub wheels and runs this with
KERAS_BACKEND=jax). Every section is in its own try/except and the whole run keeps to a time
budget (--budget seconds): a section that no longer fits is skipped and says so.

Sections, in order:
  matmul   an n^3 bf16 matmul (n = --matmul-size, 8192): the practical peak of this device
  base     `base` preset, mixed_bfloat16, shared vocabulary (--vocab-size 37000), batch x length
           synthetic tokens (default 512 x 64: ~24.6k non-padding target tokens per batch, the
           paper's ~25k), ours vs keras-hub's layers of identical shape on the same batches,
           plus candidates for ours (--candidates), each timed as a whole step: the former
           float32 output projection and log-softmax loss (what the fused loss replaced), no
           dropout on the attention weights (training then attends by the fused kernel,
           cuDNN flash attention), dropout 0, dropout bits from XLA's rbg generator instead of
           Threefry (see CANDIDATES)
  profile  ours, base: forward+loss, forward+backward, the whole step, the optimizer alone,
           the output projection + loss alone (the former f32 form; ours: bf16 logits and
           the fused chunked loss; bf16 logits cast to f32 + logsumexp loss), the
           host gap (a step that waits for its loss before the next is dispatched); analytic
           FLOP shares
  decode   cached greedy decode, base preset, batch 1 and 64, 128 tokens, source length 32:
           ours (greedy_decode) vs keras-hub's GreedySampler over its cached decoder
  big      `big` preset, as `base` (ours vs keras-hub), if it fits
  trace    a jax.profiler trace of 3 steps of ours, base: device time by part of the model
           (attention, feed-forward, norms, output projection, loss, dropout, optimizer) and
           kernel kind, mapped through the compiled HLO (saved as ours_step.hlo.txt.gz)

Timing: every jitted function is lowered first (Python tracing), then the XLA compiles of a
section run concurrently in threads (compile time is reported per function, overlapping);
steady state is measured after warm-up in rounds with the variants in rotating order, each
sample `--steps` steps dispatched back to back (the state of one step feeds the next, as in
training) and waited for at the end. Ratios are medians of per-round ratios.

MFU = model FLOPs per step (common.transformer_train_flops: matmuls on padded shapes, forward
x 3) / step time / datasheet dense bf16 peak (989 TFLOP/s for H100 SXM and H200; --peak-tflops
overrides), and the same against the matmul of the first section.

    bash benchmarks/gpu_suite.sh                                # on the GPU machine (writes $OUT)
    KERAS_BACKEND=jax python benchmarks/gpu_suite.py --smoke    # a tiny CPU rehearsal (~2-4 min)
"""

import argparse
import concurrent.futures
import datetime
import gc
import glob
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import traceback

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import common  # noqa: E402
from common import paired_ratio, spread  # noqa: E402

GIB = 1024 ** 3
DATASHEET_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0),
                         ("A100", 312.0))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--big-preset", default="big", help="'' skips the big section")
    parser.add_argument("--vocab-size", type=int, default=37000, help="shared vocabulary")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--length", type=int, default=64, help="padded source = target length")
    parser.add_argument("--big-batch", type=int, default=None, help="default: --batch")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed sample")
    parser.add_argument("--rounds", type=int, default=5, help="timed samples per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="datasheet dense bf16 peak; default from the device name")
    parser.add_argument("--decode-batches", default="1,64")
    parser.add_argument("--decode-length", type=int, default=128)
    parser.add_argument("--source-length", type=int, default=32, help="decode source length")
    parser.add_argument("--sections", default="matmul,base,profile,decode,big,trace")
    parser.add_argument("--candidates",
                        default="f32_logits,attention_dropout0,no_dropout,rbg_dropout",
                        help="changes to ours timed as whole base steps; parts joined with +: "
                             + ", ".join(CANDIDATES))
    parser.add_argument("--decode-rounds", type=int, default=5)
    parser.add_argument("--skip-decode-checks", action="store_true",
                        help="skip comparing decoded tokens with a full forward pass")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds for the whole run; sections that no longer fit are skipped")
    parser.add_argument("--hard-limit", type=float, default=None,
                        help="seconds after which a watchdog writes what was measured and exits "
                             "(default: budget + 60)")
    parser.add_argument("--compile-threads", type=int, default=6)
    parser.add_argument("--out", default=os.environ.get("OUT") or None,
                        help="folder for gpu_suite.md / .json / the trace (default $OUT)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes for a CPU rehearsal (tiny/small presets, vocab 1000, ...)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.big_preset = "tiny", "small"
        args.vocab_size, args.batch, args.length = 1000, 8, 16
        args.steps, args.rounds, args.warmup = 2, 2, 1
        args.matmul_size, args.decode_length, args.source_length = 256, 8, 8
        args.decode_batches = "1,4"
    return args


class Budget:
    def __init__(self, seconds):
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self):
        return time.perf_counter() - self.start

    def left(self):
        return self.seconds - self.elapsed()


def log(message):
    print(message, flush=True)


def gib(value):
    return None if value is None else value / GIB


def fmt(value, pattern="{:.1f}", missing="-"):
    return missing if value is None else pattern.format(value)


# ---------------------------------------------------------------------------------------------
# Device facts


def device_facts(args):
    import jax
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", str(device))
    peak = args.peak_tflops
    if peak is None and device.platform == "gpu":
        for name, tflops in DATASHEET_BF16_TFLOPS:
            if name.lower() in kind.lower():
                peak = tflops
                break
    stats = {}
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001  (CPU devices may have none)
        pass
    return dict(platform=device.platform, kind=kind, peak_tflops=peak,
                memory_limit_gib=gib(stats.get("bytes_limit")), jax=jax.__version__,
                keras=keras.__version__)


def peak_memory_gib():
    import jax
    try:
        return gib(jax.devices()[0].memory_stats().get("peak_bytes_in_use"))
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------------------------------------
# Lowering and concurrent compiles


def compile_all(lowered, threads):
    """{name: (jax Lowered, lower seconds)} -> {name: (Compiled or None, seconds, error)}."""
    def one(item):
        name, (low, lower_seconds) = item
        start = time.perf_counter()
        try:
            return name, (low.compile(), lower_seconds + time.perf_counter() - start, None)
        except Exception as error:  # noqa: BLE001
            return name, (None, lower_seconds + time.perf_counter() - start, repr(error)[:300])
    if not lowered:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max(1, min(threads, len(lowered)))) as pool:
        return dict(pool.map(one, lowered.items()))


def lower(lowered, errors, name, function, *example):
    """Trace `function` (a jax.jit object) on example arguments; failures go to `errors`."""
    start = time.perf_counter()
    try:
        lowered[name] = (function.lower(*example), time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001
        errors[name] = f"lowering failed: {error!r}"[:300]
        traceback.print_exc()


def executable_memory(compiled):
    """Per-executable bytes from XLA: arguments, outputs, temporaries (GiB)."""
    try:
        analysis = compiled.memory_analysis()
        return dict(temp_gib=gib(analysis.temp_size_in_bytes),
                    argument_gib=gib(analysis.argument_size_in_bytes),
                    output_gib=gib(analysis.output_size_in_bytes))
    except Exception:  # noqa: BLE001
        return {}


def xla_flops(compiled):
    try:
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return float(cost.get("flops")) if cost and cost.get("flops") else None
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------------------------------------
# Training models


def train_config(preset_name, args):
    return common.our_config(preset_name, args.vocab_size, args.length).replace(
        share_embeddings=True)


def model_state(model):
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables])


def copy_tree(tree):
    import jax
    import jax.numpy as jnp
    return jax.tree_util.tree_map(jnp.copy, tree)


def prepare_training(model, data):
    """Build the optimizer / loss state as train_on_batch would; the Keras train step, jitted
    with the state donated exactly as Keras's make_train_function does."""
    import jax
    model._symbolic_build(data_batch=(data[0], data[1], None))
    return jax.jit(model.train_step, donate_argnums=0)


class Trainer:
    """One compiled train step and its own copy of the model state."""

    def __init__(self, compiled, state, batches):
        self.compiled, self.state, self.batches, self.i = compiled, state, batches, 0

    def steps(self, count, wait_each=False):
        import jax
        logs = None
        for _ in range(count):
            logs, self.state = self.compiled(self.state, self.batches[self.i % len(self.batches)])
            self.i += 1
            if wait_each:
                jax.block_until_ready(logs)
        jax.block_until_ready((logs, self.state))
        return logs


def f32_logits(self, hidden):
    """PositionalEmbedding.logits as it was before the fused loss: both operands cast to f32,
    so the three output-projection matmuls run in f32 (TF32 on the GPU) and the loss reads f32
    logits. Swapped in while tracing a candidate only."""
    matrix = ops.cast(self.token_embedding.embeddings, "float32")
    return ops.matmul(ops.cast(hidden, "float32"), ops.transpose(matrix))


class PlainCrossEntropy(keras.losses.Loss):
    """training.MaskedSparseCrossEntropy as it was before the fused loss: f32 log-softmax over
    the whole (B, T, V) logits, autodiff keeps it for the backward pass."""

    def __init__(self, label_smoothing=0.1, pad_id=common.PAD_ID, name="plain_cross_entropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.pad_id = label_smoothing, pad_id

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        picked = ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        eps = self.label_smoothing
        per_token = -(1.0 - eps) * picked - eps * ops.mean(log_probs, axis=-1)
        real = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        slots = ops.cast(ops.size(real), "float32")
        return per_token * real * (slots / ops.maximum(ops.sum(real), 1.0))


class LogSumExpCrossEntropy(PlainCrossEntropy):
    """The same value as logsumexp(z) - (1-eps) z_y - eps mean(z) on f32 logits, unfused (the
    profile's middle form)."""

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        picked = ops.take_along_axis(logits, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        eps = self.label_smoothing
        per_token = (ops.logsumexp(logits, axis=-1) - (1.0 - eps) * picked
                     - eps * ops.mean(logits, axis=-1))
        real = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        slots = ops.cast(ops.size(real), "float32")
        return per_token * real * (slots / ops.maximum(ops.sum(real), 1.0))


CANDIDATES = {
    "f32_logits": "the former f32 output projection and f32 log-softmax loss (before the fused loss)",
    "attention_dropout0": "no dropout on the attention weights: training attends by the fused kernel",
    "no_dropout": "dropout 0 (what dropout and its random bits cost; fused attention too)",
    "rbg_dropout": "dropout bits from XLA's RngBitGenerator (jax's rbg key) instead of Keras's "
                   "Threefry (common.rbg_dropout_call)",
}


def build_candidate(config, candidate):
    """Ours with the changes named in `candidate` ('f32_logits+attention_dropout0'), compiled
    like the others; returns (model, the jitted train step lowered with those changes, parts)."""
    parts = set(candidate.split("+"))
    unknown = parts - set(CANDIDATES)
    if unknown:
        raise ValueError(f"unknown candidate parts {sorted(unknown)}; known {sorted(CANDIDATES)}")
    if "no_dropout" in parts:
        config = config.replace(dropout=0.0)
    if "attention_dropout0" in parts:
        config = config.replace(attention_dropout=0.0)
    model = common.compile_for_benchmark(common.build_ours(config), True)
    if "f32_logits" in parts:
        model.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
                      loss=PlainCrossEntropy(0.1), jit_compile=True)
    return model, parts


class patched_candidate:
    """While tracing a candidate: PositionalEmbedding.logits swapped for f32_logits
    ('f32_logits' in `parts`), Keras's Dropout.call for common.rbg_dropout_call ('rbg_dropout')."""

    def __init__(self, parts):
        self.parts = parts

    def __enter__(self):
        from keras_transformer.layers import positional
        self.swaps = []
        if "f32_logits" in self.parts:
            self.swaps.append((positional.PositionalEmbedding, "logits", f32_logits))
        if "rbg_dropout" in self.parts:
            self.swaps.append((keras.layers.Dropout, "call", common.rbg_dropout_call))
        self.originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in self.swaps]
        for cls, name, replacement in self.swaps:
            setattr(cls, name, replacement)

    def __exit__(self, *exc):
        for cls, name, original in self.originals:
            setattr(cls, name, original)


def train_section(name, preset_name, batch, args, budget, results, candidates=(),
                  extra_lowerings=None):
    """Ours vs keras-hub (and `candidates`: changes to ours, each measured as a whole step)
    on one preset: lower, compile (with `extra_lowerings(models, states, batches)`'s
    functions, concurrently), warm up, time.

    Returns (section, context): context holds the models, trainers, batches, config and the
    compiled extras for the sections that follow."""
    config = train_config(preset_name, args)
    log(f"\n== {name}: preset {preset_name} (layers {config.num_layers}, d_model {config.d_model},"
        f" heads {config.num_heads}, d_ff {config.d_ff}, dropout {config.dropout}), vocab "
        f"{args.vocab_size} shared, learned positions, batch {batch} x {args.length}, "
        f"{keras.mixed_precision.global_policy().name}  [{budget.elapsed():.0f} s]")
    numpy_batches = common.synthetic_batches(4, batch, args.length, args.vocab_size, args.seed)
    target_tokens = float(np.mean([(y != common.PAD_ID).sum() for _, y in numpy_batches]))
    batches = common.to_backend(numpy_batches)
    flops = common.transformer_train_flops(config, batch, args.length, args.length)
    section = dict(preset=preset_name, batch=batch, length=args.length, vocab=args.vocab_size,
                   target_tokens_per_step=target_tokens, padded_tokens_per_step=batch * args.length,
                   model_flops_per_step=flops, config=config.to_dict(), variants={}, errors={},
                   candidates={c: " + ".join(CANDIDATES.get(p, p) for p in c.split("+"))
                               for c in candidates})
    results[name] = section

    models, lowered, states = {}, {}, {}
    builds = [("ours", None), ("keras_hub", None)] + [(f"ours+{c}", c) for c in candidates]
    for key, candidate in builds:
        try:
            start = time.perf_counter()
            parts = set()
            if key == "ours":
                model = common.compile_for_benchmark(common.build_ours(config), True)
            elif key == "keras_hub":
                model = common.compile_for_benchmark(common.build_hub(config), True)
            else:
                model, parts = build_candidate(config, candidate)
            step = prepare_training(model, batches[0])
            models[key] = model
            section["variants"][key] = dict(
                parameters=int(model.count_params()),
                matmul_parameters=int(common.matmul_parameter_count(model, config)),
                build_s=time.perf_counter() - start)
            states[key] = model_state(model)
            with patched_candidate(parts):
                lower(lowered, section["errors"], key, step, states[key], batches[0])
        except Exception as error:  # noqa: BLE001
            section["errors"][key] = repr(error)[:300]
            traceback.print_exc()
    extra = {}
    if extra_lowerings is not None:
        start = time.perf_counter()
        try:
            extra = extra_lowerings(models, states, batches)
        except Exception as error:  # noqa: BLE001
            section["errors"]["extra lowerings"] = repr(error)[:300]
            traceback.print_exc()
        log(f"  lowered the other sections' functions ({time.perf_counter() - start:.0f} s)")
    log(f"  lowered {sorted(lowered)} ({sum(t for _, t in lowered.values()):.0f} s); compiling "
        f"{len(lowered) + len(extra)} functions concurrently  [{budget.elapsed():.0f} s]")
    compiled = compile_all({**lowered, **extra}, args.compile_threads)
    log("  compiled (s, concurrent): " + ", ".join(
        f"{k} {t:.0f}" + (" FAILED" if c is None else "") for k, (c, t, _) in compiled.items())
        + f"  [{budget.elapsed():.0f} s]")

    trainers = {}
    for key in lowered:
        executable, seconds, error = compiled[key]
        variant = section["variants"][key]
        variant["compile_s"] = seconds
        if executable is None:
            section["errors"][key] = f"compile failed: {error}"
            continue
        variant.update(executable_memory(executable))
        variant["xla_flops_per_step"] = xla_flops(executable)
        trainer = Trainer(executable, states.pop(key), batches)
        try:
            start = time.perf_counter()
            logs = trainer.steps(args.warmup)
            variant["warmup_s"] = time.perf_counter() - start
            variant["first_loss"] = float(np.asarray(logs["loss"]))
            trainers[key] = trainer
        except Exception as error:  # noqa: BLE001
            section["errors"][key] = f"first steps failed: {error!r}"[:300]
            traceback.print_exc()
    section["peak_memory_gib_after_warmup"] = peak_memory_gib()

    if trainers:
        runners = {key: (lambda t: (lambda: t.steps(args.steps)))(t) for key, t in trainers.items()}
        start = time.perf_counter()
        samples = common.interleaved(runners, 1)
        per_round = time.perf_counter() - start
        rounds = max(2, min(args.rounds, int((budget.left() - 90) / max(per_round, 1e-3)) + 1))
        if rounds > 1:
            more = common.interleaved(runners, rounds - 1)
            for key in samples:  # the rotation restarts: fine, the order still varies
                samples[key] += more[key]
        step_seconds = {key: [s / args.steps for s in values] for key, values in samples.items()}
        section["rounds"], section["steps_per_sample"] = rounds, args.steps
        for key, values in step_seconds.items():
            seconds = statistics.median(values)
            section["variants"][key].update(
                step_ms=seconds * 1e3, step_ms_samples=[v * 1e3 for v in values],
                spread=spread(values), target_tokens_per_s=target_tokens / seconds,
                padded_tokens_per_s=batch * args.length / seconds, tflops=flops / seconds / 1e12,
                last_loss=float(np.asarray(trainers[key].steps(1)["loss"])))
        pairs = [("ours", "keras_hub")] + [(k, "ours") for k in step_seconds
                                            if k.startswith("ours+")]
        for a, b in pairs:
            if a in step_seconds and b in step_seconds:
                section[f"{a}/{b}"] = paired_ratio(step_seconds[a], step_seconds[b])
    section["peak_memory_gib"] = peak_memory_gib()
    compiled_extra = {k: v for k, v in compiled.items() if k in extra}
    return section, dict(models=models, trainers=trainers, batches=batches, config=config,
                         compiled=compiled_extra)


def report_section_line(section):
    parts = [f"{key} {v['step_ms']:.1f} ms/step {v['tflops']:.1f} TFLOP/s"
             for key, v in section.get("variants", {}).items() if "step_ms" in v]
    ratio = section.get("ours/keras_hub")
    return ("  " + "; ".join(parts) + (f"; ours/keras_hub {ratio:.3f}" if ratio else "")
            + (f"; errors {section['errors']}" if section.get("errors") else ""))


# ---------------------------------------------------------------------------------------------
# Profile of ours (base): the parts of one step


def profile_lowerings(model, state, data, errors):
    """Lower, on ours' state: forward+loss, forward+backward, the optimizer alone, and the
    output projection + loss alone (f32 as ours, and the bf16 candidate)."""
    import jax
    import jax.numpy as jnp

    from keras_transformer.training.loss import MaskedSparseCrossEntropy
    tv, ntv, ov, mv = state
    lowered = {}

    def loss_and_aux(tv, ntv, mv, ov, data):
        x, y = data
        return model.compute_loss_and_updates(tv, ntv, mv, x, y, None, training=True,
                                              optimizer_variables=ov)

    def forward(tv, ntv, mv, ov, data):
        return loss_and_aux(tv, ntv, mv, ov, data)[0]

    def forward_backward(tv, ntv, mv, ov, data):
        (loss, _), grads = jax.value_and_grad(loss_and_aux, has_aux=True)(tv, ntv, mv, ov, data)
        return loss, grads

    optimizer = model.optimizer
    lower(lowered, errors, "forward_loss", jax.jit(forward), tv, ntv, mv, ov, data)
    lower(lowered, errors, "forward_backward", jax.jit(forward_backward), tv, ntv, mv, ov, data)
    lower(lowered, errors, "optimizer",
          jax.jit(lambda ov, grads, tv: optimizer.stateless_apply(ov, grads, tv)), ov, tv, tv)

    embedding = model.get_layer("shared_embedding")
    trainable_index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    other_index = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    e_tv_index = [trainable_index[id(v)] for v in embedding.trainable_variables]
    e_ntv_index = [other_index[id(v)] for v in embedding.non_trainable_variables]
    token_position = [id(v) for v in embedding.trainable_variables].index(
        id(embedding.token_embedding.embeddings))
    loss_object = MaskedSparseCrossEntropy(0.1)
    y = data[1]
    batch, length = y.shape
    hidden = jnp.asarray(np.random.default_rng(1).standard_normal(
        (batch, length, embedding.d_model)), jnp.bfloat16)

    plain_object, lse_object = PlainCrossEntropy(0.1), LogSumExpCrossEntropy(0.1)

    def head_f32(e_tv, e_ntv, hidden, y):  # the former form
        matrix = e_tv[token_position].astype(jnp.float32)
        return plain_object(y, jnp.matmul(hidden.astype(jnp.float32), matrix.T))

    def head_bf16(e_tv, e_ntv, hidden, y):  # ours: bf16 logits, the fused chunked loss
        logits, _ = embedding.stateless_call(e_tv, e_ntv, hidden, reverse=True)
        return loss_object(y, logits)

    def head_bf16_lse(e_tv, e_ntv, hidden, y):
        matrix = e_tv[token_position].astype(jnp.bfloat16)
        scores = jnp.matmul(hidden.astype(jnp.bfloat16), matrix.T).astype(jnp.float32)
        return lse_object(y, scores)

    e_tv = [tv[i] for i in e_tv_index]
    e_ntv = [ntv[i] for i in e_ntv_index]
    for key, function in (("logits_loss_f32", head_f32), ("logits_loss_bf16", head_bf16),
                          ("logits_loss_bf16_lse", head_bf16_lse)):
        lower(lowered, errors, key, jax.jit(jax.value_and_grad(function, argnums=(0, 2))),
              e_tv, e_ntv, hidden, y)
    inputs = dict(e_tv_index=e_tv_index, e_ntv_index=e_ntv_index, hidden=hidden, y=y)
    return lowered, inputs


def profile_section(context, inputs, errors, args, budget, results, base):
    import jax
    section = dict(parts={}, errors=dict(errors))
    results["profile"] = section
    compiled = context["compiled"]
    trainer = context["trainers"]["ours"]
    # the profiled functions read a copy: the timed train steps donate (free) their state
    tv, ntv, ov, mv = copy_tree(trainer.state)
    data = context["batches"][0]
    e_tv = [tv[i] for i in inputs["e_tv_index"]]
    e_ntv = [ntv[i] for i in inputs["e_ntv_index"]]
    grads = {"value": tv}
    calls = {
        "forward_loss": lambda c: c(tv, ntv, mv, ov, data),
        "forward_backward": lambda c: c(tv, ntv, mv, ov, data),
        "optimizer": lambda c: c(ov, grads["value"], tv),
        "logits_loss_f32": lambda c: c(e_tv, e_ntv, inputs["hidden"], inputs["y"]),
        "logits_loss_bf16": lambda c: c(e_tv, e_ntv, inputs["hidden"], inputs["y"]),
        "logits_loss_bf16_lse": lambda c: c(e_tv, e_ntv, inputs["hidden"], inputs["y"]),
    }
    runners = {}
    for key, call in calls.items():
        executable, seconds, error = compiled.get(key, (None, 0.0, "not lowered"))
        if executable is None:
            section["errors"][key] = error
            continue
        section["parts"][key] = dict(compile_s=seconds, xla_flops=xla_flops(executable),
                                     **executable_memory(executable))
        try:
            out = jax.block_until_ready(call(executable))
            if key == "forward_backward":
                grads["value"] = out[1]
            del out
            # dispatched back to back like the train steps, waited for at the end
            runners[key] = (lambda c, e: (lambda: jax.block_until_ready(
                [c(e) for _ in range(args.steps)])))(call, executable)
        except Exception as error:  # noqa: BLE001
            section["errors"][key] = repr(error)[:300]
            traceback.print_exc()
    runners["step"] = lambda: trainer.steps(args.steps)
    runners["step_sync_each"] = lambda: trainer.steps(args.steps, True)
    start = time.perf_counter()
    samples = common.interleaved(runners, 1)
    per_round = time.perf_counter() - start
    rounds = max(2, min(args.rounds, int((budget.left() - 120) / max(per_round, 1e-3)) + 1))
    more = common.interleaved(runners, rounds - 1)
    for key in samples:
        samples[key] += more[key]
    section["rounds"] = rounds
    for key, values in samples.items():
        values = [v / args.steps for v in values]
        section["parts"].setdefault(key, {}).update(ms=statistics.median(values) * 1e3, spread=spread(values))
    parts = section["parts"]
    step_ms = parts["step"]["ms"]
    for part in parts.values():
        part["share_of_step"] = part["ms"] / step_ms
        if part.get("xla_flops"):
            part["xla_tflops"] = part["xla_flops"] / (part["ms"] / 1e3) / 1e12
    if "forward_backward" in parts and "forward_loss" in parts:
        section["backward_ms"] = parts["forward_backward"]["ms"] - parts["forward_loss"]["ms"]
        section["step_minus_forward_backward_ms"] = step_ms - parts["forward_backward"]["ms"]
    section["host_gap_ms"] = parts["step_sync_each"]["ms"] - step_ms
    section["analytic"] = analytic_shares(context["config"], base["batch"], base["length"])
    return section


def analytic_shares(config, batch, length):
    """Shares of the model FLOPs (training, matmuls) by part, from the formula's terms."""
    d, f, n, v = config.d_model, config.d_ff, config.num_layers, config.target_vocab_size
    b, s, t = batch, length, length
    parts = {
        "attention projections": n * (b * s * 4 * d * d + b * t * 6 * d * d + b * s * 2 * d * d),
        "attention scores + weighted sums": n * (2 * b * s * s * d + 2 * b * t * t * d
                                                 + 2 * b * t * s * d),
        "feed-forward": n * (b * s * 2 * d * f + b * t * 2 * d * f),
        "output projection (vocabulary)": b * t * d * v,
    }
    total = sum(parts.values())
    return {key: value / total for key, value in parts.items()}


# ---------------------------------------------------------------------------------------------
# Decode


def stateless_jit(function, model):
    """jax.jit of `function(source)` with the model's variables as arguments (not constants
    baked into the executable): returns (jitted(values, source), values)."""
    import jax
    variables = list(model.variables)

    def wrapped(values, source):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(source)

    return jax.jit(wrapped), [v.value for v in variables]


def decode_lowerings(args, errors):
    """Build the decode models (base, shared vocabulary, random weights) and lower greedy
    decode for every batch size: ours and keras-hub's."""
    import decode_latency

    from keras_transformer.generation.decoding import greedy_decode
    length = args.decode_length
    config = common.our_config(args.preset, args.vocab_size, length + 1).replace(
        share_embeddings=True)
    models = {"ours": common.build_ours(config)}
    try:
        models["keras_hub"] = common.build_hub(config)
    except Exception as error:  # noqa: BLE001
        errors["keras_hub"] = repr(error)[:300]
        traceback.print_exc()
    functions = {"ours": lambda s: greedy_decode(models["ours"], s, length, end_id=None),
                 "keras_hub": lambda s: decode_latency.hub_greedy(models["keras_hub"], s, length)}
    lowered, sources, values = {}, {}, {}
    for batch in [int(b) for b in args.decode_batches.split(",")]:
        source = common.synthetic_batches(1, batch, args.source_length, args.vocab_size,
                                          args.seed + batch)[0][0][0]
        if batch == 1:  # a full-length sentence
            source[0, :] = np.random.default_rng(args.seed).integers(
                common.FIRST_WORD_ID, args.vocab_size, args.source_length)
        sources[batch] = source
        for name, model in models.items():
            jitted, model_values = stateless_jit(functions[name], model)
            key = f"decode_{name}_b{batch}"
            values[key] = model_values
            lower(lowered, errors, key, jitted, model_values, ops.convert_to_tensor(source))
    return lowered, dict(models=models, sources=sources, values=values)


def decode_section(compiled, info, errors, args, budget, results):
    import jax
    section = dict(rows=[], errors=dict(errors),
                   config=dict(preset=args.preset, vocab=args.vocab_size, length=args.decode_length,
                               source_length=args.source_length,
                               policy=keras.mixed_precision.global_policy().name))
    results["decode"] = section
    length = args.decode_length
    for batch in [int(b) for b in args.decode_batches.split(",")]:
        source = ops.convert_to_tensor(info["sources"][batch])
        runners, row = {}, dict(batch=batch, variants={})
        section["rows"].append(row)
        for name, model in info["models"].items():
            key = f"decode_{name}_b{batch}"
            executable, seconds, error = compiled.get(key, (None, 0.0, "not lowered"))
            if executable is None:
                section["errors"][key] = error
                continue
            values = info["values"][key]
            try:
                tokens = np.asarray(jax.block_until_ready(executable(values, source)))
                start = time.perf_counter()
                jax.block_until_ready(executable(values, source))
                single = time.perf_counter() - start
                reps = max(1, int(np.ceil(0.2 / max(single, 1e-6))))
                runner = (lambda e, v, r: (lambda: [jax.block_until_ready(e(v, source))
                                                    for _ in range(r)]))(executable, values, reps)
                runners[name] = (runner, reps)
                row["variants"][name] = dict(compile_s=seconds, first_call_s=single,
                                             first_tokens=tokens[0, :8].tolist())
                if budget.left() > 90 and not args.skip_decode_checks:
                    row["variants"][name]["agreement_with_full_forward"] = \
                        teacher_forced_agreement(model, info["sources"][batch], tokens)
            except Exception as error:  # noqa: BLE001
                section["errors"][key] = repr(error)[:300]
                traceback.print_exc()
        if runners:
            rounds = args.decode_rounds if budget.left() > 90 else 2
            samples = common.interleaved({n: r for n, (r, _) in runners.items()}, rounds)
            for name, values in samples.items():
                values = [v / runners[name][1] for v in values]
                row["variants"][name].update(
                    ms_per_call=statistics.median(values) * 1e3, ms_per_token=statistics.median(values) * 1e3 / length,
                    tokens_per_s=batch * length / statistics.median(values), spread=spread(values),
                    samples_ms=[v * 1e3 for v in values])
                samples[name] = values
            if "ours" in samples and "keras_hub" in samples:
                row["keras_hub/ours"] = paired_ratio(samples["keras_hub"], samples["ours"])
        log(f"  decode batch {batch}: " + ", ".join(
            f"{n} {v.get('ms_per_token', float('nan')):.3f} ms/token"
            for n, v in row["variants"].items()) + f"  [{budget.elapsed():.0f} s]")
    return section


def teacher_forced_agreement(model, source, tokens):
    """Fraction of generated tokens equal to the argmax of the model's own full forward pass
    (eager) over [START] + tokens: 1.0 when the cached decoder computes what the model does."""
    target_in = np.concatenate([np.full((tokens.shape[0], 1), common.START_ID),
                                tokens[:, :-1]], axis=1).astype("int32")
    full = np.asarray(model([ops.convert_to_tensor(source.astype("int32")),
                             ops.convert_to_tensor(target_in)], training=False)).astype("float32")
    full[..., common.PAD_ID] = -np.inf  # ours never emits [PAD] / [START]
    full[..., common.START_ID] = -np.inf
    return float(np.mean(full.argmax(-1) == tokens))


# ---------------------------------------------------------------------------------------------
# Trace: device time by part of the model


def categorize(op_name):
    """A part of the model from an op's layer path (`jit(train_step)/transpose(jvp(
    decoder_block_3))/feed_forward/inner/dot_general`): Keras name scopes give the layer names
    (ours: query/key/value/output, feed_forward, norm; keras-hub: self_attention/query, ...).
    A fusion carries its root op's path, so fused work is counted where its root is."""
    t = (op_name or "").lower()
    if "adam" in t or "optimizer" in t:
        return "optimizer (Adam)"
    if "compile_loss" in t or "cross_entropy" in t:
        return "loss (log-softmax, cross-entropy)"
    if "threefry" in t or "random_bits" in t or "dropout" in t:
        return "dropout (random bits, masks)"
    if "embedding" in t or "logits" in t:
        if "dot_general" in t or "matmul" in t:
            return "output projection (vocabulary)"
        return "embedding lookup / gradient"
    if "norm" in t:
        return "layer norm (+ residual)"
    if "feed_forward" in t or "feedforward" in t:
        return "feed-forward"
    if any(w in t for w in ("/query", "/key", "/value", "/output", "attention_output")):
        return "attention projections"
    if any(w in t for w in ("attention", "softmax", "bhtd", "bhts", "btnh", "_where", "einsum")):
        return "attention core (scores, mask, softmax, weighted sum)"
    return "other"


def is_gemm(*names):
    text = " ".join(names).lower()
    return any(word in text for word in ("gemm", "cublas", "cutlass", "xmma", "nvjet", "matmul",
                                         "dot_general", "triton_dot"))


def hlo_op_names(hlo_text):
    """{instruction name: op_name metadata} from compiled HLO text."""
    names = {}
    pattern = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{[^}]*op_name=\"([^\"]*)\"")
    for line in hlo_text.splitlines():
        match = pattern.match(line)
        if match:
            names[match.group(1)] = match.group(2)
    return names


def trace_events(path, host_fallback=False):
    """GPU kernel events of an xplane.pb: [(start_ns, end_ns, kernel name, hlo_op, module)],
    and a summary of the planes/lines seen."""
    import jax
    data = jax.profiler.ProfileData.from_file(path)
    planes, kernels, ops_line, host_ops = [], [], [], []
    for plane in data.planes:
        lines = []
        device = plane.name.startswith("/device:GPU")
        for line in plane.lines:
            events = list(line.events)
            lines.append((line.name, len(events)))
            lname = line.name.lower()
            for event in events:
                stats = dict(event.stats)  # jax 0.11 warns here (DeprecationWarning), harmless
                item = (event.start_ns, event.start_ns + event.duration_ns, event.name,
                        str(stats.get("hlo_op", "") or ""), str(stats.get("hlo_module", "") or ""))
                if device and "stream" in lname and "memcpy" not in lname:
                    kernels.append(item)
                elif device and lname == "xla ops":
                    ops_line.append((item[0], item[1], item[2], item[2], item[4]))
                elif not device and item[3]:  # CPU backend: XLA thunks on host threads
                    host_ops.append(item)
        planes.append(dict(plane=plane.name, lines=lines[:16]))
    return (kernels or ops_line or (host_ops if host_fallback else [])), planes


def trace_section(trainer, args, budget, results, out_dir):
    import jax
    section = dict(errors={})
    results["trace"] = section
    try:
        hlo = trainer.compiled.as_text()
        if out_dir:
            import gzip
            with gzip.open(os.path.join(out_dir, "ours_step.hlo.txt.gz"), "wt") as handle:
                handle.write(hlo)
        op_names = hlo_op_names(hlo)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        op_names = {}
    # kernels of fusions are named after the instruction with '.' and '-' as '_'
    op_names.update({re.sub(r"[.\-]", "_", k): v for k, v in list(op_names.items())})
    section["hlo_instructions_with_op_name"] = len(op_names)
    directory = tempfile.mkdtemp(prefix="gpu_suite_trace_")
    trainer.steps(1)
    steps = 3
    start = time.perf_counter()
    with jax.profiler.trace(directory):
        trainer.steps(steps)
    section["traced_wall_ms_per_step"] = (time.perf_counter() - start) / steps * 1e3
    files = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    if not files:
        section["errors"]["trace"] = "no xplane.pb written"
        return section
    if out_dir and os.path.getsize(files[0]) < 15 * 1024 * 1024:
        shutil.copy(files[0], os.path.join(out_dir, "trace.xplane.pb"))
    on_cpu = jax.devices()[0].platform == "cpu"
    kernels, section["planes"] = trace_events(files[0], host_fallback=on_cpu)
    if not kernels:
        section["errors"]["trace"] = "no GPU kernel events found (see planes)"
        return section
    modules = {}
    for k in kernels:
        modules[k[4]] = modules.get(k[4], 0) + (k[1] - k[0])
    section["modules_ms"] = {m: t / 1e6 for m, t in modules.items()}
    main_module = max(modules, key=modules.get)  # the train step's (others: copies, etc.)
    kernels = [k for k in kernels if k[4] == main_module]
    intervals = sorted((k[0], k[1]) for k in kernels)
    busy, (current_start, current_end) = 0, intervals[0]
    for s, e in intervals[1:]:
        if s > current_end:
            busy += current_end - current_start
            current_start, current_end = s, e
        else:
            current_end = max(current_end, e)
    busy += current_end - current_start
    section["kernels_per_step"] = len(kernels) / steps
    section["device_busy_ms_per_step"] = busy / steps / 1e6
    section["device_span_ms_per_step"] = (intervals[-1][1] - intervals[0][0]) / steps / 1e6
    table, by_op = {}, {}
    matched = 0
    for start_ns, end_ns, name, hlo_op, _ in kernels:
        op_name = op_names.get(hlo_op, "") or op_names.get(name, "")
        matched += bool(op_name)
        category = categorize(op_name or f"{hlo_op} {name}")
        kind = "matmul" if is_gemm(name, hlo_op, op_name.rsplit("/", 1)[-1]) else "other"
        if kind == "matmul" and "tf32" in name.lower():
            kind = "matmul (f32 operands, TF32)"
        if kind.startswith("matmul") and not op_name and "fusion" not in name:
            # inside a CUDA graph (command buffer) a library call has no op of its own
            category = "library matmul (cuBLAS, not mapped to a layer)"
        direction = "bwd" if "transpose(" in op_name else ("fwd" if op_name else "-")
        if category.startswith("optimizer"):
            direction = "step"
        key = (category, kind, direction)
        table[key] = table.get(key, 0) + (end_ns - start_ns) / 1e6 / steps
        label = name if hlo_op.startswith("command_buffer") else (hlo_op or name)
        entry = by_op.setdefault(label, dict(ms=0.0, count=0, kernel=name[:90],
                                                      op_name=op_name[-160:], category=category,
                                                      kind=kind, direction=direction))
        entry["ms"] += (end_ns - start_ns) / 1e6 / steps
        entry["count"] += 1
    total = sum(table.values())
    section["kernels_with_op_name"] = matched / len(kernels)
    section["breakdown"] = [dict(category=c, kind=k, direction=d, ms=t, share=t / total)
                            for (c, k, d), t in sorted(table.items(), key=lambda i: -i[1])]
    section["matmul_share_of_kernel_time"] = sum(
        t for (c, k, d), t in table.items() if k.startswith("matmul")) / total
    section["top_ops"] = sorted(({"op": k, **v} for k, v in by_op.items()),
                                key=lambda e: -e["ms"])[:30]
    log(f"== trace: {section['kernels_per_step']:.0f} kernels/step, busy "
        f"{section['device_busy_ms_per_step']:.2f} ms/step, matmul share "
        f"{section['matmul_share_of_kernel_time']:.1%}  [{budget.elapsed():.0f} s]")
    return section


# ---------------------------------------------------------------------------------------------
# Report


def report(results, args):
    lines = []
    facts = results.get("device", {})
    peak = facts.get("peak_tflops")
    matmul = results.get("matmul", {})
    matmul_tflops = matmul.get("tflops")
    lines.append(f"device: {facts.get('kind')} ({facts.get('platform')}); jax {facts.get('jax')}, "
                 f"keras {facts.get('keras')}; {results.get('date')}; datasheet dense bf16 peak "
                 f"{fmt(peak, '{:.0f}')} TFLOP/s; JAX memory limit "
                 f"{fmt(facts.get('memory_limit_gib'))} GiB")
    if matmul:
        lines.append(f"matmul {matmul.get('size')}^3 bf16: {fmt(matmul.get('ms'), '{:.2f}')} ms = "
                     f"**{fmt(matmul_tflops, '{:.0f}')} TFLOP/s** ("
                     f"{fmt(matmul_tflops / peak * 100 if matmul_tflops and peak else None, '{:.0f}')}"
                     f"% of the datasheet peak; spread {matmul.get('spread', 0):.0%})")
    lines.append("")
    lines.append("| preset | model | batch x len | compile s | ms/step | spread | target tok/s "
                 "| TFLOP/s | MFU (datasheet) | vs matmul | XLA temp GiB | ratio |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("base", "big"):
        section = results.get(name)
        if not section:
            continue
        errors = section.get("errors", {})
        for key, v in section.get("variants", {}).items():
            head = f"| {section['preset']} | {key} | {section['batch']} x {section['length']} "
            if "step_ms" not in v:
                lines.append(head + f"| {fmt(v.get('compile_s'), '{:.0f}')} | failed: "
                             f"{errors.get(key, 'not timed')[:90]} | | | | | | | |")
                continue
            tflops = v["tflops"]
            if key == "ours":
                ratio = fmt(section.get("ours/keras_hub"), "**{:.3f}** ours / keras-hub")
            elif key.startswith("ours+"):
                ratio = fmt(section.get(f"{key}/ours"), "{:.3f} x ours' step time")
            else:
                ratio = ""
            lines.append(
                head + f"| {fmt(v.get('compile_s'), '{:.0f}')} | {v['step_ms']:.1f} "
                f"| {v['spread']:.0%} | {v['target_tokens_per_s']:,.0f} | {tflops:.1f} "
                f"| {fmt(tflops / peak * 100 if peak else None, '**{:.1f}%**')} "
                f"| {fmt(tflops / matmul_tflops * 100 if matmul_tflops else None, '{:.1f}%')} "
                f"| {fmt(v.get('temp_gib'))} | {ratio} |")
        for key, error in errors.items():
            if key not in section.get("variants", {}):
                lines.append(f"| {section['preset']} | {key} | failed: {error[:120]} "
                             "| | | | | | | | | |")
    for name in ("base", "big"):
        section = results.get(name)
        if not section:
            continue
        ours = section["variants"].get("ours", {})
        lines.append(
            f"\n{name}: model FLOPs per step {section['model_flops_per_step'] / 1e12:.2f} TFLOP "
            f"(matmuls, padded shapes, fwd x 3; XLA's cost analysis, which leaves out "
            f"library (cuBLAS) matmuls, says "
            f"{fmt((ours.get('xla_flops_per_step') or 0) / 1e12, '{:.2f}')}); "
            f"{section['target_tokens_per_step']:,.0f} non-padding target tokens of "
            f"{section['padded_tokens_per_step']:,} per step; parameters "
            + ", ".join(f"{k} {v.get('parameters', 0):,}" for k, v in section["variants"].items()
                        if k in ("ours", "keras_hub"))
            + f"; peak GPU memory {fmt(section.get('peak_memory_gib'))} GiB (process, so far); "
            f"{section.get('rounds')} rounds x {section.get('steps_per_sample')} steps")

    profile = results.get("profile")
    if profile and profile.get("parts"):
        lines.append("\nprofile of one step, ours, base (each part timed on its own, same batch, "
                     "calls dispatched back to back):\n")
        lines.append("| part | ms | share of step |")
        lines.append("|---|---|---|")
        labels = {"step": "whole train step (steps dispatched back to back)",
                  "step_sync_each": "whole step, waiting for each step's loss",
                  "forward_loss": "forward + loss", "forward_backward": "forward + backward",
                  "optimizer": "optimizer alone (Adam over all variables)",
                  "logits_loss_f32": "output projection + loss, fwd+bwd, the former f32 form",
                  "logits_loss_bf16": "output projection + loss, fwd+bwd (ours: bf16, fused chunked loss)",
                  "logits_loss_bf16_lse": "same, bf16 matmul cast to f32, unfused logsumexp loss"}
        for key, label in labels.items():
            part = profile["parts"].get(key)
            if part and "ms" in part:
                lines.append(f"| {label} | {part['ms']:.2f} | {part['share_of_step']:.0%} |")
        lines.append(f"\nhost gap per step (waiting each step - back to back): "
                     f"{fmt(profile.get('host_gap_ms'), '{:.2f}')} ms; backward "
                     f"{fmt(profile.get('backward_ms'), '{:.2f}')} ms; whole step - forward/backward: "
                     f"{fmt(profile.get('step_minus_forward_backward_ms'), '{:.2f}')} ms")
        lines.append("analytic shares of the model FLOPs: " + ", ".join(
            f"{k} {v:.1%}" for k, v in profile.get("analytic", {}).items()))
    if profile and profile.get("errors"):
        lines.append(f"profile errors: {profile['errors']}")

    trace = results.get("trace")
    if trace and trace.get("breakdown"):
        lines.append(f"\ntrace of ours, base (3 steps): {trace['kernels_per_step']:.0f} kernels "
                     f"per step, device busy {trace['device_busy_ms_per_step']:.2f} ms of a "
                     f"{trace['device_span_ms_per_step']:.2f} ms span per step; matmul kernels "
                     f"{trace['matmul_share_of_kernel_time']:.1%} of kernel time; "
                     f"{trace['kernels_with_op_name']:.0%} of kernels mapped to a layer\n")
        lines.append("| part (layer path of the op) | kernel kind | pass | ms per step | share |")
        lines.append("|---|---|---|---|---|")
        for row in trace["breakdown"]:
            if row["share"] >= 0.005:
                lines.append(f"| {row['category']} | {row['kind']} | {row['direction']} "
                             f"| {row['ms']:.2f} | {row['share']:.1%} |")
    if trace and trace.get("top_ops"):
        lines.append("\nthe 12 costliest ops of the step (ms per step, calls per step):\n")
        lines.append("| op | ms | calls | part | kind | pass | layer path (end) |")
        lines.append("|---|---|---|---|---|---|---|")
        for op in trace["top_ops"][:12]:
            lines.append(f"| {op['op'][:40]} | {op['ms']:.2f} | {op['count'] / 3:.0f} "
                         f"| {op['category']} | {op['kind']} | {op['direction']} "
                         f"| {op['op_name'][-70:] or op['kernel'][:50]} |")
    if trace and trace.get("errors"):
        lines.append(f"trace errors: {trace['errors']}")

    decode = results.get("decode")
    if decode and decode.get("rows"):
        config = decode["config"]
        lines.append(f"\ncached greedy decode, {config['preset']} preset, vocabulary "
                     f"{config['vocab']} shared, {config['length']} tokens from a "
                     f"{config['source_length']}-token source, {config['policy']}, random weights:\n")
        lines.append("| batch | ours ms/token | keras-hub ms/token | keras-hub / ours | ours tokens/s "
                     "| keras-hub tokens/s | = full forward's argmax (ours, keras-hub) |")
        lines.append("|---|---|---|---|---|---|---|")
        for row in decode["rows"]:
            ours, hub = row["variants"].get("ours", {}), row["variants"].get("keras_hub", {})
            lines.append(f"| {row['batch']} | {fmt(ours.get('ms_per_token'), '{:.3f}')} "
                         f"| {fmt(hub.get('ms_per_token'), '{:.3f}')} "
                         f"| {fmt(row.get('keras_hub/ours'), '**{:.2f}**')} "
                         f"| {fmt(ours.get('tokens_per_s'), '{:,.0f}')} "
                         f"| {fmt(hub.get('tokens_per_s'), '{:,.0f}')} "
                         f"| {fmt(ours.get('agreement_with_full_forward'), '{:.1%}')}, "
                         f"{fmt(hub.get('agreement_with_full_forward'), '{:.1%}')} |")
    if decode and decode.get("errors"):
        lines.append(f"decode errors: {decode['errors']}")
    for key in ("section_errors", "skipped", "watchdog"):
        if results.get(key):
            lines.append(f"{key}: {results[key]}")
    shown = {k: v for k, v in vars(args).items() if k != "out"}
    lines.append(f"\ntotal {results.get('total_s', 0):.0f} s; reproduce: "
                 + common.reproduce_line("gpu_suite.py", argparse.Namespace(**shown)))
    return "\n".join(lines)


def save(results, args, final=False):
    if not args.out:
        return
    try:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_suite.json"), "w") as handle:
            json.dump(results, handle, indent=1, default=str)
        if final:
            with open(os.path.join(args.out, "gpu_suite.md"), "w") as handle:
                handle.write(report(results, args) + "\n")
    except Exception:  # noqa: BLE001
        traceback.print_exc()


# ---------------------------------------------------------------------------------------------


def start_watchdog(seconds, results, args, budget):
    """After `seconds`, write and print whatever was measured, then end the process: a compile
    or a step that hangs must not take the whole device call with it."""
    import threading

    def fire():
        results["watchdog"] = f"stopped after {budget.elapsed():.0f} s (hard limit {seconds:.0f} s)"
        results["total_s"] = budget.elapsed()
        try:
            save(results, args, final=True)
            log("\n" + "=" * 100 + "\nWATCHDOG: " + results["watchdog"] + "\n"
                + report(results, args))
        finally:
            sys.stdout.flush()
            os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget)
    if common.backend() != "jax":
        raise SystemExit("gpu_suite.py runs on the JAX backend: KERAS_BACKEND=jax")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    results = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   machine=common.machine_line(), args=vars(args), section_errors={}, skipped=[])
    results["device"] = device_facts(args)
    log(results["machine"])
    log(f"device {results['device']}")
    common.set_precision("bfloat16")
    state = {}
    start_watchdog(args.hard_limit or args.budget + 60, results, args, budget)

    def run(name, function, min_seconds):
        if budget.left() < min_seconds:
            results["skipped"].append(f"{name} ({budget.left():.0f} s left < {min_seconds} s)")
            log(f"== {name}: skipped, {budget.left():.0f} s left")
            return None
        try:
            return function()
        except Exception as error:  # noqa: BLE001
            results["section_errors"][name] = repr(error)[:500]
            traceback.print_exc()
            return None
        finally:
            results["total_s"] = budget.elapsed()
            save(results, args)

    def matmul():
        # random bf16 operands (METHOD.md: never zeros), 10 products back to back per sample
        import jax
        import jax.numpy as jnp
        n = args.matmul_size
        rng = np.random.default_rng(args.seed)
        a, b = (jnp.asarray(rng.standard_normal((n, n), np.float32), jnp.bfloat16)
                for _ in range(2))
        product = jax.jit(lambda x, y: x @ y)
        for _ in range(4):
            jax.block_until_ready(product(a, b))
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            outputs = [product(a, b) for _ in range(10)]
            jax.block_until_ready(outputs)
            samples.append((time.perf_counter() - start) / 10)
        seconds, flops = statistics.median(samples), 2 * n ** 3
        results["matmul"] = dict(size=n, ms=seconds * 1e3, tflops=flops / seconds / 1e12,
                                 spread=spread(samples), best_tflops=flops / min(samples) / 1e12)
        log(f"== matmul {n}^3 bf16: {seconds * 1e3:.3f} ms, {flops / seconds / 1e12:.1f} TFLOP/s "
            f"(best sample {flops / min(samples) / 1e12:.1f})  [{budget.elapsed():.0f} s]")

    if "matmul" in sections:
        run("matmul", matmul, 5)

    def extras(models, states, batches):
        """The profile and decode functions, lowered now to compile with the base models."""
        lowered = {}
        state["profile_errors"], state["decode_errors"] = {}, {}
        if "profile" in sections and "ours" in models:
            low, state["profile_inputs"] = profile_lowerings(
                models["ours"], states["ours"], batches[0], state["profile_errors"])
            lowered.update(low)
        if "decode" in sections:
            low, state["decode"] = decode_lowerings(args, state["decode_errors"])
            lowered.update(low)
        return lowered

    def base():
        candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
        section, context = train_section("base", args.preset, args.batch, args, budget, results,
                                         candidates=candidates, extra_lowerings=extras)
        log(report_section_line(section))
        state.update(base_section=section, context=context)

    if "base" in sections:
        run("base", base, 60)
    context = state.get("context", {})
    has_ours = "ours" in context.get("trainers", {})

    if "profile" in sections and has_ours and "profile_inputs" in state:
        def profile():
            section = profile_section(context, state["profile_inputs"], state["profile_errors"],
                                      args, budget, results, state["base_section"])
            log("== profile: " + ", ".join(f"{k} {v['ms']:.2f} ms" for k, v in
                                           section["parts"].items() if "ms" in v)
                + f"  [{budget.elapsed():.0f} s]")
        run("profile", profile, 45)

    if "decode" in sections and "decode" in state:
        run("decode", lambda: decode_section(context.get("compiled", {}), state["decode"],
                                             state["decode_errors"], args, budget, results), 30)

    # free all but ours' base trainer (the trace's) before the big models
    trace_trainer = context.get("trainers", {}).get("ours")
    context.clear()
    for key in ("decode", "profile_inputs"):
        state.pop(key, None)
    gc.collect()

    if args.big_preset and "big" in sections:
        def big():
            section, big_context = train_section("big", args.big_preset,
                                                 args.big_batch or args.batch, args, budget,
                                                 results)
            log(report_section_line(section))
            big_context.clear()
            gc.collect()
        run("big", big, 100)

    if "trace" in sections and trace_trainer is not None:
        run("trace", lambda: trace_section(trace_trainer, args, budget, results, args.out), 15)

    results["total_s"] = budget.elapsed()
    save(results, args, final=True)
    log("\n" + "=" * 100 + "\n" + report(results, args))


if __name__ == "__main__":
    main()
