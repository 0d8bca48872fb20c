"""Readers of parallel text: what is kept, what is skipped and reported by file:line and reason, what is
refused; they never crash, whatever the bytes."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.readers import (
    DataError,
    ReadReport,
    count_lines,
    load_pairs,
    read_aligned,
    read_pairs,
    read_tsv,
)


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_tsv_pairs_are_stripped(tmp_path):
    path = write(tmp_path / "data.tsv", "\ufeffGo.\tVe.\r\n  Hi! \t ¡Hola!  \tCC-BY 2.0 #538123\nCafe\u0301?\tCafé?\n"
                 .encode("utf-8"))
    report = ReadReport()
    assert list(read_tsv(path, report)) == [("Go.", "Ve."), ("Hi!", "¡Hola!"), ("Cafe\u0301?", "Café?")]
    assert (report.lines, report.kept, report.skipped_lines, report.problems) == (3, 3, 0, [])
    assert report.summary() == "kept 3 of 3 lines"


def test_malformed_tsv_lines_are_skipped_counted_by_reason_and_located(tmp_path):
    lines = ["one\tuno", "no tab here", "", "  \t", "\tsolo", "only\t ", "two\tdos", "   "]
    path = write(tmp_path / "data.tsv", "\n".join(lines).encode("utf-8"))
    report = ReadReport(max_reported=4)
    assert list(read_tsv(path, report)) == [("one", "uno"), ("two", "dos")]
    assert (report.kept, report.skipped_lines) == (2, 6)
    assert report.problems == [f"{path}:2: no tab", f"{path}:3: blank line", f"{path}:4: blank line",
                               f"{path}:5: empty source"]
    assert report.details()[-1] == "... and 2 more"
    assert report.summary() == "kept 2 of 8 lines, skipped 6 (3 blank line, 1 no tab, 1 empty source, 1 empty target)"


def test_every_line_that_is_not_utf8_is_reported_and_skipped(tmp_path):
    bad = write(tmp_path / "bad.tsv", b"a\tA\n\xffb\tB\nc\tC\nd\t\xc3D\ne\tE\n")
    report = ReadReport()
    assert list(read_tsv(bad, report)) == [("a", "A"), ("c", "C"), ("e", "E")]
    assert report.problems == [f"{bad}:2: not valid UTF-8 (byte 0xff at offset 0 of the line)",
                               f"{bad}:4: not valid UTF-8 (byte 0xc3 at offset 2 of the line)"]
    assert report.skipped == {"not valid UTF-8": 2}


def test_aligned_files(tmp_path):
    source = write(tmp_path / "src.en", "I run.\n\nWe swim.\n  \nthe end\nbad\n".encode("utf-8"))
    target = write(tmp_path / "tgt.es", "Yo corro.\n\nNadamos.\nvacío\n\n".encode("utf-8") + b"\xff\n")
    report = ReadReport()
    pairs = list(read_aligned(source, target, report))
    assert pairs == [("I run.", "Yo corro."), ("We swim.", "Nadamos.")]
    assert (report.kept, report.skipped_lines) == (2, 4)
    assert report.problems == [f"{source}:2: blank line", f"{source}:4: empty source", f"{target}:5: empty target",
                               f"{target}:6: not valid UTF-8 (byte 0xff at offset 0 of the line)"]


def test_aligned_files_of_different_lengths_are_refused(tmp_path):
    source = write(tmp_path / "src.en", b"a\nb\nc\n")
    target = write(tmp_path / "tgt.es", b"a\nb")
    with pytest.raises(DataError, match=re.escape(f"{source} has 3 lines, {target} has 2")):
        list(read_aligned(source, target, ReadReport()))


def test_read_pairs_takes_a_tsv_or_two_aligned_files(tmp_path):
    tsv = write(tmp_path / "data.tsv", "Hello.\tHola.\n".encode("utf-8"))
    source = write(tmp_path / "src.en", b"Hello.\n")
    target = write(tmp_path / "tgt.es", b"Hola.\n")
    assert load_pairs(str(tsv))[0] == load_pairs(f"{source},{target}")[0] == [("Hello.", "Hola.")]
    with pytest.raises(DataError, match="expected"):
        read_pairs(f"{source},{target},{tsv}")
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_pairs(tmp_path / "missing.tsv")


@pytest.mark.parametrize("data, lines", [(b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2)])
def test_count_lines(tmp_path, data, lines):
    assert count_lines(write(tmp_path / "x.tsv", data)) == lines


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)), max_size=12))
def test_any_bytes_are_read_without_crashing(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("any") / "data.tsv"
    path.write_bytes(b"\n".join(lines))
    report = ReadReport()
    pairs = list(read_tsv(path, report))
    assert report.lines == count_lines(path) and report.kept == len(pairs)
    assert report.kept + report.skipped_lines == report.lines  # every line kept or counted, none lost
    for source, target in pairs:
        assert source and target and source == source.strip() and "\t" not in source
