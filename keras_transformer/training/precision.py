"""The train job's compute precision, and "auto": bfloat16 where the hardware computes it natively.

Mixed precision keeps the weights and the loss in float32 and computes the layers, the logits
included, in 16 bits (the fused cross-entropy is float32 a chunk of tokens at a time). bfloat16
needs no loss scaling, and is native on GPUs of compute capability 8.0 and up (A100, H100) and on
x86 CPUs with AVX512_BF16 or AMX (Intel Cooper Lake and Sapphire Rapids, AMD Zen 4): there it
trains the `medium` model 1.3-1.6x faster than float32 (docs/recipes.md). Elsewhere it is emulated
and slower, so "auto" keeps float32.
"""

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
CPU_BFLOAT16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo="/proc/cpuinfo") -> set:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is missing or unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def native_bfloat16() -> tuple:
    """(whether training here computes bfloat16 natively, why): the first GPU TensorFlow sees,
    else the CPU's flags."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability") or (0, 0)
        return tuple(capability) >= (8, 0), f"GPU compute capability {capability[0]}.{capability[1]}"
    found = sorted(CPU_BFLOAT16_FLAGS & cpu_flags())
    return bool(found), (f"the CPU has {', '.join(found)}" if found else
                         "the CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag)")


def resolve_precision(precision) -> tuple:
    """(the Keras dtype policy for `precision`, why): "auto" picks mixed_bfloat16 where it is
    native (`native_bfloat16`), else float32; None is float32."""
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return POLICIES[precision], "asked for"
    native, why = native_bfloat16()
    return POLICIES["bfloat16" if native else "float32"], why
