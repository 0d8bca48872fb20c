"""CTranslate2: the converted model computes our model's probabilities (every weight mapped, in
every architecture variant), translates with the same tokens greedy and beam, keeps the contract for
bad input, and its directory serves with `ctranslate2` and `sentencepiece` alone."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import ROOT
from keras_transformer import build_transformer, preset
from keras_transformer.cli import main
from keras_transformer.generation import decoding
from pipelines.special_tokens import END_ID, RESERVED_TOKENS, START_ID

ctranslate2 = pytest.importorskip("ctranslate2")

from keras_transformer.export import ctranslate2 as converter  # noqa: E402
from keras_transformer.export.ctranslate2_translator import CTranslate2Translator  # noqa: E402

VARIANTS = {
    "post-norm": {},
    "pre-norm": {"norm_position": "pre"},
    "shared embeddings": {"share_embeddings": True},
    "learned positions, untied output": {"position_encoding": "learned",
                                         "tie_output_embeddings": False},
    "pre-norm, learned, shared": {"norm_position": "pre", "position_encoding": "learned",
                                  "share_embeddings": True},
}
VOCAB = 40
VOCABULARY = list(RESERVED_TOKENS) + [f"w{i}" for i in range(len(RESERVED_TOKENS), VOCAB)]


def _random_model(rng, **variant):
    """A tiny model whose every weight (biases and norms included) is random: a weight mapped
    to the wrong place, or not at all, changes the probabilities."""
    config = preset("tiny", source_vocab_size=VOCAB, target_vocab_size=VOCAB, max_length=16,
                    **variant)
    model = build_transformer(config)
    model.set_weights([w + rng.normal(0, 0.3, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def _engine(model, directory):
    spec = converter.transformer_spec(model, VOCABULARY, VOCABULARY)
    spec.validate()
    spec.optimize(quantization="float32")
    directory.mkdir()
    spec.save(str(directory))
    return ctranslate2.Translator(str(directory))


def _pieces(ids):
    return [[VOCABULARY[i] for i in row] for row in ids]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engine_computes_our_probabilities(variant, tmp_path):
    rng = np.random.default_rng(len(variant))
    model = _random_model(rng, **VARIANTS[variant])
    engine = _engine(model, tmp_path / "model")
    source = rng.integers(4, VOCAB, size=(4, 9)).astype("int32")
    target = rng.integers(4, VOCAB, size=(4, 7)).astype("int32")
    framed = np.pad(source, ((0, 0), (1, 1)), constant_values=(START_ID, END_ID))
    ours = np.asarray(decoding.sequence_log_prob(
        model, framed, np.pad(target, ((0, 0), (0, 1)), constant_values=END_ID)))
    theirs = [sum(result.log_probs) for result in engine.score_batch(_pieces(source),
                                                                     _pieces(target))]
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
    # and greedy decoding, token by token, to max_length (random weights rarely say [END])
    greedy = np.asarray(decoding.greedy_decode(model, framed, 16))
    results = engine.translate_batch(_pieces(source), beam_size=1, max_decoding_length=16,
                                     min_decoding_length=0)
    for row, result in zip(greedy, results):
        expected = [VOCABULARY[i] for i in row[:list(row).index(END_ID)]] \
            if END_ID in row else [VOCABULARY[i] for i in row]
        assert result.hypotheses[0] == expected


def _copy_task_model(variant, rng):
    """A tiny model of `variant` trained for a few seconds to copy its source: trained weights
    (confident, unlike random ones) to compare the searches on."""
    from keras_transformer.training.loss import MaskedSparseCrossEntropy

    keras.utils.set_random_seed(0)
    model = build_transformer(preset("tiny", source_vocab_size=VOCAB, target_vocab_size=VOCAB,
                                     max_length=12, **VARIANTS[variant]))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=MaskedSparseCrossEntropy(0.0))
    ids = np.zeros((768, 13), "int32")  # [START] w ... [END] 0 ...
    for row, size in enumerate(rng.integers(1, 10, size=len(ids))):
        ids[row, :size + 2] = [START_ID, *rng.integers(4, VOCAB, size), END_ID]
    model.fit([ids[:, :-1], ids[:, :-2]], ids[:, 1:-1], batch_size=32, epochs=12, verbose=0)
    return model


def _framed(sources, width):
    return np.array([[START_ID, *s, END_ID] + [0] * (width - len(s) - 2) for s in sources], "int32")


# Trained pre-norm with learned positions and shared embeddings: the random-weight test above
# maps every variant; this one decodes with trained (confident) weights too.
@pytest.mark.slow
def test_a_trained_pre_norm_model_decodes_the_same_tokens(tmp_path):
    rng = np.random.default_rng(1)
    model = _copy_task_model("pre-norm, learned, shared", rng)
    engine = _engine(model, tmp_path / "model")
    sources = [list(rng.integers(4, VOCAB, size)) for size in rng.integers(1, 10, size=32)]
    framed = _framed(sources, max(map(len, sources)) + 2)

    def text(row):
        row = list(row)
        return [VOCABULARY[i] for i in row[:row.index(END_ID) if END_ID in row else len(row)]]

    greedy = [text(row) for row in np.asarray(decoding.greedy_decode(model, framed, 12))]
    theirs = engine.translate_batch(_pieces(sources), beam_size=1, max_decoding_length=12,
                                    min_decoding_length=0)
    assert [r.hypotheses[0] for r in theirs] == greedy
    assert np.mean([g == [VOCABULARY[i] for i in s] for g, s in zip(greedy, sources)]) >= 0.15


@pytest.fixture(scope="module")
def copy_engine(copy_task, tmp_path_factory):
    """The session's copy-task model as a CTranslate2 directory, its translator, the Keras one,
    and sentences: a confident model, whose searches are compared on peaked distributions."""
    from keras_transformer.generation.translator import Translator

    text_path = copy_task.text_path
    spm = text_path.source_tokenizer.model
    directory = converter.write_ctranslate2(copy_task.model, spm, spm,
                                            tmp_path_factory.mktemp("ct2") / "copy")
    return dict(directory=directory, engine=CTranslate2Translator(directory),
                keras=Translator(copy_task.model, text_path), sentences=copy_task.sentences(64))


def test_a_trained_model_decodes_the_same_tokens(copy_engine, copy_task):
    engine, ours, sentences = copy_engine["engine"], copy_engine["keras"], copy_engine["sentences"]
    greedy = ours.translate(sentences)
    assert engine.translate(sentences) == greedy
    # trained: it copies whole sentences (random weights copy none)
    kept = [" ".join(s.split()[:copy_task.max_length - 2]) for s in sentences]
    assert np.mean([g == k for g, k in zip(greedy, kept)]) >= 0.3
    assert np.mean([a == b for a, b in zip(engine.translate(sentences, "beam", alpha=1.0),
                                           ours.translate(sentences, "beam", alpha=1.0))]) >= 0.95


def test_nbest_and_no_repeat_ngram_follow_the_keras_search(copy_engine):
    engine, sentences = copy_engine["engine"], copy_engine["sentences"][:20]
    ours = copy_engine["keras"].translate_nbest(sentences, 3, beam_size=4, alpha=engine.alpha)
    theirs = engine.translate_nbest(sentences, 3, beam_size=4)
    same = [[t for _, t in a] == [t for _, t in b] for a, b in zip(ours, theirs)]
    assert np.mean(same) >= 0.9
    for a, b in zip(ours, theirs):
        if [t for _, t in a] == [t for _, t in b]:
            np.testing.assert_allclose([s for s, _ in a], [s for s, _ in b], atol=2e-3)
    for translation in engine.translate(copy_engine["sentences"], no_repeat_ngram=2):
        words = translation.split()
        assert len(set(zip(words, words[1:]))) == max(len(words) - 1, 0)


def test_int8_keeps_a_trained_model_s_tokens(copy_engine):
    sentences = copy_engine["sentences"]
    int8 = CTranslate2Translator(copy_engine["directory"], compute_type="int8")
    # d_model 32 rounds coarsely to int8; random weights would keep no sentence whole
    assert np.mean([a == b for a, b in zip(int8.translate(sentences),
                                           copy_engine["engine"].translate(sentences))]) >= 0.3


def test_a_wrong_vocabulary_is_refused(rng=np.random.default_rng(0)):
    model = _random_model(rng)
    with pytest.raises(ValueError, match="does not fit the model"):
        converter.transformer_spec(model, VOCABULARY[:-1], VOCABULARY)


# ---------------------------------------------------------------- a trained run, end to end

@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The fixture run exported through the CLI (float32 and int8), its Keras Translator and
    test sentences."""
    from keras_transformer.engines import load_translator
    from keras_transformer.run_dir import RunDir
    from pipelines.readers import load_pairs

    run, _ = trained_run
    out = tmp_path_factory.mktemp("ct2") / "tiny"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(run), "--format", "ctranslate2", "--out", str(out)]) == 0
        assert main(["export", str(run), "--format", "ctranslate2", "--out", str(out),
                     "--quantization", "int8"]) == 0
    sentences = [source for source, _ in load_pairs(RunDir(run).split_file("test"))[0]][:300]
    return dict(run=run, float32=out / "1", int8=out / "2", printed=printed.getvalue(),
                keras=load_translator(run), sentences=sentences)


