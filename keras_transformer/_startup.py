"""A quiet start for Keras and its backend.

TensorFlow prints C++ start-up lines when it loads (CPU features, CUDA probing, and on a machine
without a GPU "failed call to cuInit: ... CUDA error"). None is a failure, but each looks like
one. Keras loads its backend when it is imported, so the package imports Keras (and, on the
TensorFlow backend, finds the devices and loads tensorflow-text) with the standard error stream
closed. Python warnings and exceptions after that show as usual. TensorFlow's later C++ messages
follow TF_CPP_MIN_LOG_LEVEL, 3 here unless set: at the first step on a CPU without AVX-512 it logs
"E0000 ... oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back to ..." at error
severity, though nothing failed (a real failure is raised as an exception). Set it to 0 to see all.
"""

import os
import sys


def quiet_backend_start():
    """Imports Keras, its backend and tensorflow-text with stderr closed (once per process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
