"""Translate on device with the exported TFLite models: LiteRT and tensorflow-text's kernels.

    python -m keras_transformer export runs/default --out saved_models/en_es
    python examples/run_tflite.py saved_models/en_es/1/tflite "The dog runs."

`translate*.tflite` takes strings and returns strings; its tokenizer ops are tensorflow-text
custom ops, registered from `tensorflow_text.tflite_registrar` (on Android/iOS: link the
tensorflow-text TFLite ops library). `ids_*.tflite` uses TFLite builtin ops only: ids in
([START]=2 ... [END]=3, 0-padded), ids out; tokenize on the app side with the SentencePiece
models from the SavedModel's `assets/` (they carry the normalization rules too).
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow_text
from ai_edge_litert.interpreter import Interpreter, InterpreterWithCustomOps

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "saved_models/en_es/1/tflite")
sentences = sys.argv[2:] or ["The dog runs.", "Where is my cat?", ""]

for name in ("translate", "translate_float16", "translate_int8"):
    if not (folder / f"{name}.tflite").exists():
        continue
    interpreter = InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        model_path=str(folder / f"{name}.tflite"))
    translate = interpreter.get_signature_runner()  # sentences [B] -> translations [B]
    translations = translate(sentences=np.array(sentences, dtype=object))["translations"]
    print(name, [text.decode("utf-8") for text in translations])

ids_model = Interpreter(model_path=str(folder / "ids_float32.tflite")).get_signature_runner()
print("ids_float32", ids_model(source_ids=np.array([[2, 5, 6, 3]], np.int32))["output_ids"])