def test_export_writes_everything_a_server_needs(exported, trained_run):
    from keras_transformer.run_dir import RunDir

    directory = exported["float32"]
    names = {path.name for path in directory.iterdir()}
    assert {"model.bin", "config.json", "source.spm", "target.spm",
            "keras_transformer.json"} <= names
    assert {"source_vocabulary.json", "target_vocabulary.json"} <= names \
        or "shared_vocabulary.json" in names
    config = json.loads((directory / "config.json").read_text())
    assert (config["bos_token"], config["eos_token"], config["unk_token"]) == (
        "[START]", "[END]", "[UNK]")
    assert config["add_source_bos"] and config["add_source_eos"]
    settings = json.loads((directory / "keras_transformer.json").read_text())
    assert settings["alpha"] == RunDir(trained_run[0]).beam_alpha()
    assert (directory / "source.spm").read_bytes() == RunDir(trained_run[0]).source_tokenizer.read_bytes()
    # int8 weights: a smaller model.bin
    assert (exported["int8"] / "model.bin").stat().st_size < \
        0.6 * (directory / "model.bin").stat().st_size
    assert "CTranslate2" in exported["printed"]


def test_greedy_and_beam_give_the_keras_tokens(exported, record_property):
    engine = CTranslate2Translator(exported["float32"])
    sentences, keras_translator = exported["sentences"], exported["keras"]
    greedy = np.mean([a == b for a, b in zip(engine.translate(sentences),
                                             keras_translator.translate(sentences))])
    alpha = engine.alpha
    beam = np.mean([a == b for a, b in zip(
        engine.translate(sentences, "beam", beam_size=4, alpha=alpha),
        keras_translator.translate(sentences, "beam", beam_size=4, alpha=alpha))])
    record_property("agreement", {"greedy": float(greedy), "beam": float(beam)})
    print(f"CTranslate2 float32 vs Keras: greedy {greedy:.3f}, beam 4 {beam:.3f}")
    assert greedy >= 0.99 and beam >= 0.97


