"""A time budget (also over resumed sessions), and a run trained in bfloat16 translating in float32."""

import csv
import json
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import sacrebleu

from conftest import ROOT, project_env, quiet, tiny_settings
from keras_transformer.generation.translator import Translator
from keras_transformer.run_dir import RunDir
from keras_transformer.training.job import train, validation_pairs


def history(run):
    with open(RunDir(run).history) as file:
        return list(csv.DictReader(file))


def progress(run):
    return json.loads(RunDir(run).progress.read_text())


@pytest.fixture(scope="module")
def budgeted_bfloat16_run(small_tsv, held_out, tmp_path_factory):
    """(settings, run directory, report) of a run trained in bfloat16 to a 12-second budget."""
    # one block: tracing (on the budget's clock) takes half as long, so more of it trains
    settings = tiny_settings(small_tsv, epochs=100, steps_per_epoch=40, max_minutes=0.2,
                             bleu_sentences=20, mixed_precision="bfloat16",
                             overrides={"max_length": 64, "num_layers": 1}, **held_out)
    run = tmp_path_factory.mktemp("budgeted") / "run"
    return settings, run, train(settings, run, examples=0, verbose=0, log=quiet)


def test_time_budget_stops_within_one_step_and_the_run_reports(budgeted_bfloat16_run):
    settings, run, report = budgeted_bfloat16_run
    spent = progress(run)
    assert report["budget_spent"] and spent["budget_spent"] and spent["budget_seconds"] == 0.2 * 60
    overshoot = spent["stopped_at_seconds"] - spent["budget_seconds"]
    last = spent["last_step_seconds"] if spent["stopped_after"] == "step" else spent["last_validation_seconds"]
    # it stopped at the end of the step that crossed (a step counted from the previous check:
    # its batch's fetch and the callbacks included); an epoch-end stop would overshoot by seconds
    assert 0 <= overshoot <= last + 0.05, spent
    assert 1 <= len(history(run)) < 100
    assert "test_bleu" in report and RunDir(run).best_model.exists()
    lines = []  # a finished budgeted run only reports
    train(settings, run, examples=0, verbose=0, log=lines.append)
    assert any("already finished" in line for line in lines)


@pytest.mark.slow  # two processes and a minute of budget
def test_a_resumed_budgeted_run_keeps_the_same_total_budget(small_tsv, tmp_path):
    run = tmp_path / "budgeted"
    budget_minutes = 1.0
    args = [sys.executable, "-m", "keras_transformer", "train", "--data", str(small_tsv), "--preset", "tiny",
            "--vocab-size", "300", "--epochs", "1000", "--steps-per-epoch", "40", "--bleu-sentences", "20",
            "--max-minutes", str(budget_minutes), "--set", "max_length=64", "--out", str(run), "--examples", "0"]
    env = project_env()
    first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (RunDir(run).history.exists() and len(history(run)) >= 1):
        assert first.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    used_before = progress(run)["train_seconds"]
    assert 0 < used_before < 60 * budget_minutes

    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    this_session = float(re.search(r"trained in (\d+) s", done.stdout).group(1))
    spent = progress(run)
    assert spent["budget_spent"]
    assert spent["stopped_at_seconds"] - 60 * budget_minutes < 5  # the same total budget ...
    assert this_session < 60 * budget_minutes - 0.5 * used_before  # ... of which this session had the rest


def test_a_mixed_precision_run_translates_in_float32(budgeted_bfloat16_run):
    run = RunDir(budgeted_bfloat16_run[1])
    keras.config.set_dtype_policy("mixed_bfloat16")  # whatever the caller's policy is
    trained = keras.models.load_model(run.best_model, compile=False)
    assert trained.compute_dtype == "bfloat16"
    model, text_path, _ = run.load_trained()
    assert model.compute_dtype == "float32" and keras.config.dtype_policy().name == "mixed_bfloat16"
    assert all(layer.compute_dtype == "float32" for layer in model._flatten_layers())
    for loaded, saved in zip(model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(loaded, saved)
    # the validation BLEU that chose it was computed in float32 too
    sources, references = validation_pairs(run, 20)
    hypotheses = Translator(model, text_path).translate(sources)
    # keep_best val_bleu: the kept model is the first epoch with the best val_bleu
    logged = max(history(run.path), key=lambda row: float(row["val_bleu"]))
    # a 12-second budget on a loaded machine may leave BLEU at 0; chrF still scores the
    # characters it gets right, so the equalities below compare a nonzero score
    assert float(logged["val_chrf"]) > 0
    assert sacrebleu.corpus_bleu(hypotheses, [references]).score == pytest.approx(
        float(logged["val_bleu"]), abs=1e-6)
    assert sacrebleu.corpus_chrf(hypotheses, [references]).score == pytest.approx(
        float(logged["val_chrf"]), abs=1e-6)
