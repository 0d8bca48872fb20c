"""Export: a versioned SavedModel for serving and TFLite models for mobile, string in, string out.

    OUT/                          TensorFlow Serving's --model_base_path
      1/                          version 1: SavedModel (TensorFlow + tensorflow-text ops)
        saved_model.pb
        assets/                   source.spm, target.spm (SentencePiece models)
        translate_ids/            SavedModel of the ids signature alone: core TensorFlow ops
        tflite/
          translate.tflite            strings -> strings (tensorflow-text custom ops)
          translate_float16.tflite    the same, float16 weights
          translate_int8.tflite       the same, dynamic-range int8 weights
          ids_float32.tflite          ids -> ids, TFLite builtins only
          ids_float16.tflite
          ids_int8.tflite
        export.json               max_length, beam settings, sizes, the ops each file needs
      2/                          the next export; a version is never overwritten

A version is written to a hidden folder under OUT and renamed into place when complete, so a
server polling OUT never loads half an export (TensorFlow Serving skips non-numeric folders,
and the extra files inside a version).

The package, by job (one room per format, each writer beside its runtime):
    writer.py                 `export` (all of the TensorFlow formats into OUT/N/), `export_run`
    serving.py                the serving graph: TranslationModule, its signatures (serving_default,
                              beam_search, translate_ids) and the frozen decoders they call
    saved_model.py            saving with the SentencePiece models as assets; the ops a graph needs
    tflite.py                 TFLite variants: conversion, a check that each runs, the ops a file needs
    ctranslate2.py            the CTranslate2 model directory (`export --format ctranslate2`)
    ctranslate2_translator.py its runtime: the `Translator` contract on CTranslate2 (no TensorFlow)
    versions.py, artifacts.py the next version number, the atomic publish; what was written
A SavedModel is loaded whole, so the tensorflow-text ops of the string signatures are needed
even to call `translate_ids` (TensorFlow Serving links them; a plain TensorFlow process must
`import tensorflow_text`). `translate_ids/` holds that signature alone (also as
serving_default) for a runtime without tensorflow-text.

Strings go through the model's `TextPath` (normalize, tokenize, frame; detokenize), the same as
in training and in `Translator`. Every signature and .tflite file gives a defined answer, never an
error, for:
    - "" or whitespace only, or only characters normalization drops (no piece between [START]
      and [END]): "" (output ids all 0);
    - a sentence longer than `max_length` tokens: truncated to its first max_length - 2
      pieces between [START] and [END], as in training; outputs stop after `max_length` tokens;
    - characters the vocabulary lacks: each is an [UNK] piece;
    - invalid UTF-8: each invalid byte reads as U+FFFD, an [UNK] piece (in the SavedModel and
      in TFLite alike: SentencePiece's normalizer does it, no repair op is needed);
    - ids outside the vocabulary (translate_ids): read as [UNK]; columns beyond
      max_length are dropped;
    - an empty batch: an empty batch.

The decoders are frozen (variables folded into constants by `convert_variables_to_constants_v2`)
before anything is saved or converted: TFLite cannot run a while loop whose body reads Keras
variables, and a frozen `translate_ids` lets the stock `tf.lite.TFLiteConverter.from_saved_model(
path, signature_keys=["translate_ids"])` make a working model. The SavedModel thus holds its
weights as graph constants, once for greedy and once for beam search (about twice the float32
weights; fine below the 2 GB protobuf limit, i.e. up to ~200M parameters).

Imports neither training nor the CLI. The TensorFlow formats import TensorFlow, CTranslate2's do
not: this package imports nothing until a name is asked for (`from keras_transformer.export import
export_run` loads writer.py).
"""

import importlib

# name -> the module that defines it, imported on first use
_PUBLIC = {"export": "writer", "export_run": "writer", "export_saved_model": "writer",
           "export_tflite": "writer", "TranslationModule": "serving",
           "TFLITE_VARIANTS": "artifacts", "DEFAULT_TFLITE": "artifacts",
           "convert_tflite": "tflite", "tflite_interpreter": "tflite", "tflite_ops": "tflite",
           "next_version": "versions", "Artifact": "artifacts", "ExportError": "artifacts",
           "ExportResult": "artifacts"}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
