"""The command line: train (resume, incompatible runs), translate, evaluate, attention."""

import argparse
import csv
import io
import subprocess
import sys

import numpy as np
import pytest
import sacrebleu

from conftest import ROOT, TRAINED_RUN, project_env, tiny_settings
from keras_transformer.cli import main, parse_args
from keras_transformer.cli.options import parse_overrides
from keras_transformer.run_dir import IncompatibleRunError, RunDir
from keras_transformer.training.job import train


def _run(*command, env=None):
    """A child Python process with the project importable; stdout and stderr together."""
    return subprocess.Popen([sys.executable, *map(str, command)], cwd=ROOT, env=env or project_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cli(*args, env=None):
    return _run("-m", "keras_transformer", *args, env=env)


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
    assert report["epochs"] == 6 and report["test_bleu"] > 1.0  # it learned some of the grammar


def test_finished_run_is_not_trained_again(trained_run):
    run, _ = trained_run
    lines = []
    train(the_same_settings(run), run, examples=0, verbose=0, log=lines.append)
    assert any("already finished 6 epochs" in line for line in lines)
    assert _epochs_in_history(run) == list(range(6))


def the_same_settings(run, **changes):
    """The settings the fixture run was trained with (as its settings.json records them)."""
    recorded = RunDir(run).load_settings()
    return tiny_settings(recorded["data"], **TRAINED_RUN, validation_data=recorded["validation_data"],
                         test_data=recorded["test_data"], **changes)


def test_incompatible_run_directory_is_refused(trained_run, tmp_path):
    run, _ = trained_run
    with pytest.raises(IncompatibleRunError, match="preset: 'tiny' there, 'small' now"):
        train(the_same_settings(run, preset="small"), run, verbose=0)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(IncompatibleRunError, match="not empty"):
        train(the_same_settings(run), stranger, verbose=0)


def test_translate_evaluate_and_attention(trained_run, tmp_path, capsys):
    from keras_transformer.engines import load_translator

    run, _ = trained_run
    sentences = ["The dog is big.", "My sisters ate bread."]
    assert main(["translate", str(run), *sentences]) == 0
    translations = capsys.readouterr().out.split("\n")[:-1]
    assert translations == load_translator(run).translate(sentences)
    assert translations[0] != translations[1]  # the fixture model tells sentences apart

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
    layers = RunDir(run).load_config().num_layers
    assert main(["attention", str(run), "The red houses are big.", "--layer", str(layers)]) == 2
    assert f"--layer {layers}: the model has {layers} layer" in capsys.readouterr().err
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


@pytest.mark.slow  # each search's batch independence is checked on the copy task in test_decoding
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


def test_translate_gives_one_line_per_input_line_whatever_the_bytes(trained_run, tmp_path, capsys,
                                                                    monkeypatch):
    run, _ = trained_run
    lines = [b"The dog is big.", b"caf\xe9 \xff broken", b"", b"  ", b"The cat\xc2\xa0sleeps.\r",
             b"\xef\xbb\xbfThe end.", b"a\x0bvertical tab and a form\x0cfeed"]
    sentences = tmp_path / "in.txt"
    sentences.write_bytes(b"\n".join(lines) + b"\n")
    outputs = []
    assert main(["translate", str(run), "--file", str(sentences)]) == 0
    outputs.append(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(sentences.read_bytes())))
    assert main(["translate", str(run), "--file", "-"]) == 0
    outputs.append(capsys.readouterr().out)
    for output in outputs:
        translations = output.split("\n")[:-1]
        assert len(translations) == len(lines), output
        assert translations[2] == translations[3] == ""  # empty in, empty out
    assert outputs[0] == outputs[1]


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


@pytest.mark.slow  # its own data, tokenizers and training in a fresh process
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
