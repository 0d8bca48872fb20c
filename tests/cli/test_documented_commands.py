"""Every command README.md and docs/ show runs as written.

A command is a line of a ```bash block that starts with `python -m keras_transformer` (lines that
end in a backslash continue it). Every one parses; those that read a run (translate, evaluate,
score, attention, average, positional, summary) run in the default suite on a copy of the session's
trained run standing for `runs/default` (and a tiny random Marian model imported, standing for
`runs/en-de`); `import` runs in the default suite, `train` and `export` in the slow tier on tiny
settings.
Files a command reads (sentences.txt, pairs.tsv, en.txt,es.txt ...) are made for it from the
embedded grammar; what it writes lands in a temporary folder.
"""

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, copy_run, marian_files, project_env, write_pairs
from keras_transformer.cli import main, parse_args

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PREFIXES = ("python -m keras_transformer", ".venv/bin/python -m keras_transformer",
            "python3 -m keras_transformer")
READS_A_RUN = {"translate", "evaluate", "score", "attention", "average", "positional", "summary"}
# appended to a documented `train` so that it runs in seconds (later options win in argparse)
TINY_TRAINING = ["--preset", "tiny", "--vocab-size", "200", "--epochs", "1",
                 "--steps-per-epoch", "3", "--bleu-sentences", "4", "--no-tune-alpha",
                 "--max-minutes", "1", "--examples", "0", "--mixed-precision", "float32"]


def documented_commands():
    """(document name, line number, environment, argv after `keras_transformer`) of every
    command shown."""
    found = []
    for document in DOCUMENTS:
        lines = document.read_text(encoding="utf-8").splitlines()
        fence, number = None, 0
        while number < len(lines):
            line = lines[number].strip()
            if line.startswith("```"):
                fence = None if fence is not None else line[3:].strip()
            elif fence == "bash":
                start = number
                while line.endswith("\\") and number + 1 < len(lines):
                    number += 1
                    line = line[:-1] + " " + lines[number].strip()
                command = _command(line)
                if command is not None:
                    found.append((document.name, start + 1, *command))
            number += 1
    return found


def _command(line):
    """(environment, argv after the module name) of `line`, or None when it runs no
    keras_transformer command; shell comments and a `< FILE` after it are dropped."""
    words, env = shlex.split(line, comments=True), {}
    if "<" in words:  # standard input: the tests give every command sentences.txt
        at = words.index("<")
        words = words[:at] + words[at + 2:]
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    text = " ".join(words)
    for prefix in PREFIXES:
        if text.startswith(prefix):
            return env, words[len(prefix.split()):]
    return None


COMMANDS = documented_commands()
IDS = [f"{name}:{line}" for name, line, _, _ in COMMANDS]


def test_the_documents_show_commands_of_every_kind():
    kinds = {argv[0] for _, _, _, argv in COMMANDS if argv}
    assert {"train", "translate", "evaluate", "attention", "export", "import"} <= kinds, kinds


@pytest.mark.parametrize("argv", [argv for _, _, _, argv in COMMANDS], ids=IDS)
def test_every_documented_command_parses(argv, capsys):
    if "--help" in argv:
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)
        assert exited.value.code == 0 and "usage:" in capsys.readouterr().out
        return
    assert parse_args(argv).command == argv[0]


