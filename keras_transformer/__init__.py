"""keras-transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers.

Importing this package needs Keras and a backend only; TensorFlow-only parts
(`pipelines`, export) are imported where they are used. The names below are loaded on first
use, so `keras_transformer.cli` can quiet TensorFlow's start-up before Keras imports it.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {"PRESETS": "config", "TransformerConfig": "config", "preset": "config",
            "TransformerParts": "model", "build_transformer": "model"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"keras_transformer.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'keras_transformer' has no attribute {name!r}")
