"""The Keras backend and the machine: which stack, which devices, the dtype policy, waiting for
results, and the reference matmul the model's FLOP/s are compared with.

Written with `keras.ops` where it can be, so the scripts also run with `KERAS_BACKEND=jax` on a
machine without TensorFlow (the GPU machines); the few backend-specific pieces branch on
`keras.backend.backend()`.
"""

import keras
import numpy as np
from keras import ops

from common import process
from keras_transformer.training.precision import POLICIES


def backend():
    return keras.backend.backend()


def machine_line():
    """One line naming the stack and the hardware the figures come from."""
    parts = [f"keras {keras.__version__} ({backend()})"]
    if backend() == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        parts.append(f"tensorflow {tf.__version__}")
        parts.append(f"{len(gpus)} GPU" if gpus else "no GPU")
    elif backend() == "jax":
        import jax
        parts.append(f"jax {jax.__version__}, devices {[d.device_kind for d in jax.devices()]}")
    return "; ".join(parts + [process.host_line()])


def has_gpu():
    if backend() == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend() == "jax":
        import jax
        return jax.devices()[0].platform == "gpu"
    return False


def set_precision(mixed_precision):
    """None / 'bfloat16' / 'float16' -> the global dtype policy; returns its name."""
    name = POLICIES[mixed_precision or "float32"]
    keras.mixed_precision.set_global_policy(name)
    return name


def sync(value):
    """Block until `value` (a tensor or nested structure) is computed."""
    for leaf in keras.tree.flatten(value):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
        elif hasattr(leaf, "numpy"):
            leaf.numpy()
    return value


def make_matmul(size, dtype="float32", seed=0):
    """A jit-compiled (size, size) @ (size, size) of random operands (never zeros) on the
    current backend -> (run, FLOPs of one product). run(count=1) dispatches `count` products
    back to back and waits for them all."""
    rng = np.random.default_rng(seed)
    a = ops.cast(ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)
    b = ops.cast(ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)
    if backend() == "tensorflow":
        import tensorflow as tf
        compiled = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
    elif backend() == "jax":
        import jax
        compiled = jax.jit(lambda x, y: x @ y)
    else:
        compiled = ops.matmul

    def run(count=1):
        sync([compiled(a, b) for _ in range(count)])

    return run, 2 * size ** 3
