"""The train job: the recipes behind the defaults, threads, model selection by validation BLEU,
checkpoint averaging, and beam search's alpha chosen on validation sentences."""

import csv
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import sacrebleu

from conftest import ROOT, copy_run
from keras_transformer.cli import main
from keras_transformer.generation.translator import Translator
from keras_transformer.run_dir import RunDir
from keras_transformer.training.averaging import average_run
from keras_transformer.training.job import validation_pairs
from keras_transformer.training.recipes import EMBEDDED, REAL_CORPUS
from keras_transformer.training.settings import TrainSettings


def history(run):
    with open(RunDir(run).history) as file:
        return list(csv.DictReader(file))


def progress(run):
    return json.loads(RunDir(run).progress.read_text())


def test_settings_left_out_come_from_the_datas_recipe():
    embedded = TrainSettings().resolved()
    assert (embedded.preset, embedded.epochs, embedded.vocab_size) == (
        EMBEDDED["preset"], EMBEDDED["epochs"], EMBEDDED["vocab_size"])
    assert embedded.overrides == EMBEDDED["model"]  # e.g. no dropout for the grammar
    real = TrainSettings(data="pairs.tsv", vocab_size=123, overrides={"dropout": 0.3}).resolved()
    assert (real.steps_per_epoch, real.vocab_size, real.keep_best) == (
        REAL_CORPUS["steps_per_epoch"], 123, REAL_CORPUS["keep_best"])
    assert real.overrides == {**REAL_CORPUS["model"], "dropout": 0.3}  # --set wins
    assert TrainSettings(data="x.tsv", steps_per_epoch=0).resolved().steps_per_epoch is None
    # a preset the user chose is taken as it is: no recipe model settings on top
    assert TrainSettings(preset="base").resolved().overrides == {}


THREADS_SCRIPT = r"""
import sys
import tensorflow as tf
from keras_transformer.training.job import set_intra_op_threads
assert tf.config.threading.get_intra_op_parallelism_threads() == 0
print(set_intra_op_threads(int(sys.argv[1])))
print(tf.config.threading.get_intra_op_parallelism_threads(), float(tf.reduce_sum(tf.ones(3))))
print(set_intra_op_threads(int(sys.argv[1]) + 1))  # the runtime now runs: set no more
"""


def test_intra_op_threads_come_from_the_recipe_and_are_set_before_the_first_op():
    assert TrainSettings().resolved().intra_op_threads == EMBEDDED["intra_op_threads"] == 1
    assert TrainSettings(data="x.tsv").resolved().intra_op_threads == 0  # TensorFlow's default
    assert TrainSettings(intra_op_threads=2).resolved().intra_op_threads == 2
    with pytest.raises(ValueError, match="intra_op_threads"):
        TrainSettings(intra_op_threads=-1).resolved()
    assert "intra_op_threads" not in TrainSettings().resolved().identity()  # free on resume
    result = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    first, state, later = result.stdout.strip().splitlines()
    assert (first, state) == ("threads: 1 per op", "1 3.0")
    assert "not set" in later


def test_validation_bleu_in_history_is_sacrebleu_of_the_kept_model(trained_run):
    run, _ = trained_run
    run = RunDir(run)
    settings = run.load_settings()
    assert settings["keep_best"] == "val_bleu"
    best = max(float(row["val_bleu"]) for row in history(run.path))
    model, text_path, _ = run.load_trained()
    sources, references = validation_pairs(run, settings["bleu_sentences"])
    hypotheses = Translator(model, text_path).translate(sources)
    assert sacrebleu.corpus_bleu(hypotheses, [references]).score == pytest.approx(best, abs=1e-6)
    assert all(row["val_chrf"] for row in history(run.path))


