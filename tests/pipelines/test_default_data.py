"""The embedded English -> Spanish grammar: determinism, disjoint splits, one translation per sentence, agreement."""

import re

import pytest

from pipelines.default_data import (
    ADJECTIVES,
    NOUNS,
    NUMBERS,
    default_splits,
    generate_pairs,
    write_splits,
)
from pipelines.readers import ReadReport, read_tsv


@pytest.fixture(scope="module")
def pairs():
    return generate_pairs(20000, seed=11)


def test_generate_pairs_is_deterministic_and_distinct():
    first = generate_pairs(500, seed=3)
    assert first == generate_pairs(500, seed=3)
    assert first != generate_pairs(500, seed=4)
    assert len(first) == 500
    assert len({source for source, _ in first}) == 500


def test_every_english_sentence_has_one_translation(pairs):
    # generate_pairs raises on an English sentence rendered with two translations; 20000 draws give it a chance.
    translations = {}
    for source, target in pairs:
        assert translations.setdefault(source, target) == target


def test_default_splits_are_disjoint_deterministic_and_seeded():
    splits = default_splits(seed=1, train=3000, validation=200, test=200)
    assert {name: len(split) for name, split in splits.items()} == {"train": 3000, "validation": 200, "test": 200}
    sources = [{source for source, _ in split} for split in splits.values()]
    assert sum(map(len, sources)) == len(set().union(*sources)) == 3400
    assert splits == default_splits(seed=1, train=3000, validation=200, test=200)
    assert splits["test"] != default_splits(seed=2, train=3000, validation=200, test=200)["test"]


def test_sentences_are_short_punctuated_and_varied(pairs):
    lengths = [len(source.split()) for source, _ in pairs]
    assert min(lengths) >= 3 and max(lengths) <= 20
    assert sum(4 <= n <= 14 for n in lengths) > 0.85 * len(pairs)
    for source, target in pairs:
        assert source[0].isupper() and source[-1] in ".?"
        if source.endswith("?"):
            assert target.startswith("¿") and target.endswith("?") and target[1].isupper()
        else:
            assert target[0].isupper() and target.endswith(".")
    english = {word for source, _ in pairs for word in re.findall(r"\w+", source.lower())}
    spanish = {word for _, target in pairs for word in re.findall(r"\w+", target.lower())}
    assert 200 <= len(english) <= 320 and len(spanish) >= 400


def test_spanish_contracts_and_english_uses_an(pairs):
    for source, target in pairs:
        assert not re.search(r"\b(a|de) el\b", target), target
        assert not re.search(r"\ba [aeiou]|\ban [^aeiou]", source), source


def test_numbers_translate_word_for_word(pairs):
    for source, target in pairs:
        for english, spanish in NUMBERS.items():
            if re.search(rf"\b{english}\b", source):
                assert re.search(rf"\b{spanish}\b", target), (source, target)


def test_adjectives_follow_the_noun_and_agree(pairs):
    nouns = {noun.es: (noun.gender, False) for noun in NOUNS}
    nouns.update({noun.es_plural: (noun.gender, True) for noun in NOUNS if noun.es_plural})
    adjectives = {adjective.es[:-1] + ending: ("oa".index(ending[0]), ending.endswith("s"))
                  for adjective in ADJECTIVES if adjective.es.endswith("o") and adjective.es != "limpio"
                  for ending in ("o", "a", "os", "as")}  # limpio, limpia, ...: also forms of the verb limpiar
    checked = 0
    for _, target in pairs:
        words = re.findall(r"\w+", target)
        for noun, after in zip(words, words[1:]):
            if noun in nouns and after in adjectives and noun != "paraguas":  # paraguas: singular or plural
                assert adjectives[after] == nouns[noun], target
                checked += 1
    assert checked > 1000


def test_write_splits_round_trips_through_read_tsv(tmp_path):
    splits = default_splits(seed=5, train=50, validation=5, test=5)
    paths = write_splits(splits, tmp_path / "data")
    assert {name: path.name for name, path in paths.items()} == {
        "train": "train.tsv", "validation": "validation.tsv", "test": "test.tsv"}
    for name, path in paths.items():
        report = ReadReport()
        assert list(read_tsv(path, report)) == splits[name] and report.skipped_lines == 0
