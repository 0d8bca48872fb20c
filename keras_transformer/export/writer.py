"""`export`: one new version OUT/N/ with the SavedModels and TFLite files (see the package
docstring for the layout, the signatures and the answers to bad input)."""

import json
import shutil
import tempfile
from pathlib import Path

from keras_transformer.export import saved_model, versions
from keras_transformer.export.artifacts import DEFAULT_TFLITE, Artifact, ExportError, ExportResult
from keras_transformer.export.serving import TranslationModule
from keras_transformer.export.tflite import check_variants, write_tflite
from keras_transformer.generation import defaults
from keras_transformer.run_dir import RunDir

__all__ = ["export", "export_run", "export_saved_model", "export_tflite"]

IDS_SAVED_MODEL = "translate_ids"
TFLITE_FOLDER = "tflite"
MANIFEST = "export.json"


def export(model, text_path, directory, *, version=None, jit_compile=False,
           beam_size=defaults.BEAM_SIZE, alpha=defaults.ALPHA, tflite=DEFAULT_TFLITE,
           metadata=None) -> ExportResult:
    """Writes a new version of the SavedModel under `directory`, with the core-TensorFlow
    `translate_ids/` SavedModel and the TFLite files `tflite` (names of TFLITE_VARIANTS; default
    DEFAULT_TFLITE, the greedy ones; () for none) inside it. See this package's docstring for the layout and signatures.

    `text_path` is the model's `TextPath` (tokenizers and max_length). Sources longer than
    max_length tokens are truncated to their first max_length - 2 tokens (plus [START] and
    [END]); outputs stop after max_length tokens.

    Args:
        version: the version number; default the next one. An existing version is an
            ExportError: versions are never overwritten.
        jit_compile: XLA-compile decoding in the SavedModel (not in TFLite).
        metadata: more entries for export.json.
    Returns:
        ExportResult: the version folder and every artifact with its size and extra ops.
    """
    base = Path(directory)
    versions.check_version(base, version)
    check_variants(tflite)
    check_size(model)
    module = TranslationModule(model, text_path, beam_size, alpha, jit_compile)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=base))  # non-numeric: unserved
    try:
        saved_model.save(module, staging, module.signatures(), text_path)
        ids_module = module.ids_module()
        ids_function = ids_module.translate_ids.get_concrete_function()
        saved_model.save(ids_module, staging / IDS_SAVED_MODEL,
                         {"serving_default": ids_function, "translate_ids": ids_function},
                         text_path)
        signature_ops = saved_model.extra_ops(staging)
        artifacts = [Artifact(path, "saved_model", saved_model.saved_model_size(path),
                              tuple(sorted(set().union(*ops.values()))))
                     for path, ops in ((staging, signature_ops),
                                       (staging / IDS_SAVED_MODEL,
                                        {"translate_ids": signature_ops["translate_ids"]}))]
        artifacts += write_tflite(module, staging / TFLITE_FOLDER, tflite)
        manifest = {
            "max_length": module.max_length, "beam_size": module.beam_size,
            "alpha": module.alpha, "jit_compile": module.jit_compile,
            "source_vocab_size": text_path.source_tokenizer.vocab_size,
            "target_vocab_size": text_path.target_tokenizer.vocab_size,
            "signatures": {key: {"extra_ops": list(ops)} for key, ops in signature_ops.items()},
            "artifacts": {str(a.path.relative_to(staging)) or ".":
                          {"kind": a.kind, "bytes": a.size, "extra_ops": list(a.extra_ops)}
                          for a in artifacts},
            **(metadata or {})}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        version_dir = versions.publish(staging, base, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(version_dir, [
        Artifact(version_dir / a.path.relative_to(staging), a.kind, a.size, a.extra_ops)
        for a in artifacts])


# A SavedModel's graph is one protocol buffer, which cannot pass 2 GiB; its frozen decoders hold
# the float32 weights as constants twice (greedy and beam search).
PROTOBUF_LIMIT = 2 ** 31
FROZEN_COPIES = 2


def check_size(model):
    """ExportError, before anything is traced, where the frozen SavedModel would pass the 2 GiB
    protocol-buffer limit (the `big` preset with a large vocabulary does)."""
    frozen = FROZEN_COPIES * 4 * model.count_params()
    if frozen >= 0.95 * PROTOBUF_LIMIT:
        raise ExportError(
            f"the model has {model.count_params():,} parameters: its frozen greedy and beam "
            f"decoders would hold {frozen / 2 ** 30:.2f} GiB of float32 constants, past the 2 GiB "
            "limit of a SavedModel's graph. Export it with --format ctranslate2, or train a "
            "smaller model (a smaller vocabulary or preset)")


def export_saved_model(model, text_path, directory, jit_compile=False, **options) -> Path:
    """The SavedModels only (no TFLite), as a new version under `directory`; returns the
    version folder. `options`: version, beam_size, alpha, metadata (see `export`)."""
    return export(model, text_path, directory, jit_compile=jit_compile, tflite=(),
                  **options).version_dir


def export_tflite(model, text_path, directory, variants=DEFAULT_TFLITE) -> list:
    """The TFLite files `variants` (TFLITE_VARIANTS names) written to `directory` as
    VARIANT.tflite, unversioned; returns their Artifacts."""
    check_variants(variants)
    return write_tflite(TranslationModule(model, text_path), directory, variants)


def export_run(run_dir, out, **options) -> ExportResult:
    """Exports the model of a trained run directory as a new version under `out`.

    `options` as for `export`; the text path (tokenizers, max_length) is the run's, and so is
    the beam search alpha when `alpha` is left out or None (`RunDir.beam_alpha`).
    """
    versions.check_version(Path(out), options.get("version"))  # before the slow part
    check_variants(options.get("tflite", ()))
    run = RunDir(run_dir)
    model, text_path, _ = run.load_trained()
    if options.get("alpha") is None:
        options["alpha"] = run.beam_alpha()
    metadata = {"run_dir": str(Path(run_dir).resolve()), **options.pop("metadata", {})}
    return export(model, text_path, out, metadata=metadata, **options)
