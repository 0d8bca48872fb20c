"""Which engine translates a run: ours (`generation.translator.Translator`) or CTranslate2
(`export.ctranslate2_translator.CTranslate2Translator`). It sits above both, so neither imports
the other."""

from pathlib import Path

from keras_transformer.run_dir import RunDir

ENGINES = ("keras", "ctranslate2")


def load_translator(run_dir, jit_compile=False, engine="keras", compute_type="default",
                    target_language=None):
    """The Translator of a trained run directory (its model and tokenizers).

    engine: "keras" (a `Translator`), or "ctranslate2": a `CTranslate2Translator` over the run's
    CTranslate2 directory (converted from its model on first use, `RunDir.ctranslate2_model`),
    or over `run_dir` itself when it is a directory written by `export --format ctranslate2`;
    `compute_type` is the engine's (int8 quantizes when loading). `target_language`: a
    multilingual model's language (default: the run's, chosen at import).
    """
    if engine == "ctranslate2":
        from keras_transformer.export.ctranslate2 import run_engine_directory
        from keras_transformer.export.ctranslate2_translator import (
            ENGINE_FILE,
            CTranslate2Translator,
        )

        directory = Path(run_dir)
        if not (directory / ENGINE_FILE).exists():
            directory = run_engine_directory(run_dir)
        return CTranslate2Translator(directory, compute_type=compute_type,
                                     target_language=target_language)
    if engine != "keras":
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    from keras_transformer.generation.translator import Translator

    model, text_path, _ = RunDir(run_dir).load_trained(target_language=target_language)
    return Translator(model, text_path, jit_compile=jit_compile)
