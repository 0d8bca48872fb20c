"""The run directory: the only code that knows the names of the files a training run writes.

    RUN_DIR/
      config.json           the model's TransformerConfig
      settings.json         the training settings that must match to resume the run
      status.json           epochs finished once training completed
      source.spm            SentencePiece models (vocabulary and normalization rules)
      target.spm
      source.vocab.json     an imported model's vocabularies (pieces id by id), when its ids are
      target.vocab.json     not the SentencePiece models' (`keras_transformer.pretrained`)
      pretrained.json       what an imported run was imported from
      data/{train,validation,test}.tsv   the splits the run used, cleaned
      best.keras            the kept model: best validation BLEU (or loss, --keep-best val_loss)
      averaged.keras        the mean of the last checkpoints (--average-last N, `average`)
      checkpoints/          the last N epochs' weights (--keep-checkpoints N)
      decoding.json         beam search's alpha, chosen on validation sentences (--tune-alpha)
      backup/               BackupAndRestore state while training runs
      progress.json         training time used, and whether the --max-minutes budget is spent
      history.csv           one row per epoch: losses, accuracy, val_bleu, val_chrf
      logs/                 TensorBoard
      hypotheses.txt        written by `evaluate`
      ctranslate2/          the model converted for CTranslate2 (`--engine ctranslate2`), float32
"""

import csv
import io
import json
import os
import uuid
from pathlib import Path

from keras_transformer.config import TransformerConfig
from keras_transformer.generation import defaults

SPLITS = ("train", "validation", "test")


