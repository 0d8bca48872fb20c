"""Where the device time of ours' base train step goes: a jax.profiler trace of 3 steps, its
kernels mapped to parts of the model (attention, feed-forward, norms, output projection, loss,
dropout, optimizer) and to kernel kinds through the op names of the compiled HLO (saved as
ours_step.hlo.txt.gz), and the device's busy time per step."""

import glob
import gzip
import os
import re
import shutil
import tempfile
import time
import traceback

from harness import log

TRACED_STEPS = 3


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


def trace_section(trainer, budget, results, out_dir):
    """Trace `TRACED_STEPS` steps of `trainer` (after one untraced step); the kernels of the
    step's module by part, kind and pass, the costliest ops, the device's busy time."""
    import jax
    section = dict(errors={})
    results["trace"] = section
    op_names = step_op_names(trainer, out_dir)
    section["hlo_instructions_with_op_name"] = len(op_names)
    path = record(trainer, section, out_dir)
    if path is None:
        section["errors"]["trace"] = "no xplane.pb written"
        return section
    on_cpu = jax.devices()[0].platform == "cpu"
    kernels, section["planes"] = trace_events(path, host_fallback=on_cpu)
    if not kernels:
        section["errors"]["trace"] = "no GPU kernel events found (see planes)"
        return section
    kernels = main_module_kernels(kernels, section)
    section.update(busy_time(kernels))
    section.update(breakdown(kernels, op_names))
    log(f"== trace: {section['kernels_per_step']:.0f} kernels/step, busy "
        f"{section['device_busy_ms_per_step']:.2f} ms/step, matmul share "
        f"{section['matmul_share_of_kernel_time']:.1%}  [{budget.elapsed():.0f} s]")
    return section


def step_op_names(trainer, out_dir):
    """{HLO instruction or kernel name: op_name} of the compiled step (its HLO text saved to
    out_dir); kernels of fusions are named after the instruction with '.' and '-' as '_'."""
    try:
        hlo = trainer.compiled.as_text()
        if out_dir:
            with gzip.open(os.path.join(out_dir, "ours_step.hlo.txt.gz"), "wt") as handle:
                handle.write(hlo)
        op_names = hlo_op_names(hlo)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        op_names = {}
    op_names.update({re.sub(r"[.\-]", "_", k): v for k, v in list(op_names.items())})
    return op_names


def record(trainer, section, out_dir):
    """One untraced step, then `TRACED_STEPS` under jax.profiler; the xplane.pb's path (copied
    to out_dir when under 15 MiB), or None."""
    import jax
    directory = tempfile.mkdtemp(prefix="gpu_suite_trace_")
    trainer.steps(1)
    start = time.perf_counter()
    with jax.profiler.trace(directory):
        trainer.steps(TRACED_STEPS)
    section["traced_wall_ms_per_step"] = (time.perf_counter() - start) / TRACED_STEPS * 1e3
    files = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    if not files:
        return None
    if out_dir and os.path.getsize(files[0]) < 15 * 1024 * 1024:
        shutil.copy(files[0], os.path.join(out_dir, "trace.xplane.pb"))
    return files[0]


def main_module_kernels(kernels, section):
    """The kernels of the module with the most device time (the train step's; the others are
    copies and the like); every module's time goes to section["modules_ms"]."""
    modules = {}
    for k in kernels:
        modules[k[4]] = modules.get(k[4], 0) + (k[1] - k[0])
    section["modules_ms"] = {m: t / 1e6 for m, t in modules.items()}
    main_module = max(modules, key=modules.get)
    return [k for k in kernels if k[4] == main_module]


def busy_time(kernels):
    """Kernels per step, the device's busy time (the union of kernel intervals) and span."""
    intervals = sorted((k[0], k[1]) for k in kernels)
    busy, (current_start, current_end) = 0, intervals[0]
    for s, e in intervals[1:]:
        if s > current_end:
            busy += current_end - current_start
            current_start, current_end = s, e
        else:
            current_end = max(current_end, e)
    busy += current_end - current_start
    return dict(kernels_per_step=len(kernels) / TRACED_STEPS,
                device_busy_ms_per_step=busy / TRACED_STEPS / 1e6,
                device_span_ms_per_step=(intervals[-1][1] - intervals[0][0]) / TRACED_STEPS / 1e6)


def breakdown(kernels, op_names):
    """Kernel time per step by (part, kind, pass), the matmul share, the 30 costliest ops."""
    table, by_op = {}, {}
    matched = 0
    for start_ns, end_ns, name, hlo_op, _ in kernels:
        op_name = op_names.get(hlo_op, "") or op_names.get(name, "")
        matched += bool(op_name)
        category, kind, direction = classify(name, hlo_op, op_name)
        ms = (end_ns - start_ns) / 1e6 / TRACED_STEPS
        key = (category, kind, direction)
        table[key] = table.get(key, 0) + ms
        label = name if hlo_op.startswith("command_buffer") else (hlo_op or name)
        entry = by_op.setdefault(label, dict(ms=0.0, count=0, kernel=name[:90],
                                             op_name=op_name[-160:], category=category,
                                             kind=kind, direction=direction))
        entry["ms"] += ms
        entry["count"] += 1
    total = sum(table.values())
    return dict(
        kernels_with_op_name=matched / len(kernels),
        breakdown=[dict(category=c, kind=k, direction=d, ms=t, share=t / total)
                   for (c, k, d), t in sorted(table.items(), key=lambda i: -i[1])],
        matmul_share_of_kernel_time=sum(
            t for (c, k, d), t in table.items() if k.startswith("matmul")) / total,
        top_ops=sorted(({"op": k, **v} for k, v in by_op.items()), key=lambda e: -e["ms"])[:30])


def classify(name, hlo_op, op_name):
    """(part of the model, kernel kind, pass) of one kernel."""
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
    return category, kind, direction
