"""Target prefixes: a translation that starts with given words and continues them, in every search,
on both engines and from the command line."""

import numpy as np
import pytest

from keras_transformer.cli import main
from keras_transformer.generation import decoding
from keras_transformer.generation.translator import Translator
from keras_transformer.run_dir import RunDir
from pipelines.special_tokens import END_ID, PAD_ID, START_ID


def _prefix(rows, length, max_length):
    """(B, max_length) int32 with `rows` (lists of ids) at the start, 0-padded."""
    prefix = np.zeros((len(rows), max_length), "int32")
    for i, row in enumerate(rows):
        prefix[i, :len(row)] = row[:length]
    return prefix


def test_greedy_continues_the_prefix_as_the_model_would_with_it_forced(copy_task):
    """Checked against the whole model run on [START] prefix ... step by step (no cache): the
    prefix is not what the model would say (other words), and each row has its own length."""
    rng = np.random.default_rng(5)
    source = copy_task.source_ids(rng, 3, 6)
    words = copy_task.word_ids
    rows = [[words[0], words[1]], [words[2]], []]
    prefix = _prefix(rows, 2, copy_task.max_length)
    output = np.asarray(decoding.greedy_decode(copy_task.model, source, copy_task.max_length,
                                               prefix=prefix))
    for i, row in enumerate(rows):
        target = [START_ID, *row]
        while len(target) <= copy_task.max_length and target[-1] != END_ID:
            logits = np.array(copy_task.model([source[i:i + 1], np.array([target], "int32")]))
            logits[0, -1, [PAD_ID, START_ID]] = -np.inf
            target.append(int(logits[0, -1].argmax()))
        expected = target[1:copy_task.max_length + 1]
        assert list(output[i, :len(expected)]) == expected
        assert list(output[i, :len(row)]) == row


def test_an_empty_prefix_changes_nothing(copy_task):
    """Greedy and beam search (sampling shares greedy's loop)."""
    rng = np.random.default_rng(6)
    source = copy_task.source_ids(rng, 4, 5)
    empty = np.zeros((4, copy_task.max_length), "int32")
    model, length = copy_task.model, copy_task.max_length
    np.testing.assert_array_equal(decoding.greedy_decode(model, source, length, prefix=empty),
                                  decoding.greedy_decode(model, source, length))
    for a, b in zip(decoding.beam_search(model, source, length, beam_size=2, prefix=empty),
                    decoding.beam_search(model, source, length, beam_size=2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_every_beam_hypothesis_starts_with_the_prefix_and_is_scored_whole(copy_task):
    """All K hypotheses start with the prefix; each one's log-probability is the model's of the
    whole output, prefix included (what `score` gives it)."""
    rng = np.random.default_rng(7)
    source = copy_task.source_ids(rng, 2, 5)
    words = copy_task.word_ids
    rows = [[words[3], words[4], words[5]], [words[6]]]
    prefix = _prefix(rows, 3, copy_task.max_length)
    tokens, _, log_probs = (np.asarray(x) for x in decoding.beam_search(
        copy_task.model, source, copy_task.max_length, beam_size=3, prefix=prefix))
    for i, row in enumerate(rows):
        for k in range(3):
            assert list(tokens[i, k, :len(row)]) == row
        best = [t for t in tokens[i, 0] if t != PAD_ID]
        target = np.array([[START_ID, *best]], "int32")
        forced = np.asarray(decoding.target_log_probs(copy_task.model, source[i:i + 1], target))
        assert forced.sum() == pytest.approx(log_probs[i, 0], abs=1e-3)


def test_translations_start_with_the_prefix_text(copy_task):
    translator = Translator(copy_task.model, copy_task.text_path)
    sentences = ["casa perro sol luna", "mar río", "", "día año"]
    prefixes = ["luna luna", "", "casa", "día " * 40]  # other words, none, a wordless source, too long
    out = translator.translate(sentences, prefixes=prefixes)
    assert out[0].startswith("luna luna")
    assert out[1] == translator.translate(["mar río"])[0]
    assert out[2] == ""  # a source with no piece is translated as "", prefix or not
    long = out[3].split()  # the prefix cut at max_length - 1 pieces, then at most one more
    assert long[:copy_task.max_length - 1] == ["día"] * (copy_task.max_length - 1)
    assert len(long) <= copy_task.max_length
    beam = translator.translate(sentences, "beam", prefixes=prefixes, beam_size=3)
    assert beam[0].startswith("luna luna") and beam[2] == ""
    with pytest.raises(ValueError, match="4 sentences but 1 prefixes"):
        translator.translate(sentences, prefixes=["x"])


def test_ctranslate2_continues_prefixes_as_our_engine(trained_run):
    pytest.importorskip("ctranslate2")
    from keras_transformer.engines import load_translator

    ours, theirs = (load_translator(trained_run[0], engine=engine)
                    for engine in ("keras", "ctranslate2"))
    sentences = ["The dog runs.", "The red houses are big.", "Did my sister eat the bread?",
                 "The cats see the teacher.", ""]
    prefixes = ["El gato", "", "Los", "La profesora no", "El"]
    for search, options in (("greedy", {}), ("beam", {"beam_size": 3, "alpha": 0.6})):
        assert theirs.translate(sentences, search, prefixes=prefixes, **options) == \
            ours.translate(sentences, search, prefixes=prefixes, **options)


def test_translate_prefix_from_the_command_line(trained_run, capsys):
    run = str(RunDir(trained_run[0]).path)
    sentences = ["The dog runs.", "The red houses are big."]
    model, text_path, _ = RunDir(run).load_trained()
    expected = Translator(model, text_path).translate(sentences, prefixes=["El gato"] * 2)
    assert main(["translate", run, *sentences, "--prefix", "El gato"]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    assert all(line.startswith("El gato") for line in expected)
    assert main(["translate", run, *sentences, "--prefix", "El", "--search", "beam",
                 "--n-best", "2"]) == 2
    assert "--prefix" in capsys.readouterr().err