def write_atomically(path, text):
    """Writes `text` to `path` whole or not at all: a crash mid-write leaves the old file."""
    path = Path(path)
    # a name of its own: two processes writing the same file never share a partial one
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class IncompatibleRunError(ValueError):
    """The output directory holds a run made with other settings."""


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    config_file = property(lambda self: self.path / "config.json")
    settings_file = property(lambda self: self.path / "settings.json")
    status_file = property(lambda self: self.path / "status.json")
    source_tokenizer = property(lambda self: self.path / "source.spm")
    target_tokenizer = property(lambda self: self.path / "target.spm")
    source_vocabulary = property(lambda self: self.path / "source.vocab.json")
    target_vocabulary = property(lambda self: self.path / "target.vocab.json")
    pretrained_file = property(lambda self: self.path / "pretrained.json")
    best_model = property(lambda self: self.path / "best.keras")
    averaged_model = property(lambda self: self.path / "averaged.keras")
    checkpoints = property(lambda self: self.path / "checkpoints")
    decoding_file = property(lambda self: self.path / "decoding.json")
    progress = property(lambda self: self.path / "progress.json")
    backup = property(lambda self: self.path / "backup")
    history = property(lambda self: self.path / "history.csv")
    logs = property(lambda self: self.path / "logs")
    hypotheses = property(lambda self: self.path / "hypotheses.txt")
    ctranslate2_model = property(lambda self: self.path / "ctranslate2")
    data = property(lambda self: self.path / "data")

    @property
    def model_file(self):
        """The run's model, what translate, evaluate and export use: the averaged checkpoints when
        the run has them (--average-last, or the `average` command), else the kept best model."""
        return self.averaged_model if self.averaged_model.exists() else self.best_model

    def beam_alpha(self) -> float:
        """Beam search's length penalty exponent for this run: the one the train job chose on
        validation sentences (decoding.json), else the default (`defaults.ALPHA`)."""
        if self.decoding_file.exists():
            return float(json.loads(self.decoding_file.read_text())["alpha"])
        return defaults.ALPHA

    def split_file(self, split):
        return self.data / f"{split}.tsv"

    def exists(self):
        return self.settings_file.exists()

    def create(self):
        self.path.mkdir(parents=True, exist_ok=True)

    def require_trained(self):
        """Raise a clear error unless this directory holds a trained model."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such run directory")
        if not self.best_model.exists():
            raise FileNotFoundError(
                f"{self.path} holds no trained model ({self.best_model.name} is missing); "
                "train one with `python -m keras_transformer train --out "
                f"{self.path}`")

    def load_trained(self, model_file=None, target_language=None):
        """(model, text_path, config) of the run's model (`model_file`, default `self.model_file`):
        inference only, no optimizer, in float32 (`load_model`). `target_language`: for a
        multilingual imported model, the language to translate into (default: the one chosen at
        import)."""
        from pipelines.text_path import TextPath

        self.require_trained()
        for path in (self.config_file, self.source_tokenizer, self.target_tokenizer):
            if not path.exists():
                raise FileNotFoundError(f"{self.path} is incomplete: {path.name} is missing (a run "
                                        "of an older version of this package: train it again)")
        config = self.load_config()
        model = self.load_model(model_file)
        source, target = self.load_tokenizers()
        text_path = TextPath(source, target, config.max_length, config.source_start_token,
                             self.language_token_id(source, target_language))
        return model, text_path, config

    def languages(self) -> dict:
        """A multilingual imported model's {"language_tokens": [">>xxx<<", ...],
        "target_language": its default}; {} for any other run."""
        if not self.pretrained_file.exists():
            return {}
        pretrained = json.loads(self.pretrained_file.read_text())
        if not pretrained.get("language_tokens"):
            return {}
        return {key: pretrained[key] for key in ("language_tokens", "target_language")}

    def language_token_id(self, source_tokenizer, target_language=None):
        """The source id of a multilingual model's `>>xxx<<` target-language token (None for a
        model that has none); ValueError naming the languages it knows for another."""
        languages = self.languages()
        known = languages.get("language_tokens", [])
        target_language = target_language or languages.get("target_language")
        if not known:
            if target_language:
                raise ValueError(f"{self.path} translates into one language only: leave out "
                                 "--target-language")
            return None
        token = f">>{target_language}<<"
        if token not in known:
            raise ValueError(f"this model translates into {len(known)} languages: choose one "
                             f"with --target-language ({', '.join(t[2:-2] for t in known)}); "
                             f"got {target_language!r}")
        return source_tokenizer.token_to_id(token)

    def load_tokenizers(self):
        """(source, target) `SentencePieceTokenizer`s, with their vocabularies where the run
        has them (an imported model)."""
        from pipelines.tokenizers import SentencePieceTokenizer

        return (SentencePieceTokenizer.load(self.source_tokenizer, self.source_vocabulary),
                SentencePieceTokenizer.load(self.target_tokenizer, self.target_vocabulary))

    def vocabularies(self):
        """(source, target) pieces id by id of an imported model, or None: a run trained here
        takes its ids from its SentencePiece models."""
        if not self.source_vocabulary.exists():
            return None
        return tuple(json.loads(path.read_text(encoding="utf-8"))
                     for path in (self.source_vocabulary, self.target_vocabulary))

    def load_model(self, model_file=None):
        """A model file of this run (default `model_file`), uncompiled, computing in float32
        whatever precision it trained in (`model.float32_copy`)."""
        import keras

        from keras_transformer.model import float32_copy

        return float32_copy(keras.models.load_model(model_file or self.model_file, compile=False))

    def save_config(self, config: TransformerConfig):
        write_atomically(self.config_file, config.to_json())

    def load_config(self) -> TransformerConfig:
        return TransformerConfig.from_json(self.config_file.read_text())

    def save_settings(self, settings: dict):
        write_atomically(self.settings_file, json.dumps(settings, indent=2, sort_keys=True))

    def load_settings(self) -> dict:
        return json.loads(self.settings_file.read_text())

    def check_compatible(self, settings: dict):
        """Raise IncompatibleRunError if the directory holds a run with other settings."""
        if not self.exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise IncompatibleRunError(
                    f"{self.path} is not empty and holds no run of ours; "
                    "choose another --out")
            return
        previous = self.load_settings()
        differences = {key: (previous.get(key), settings.get(key))
                       for key in sorted(set(previous) | set(settings))
                       if previous.get(key) != settings.get(key)}
        if differences:
            listed = ", ".join(f"{key}: {old!r} there, {new!r} now"
                               for key, (old, new) in differences.items())
            raise IncompatibleRunError(
                f"{self.path} holds a run with other settings ({listed}); use another "
                "--out, or the same options to resume it")

    def history_rows(self) -> list:
        """history.csv's rows (dicts of strings), epoch by epoch; none if it is missing. A row
        that is not whole (a file another program wrote to and left torn) is skipped."""
        if not self.history.exists():
            return []
        with open(self.history, newline="") as file:
            rows = list(csv.DictReader(file))
        return [row for row in rows if None not in row.values() and None not in row]

    def write_history(self, rows):
        """history.csv, whole or not at all: rows (dicts) in epoch order, the columns of all."""
        columns = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomically(self.history, text.getvalue())

    def finished_epochs(self) -> int:
        """Epochs of a completed training, 0 while none completed."""
        if not self.status_file.exists():
            return 0
        return json.loads(self.status_file.read_text())["epochs"]

    def mark_finished(self, epochs: int):
        write_atomically(self.status_file, json.dumps({"epochs": epochs}))
