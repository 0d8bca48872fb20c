"""The GPU suite's results as markdown (gpu_suite.md, and what the run prints last) and as JSON
(gpu_suite.json, every figure, rewritten after each section)."""

import json
import os
import traceback
from pathlib import Path

from common import process

SUITE = Path(__file__).with_name("gpu_suite.py")
PROFILE_LABELS = {
    "step": "whole train step (steps dispatched back to back)",
    "step_sync_each": "whole step, waiting for each step's loss",
    "forward_loss": "forward + loss", "forward_backward": "forward + backward",
    "optimizer": "optimizer alone (Adam over all variables)",
    "logits_loss_f32": "output projection + loss, fwd+bwd, the former f32 form",
    "logits_loss_bf16": "output projection + loss, fwd+bwd (ours: bf16, fused chunked loss)",
    "logits_loss_bf16_lse": "same, bf16 matmul cast to f32, unfused logsumexp loss",
}


def fmt(value, pattern="{:.1f}", missing="-"):
    return missing if value is None else pattern.format(value)


def report(results, args):
    """Every section's tables, then the total time and, last, the command of this run."""
    lines = (header_lines(results) + training_lines(results) + training_notes(results)
             + profile_lines(results) + trace_lines(results) + decode_lines(results))
    for key in ("section_errors", "skipped", "watchdog"):
        if results.get(key):
            lines.append(f"{key}: {results[key]}")
    lines.append(f"\ntotal {results.get('total_s', 0):.0f} s")
    lines.append("reproduce: " + process.reproduce_line(SUITE, args, skip=("out",)))
    return "\n".join(lines)


def section_line(section):
    """One line of a training section, printed as it ends."""
    parts = [f"{key} {v['step_ms']:.1f} ms/step {v['tflops']:.1f} TFLOP/s"
             for key, v in section.get("variants", {}).items() if "step_ms" in v]
    ratio = section.get("ours/keras_hub")
    return ("  " + "; ".join(parts) + (f"; ours/keras_hub {ratio:.3f}" if ratio else "")
            + (f"; errors {section['errors']}" if section.get("errors") else ""))


def save(results, args, final=False):
    """gpu_suite.json (and, when `final`, gpu_suite.md) in --out."""
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


def header_lines(results):
    facts = results.get("device", {})
    peak = facts.get("peak_tflops")
    matmul = results.get("matmul", {})
    matmul_tflops = matmul.get("tflops")
    lines = [f"device: {facts.get('kind')} ({facts.get('platform')}); jax {facts.get('jax')}, "
             f"keras {facts.get('keras')}; {results.get('date')}; datasheet dense bf16 peak "
             f"{fmt(peak, '{:.0f}')} TFLOP/s; JAX memory limit "
             f"{fmt(facts.get('memory_limit_gib'))} GiB"]
    if matmul:
        lines.append(f"matmul {matmul.get('size')}^3 bf16: {fmt(matmul.get('ms'), '{:.2f}')} ms = "
                     f"**{fmt(matmul_tflops, '{:.0f}')} TFLOP/s** ("
                     f"{fmt(matmul_tflops / peak * 100 if matmul_tflops and peak else None, '{:.0f}')}"
                     f"% of the datasheet peak; spread {matmul.get('spread', 0):.0%})")
    return lines + [""]


def training_lines(results):
    """The table of the base and big sections: a row per variant, then their failures."""
    lines = ["| preset | model | batch x len | compile s | ms/step | spread | target tok/s "
             "| TFLOP/s | MFU (datasheet) | vs matmul | XLA temp GiB | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    peak = results.get("device", {}).get("peak_tflops")
    matmul_tflops = results.get("matmul", {}).get("tflops")
    for name in ("base", "big"):
        section = results.get(name)
        if not section:
            continue
        errors = section.get("errors", {})
        for key, v in section.get("variants", {}).items():
            lines.append(variant_row(section, key, v, errors, peak, matmul_tflops))
        for key, error in errors.items():
            if key not in section.get("variants", {}):
                lines.append(f"| {section['preset']} | {key} | failed: {error[:120]} "
                             "| | | | | | | | | |")
    return lines


def variant_row(section, key, v, errors, peak, matmul_tflops):
    head = f"| {section['preset']} | {key} | {section['batch']} x {section['length']} "
    if "step_ms" not in v:
        return (head + f"| {fmt(v.get('compile_s'), '{:.0f}')} | failed: "
                f"{errors.get(key, 'not timed')[:90]} | | | | | | | |")
    tflops = v["tflops"]
    if key == "ours":
        ratio = fmt(section.get("ours/keras_hub"), "**{:.3f}** ours / keras-hub")
    elif key.startswith("ours+"):
        ratio = fmt(section.get(f"{key}/ours"), "{:.3f} x ours' step time")
    else:
        ratio = ""
    return (head + f"| {fmt(v.get('compile_s'), '{:.0f}')} | {v['step_ms']:.1f} "
            f"| {v['spread']:.0%} | {v['target_tokens_per_s']:,.0f} | {tflops:.1f} "
            f"| {fmt(tflops / peak * 100 if peak else None, '**{:.1f}%**')} "
            f"| {fmt(tflops / matmul_tflops * 100 if matmul_tflops else None, '{:.1f}%')} "
            f"| {fmt(v.get('temp_gib'))} | {ratio} |")


def training_notes(results):
    """Per training section: model FLOPs (and XLA's count), tokens, parameters, memory."""
    lines = []
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
    return lines


def profile_lines(results):
    profile = results.get("profile")
    lines = []
    if profile and profile.get("parts"):
        lines.append("\nprofile of one step, ours, base (each part timed on its own, same batch, "
                     "calls dispatched back to back):\n")
        lines.append("| part | ms | share of step |")
        lines.append("|---|---|---|")
        for key, label in PROFILE_LABELS.items():
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
    return lines


def trace_lines(results):
    trace = results.get("trace")
    lines = []
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
    return lines


def decode_lines(results):
    decode = results.get("decode")
    lines = []
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
    return lines
