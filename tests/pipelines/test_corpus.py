"""Corpus preparation: one streaming pass, held-out splits by hash, given splits used as given, a bounded
uniform sample, and bad lines reported, tolerated up to a threshold."""

import pytest

from pipelines.corpus import PreparedCorpus, held_out_split, prepare_corpus, write_tsv
from pipelines.default_data import generate_pairs
from pipelines.readers import DataError, load_pairs


@pytest.fixture(scope="module")
def pairs():
    return generate_pairs(3000, seed=51)


def prepare(data, out, **options) -> PreparedCorpus:
    return prepare_corpus(data, out, log=lambda *a: None, **options)


def test_held_out_splits_by_source_sentence(tmp_path, pairs):
    data = tmp_path / "all.tsv"
    write_tsv(pairs + [(pairs[0][0], "otra traducción")], data)  # a source with two translations
    prepared = prepare(data, tmp_path / "run", seed=3, sample_size=500)
    splits = {split: load_pairs(path)[0] for split, path in prepared.files.items()}
    assert {split: len(value) for split, value in splits.items()} == prepared.sizes
    assert sum(prepared.sizes.values()) == len(pairs) + 1
    assert 100 < prepared.sizes["validation"] < 200 and 100 < prepared.sizes["test"] < 200  # ~5% each
    sources = {split: {source for source, _ in value} for split, value in splits.items()}
    assert not sources["train"] & sources["validation"] and not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    home = [split for split, value in splits.items() if (pairs[0][0], "otra traducción") in value]
    assert pairs[0] in splits[home[0]]  # both translations of a source land in the same split
    # the same seed gives the same splits, another seed others
    again = prepare(data, tmp_path / "again", seed=3, sample_size=500)
    assert [p.read_bytes() for p in again.files.values()] == [p.read_bytes() for p in prepared.files.values()]
    other = prepare(data, tmp_path / "other", seed=4, sample_size=500)
    assert other.files["test"].read_bytes() != prepared.files["test"].read_bytes()


def test_the_sample_is_bounded_and_drawn_from_train(tmp_path, pairs):
    data = tmp_path / "all.tsv"
    write_tsv(pairs, data)
    prepared = prepare(data, tmp_path / "run", seed=0, sample_size=300)
    train = set(load_pairs(prepared.files["train"])[0])
    assert len(prepared.sample) == 300 and set(prepared.sample) <= train
    # uniform: drawn from the whole file, not its beginning
    positions = sorted(pairs.index(pair) for pair in prepared.sample)
    assert positions[-1] > 0.9 * len(pairs) and positions[len(positions) // 2] > 0.3 * len(pairs)


def test_given_validation_and_test_sets_are_used_as_given(tmp_path, pairs):
    train, validation = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    write_tsv(pairs[:2000], train)
    write_tsv(pairs[2000:2100], validation)
    source, target = tmp_path / "test.en", tmp_path / "test.es"  # the test set as aligned files
    source.write_text("".join(s + "\n" for s, _ in pairs[2100:2200]), encoding="utf-8")
    target.write_text("".join(t + "\n" for _, t in pairs[2100:2200]), encoding="utf-8")
    prepared = prepare(train, tmp_path / "run", validation=validation, test=f"{source},{target}")
    assert prepared.sizes == {"train": 2000, "validation": 100, "test": 100}
    assert load_pairs(prepared.files["train"])[0] == pairs[:2000]  # not split
    assert load_pairs(prepared.files["validation"])[0] == pairs[2000:2100]
    assert load_pairs(prepared.files["test"])[0] == pairs[2100:2200]


def test_bad_lines_are_reported_and_skipped_below_the_threshold(tmp_path, pairs):
    data = tmp_path / "noisy.tsv"
    lines = [f"{s}\t{t}\n".encode() for s, t in pairs[:1000]]
    lines[10] = b"caf\xe9\tcaf\xe9\n"          # Latin-1, not UTF-8
    lines[20] = b"no tab at all\n"
    data.write_bytes(b"".join(lines))
    logged = []
    prepared = prepare_corpus(data, tmp_path / "run", validation=data, test=data, log=logged.append)
    assert prepared.sizes["train"] == 998
    assert f"  {data}:11: not valid UTF-8 (byte 0xe9 at offset 3 of the line)" in logged
    assert f"  {data}:21: no tab" in logged


def test_too_many_bad_lines_stop_with_the_reasons(tmp_path, pairs):
    data = tmp_path / "latin1.tsv"
    data.write_bytes("".join(f"{s}\t{t}\n" for s, t in pairs[:500]).encode("latin-1", errors="replace"))
    with pytest.raises(DataError, match=r"lines are malformed, more than 5% \(kept \d+ of 500 lines, "
                                        r"skipped \d+ \(\d+ not valid UTF-8\)\)"):
        prepare(data, tmp_path / "run")
    prepared = prepare(data, tmp_path / "tolerant", max_bad_fraction=0.9)
    assert 0 < sum(prepared.sizes.values()) < 500


def test_too_little_data_to_hold_out(tmp_path, pairs):
    data = tmp_path / "tiny.tsv"
    write_tsv(pairs[:3], data)
    with pytest.raises(DataError, match="too little data"):
        prepare(data, tmp_path / "run")


def test_held_out_split_is_a_pure_function_of_seed_and_sentence():
    splits = [held_out_split(f"sentence {i}", seed=1, fraction=0.1) for i in range(5000)]
    assert splits == [held_out_split(f"sentence {i}", seed=1, fraction=0.1) for i in range(5000)]
    assert 400 < splits.count("validation") < 600 and 400 < splits.count("test") < 600
