"""keras-transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers.

Importing this package needs Keras and a backend only; TensorFlow-only parts
(`pipelines`, export) are imported where they are used.
"""

from keras_transformer.config import PRESETS, TransformerConfig, preset
from keras_transformer.model import TransformerParts, build_transformer

__version__ = "0.1.0"
