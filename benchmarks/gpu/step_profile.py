"""Profile of ours' base train step: its parts compiled and timed on their own, on the same
batch and a copy of the trained state: forward + loss, forward + backward, the optimizer alone,
the output projection + loss alone in three forms (the former f32 one; ours: bf16 logits and
the fused chunked loss; bf16 logits cast to f32 + an unfused logsumexp loss), next to the whole
step dispatched back to back and waiting for each step's loss (the host gap). The analytic
shares of the model FLOPs come from common/flops.py."""

import statistics
import traceback

import numpy as np

from candidates import LogSumExpCrossEntropy, PlainCrossEntropy
from common.flops import flop_shares
from common.timing import spread
from harness import copy_tree, executable_memory, lower, timed_rounds, xla_flops


def profile_lowerings(model, state, data, errors):
    """Lower, on ours' state: forward+loss, forward+backward, the optimizer alone, and the
    output projection + loss alone (the three forms). Returns (lowered, the inputs the heads
    were lowered on)."""
    lowered = {}
    lower_step_parts(lowered, errors, model, state, data)
    inputs = lower_heads(lowered, errors, model, state, data)
    return lowered, inputs


def lower_step_parts(lowered, errors, model, state, data):
    import jax
    tv, ntv, ov, mv = state

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


def lower_heads(lowered, errors, model, state, data):
    """The output projection + loss, forward and backward, on random bf16 hidden states."""
    import jax
    import jax.numpy as jnp

    from keras_transformer.training.loss import MaskedSparseCrossEntropy
    tv, ntv = state[0], state[1]
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
    return dict(e_tv_index=e_tv_index, e_ntv_index=e_ntv_index, hidden=hidden, y=y)


def profile_section(context, inputs, errors, args, budget, results, base):
    """Time every compiled part next to the whole step; shares of the step, host gap."""
    section = dict(parts={}, errors=dict(errors))
    results["profile"] = section
    trainer = context["trainers"]["ours"]
    runners = part_runners(context, trainer, inputs, section, args)
    runners["step"] = lambda: trainer.steps(args.steps)
    runners["step_sync_each"] = lambda: trainer.steps(args.steps, True)
    samples, section["rounds"] = timed_rounds(runners, args.rounds, budget, reserve=120)
    for key, values in samples.items():
        values = [v / args.steps for v in values]
        section["parts"].setdefault(key, {}).update(ms=statistics.median(values) * 1e3,
                                                    spread=spread(values))
    summarize(section, context["config"], base)
    return section


def part_runners(context, trainer, inputs, section, args):
    """{part: runner} of the compiled parts that ran once; each runner dispatches `--steps`
    calls back to back, like the train steps, and waits for them at the end."""
    import jax
    compiled = context["compiled"]
    # the profiled functions read a copy: the timed train steps donate (free) their state
    tv, ntv, ov, mv = copy_tree(trainer.state)
    data = context["batches"][0]
    e_tv = [tv[i] for i in inputs["e_tv_index"]]
    e_ntv = [ntv[i] for i in inputs["e_ntv_index"]]
    grads = {"value": tv}  # forward_backward's gradients, once it has run
    head_args = (e_tv, e_ntv, inputs["hidden"], inputs["y"])
    calls = {
        "forward_loss": lambda c: c(tv, ntv, mv, ov, data),
        "forward_backward": lambda c: c(tv, ntv, mv, ov, data),
        "optimizer": lambda c: c(ov, grads["value"], tv),
        "logits_loss_f32": lambda c: c(*head_args),
        "logits_loss_bf16": lambda c: c(*head_args),
        "logits_loss_bf16_lse": lambda c: c(*head_args),
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
            runners[key] = (lambda c, e: (lambda: jax.block_until_ready(
                [c(e) for _ in range(args.steps)])))(call, executable)
        except Exception as error:  # noqa: BLE001
            section["errors"][key] = repr(error)[:300]
            traceback.print_exc()
    return runners


def summarize(section, config, base):
    """Each part's share of the whole step, its XLA TFLOP/s, the backward and host gap."""
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
    section["analytic"] = flop_shares(config, base["batch"], base["length"], base["length"])