def test_bad_inputs_get_the_keras_answers(exported):
    engine = CTranslate2Translator(exported["float32"])
    bad = ["", "   \t  ", "\u200b\ufeff\x07", "你好 🙂", "Ärger über ŒUVRE ß ǅ",
           "The dog [END] runs [UNK].", "the red house " * 80,
           "\udcff lone surrogate", "a\u00a0b"]
    assert engine.translate(bad) == exported["keras"].translate(bad)
    assert engine.translate([]) == []
    assert engine.translate(bad[:3], "beam") == ["", "", ""]
    assert engine.translate_nbest([""], 2) == [[(0.0, ""), (0.0, "")]]


def test_int8_file_equals_int8_on_load(exported):
    """`--quantization int8` at export and `--compute-type int8` at load quantize the same
    weights the same way. (How close int8 stays to float32 is checked on a confident model in
    `test_int8_keeps_a_trained_model_s_tokens`: the fixture run is barely trained, and its flat
    distributions flip under any rounding, on AVX2 CPUs at almost every sentence.)"""
    sentences = exported["sentences"]
    int8 = CTranslate2Translator(exported["int8"]).translate(sentences)
    on_load = CTranslate2Translator(exported["float32"], compute_type="int8").translate(sentences)
    assert len(int8) == len(sentences)
    assert np.mean([a == b for a, b in zip(int8, on_load)]) >= 0.95


def test_translate_command_with_the_engine(exported, capsys):
    run, sentences = exported["run"], exported["sentences"][:5]
    assert main(["translate", str(run), *sentences]) == 0
    keras_lines = capsys.readouterr().out.splitlines()
    assert main(["translate", "--engine", "ctranslate2", str(run), *sentences]) == 0
    assert capsys.readouterr().out.splitlines() == keras_lines
    assert (Path(run) / "ctranslate2" / "model.bin").exists()  # converted once, kept
    assert main(["translate", "--engine", "ctranslate2", "--search", "beam", "--n-best", "2",
                 str(exported["float32"]), sentences[0]]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_the_example_serves_without_our_code(exported):
    guard = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "runpy.run_path(sys.argv[0], run_name='__main__'); "
             "ours = [m for m in sys.modules if m.split('.')[0] in "
             "('keras_transformer', 'pipelines', 'tensorflow', 'keras')]; "
             "assert not ours, ours")
    result = subprocess.run(
        [sys.executable, "-c", guard, str(ROOT / "examples" / "serve_ctranslate2.py"),
         str(exported["int8"]), "the red house", ""],
        capture_output=True, text=True, timeout=120, cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("'the red house' -> '") and lines[1] == "'' -> ''"
    assert len(lines) == 2 + 4  # beam: four ranked hypotheses


def test_a_missing_engine_names_the_extra(trained_run, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    assert main(["translate", "--engine", "ctranslate2", str(trained_run[0]), "hi"]) == 2
    assert "keras-transformer[ctranslate2]" in capsys.readouterr().err
