"""Real text: a TSV with the characters real corpora carry is prepared without hand cleaning,
given validation/test sets are used as given, and raw Japanese (no spaces) is tokenized with few
unknown pieces and trains.

The train job's data and vocabulary phase (`training.job.set_up`) is what these check; the
whole job on a real corpus is slow-marked.
"""

import numpy as np
import pytest

from conftest import CORPORA, needs_corpora, quiet, tiny_settings
from keras_transformer.run_dir import RunDir
from keras_transformer.training.job import set_up, train
from pipelines.default_data import generate_pairs
from pipelines.readers import load_pairs
from pipelines.tokenizers import UNK_ID, SentencePieceTokenizer

ODD = ["\u00a0", "\u200b", "\ufeff", "\x07"]  # no-break space, zero-width space, BOM, a control character
TANAKA = CORPORA / "tanaka-en-ja"


def quick(data, **changes):
    return tiny_settings(data, **{"epochs": 1, "steps_per_epoch": 15, "bleu_sentences": 10,
                                  **changes})


def test_a_tsv_with_odd_characters_and_a_bad_line_is_cleaned_and_reported(tmp_path):
    pairs = generate_pairs(1500, seed=61)
    lines = []
    for i, (source, target) in enumerate(pairs):
        odd = ODD[i % len(ODD)]
        lines.append(f"{source.replace(' ', odd, 1)}\t{target.replace(' ', odd, 1)}\n".encode())
    lines[7] = b"El ni\xf1o\tThe boy\n"  # Latin-1
    data = tmp_path / "odd.tsv"
    data.write_bytes(b"".join(lines))
    logged = []
    job = set_up(quick(data), tmp_path / "run", log=logged.append)
    assert f"  {data}:8: not valid UTF-8 (byte 0xf1 at offset 5 of the line)" in logged
    assert any("kept 1499 of 1500 lines, skipped 1 (1 not valid UTF-8)" in line for line in logged)
    assert sum(job.sizes.values()) == 1499
    # the odd characters were normalized away: no [UNK] on the training text
    source = SentencePieceTokenizer.load(RunDir(tmp_path / "run").source_tokenizer)
    sample = [line.decode().split("\t")[0] for line in lines[:100] if line != lines[7]]
    assert UNK_ID not in source.tokenize(sample).flat_values.numpy()
    assert source.tokenize(["The\u00a0dog"]).to_list() == source.tokenize(["The dog"]).to_list()
    assert source.tokenize(["The\u200bdog\ufeff"]).to_list() == source.tokenize(["Thedog"]).to_list()


def test_given_validation_and_test_sets_are_the_runs_splits(tmp_path):
    pairs = generate_pairs(1700, seed=62)
    paths = {}
    for name, chunk in (("train", pairs[:1500]), ("dev", pairs[1500:1600]), ("test", pairs[1600:])):
        paths[name] = tmp_path / f"{name}.tsv"
        paths[name].write_text("".join(f"{s}\t{t}\n" for s, t in chunk), encoding="utf-8")
    run = RunDir(tmp_path / "run")
    set_up(quick(paths["train"], validation_data=str(paths["dev"]), test_data=str(paths["test"])),
           run.path, log=quiet)
    assert run.split_file("test").read_bytes() == paths["test"].read_bytes()
    assert run.split_file("validation").read_bytes() == paths["dev"].read_bytes()
    assert load_pairs(run.split_file("train"))[0] == pairs[:1500]  # not split


def tanaka(**changes):
    return quick(f"{TANAKA}/train.en,{TANAKA}/train.ja", validation_data=f"{TANAKA}/val.en,{TANAKA}/val.ja",
                 test_data=f"{TANAKA}/test.en,{TANAKA}/test.ja", vocab_size=4000, **changes)


def japanese_unknown_rate(run):
    target = SentencePieceTokenizer.load(RunDir(run).target_tokenizer)
    japanese = [text for _, text in load_pairs(f"{TANAKA}/test.en,{TANAKA}/test.ja")[0]]
    return target.vocab_size, np.mean(target.tokenize(japanese).flat_values.numpy() == UNK_ID)


@needs_corpora
def test_raw_japanese_is_tokenized_with_few_unknown_pieces(tmp_path):
    set_up(tanaka(vocab_sample=5000), tmp_path / "run", log=quiet)
    size, unknown = japanese_unknown_rate(tmp_path / "run")
    assert abs(size - 4000) <= 40 and unknown < 0.01


@needs_corpora
@pytest.mark.slow
def test_raw_japanese_trains_with_few_unknown_pieces(tmp_path):
    report = train(tanaka(vocab_sample=20000), tmp_path / "run", examples=0, verbose=0, log=quiet)
    size, unknown = japanese_unknown_rate(tmp_path / "run")
    assert abs(size - 4000) <= 40 and unknown < 0.005
    assert report["test_chrf"] > 0.5  # a minute of training writes some Japanese characters
