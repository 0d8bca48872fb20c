"""Cached greedy decode: ours (greedy_decode) vs keras-hub's GreedySampler over its cached decoder
(common/models.py: hub_greedy_decode), the suite's preset with random weights, every batch of
`--decode-batches`, `--decode-length` tokens from a `--source-length` source. Each decoder's
tokens are checked against the argmax of its own full forward pass."""

import statistics
import time
import traceback

import keras
import numpy as np
from keras import ops

from common import data, models
from common.timing import interleaved, paired_ratio, spread
from harness import log, lower, stateless_jit
from pipelines.special_tokens import PAD_ID, START_ID


def decode_lowerings(args, errors):
    """Build the decode models (base, shared vocabulary, random weights) and lower greedy
    decode for every batch size: ours and keras-hub's. Returns (lowered, info)."""
    from keras_transformer.generation.decoding import greedy_decode
    length = args.decode_length
    config = models.our_config(args.preset, args.vocab_size, length + 1).replace(
        share_embeddings=True)
    built = {"ours": models.build_ours(config)}
    try:
        built["keras_hub"] = models.build_hub(config)
    except Exception as error:  # noqa: BLE001
        errors["keras_hub"] = repr(error)[:300]
        traceback.print_exc()
    functions = {"ours": lambda s: greedy_decode(built["ours"], s, length, end_id=None),
                 "keras_hub": lambda s: models.hub_greedy_decode(built["keras_hub"], s, length)}
    lowered, sources, values = {}, {}, {}
    for batch in batch_sizes(args):
        source = data.decode_source(batch, args.source_length, args.vocab_size, args.seed,
                                    np.random.default_rng(args.seed))
        sources[batch] = source
        for name, model in built.items():
            jitted, model_values = stateless_jit(functions[name], model)
            key = f"decode_{name}_b{batch}"
            values[key] = model_values
            lower(lowered, errors, key, jitted, model_values, ops.convert_to_tensor(source))
    return lowered, dict(models=built, sources=sources, values=values)


def batch_sizes(args):
    return [int(b) for b in args.decode_batches.split(",")]


def decode_section(compiled, info, errors, args, budget, results):
    """A row per batch size: ms per token, tokens/s, keras-hub / ours."""
    section = dict(rows=[], errors=dict(errors),
                   config=dict(preset=args.preset, vocab=args.vocab_size, length=args.decode_length,
                               source_length=args.source_length,
                               policy=keras.mixed_precision.global_policy().name))
    results["decode"] = section
    for batch in batch_sizes(args):
        row = dict(batch=batch, variants={})
        section["rows"].append(row)
        runners = first_calls(batch, compiled, info, section, row, args, budget)
        if runners:
            time_row(row, runners, batch, args, budget)
        log(f"  decode batch {batch}: " + ", ".join(
            f"{n} {v.get('ms_per_token', float('nan')):.3f} ms/token"
            for n, v in row["variants"].items()) + f"  [{budget.elapsed():.0f} s]")
    return section


def first_calls(batch, compiled, info, section, row, args, budget):
    """Call every compiled decoder once (its tokens checked against its full forward pass
    while the budget allows), once more to size a sample; returns {name: (runner, reps)}."""
    import jax
    source = ops.convert_to_tensor(info["sources"][batch])
    runners = {}
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
    return runners


def time_row(row, runners, batch, args, budget):
    rounds = args.decode_rounds if budget.left() > 90 else 2
    samples = interleaved({n: r for n, (r, _) in runners.items()}, rounds)
    length = args.decode_length
    for name, values in samples.items():
        values = [v / runners[name][1] for v in values]
        seconds = statistics.median(values)
        row["variants"][name].update(
            ms_per_call=seconds * 1e3, ms_per_token=seconds * 1e3 / length,
            tokens_per_s=batch * length / seconds, spread=spread(values),
            samples_ms=[v * 1e3 for v in values])
        samples[name] = values
    if "ours" in samples and "keras_hub" in samples:
        row["keras_hub/ours"] = paired_ratio(samples["keras_hub"], samples["ours"])


def teacher_forced_agreement(model, source, tokens):
    """Fraction of generated tokens equal to the argmax of the model's own full forward pass
    (eager) over [START] + tokens: 1.0 when the cached decoder computes what the model does.
    Ours never emits [PAD] / [START], so neither may the argmax."""
    full = models.full_forward_argmax(model, source, tokens, never=(PAD_ID, START_ID))
    return float(np.mean(full == tokens))
