"""Readers of parallel text: what is kept, what is skipped and reported by file:line, what is refused."""

import re

import pytest

from pipelines.readers import DataError, load_pairs, read_aligned, read_tsv


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_tsv_pairs_are_cleaned(tmp_path):
    path = write(tmp_path / "data.tsv", "\ufeffGo.\tVe.\r\n  Hi! \t ¡Hola!  \tCC-BY 2.0 #538123\nCafe\u0301?\tCafe\u0301?\n"
                 .encode("utf-8"))
    result = read_tsv(path)
    assert result.pairs == [("Go.", "Ve."), ("Hi!", "¡Hola!"), ("Café?", "Café?")]
    assert (result.kept, result.skipped, result.problems) == (3, 0, [])
    assert result.summary() == "kept 3 pairs, skipped 0"


def test_malformed_tsv_lines_are_skipped_counted_and_located(tmp_path):
    lines = ["one\tuno", "no tab here", "", "  \t", "\tsolo", "only\t ", "two\tdos", "   "]
    path = write(tmp_path / "data.tsv", "\n".join(lines).encode("utf-8"))
    result = read_tsv(path, max_reported=4)
    assert result.pairs == [("one", "uno"), ("two", "dos")]
    assert (result.kept, result.skipped) == (2, 6)
    assert result.problems == [f"{path}:2: no tab", f"{path}:3: blank line", f"{path}:4: blank line",
                               f"{path}:5: empty source"]
    assert result.summary() == f"kept 2 pairs, skipped 6 (first: {path}:2: no tab)"


@pytest.mark.parametrize("second_file", [False, True])
def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path, second_file):
    good = write(tmp_path / "good.txt", b"a\nb\nc\n")
    bad = write(tmp_path / "bad.txt", b"a\nb\n\xffc\n")
    with pytest.raises(DataError, match=re.escape(f"{bad}:3: not valid UTF-8 (byte 0xff")):
        if second_file:
            read_aligned(good, bad)
        else:
            read_tsv(bad)


def test_aligned_files(tmp_path):
    source = write(tmp_path / "src.en", "I run.\n\nWe swim.\n  \nthe end\n".encode("utf-8"))
    target = write(tmp_path / "tgt.es", "Yo corro.\n\nNadamos.\nvacío\n\n".encode("utf-8"))
    result = read_aligned(source, target)
    assert result.pairs == [("I run.", "Yo corro."), ("We swim.", "Nadamos.")]
    assert (result.kept, result.skipped) == (2, 3)
    assert result.problems == [f"{source}:2: blank line", f"{source}:4: empty source", f"{target}:5: empty target"]


def test_aligned_files_of_different_lengths_are_refused(tmp_path):
    source = write(tmp_path / "src.en", b"a\nb\nc\n")
    target = write(tmp_path / "tgt.es", b"a\nb")
    with pytest.raises(DataError, match=re.escape(f"{source} has 3 lines, {target} has 2")):
        read_aligned(source, target)


def test_load_pairs_takes_a_tsv_or_two_aligned_files(tmp_path):
    tsv = write(tmp_path / "data.tsv", "Hello.\tHola.\n".encode("utf-8"))
    source = write(tmp_path / "src.en", b"Hello.\n")
    target = write(tmp_path / "tgt.es", b"Hola.\n")
    assert load_pairs(str(tsv)).pairs == load_pairs(f"{source},{target}").pairs == [("Hello.", "Hola.")]
    with pytest.raises(DataError, match="expected"):
        load_pairs(f"{source},{target},{tsv}")