def test_averaged_weights_are_the_mean_of_the_kept_checkpoints(trained_run, tmp_path, capsys):
    run = RunDir(copy_run(trained_run[0], tmp_path / "run"))  # averaging writes averaged.keras
    kept = sorted(run.checkpoints.glob("epoch_*.weights.h5"))
    assert [path.name for path in kept] == ["epoch_0004.weights.h5", "epoch_0005.weights.h5",
                                            "epoch_0006.weights.h5"]
    model, _ = average_run(run, 3)
    probe = keras.models.load_model(run.best_model, compile=False)
    checkpoints = []
    for path in kept:
        probe.load_weights(path)
        checkpoints.append(probe.get_weights())
    for averaged, *each in zip(model.get_weights(), *checkpoints):
        np.testing.assert_allclose(averaged, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)
    loaded = keras.models.load_model(run.averaged_model, compile=False)
    for weight, expected in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(weight, expected)
    assert run.model_file == run.averaged_model  # the run's model from now on

    assert main(["average", str(run.path), "--last", "2", "--sentences", "20"]) == 0
    printed = capsys.readouterr().out
    assert "averaged 2 checkpoints (epoch_0005.weights.h5 ... epoch_0006.weights.h5)" in printed
    assert "validation (20 sentences), best: BLEU" in printed and "averaged: BLEU" in printed


class ScriptedTranslator:
    """Stands in for a Translator: each alpha's beam output (and greedy's) is given."""

    def __init__(self, outputs):
        self.outputs, self.calls = outputs, []

    def translate(self, sources, search="greedy", batch_size=64, **options):
        self.calls.append((search, options))
        return self.outputs[options.get("alpha", "greedy")]


def test_the_chosen_alpha_is_the_one_with_the_best_validation_bleu():
    from keras_transformer.training.beam_alpha import choose_alpha

    references = ["the cat sat on the mat today", "a dog ran in the park"]
    short = ["the cat sat", "a dog ran"]
    outputs = {0.6: short, 1.0: references, 1.5: references, 2.0: ["the"] * 2, "greedy": short}
    choice = choose_alpha(ScriptedTranslator(outputs), ["s1", "s2"], references)
    assert choice["alpha"] == 1.0  # 1.0 and 1.5 tie at 100: the smaller one
    assert choice["validation_bleu"]["1.0"] == pytest.approx(100.0)
    assert choice["validation_bleu"]["0.6"] == pytest.approx(
        sacrebleu.corpus_bleu(short, [references]).score, abs=1e-3)
    assert choice["greedy_validation_bleu"] == choice["validation_bleu"]["0.6"]


def test_beam_search_defaults_to_the_alpha_train_chose(trained_run, tmp_path, capsys,
                                                         monkeypatch):
    run = RunDir(copy_run(trained_run[0], tmp_path / "run"))  # its decoding.json is rewritten
    stored = json.loads(run.decoding_file.read_text())
    bleu = {float(alpha): score for alpha, score in stored["validation_bleu"].items()}
    assert stored["alpha"] == max(bleu, key=lambda alpha: (bleu[alpha], -alpha))
    assert trained_run[1]["beam_alpha"] == stored["alpha"] == run.beam_alpha()
    # the stored BLEU is sacrebleu of that beam search on those validation sentences
    model, text_path, _ = run.load_trained()
    translator = Translator(model, text_path)
    sources, references = validation_pairs(run, stored["sentences"])
    beam = translator.translate(sources, "beam", beam_size=stored["beam_size"],
                                alpha=stored["alpha"])
    assert sacrebleu.corpus_bleu(beam, [references], force=True).score == pytest.approx(
        bleu[stored["alpha"]], abs=1e-3)

    # the CLI's default alpha is the stored one: a different stored value changes what it passes
    sentences = sources[:8]
    expected = {alpha: translator.translate(sentences, "beam", beam_size=stored["beam_size"],
                                            alpha=alpha) for alpha in (0.0, 5.0)}
    assert len(translator._traced) == 1  # alpha is an input of one traced beam search
    assert expected[0.0] != expected[5.0]  # the fixture model's lengths depend on alpha
    for alpha in (0.0, 5.0):
        run.decoding_file.write_text(json.dumps({**stored, "alpha": alpha}))
        assert main(["translate", str(run.path), *sentences, "--search", "beam"]) == 0
        assert capsys.readouterr().out.splitlines() == expected[alpha]
    from keras_transformer.export import writer as export

    exported = {}
    monkeypatch.setattr(export, "export", lambda *args, **options: exported.update(options))
    export.export_run(run.path, tmp_path / "exported", tflite=())
    assert exported["alpha"] == 5.0
    export.export_run(run.path, tmp_path / "exported", tflite=(), alpha=0.3)
    assert exported["alpha"] == 0.3  # --alpha wins
