"""`Translator`: text in, text out, in float32 whatever precision the model was built in."""

import keras
import numpy as np

from keras_transformer import build_transformer
from keras_transformer.generation.translator import Translator


def test_a_mixed_precision_model_translates_in_float32(copy_task):
    """A model built under mixed precision in this process (as the train job builds one) decodes
    with float32 arithmetic and a float32 cache, and the export serves it in float32."""
    from keras_transformer.export.serving import TranslationModule

    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = build_transformer(copy_task.model.transformer_config)
    keras.config.set_dtype_policy("float32")
    mixed.set_weights(copy_task.model.get_weights())
    assert mixed.compute_dtype == "bfloat16"
    translator = Translator(mixed, copy_task.text_path)
    assert translator.parts.compute_dtype == "float32"
    assert translator.parts.empty_cache(1, 4)[0][0].dtype == "float32"
    sentences = copy_task.sentences(24)
    expected = Translator(copy_task.model, copy_task.text_path).translate(sentences)
    assert translator.translate(sentences) == expected
    module = TranslationModule(mixed, copy_task.text_path)
    texts = module.translate(np.array(sentences, dtype=object))["translations"].numpy()
    assert [text.decode() for text in texts] == expected
