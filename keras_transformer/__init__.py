"""keras-transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers.

Importing this package needs Keras and a backend only; TensorFlow-only parts
(`pipelines`, export) are imported where they are used. Importing it registers every layer
of the model, so `keras.models.load_model` reads a saved model afterwards.
"""

from keras_transformer._startup import quiet_backend_start

quiet_backend_start()

from keras_transformer.config import PRESETS, TransformerConfig, preset  # noqa: E402
from keras_transformer.model import Transformer, TransformerParts, build_transformer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["PRESETS", "Transformer", "TransformerConfig", "TransformerParts", "build_transformer",
           "preset"]
