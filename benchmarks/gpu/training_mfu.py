"""Training throughput and MFU on one preset: ours vs keras-hub's layers of identical shape on the
same synthetic batches, plus candidate changes to ours, each timed as a whole train step.

Every variant's train step (Keras's own, jitted with its state donated) is lowered first, then
the XLA compiles run concurrently (with the other sections' functions, `extra_lowerings`);
after warm-up the variants are timed in rounds in rotating order, each sample `--steps` steps
dispatched back to back. MFU = model FLOPs per step (common/flops.py) / step time / the
datasheet peak; report.py divides by the peak and by the first section's matmul.
"""

import statistics
import time
import traceback

import keras
import numpy as np

from candidates import build_candidate, describe, patched_candidate
from common import data, flops, models
from common.timing import paired_ratio, spread
from harness import (
    Trainer,
    compile_all,
    executable_memory,
    log,
    lower,
    model_state,
    peak_memory_gib,
    prepare_training,
    timed_rounds,
    xla_flops,
)


def train_config(preset_name, args):
    """The preset at the suite's shared vocabulary (source, target and the tied output
    projection share one table) and learned positions."""
    return models.our_config(preset_name, args.vocab_size, args.length).replace(
        share_embeddings=True)


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
    numpy_batches = data.synthetic_batches(4, batch, args.length, args.vocab_size, args.seed)
    batches = data.to_backend(numpy_batches)
    section = dict(preset=preset_name, batch=batch, length=args.length, vocab=args.vocab_size,
                   target_tokens_per_step=float(np.mean(data.target_tokens(numpy_batches))),
                   padded_tokens_per_step=batch * args.length,
                   model_flops_per_step=flops.transformer_train_flops(config, batch, args.length,
                                                                      args.length),
                   config=config.to_dict(), variants={}, errors={},
                   candidates={c: describe(c) for c in candidates})
    results[name] = section

    built, lowered, states = lower_variants(config, section, batches, candidates)
    extra = lower_extras(extra_lowerings, built, states, batches, section)
    log(f"  lowered {sorted(lowered)} ({sum(t for _, t in lowered.values()):.0f} s); compiling "
        f"{len(lowered) + len(extra)} functions concurrently  [{budget.elapsed():.0f} s]")
    compiled = compile_all({**lowered, **extra}, args.compile_threads)
    log("  compiled (s, concurrent): " + ", ".join(
        f"{k} {t:.0f}" + (" FAILED" if c is None else "") for k, (c, t, _) in compiled.items())
        + f"  [{budget.elapsed():.0f} s]")

    trainers = warm_up(lowered, compiled, states, batches, section, args)
    section["peak_memory_gib_after_warmup"] = peak_memory_gib()
    if trainers:
        time_variants(trainers, section, args, budget)
    section["peak_memory_gib"] = peak_memory_gib()
    compiled_extra = {k: v for k, v in compiled.items() if k in extra}
    return section, dict(models=built, trainers=trainers, batches=batches, config=config,
                         compiled=compiled_extra)


def build_variant(config, key, candidate):
    """(compiled model, candidate parts) of 'ours', 'keras_hub' or 'ours+CANDIDATE'."""
    if key == "ours":
        return models.compile_for_benchmark(models.build_ours(config), True), set()
    if key == "keras_hub":
        return models.compile_for_benchmark(models.build_hub(config), True), set()
    return build_candidate(config, candidate)


def lower_variants(config, section, batches, candidates):
    """Build every variant and lower its train step; returns (models, lowered, states)."""
    built, lowered, states = {}, {}, {}
    builds = [("ours", None), ("keras_hub", None)] + [(f"ours+{c}", c) for c in candidates]
    for key, candidate in builds:
        try:
            start = time.perf_counter()
            model, parts = build_variant(config, key, candidate)
            step = prepare_training(model, batches[0])
            built[key] = model
            section["variants"][key] = dict(
                parameters=int(model.count_params()),
                matmul_parameters=int(models.matmul_parameter_count(model, config)),
                build_s=time.perf_counter() - start)
            states[key] = model_state(model)
            with patched_candidate(parts):
                lower(lowered, section["errors"], key, step, states[key], batches[0])
        except Exception as error:  # noqa: BLE001
            section["errors"][key] = repr(error)[:300]
            traceback.print_exc()
    return built, lowered, states


def lower_extras(extra_lowerings, built, states, batches, section):
    """The other sections' lowered functions, to compile with this section's."""
    if extra_lowerings is None:
        return {}
    extra = {}
    start = time.perf_counter()
    try:
        extra = extra_lowerings(built, states, batches)
    except Exception as error:  # noqa: BLE001
        section["errors"]["extra lowerings"] = repr(error)[:300]
        traceback.print_exc()
    log(f"  lowered the other sections' functions ({time.perf_counter() - start:.0f} s)")
    return extra


def warm_up(lowered, compiled, states, batches, section, args):
    """A Trainer per compiled variant, after its `--warmup` untimed steps."""
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
    return trainers


def time_variants(trainers, section, args, budget):
    """Step time, throughput and TFLOP/s of every variant; ours / keras-hub and each
    candidate / ours (medians of per-round ratios)."""
    runners = {key: (lambda t: (lambda: t.steps(args.steps)))(t) for key, t in trainers.items()}
    samples, rounds = timed_rounds(runners, args.rounds, budget, reserve=90)
    step_seconds = {key: [s / args.steps for s in values] for key, values in samples.items()}
    section["rounds"], section["steps_per_sample"] = rounds, args.steps
    for key, values in step_seconds.items():
        seconds = statistics.median(values)
        section["variants"][key].update(
            step_ms=seconds * 1e3, step_ms_samples=[v * 1e3 for v in values],
            spread=spread(values), target_tokens_per_s=section["target_tokens_per_step"] / seconds,
            padded_tokens_per_s=section["padded_tokens_per_step"] / seconds,
            tflops=section["model_flops_per_step"] / seconds / 1e12,
            last_loss=float(np.asarray(trainers[key].steps(1)["loss"])))
    pairs = [("ours", "keras_hub")] + [(k, "ours") for k in step_seconds if k.startswith("ours+")]
    for a, b in pairs:
        if a in step_seconds and b in step_seconds:
            section[f"{a}/{b}"] = paired_ratio(step_seconds[a], step_seconds[b])
