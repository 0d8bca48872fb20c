"""Scoring given translations (forced decoding): the teacher-forced log-probabilities of the model,
the ranking beam search uses, CTranslate2's score_batch, and `score`'s one line per input line."""

import numpy as np
import pytest

from keras_transformer.cli import main
from keras_transformer.generation import decoding
from keras_transformer.generation.scoring import UNSCORED_LINE, PairScore
from keras_transformer.generation.translator import Translator
from keras_transformer.run_dir import RunDir
from pipelines.readers import load_pairs
from pipelines.special_tokens import END_ID, PAD_ID, START_ID


@pytest.fixture(scope="module")
def scored(trained_run):
    """(translator, held-out pairs, their scores) of the fixture run."""
    run = RunDir(trained_run[0])
    model, text_path, _ = run.load_trained()
    translator = Translator(model, text_path)
    pairs = load_pairs(run.split_file("test"))[0] + load_pairs(run.split_file("validation"))[0]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    return translator, sources, targets, translator.score(sources, targets, alpha=0.6)


def test_scores_are_the_teacher_forced_log_probabilities_of_the_model(scored):
    """Recomputed here in NumPy from the model's logits: log-softmax over every token but
    [PAD] and [START] (which no search generates), summed over the target's tokens after
    [START], [END] included."""
    translator, sources, targets, scores = scored
    source = np.asarray(translator.source_ids(sources))
    target = np.asarray(translator.text_path.target_ids(np.array(targets, dtype=object)))
    logits = np.asarray(translator.model([source, target[:, :-1]]), "float64")
    logits[..., [PAD_ID, START_ID]] = -np.inf
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                keepdims=True)) - logits.max(-1, keepdims=True)
    for row, score in enumerate(scores):
        tokens = [t for t in target[row, 1:] if t != PAD_ID]
        assert tokens[-1] == END_ID and score.tokens == len(tokens)
        expected = sum(log_probs[row, t, token] for t, token in enumerate(tokens))
        assert score.log_prob == pytest.approx(expected, abs=1e-3, rel=1e-4)
        assert score.normalized == pytest.approx(expected / ((5 + len(tokens)) / 6) ** 0.6,
                                                 abs=1e-3, rel=1e-4)
        assert score.per_token == pytest.approx(expected / len(tokens), abs=1e-3, rel=1e-4)


def test_a_reference_outscores_a_shuffled_target(scored):
    """The use: a corpus filter. The held-out reference is more likely than another pair's
    target for nearly every pair (per token, so length does not decide)."""
    translator, sources, targets, scores = scored
    shuffled = targets[7:] + targets[:7]
    wrong = translator.score(sources, shuffled)
    better = sum(right.per_token > other.per_token for right, other in zip(scores, wrong))
    assert better >= 0.9 * len(sources), (better, len(sources))


def test_beam_search_hypotheses_score_as_beam_search_scored_them(scored):
    """Scoring beam search's own output gives the log-probability beam search summed for it
    (the hypotheses whose text tokenizes back to the same pieces)."""
    translator, sources, _, _ = scored
    source = translator.source_ids(sources)
    tokens, _, log_probs = decoding.beam_search(translator.parts, source, translator.max_length,
                                                beam_size=3)
    texts = [text.decode() for text in translator.text_path.translations(
        np.asarray(tokens)[:, 0]).numpy()]
    again = np.asarray(translator.text_path.target_ids(np.array(texts, dtype=object)))[:, 1:]
    compared = 0
    for row, score in enumerate(translator.score(sources, texts)):
        ids = [t for t in np.asarray(tokens)[row, 0] if t != PAD_ID]
        if ids != [t for t in again[row] if t != PAD_ID] or ids[-1] != END_ID:
            continue  # detokenized text that retokenizes otherwise, or cut at max_length
        compared += 1
        assert score.log_prob == pytest.approx(float(np.asarray(log_probs)[row, 0]), abs=2e-3)
    assert compared >= len(sources) // 2


def test_batching_and_order_change_no_score(scored):
    translator, sources, targets, scores = scored
    one_by_one = translator.score(sources[:5], targets[:5], batch_size=1)
    for a, b in zip(one_by_one, scores[:5]):
        assert a.log_prob == pytest.approx(b.log_prob, abs=1e-4) and a.tokens == b.tokens


def test_any_text_gets_a_score(scored):
    """Empty sides, undecodable characters, a target longer than max_length: each a finite
    score; an empty target scores [END] alone; a long one is cut at max_length - 1 pieces."""
    translator = scored[0]
    long = " ".join(["perro"] * 200)
    odd = ["", "The dog runs.", "\udcff dog", "The dog runs.", long]
    targets = ["El perro corre.", "", "El perro", long, "El perro corre."]
    scores = translator.score(odd, targets)
    assert all(np.isfinite(s.log_prob) and s.log_prob < 0 for s in scores)
    assert scores[1].tokens == 1  # [END]
    assert scores[3].tokens == translator.max_length
    assert translator.score([], []) == []
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        translator.score(["a", "b"], ["c"])


def test_ctranslate2_scores_as_our_engine(scored, trained_run):
    """`--engine ctranslate2` answers with the engine's own score_batch: the same scores."""
    pytest.importorskip("ctranslate2")
    from keras_transformer.engines import load_translator

    translator, sources, targets, scores = scored
    engine = load_translator(trained_run[0], engine="ctranslate2")
    theirs = engine.score(sources + ["", "The dog runs."], targets + ["El perro corre.", ""],
                          alpha=0.6)
    ours = scores + translator.score(["", "The dog runs."], ["El perro corre.", ""], alpha=0.6)
    for a, b in zip(ours, theirs):
        assert a.tokens == b.tokens
        assert a.log_prob == pytest.approx(b.log_prob, abs=2e-3, rel=1e-3)
        assert a.normalized == pytest.approx(b.normalized, abs=2e-3, rel=1e-3)


def test_score_prints_a_line_per_input_line(trained_run, tmp_path, capsys):
    run = RunDir(trained_run[0])
    pairs = load_pairs(run.split_file("test"))[0][:3]
    data = tmp_path / "pairs.tsv"
    lines = [f"{s}\t{t}" for s, t in pairs]
    lines.insert(1, "a line without a tab")
    lines.append("only a source\t")
    data.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe\tEl perro.\n")
    assert main(["score", str(run.path), "--data", str(data)]) == 0
    out, err = capsys.readouterr()
    printed = out.splitlines()
    assert len(printed) == len(lines) + 1
    assert printed[1] == UNSCORED_LINE and f"{data}:2: no tab" in err
    model, text_path, _ = run.load_trained()
    expected = Translator(model, text_path).score(
        [s for s, _ in pairs] + ["only a source", "\ufffd\ufffd"], [t for _, t in pairs] + ["", "El perro."],
        alpha=run.beam_alpha())
    assert [printed[i] for i in (0, 2, 3, 4, 5)] == [score.line() for score in expected]
    # aligned files of different lengths: refused before anything is printed
    source, target = tmp_path / "s.txt", tmp_path / "t.txt"
    source.write_text("a\nb\n")
    target.write_text("c\n")
    assert main(["score", str(run.path), "--data", f"{source},{target}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "differ in length" in err


def test_pair_score_line_and_normalization():
    score = PairScore.of([-1.0, -0.5, -0.25], alpha=1.0)
    assert (score.log_prob, score.tokens) == (-1.75, 3)
    assert score.normalized == pytest.approx(-1.75 / (8 / 6))
    assert score.line() == "-1.7500\t3\t-0.5833\t-1.3125"
