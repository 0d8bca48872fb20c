"""What every section of the GPU suite runs on: the time budget, the device's facts, lowering
and concurrent XLA compiles, the jitted Keras train step with its own state, and timed rounds
that fit in the budget. JAX backend only."""

import concurrent.futures
import time
import traceback

import keras

from common.memory import jax_peak_bytes
from common.timing import interleaved

GIB = 1024 ** 3
DATASHEET_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0),
                         ("A100", 312.0))


def log(message):
    print(message, flush=True)


def gib(value):
    return None if value is None else value / GIB


class Budget:
    """Seconds for the whole run, counted from its start."""

    def __init__(self, seconds):
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self):
        return time.perf_counter() - self.start

    def left(self):
        return self.seconds - self.elapsed()


def device_facts(peak_tflops=None):
    """The first device: platform, kind, datasheet dense bf16 peak (`peak_tflops`, else from
    the device name), JAX's memory limit, the versions."""
    import jax
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", str(device))
    peak = peak_tflops
    if peak is None and device.platform == "gpu":
        peak = next((tflops for name, tflops in DATASHEET_BF16_TFLOPS
                     if name.lower() in kind.lower()), None)
    stats = {}
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001  (CPU devices may have none)
        pass
    return dict(platform=device.platform, kind=kind, peak_tflops=peak,
                memory_limit_gib=gib(stats.get("bytes_limit")), jax=jax.__version__,
                keras=keras.__version__)


def peak_memory_gib():
    """The device's peak memory in use so far (GiB), or None."""
    return gib(jax_peak_bytes())


# ---------------------------------------------------------------------------------------------
# Lowering and concurrent compiles


def lower(lowered, errors, name, function, *example):
    """Trace `function` (a jax.jit object) on example arguments into `lowered[name]` as
    (jax Lowered, seconds); failures go to `errors`."""
    start = time.perf_counter()
    try:
        lowered[name] = (function.lower(*example), time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001
        errors[name] = f"lowering failed: {error!r}"[:300]
        traceback.print_exc()


def compile_all(lowered, threads):
    """{name: (jax Lowered, lower seconds)} -> {name: (Compiled or None, seconds, error)}, the
    XLA compiles run concurrently in `threads` threads (seconds overlap)."""
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
    """FLOPs by XLA's cost analysis (it leaves out library matmuls), or None."""
    try:
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return float(cost.get("flops")) if cost and cost.get("flops") else None
    except Exception:  # noqa: BLE001
        return None


def stateless_jit(function, model):
    """jax.jit of `function(source)` with the model's variables as arguments (not constants
    baked into the executable): returns (jitted(values, source), values)."""
    import jax
    variables = list(model.variables)

    def wrapped(values, source):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(source)

    return jax.jit(wrapped), [v.value for v in variables]


# ---------------------------------------------------------------------------------------------
# Training


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
        """`count` steps dispatched back to back (each step's state feeds the next), waited
        for at the end, or after each with `wait_each`; returns the last step's logs."""
        import jax
        logs = None
        for _ in range(count):
            logs, self.state = self.compiled(self.state, self.batches[self.i % len(self.batches)])
            self.i += 1
            if wait_each:
                jax.block_until_ready(logs)
        jax.block_until_ready((logs, self.state))
        return logs


def timed_rounds(runners, most, budget, reserve):
    """Interleaved samples of `runners`: one round, then as many more as fit in what the
    budget has left less `reserve` seconds, 2 to `most` rounds in all. Returns (samples,
    rounds)."""
    start = time.perf_counter()
    samples = interleaved(runners, 1)
    per_round = time.perf_counter() - start
    rounds = max(2, min(most, int((budget.left() - reserve) / max(per_round, 1e-3)) + 1))
    more = interleaved(runners, rounds - 1)
    for key in samples:  # the rotation restarts: fine, the order still varies
        samples[key] += more[key]
    return samples, rounds
