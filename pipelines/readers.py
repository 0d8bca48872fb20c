"""Readers for parallel text: `source<TAB>target` files and pairs of line-aligned files, streamed.

`read_pairs` yields one (source, target) pair per good line and never holds the file in memory.
Each side is stripped of surrounding whitespace (and the file of a leading UTF-8 byte order mark);
the rest of the text is left for the tokenizer to normalize. A line that cannot give a pair is
skipped and counted by reason in a `ReadReport`, which keeps the first `max_reported` as
"path:line: reason":

    not valid UTF-8     (the byte and its offset are named)
    no tab              (TSV only)
    empty source / empty target / blank line
"""

import collections
import dataclasses
import itertools
from pathlib import Path

REASONS = ("not valid UTF-8", "no tab", "empty source", "empty target", "blank line")


class DataError(ValueError):
    """A data file that cannot be read as parallel text."""


@dataclasses.dataclass
class ReadReport:
    """What one reading of a data file kept and skipped."""

    source: str = ""
    lines: int = 0
    kept: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list = dataclasses.field(default_factory=list)  # the first few, "path:line: reason"
    max_reported: int = 20

    @property
    def skipped_lines(self) -> int:
        return sum(self.skipped.values())

    def skip(self, where, reason, detail=""):
        self.skipped[reason] += 1
        if len(self.problems) < self.max_reported:
            self.problems.append(f"{where}: {reason}{detail}")

    def summary(self) -> str:
        """E.g. "kept 9998 of 10000 lines, skipped 2 (1 no tab, 1 not valid UTF-8)"."""
        text = f"kept {self.kept} of {self.lines} lines"
        if self.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.most_common())
            text += f", skipped {self.skipped_lines} ({reasons})"
        return text

    def details(self) -> list[str]:
        """The reported problems, and how many more were not listed."""
        more = self.skipped_lines - len(self.problems)
        return self.problems + ([f"... and {more} more"] if more > 0 else [])


def _lines(path):
    """(line number, raw bytes without the line end) of a file, split on b"\\n" only."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield number, raw.rstrip(b"\r\n")


def _decode(raw, report, where):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        report.skip(where, "not valid UTF-8",
                    f" (byte {raw[error.start]:#04x} at offset {error.start} of the line)")
        return None


def _pair(source, target, report, where, blame_target=None):
    """(source, target) stripped, or None (counted) when a side is empty."""
    source, target = source.strip(), target.strip()
    if source and target:
        report.kept += 1
        return source, target
    if not (source or target):
        report.skip(where, "blank line")
    elif not source:
        report.skip(where, "empty source")
    else:
        report.skip(blame_target or where, "empty target")
    return None


def read_tsv(path, report: ReadReport):
    """Yields (source, target) of `source<TAB>target[<TAB>anything]` lines (the Tatoeba layout)."""
    report.source = str(path)
    for number, raw in _lines(path):
        report.lines += 1
        where = f"{path}:{number}"
        line = _decode(raw, report, where)
        if line is None:
            continue
        if "\t" not in line:
            if line.strip():
                report.skip(where, "no tab")
            else:
                report.skip(where, "blank line")
            continue
        source, _, rest = line.partition("\t")
        pair = _pair(source, rest.partition("\t")[0], report, where)
        if pair:
            yield pair


def read_aligned(source_path, target_path, report: ReadReport):
    """Yields (source, target) of two files whose lines are translations of each other.

    Raises DataError, after reading both files to the end, if their line counts differ.
    """
    report.source = f"{source_path},{target_path}"
    sentinel = (None, None)
    source_count = target_count = 0
    for (number, source), (_, target) in itertools.zip_longest(
            _lines(source_path), _lines(target_path), fillvalue=sentinel):
        source_count += source is not None
        target_count += target is not None
        if source is None or target is None:
            continue  # one file ended: count the rest of the other, then fail
        report.lines += 1
        source = _decode(source, report, f"{source_path}:{number}")
        target = _decode(target, report, f"{target_path}:{number}") if source is not None else None
        if source is None or target is None:
            continue
        pair = _pair(source, target, report, f"{source_path}:{number}",
                     blame_target=f"{target_path}:{number}")
        if pair:
            yield pair
    if source_count != target_count:
        raise DataError(f"aligned files differ in length: {source_path} has {source_count} lines, "
                        f"{target_path} has {target_count}")


def read_pairs(spec, report: ReadReport | None = None):
    """Streams the pairs of "data.tsv", or "source.txt,target.txt" (two aligned files)."""
    report = report if report is not None else ReadReport()
    paths = str(spec).split(",")
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such data file")
    if len(paths) == 1:
        return read_tsv(paths[0], report)
    if len(paths) == 2:
        return read_aligned(*paths, report)
    raise DataError(f"expected 'data.tsv' or 'source.txt,target.txt', got {spec!r}")


def pairs_by_line(spec):
    """Every line of "data.tsv" or "source.txt,target.txt" as ("path:line", (source, target) or
    None, why): what a per-line answer (`score`) reads. Nothing is skipped; a TSV line with no
    tab is None ("no tab"); bytes that are not UTF-8 read as U+FFFD, as `translate` reads them;
    sides are stripped. Raises DataError if aligned files differ in length (before yielding)."""
    paths = str(spec).split(",")
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such data file")
    if len(paths) > 2:
        raise DataError(f"expected 'data.tsv' or 'source.txt,target.txt', got {spec!r}")

    def text(raw):
        return raw.decode("utf-8", errors="replace").strip()

    if len(paths) == 1:
        for number, raw in _lines(paths[0]):
            line = raw.decode("utf-8", errors="replace")
            if "\t" not in line:
                yield f"{paths[0]}:{number}", None, "no tab"
                continue
            source, _, rest = line.partition("\t")
            yield f"{paths[0]}:{number}", (source.strip(), rest.partition("\t")[0].strip()), ""
        return
    counts = [sum(1 for _ in _lines(path)) for path in paths]
    if counts[0] != counts[1]:
        raise DataError(f"aligned files differ in length: {paths[0]} has {counts[0]} lines, "
                        f"{paths[1]} has {counts[1]}")
    for (number, source), (_, target) in zip(_lines(paths[0]), _lines(paths[1])):
        yield f"{paths[0]}:{number}", (text(source), text(target)), ""


def load_pairs(spec, max_reported: int = 20) -> tuple[list, ReadReport]:
    """All the pairs of `spec` in a list (for files that fit in memory: test sets, examples)."""
    report = ReadReport(max_reported=max_reported)
    return list(read_pairs(spec, report)), report


def count_lines(spec) -> int:
    """Lines of the (first) file of `spec`, counted in blocks: about a second per GB."""
    path = str(spec).split(",")[0]
    count = 0
    last = b"\n"
    with open(path, "rb") as file:
        while block := file.read(1 << 22):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")
