"""The command line: train (resume, incompatible runs), translate, evaluate, attention."""

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from conftest import tiny_settings
from keras_transformer.cli import main, parse_args
from keras_transformer.cli.options import parse_overrides
from keras_transformer.run_dir import IncompatibleRunError, RunDir
from keras_transformer.training.job import train

ROOT = Path(__file__).resolve().parents[1]


def _run(*command):
    """A child Python process with the project importable; stdout and stderr together."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, *map(str, command)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cli(*args):
    return _run("-m", "keras_transformer", *args)


def _epochs_in_history(run):
    with open(RunDir(run).history) as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_run_directory_holds_what_it_promises(trained_run):
    run, report = trained_run
    run = RunDir(run)
    for path in (run.config_file, run.source_tokenizer, run.target_tokenizer, run.best_model,
                 run.history, run.split_file("test")):
        assert path.exists(), path
    assert any(run.logs.rglob("events.out.tfevents*"))
    assert not run.backup.exists()  # removed once training completed
    assert _epochs_in_history(run.path) == list(range(6))
    assert 0.0 <= report["exact_match"] <= 1.0


def test_finished_run_is_not_trained_again(trained_run):
    run, _ = trained_run
    lines = []
    train(tiny_settings(tiny_small_tsv(run)), run, examples=0, verbose=0, log=lines.append)
    assert any("already finished 6 epochs" in line for line in lines)
    assert _epochs_in_history(run) == list(range(6))


def tiny_small_tsv(run):
    return RunDir(run).load_settings()["data"]


def test_incompatible_run_directory_is_refused(trained_run, tmp_path):
    run, _ = trained_run
    with pytest.raises(IncompatibleRunError, match="preset: 'tiny' there, 'small' now"):
        train(tiny_settings(tiny_small_tsv(run), preset="small"), run, verbose=0)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(IncompatibleRunError, match="not empty"):
        train(tiny_settings(tiny_small_tsv(run)), stranger, verbose=0)


def test_killed_training_resumes_where_it_stopped(small_tsv, tmp_path):
    run = tmp_path / "resumed"
    args = ["train", "--data", small_tsv, "--preset", "tiny", "--vocab-size", 300,
            "--batch-tokens", 1024, "--warmup-steps", 50, "--epochs", 4, "--out", run,
            "--examples", 0, "--steps-per-epoch", 0, "--bleu-sentences", 50]
    first = _cli(*args)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it as soon as two epochs are done
        if RunDir(run).history.exists() and len(_epochs_in_history(run)) >= 2:
            break
        if first.poll() is not None:
            pytest.fail("training ended before it could be interrupted:\n" + first.stdout.read())
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before_kill = len(_epochs_in_history(run))
    assert 2 <= done_before_kill < 4

    second = _cli(*args)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert f"Epoch {done_before_kill + 1}/4" in output
    assert "Epoch 1/4" not in output  # resumed, not restarted
    assert _epochs_in_history(run) == [0, 1, 2, 3]
    assert "exact match" in output


def test_translate_evaluate_and_attention(trained_run, tmp_path, capsys):
    run, _ = trained_run
    assert main(["translate", str(run), "The dog is big.", "My sisters ate bread."]) == 0
    translations = capsys.readouterr().out.split("\n")[:-1]
    assert len(translations) == 2 and all(translations)  # the fixture model says something

    hypotheses = tmp_path / "hyp.txt"
    assert main(["evaluate", str(run), "--hypotheses", str(hypotheses)]) == 0
    printed = capsys.readouterr().out
    references = [line.split("\t")[1].rstrip("\n") for line in
                  RunDir(run).split_file("test").read_text(encoding="utf-8").splitlines()]
    written = hypotheses.read_text(encoding="utf-8").splitlines()
    assert len(written) == len(references)
    expected = sacrebleu.corpus_bleu(written, [references]).score
    assert f"BLEU {expected:.1f}" in printed
    assert f"chrF {sacrebleu.corpus_chrf(written, [references]).score:.1f}" in printed

    picture = tmp_path / "attention.png"
    assert main(["attention", str(run), "The red houses are big.", "--out", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "attention.html"
    assert main(["attention", str(run), "The red houses are big.", "--kind", "masked",
                 "--layer", "all", "--html", str(page)]) == 0
    assert "<svg" in page.read_text(encoding="utf-8")
    assert not (ROOT / "attention.png").exists()  # --html alone writes no figure
    assert main(["attention", str(run), "The red houses are big.", "--layer", "2"]) == 2
    assert "the model has 2 layers" in capsys.readouterr().err
    assert main(["positional", "--out", str(tmp_path / "pe.png")]) == 0
    assert (tmp_path / "pe.png").stat().st_size > 1000


def test_attention_comes_from_the_translation(trained_run):
    from keras_transformer.engines import load_translator

    translator = load_translator(trained_run[0])
    sentence = "The red houses are big."
    maps = translator.attention(sentence)
    ids = np.asarray(translator.translate_ids(translator.source_ids([sentence])))[0]
    steps = len(maps.output_tokens)
    assert maps.output_tokens == [translator.target_tokenizer.id_to_token(int(i))
                                  for i in ids[:steps]]
    assert maps.source_tokens[0] == "[START]" and maps.source_tokens[-1] == "[END]"
    layers, heads = translator.parts.num_layers, translator.parts.num_heads
    assert maps.masked.shape == (layers, heads, steps, steps)
    assert maps.cross.shape == (layers, heads, steps, len(maps.source_tokens))
    assert np.all(np.triu(maps.masked, k=1) == 0.0)
    np.testing.assert_allclose(maps.masked.sum(-1), 1.0, atol=1e-5)


def test_beam_and_sampling_from_the_command_line(trained_run, capsys):
    run, _ = trained_run
    assert main(["translate", str(run), "The dog is big.", "--search", "beam",
                 "--beam-size", "3"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["translate", str(run), "The dog is big.", "--search", "sample", "--top-k",
                 "1"]) == 0
    sampled = capsys.readouterr().out
    assert main(["translate", str(run), "The dog is big."]) == 0
    assert capsys.readouterr().out == sampled  # top-k 1 is greedy


def test_translations_do_not_depend_on_the_batch(trained_run):
    """The default batch (64 hypotheses' worth: 16 sentences with beam 4) translates as batches
    of 1 and of every sentence at once do; the sources differ in length, so padding differs."""
    from keras_transformer.engines import load_translator
    from keras_transformer.generation.translator import sentences_per_batch
    from pipelines.readers import load_pairs

    run, _ = trained_run
    translator = load_translator(run)
    sources = [source for source, _ in load_pairs(RunDir(run).split_file("test"))[0][:20]]
    assert sentences_per_batch(None, "beam", 4) == 16 and sentences_per_batch(None, "greedy") == 64
    for search, options in (("greedy", {}), ("beam", {"beam_size": 4, "alpha": 1.0})):
        default = translator.translate(sources, search, **options)
        assert translator.translate(sources, search, batch_size=1, **options) == default
        assert translator.translate(sources, search, batch_size=len(sources), **options) == default
    nbest = translator.translate_nbest(sources[:6], 2, alpha=1.0)
    assert [[text for _, text in pair] for pair in nbest] == [
        [text for _, text in pair] for pair in translator.translate_nbest(sources[:6], 2, batch_size=6,
                                                                          alpha=1.0)]
    with pytest.raises(ValueError, match="at least 1"):
        translator.translate(sources, batch_size=0)


def test_translate_gives_one_line_per_input_line_whatever_the_bytes(trained_run, tmp_path):
    run, _ = trained_run
    lines = [b"The dog is big.", b"caf\xe9 \xff broken", b"", b"  ", b"The cat\xc2\xa0sleeps.\r",
             b"\xef\xbb\xbfThe end.", b"a\x0bvertical tab and a form\x0cfeed"]
    sentences = tmp_path / "in.txt"
    sentences.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_transformer", "translate", str(run), "--file"]
    outputs = [subprocess.run(command + [str(sentences)], capture_output=True, env=env, cwd=ROOT, timeout=300),
               subprocess.run(command + ["-"], input=sentences.read_bytes(), capture_output=True, env=env,
                              cwd=ROOT, timeout=300)]
    for done in outputs:
        assert done.returncode == 0, done.stderr[-3000:]
        translations = done.stdout.decode("utf-8").split("\n")[:-1]
        assert len(translations) == len(lines), done.stdout
        assert translations[2] == translations[3] == ""  # empty in, empty out
    assert outputs[0].stdout == outputs[1].stdout


def test_clear_errors(tmp_path, capsys):
    assert main(["translate", str(tmp_path / "nothing"), "hello"]) == 2
    assert "no such run directory" in capsys.readouterr().err
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        parse_overrides(["layers=3"])
    with pytest.raises(SystemExit):
        parse_args(["train", "--set", "layers=3"])
    assert "KEY one of" in capsys.readouterr().err
    assert parse_overrides(["num_layers=3", "norm_position=pre"]) == {
        "num_layers": 3, "norm_position": "pre"}


def test_model_fit_example_runs(tmp_path):
    example = _run(ROOT / "examples" / "train_with_fit.py", "--epochs", 1,
                          "--train-size", 300, "--preset", "tiny", "--out",
                          tmp_path / "model.keras")
    output, _ = example.communicate(timeout=600)
    assert example.returncode == 0, output[-3000:]
    assert (tmp_path / "model.keras").exists()
    assert output.count("reference:") == 5


def test_translator_loads_in_a_fresh_process_and_answers_empty_input(trained_run, tmp_path):
    run, _ = trained_run
    script = tmp_path / "user.py"  # a user's script: nothing of ours imported beforehand
    script.write_text(
        "import sys\n"
        "from keras_transformer.engines import load_translator\n"
        "translator = load_translator(sys.argv[1])\n"
        "print(repr(translator.translate(['', '   ', 'The dog is big.'])))\n")
    process = _run(script, run)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    answers = eval(output.strip().splitlines()[-1])
    assert answers[:2] == ["", ""] and len(answers) == 3
