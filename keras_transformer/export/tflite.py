"""TFLite: converting the serving module's functions, checking that they run, and reading the ops a
.tflite file needs."""

from pathlib import Path

import tensorflow as tf

from keras_transformer.export.artifacts import (TFLITE_VARIANTS, Artifact, ExportError,
                                                takes_strings)
from pipelines.tokenizers import END_ID, START_ID, UNK_ID


def check_variants(variants):
    unknown = [variant for variant in variants if variant not in TFLITE_VARIANTS]
    if unknown:
        raise ExportError(f"unknown TFLite variant(s) {', '.join(map(str, unknown))}; "
                          f"choose from {', '.join(TFLITE_VARIANTS)}")


def convert_tflite(module, variant) -> bytes:
    """One of TFLITE_VARIANTS of a TranslationModule, as a .tflite flatbuffer."""
    check_variants([variant])
    kind, quantization = TFLITE_VARIANTS[variant]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.tflite_function(kind).get_concrete_function()], module)
    if takes_strings(variant):
        converter.allow_custom_ops = True  # tensorflow-text ops become TFLite custom ops
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
    return converter.convert()


def check_runs(content, variant):
    """Runs one batch through the converted model: a custom op without a kernel in
    tensorflow-text's registrar (e.g. StringLower of a lower-casing tokenizer) fails here,
    at export, rather than on the phone."""
    try:
        runner = tflite_interpreter(model_content=content).get_signature_runner()
        if takes_strings(variant):
            runner(sentences=tf.constant(["a b", ""]).numpy())
        else:
            runner(source_ids=tf.constant([[START_ID, UNK_ID, END_ID]]).numpy())
    except ImportError:
        return  # no LiteRT here: nothing to check with
    except Exception as error:  # noqa: BLE001 - any failure means an unusable file
        raise ExportError(f"{variant}.tflite converts but does not run with LiteRT and "
                          f"tensorflow-text's custom ops: {error}") from error


def write_tflite(module, folder, variants, check=True):
    folder = Path(folder)
    artifacts = []
    for variant in variants:
        folder.mkdir(parents=True, exist_ok=True)
        content = convert_tflite(module, variant)
        if check:
            check_runs(content, variant)
        path = folder / f"{variant}.tflite"
        path.write_bytes(content)
        artifacts.append(Artifact(path, "tflite", len(content), tflite_ops(content)["custom"]))
    return artifacts


def tflite_ops(model_content) -> dict:
    """The operators a .tflite flatbuffer uses, read from its op codes:
    {"builtin": names, "custom": names} (Flex ops are custom ops named Flex*)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_content), 0))
    names = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    builtin, custom = set(), set()
    for code in model.operatorCodes:
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        if number == schema.BuiltinOperator.CUSTOM:
            name = code.customCode
            custom.add(name.decode() if isinstance(name, bytes) else name)
        else:
            builtin.add(names.get(number, str(number)))
    return {"builtin": tuple(sorted(builtin)), "custom": tuple(sorted(custom))}


def tflite_interpreter(model_path=None, model_content=None, num_threads=None):
    """A LiteRT interpreter with tensorflow-text's custom op kernels registered (`num_threads`:
    LiteRT's default when None)."""
    import tensorflow_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    return InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        model_path=None if model_path is None else str(model_path),
        model_content=model_content, num_threads=num_threads)
