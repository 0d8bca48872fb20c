"""A quiet start for Keras and its backend.

TensorFlow prints C++ start-up lines when it loads (CPU features, CUDA probing, and on a machine
without a GPU "failed call to cuInit: ... CUDA error"). None is a failure, but each looks like
one. Keras loads its backend when it is imported, so the package imports Keras (and, on the
TensorFlow backend, finds the devices and loads tensorflow-text) with the standard error stream
closed. Messages after that, and any exception, show as usual; TF_CPP_MIN_LOG_LEVEL (default 2
here: errors only) still decides which C++ messages TensorFlow prints later.
"""

import os
import sys


def quiet_backend_start():
    """Imports Keras, its backend and tensorflow-text with stderr closed (once per process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            try:
                import tensorflow_text  # noqa: F401  (its libraries log when they load, too)
            except ImportError:
                pass
            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