@pytest.fixture(scope="module")
def workspace(trained_run, tmp_path_factory):
    """A folder holding `runs/default` (a copy of the session's run) and the input files the
    documents name, made from the embedded grammar."""
    from pipelines.default_data import generate_pairs

    folder = tmp_path_factory.mktemp("documented")
    copy_run(trained_run[0], folder / "runs" / "default")
    pairs = generate_pairs(400, seed=5)
    for name in ("pairs.tsv", "train.tsv", "dev.tsv", "test.tsv", "new.tsv"):
        write_pairs(folder / name, pairs)
    for source, target in (("en.txt", "es.txt"), ("train.en", "train.es"), ("dev.en", "dev.es"),
                           ("test.en", "test.es"), ("train.en", "train.ja"), ("dev.en", "dev.ja"),
                           ("test.en", "test.ja")):
        (folder / source).write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
        (folder / target).write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    (folder / "sentences.txt").write_text("The dog runs.\n\nThe red houses are big.\n",
                                          encoding="utf-8")
    # a pretrained model as `huggingface-cli download` leaves it, and its import (pretrained.md)
    from keras_transformer.pretrained import random_marian
    from keras_transformer.pretrained.marian import import_marian

    files = marian_files()
    random_marian.write_hugging_face(
        folder / "opus-mt-en-de", random_marian.random_marian_tensors(
            len(files.vocabulary), layers=1, d_model=16, d_ff=32),
        random_marian.marian_options(1, 16, 2, 32), files.vocabulary, files.source_spm,
        files.target_spm)
    import_marian(folder / "opus-mt-en-de", folder / "runs" / "en-de", max_length=16,
                  log=lambda *_: None)
    copy_run(folder / "runs" / "en-de", folder / "runs" / "en-de-tuned")
    languages = [">>por<<", ">>fra<<"]  # a multilingual one
    random_marian.write_hugging_face(
        folder / "opus-mt-en-ROMANCE", random_marian.random_marian_tensors(
            len(files.vocabulary) + 2, layers=1, d_model=16, d_ff=32),
        random_marian.marian_options(1, 16, 2, 32), files.vocabulary + languages,
        files.source_spm, files.target_spm)
    import_marian(folder / "opus-mt-en-ROMANCE", folder / "runs" / "en-romance", max_length=16,
                  target_language="por", log=lambda *_: None)
    # what deployment.md's CTranslate2 commands read (the slow tier runs its export too)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", str(folder / "runs" / "default"), "--format", "ctranslate2",
                     "--out", str(folder / "saved_models" / "en_es_ctranslate2")]) == 0
    return folder


def _run_documented(env, argv, workspace, monkeypatch):
    """Runs a documented command in `workspace`: in this process, or, when the document sets
    environment variables for it, in a child process with them."""
    if env:
        done = subprocess.run([sys.executable, "-m", "keras_transformer", *argv], cwd=workspace,
                              env=project_env(**env), capture_output=True, text=True,
                              stdin=open(workspace / "sentences.txt"), timeout=600)
        assert done.returncode == 0, (argv, done.stdout[-2000:] + done.stderr[-3000:])
        return done.stdout
    monkeypatch.chdir(workspace)
    monkeypatch.setattr("sys.stdin", open(workspace / "sentences.txt"))  # `< sentences.txt`
    try:
        assert main(argv) == 0, argv
    except SystemExit as exited:  # --help
        assert exited.code == 0, argv
    return None


def _select(kinds):
    chosen = [(i, env, argv) for i, (_, _, env, argv) in zip(IDS, COMMANDS) if argv[0] in kinds]
    return dict(argvalues=[(env, argv) for _, env, argv in chosen],
                ids=[i for i, _, _ in chosen])


@pytest.mark.parametrize("env, argv", **_select(READS_A_RUN))
def test_every_documented_command_on_a_run_runs(env, argv, workspace, monkeypatch, capsys):
    printed = _run_documented(env, argv, workspace, monkeypatch)
    assert (printed or capsys.readouterr().out).strip()  # it answered something


def _fresh_out(argv, tmp_path):
    """`argv` writing to a new folder under tmp_path instead of its documented --out."""
    argv = [str(tmp_path / Path(a).name) if i and argv[i - 1] == "--out" else a
            for i, a in enumerate(argv)]
    return argv + ([] if "--out" in argv else ["--out", str(tmp_path / "run")])


@pytest.mark.parametrize("env, argv", **_select({"import"}))
def test_every_documented_import_runs(env, argv, workspace, monkeypatch, tmp_path):
    _run_documented(env, _fresh_out(argv, tmp_path), workspace, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("env, argv", **_select({"train", "export"}))
def test_every_documented_train_and_export_runs(env, argv, workspace, monkeypatch, tmp_path):
    if argv[0] == "train":  # tiny settings after the documented ones, a fresh --out
        tiny = TINY_TRAINING
        if "--init-from" in argv:  # the model is the run's: no preset or vocabulary of ours
            tiny = [a for i, a in enumerate(tiny) if a not in ("--preset", "--vocab-size")
                    and tiny[i - 1] not in ("--preset", "--vocab-size")]
        argv = _fresh_out(argv + tiny, tmp_path)
    _run_documented(env, argv, workspace, monkeypatch)
