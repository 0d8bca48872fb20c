"""Readers for parallel text: `source<TAB>target` files and pairs of line-aligned files.

Each side is stripped of surrounding whitespace (and of a UTF-8 byte order mark) and put in Unicode NFC
form, so that "é" typed as one or two code points is the same text. A line that cannot give a pair
(blank, no tab, an empty side) is skipped and counted; bytes that are not UTF-8 raise `DataError`.
"""

import unicodedata
from dataclasses import dataclass, field


class DataError(ValueError):
    """A data file that cannot be read as parallel text."""


@dataclass
class ReadResult:
    """The pairs read from a file, and what was skipped."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    kept: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, "path:line: reason"

    def summary(self) -> str:
        """E.g. "kept 9998 pairs, skipped 2 (first: data.tsv:17: no tab)"."""
        text = f"kept {self.kept} pairs, skipped {self.skipped}"
        return f"{text} (first: {self.problems[0]})" if self.problems else text


class _Collector:
    def __init__(self, max_reported):
        self.result = ReadResult()
        self.max_reported = max_reported

    def add(self, source, target, where):
        """Keeps the pair, or counts it as skipped when a side is empty; `where` is "path:line"."""
        source, target = _clean(source), _clean(target)
        reason = ("blank line" if not (source or target) else
                  "empty source" if not source else "empty target" if not target else None)
        if reason:
            self.skip(where, reason)
        else:
            self.result.pairs.append((source, target))
            self.result.kept += 1

    def skip(self, where, reason):
        self.result.skipped += 1
        if len(self.result.problems) < self.max_reported:
            self.result.problems.append(f"{where}: {reason}")


def _clean(text):
    return unicodedata.normalize("NFC", text.strip())


def _lines(path):
    """The decoded lines of a file, without line ends."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: not valid UTF-8 (byte {raw[error.start]:#04x} at "
                                f"offset {error.start} of the line)") from None
            yield (line.removeprefix("\ufeff") if number == 1 else line).rstrip("\r\n")


def read_tsv(path, max_reported: int = 5) -> ReadResult:
    """Reads `source<TAB>target[<TAB>anything]` lines (the Tatoeba / ManyThings layout)."""
    collector = _Collector(max_reported)
    for number, line in enumerate(_lines(path), 1):
        if "\t" not in line and line.strip():
            collector.skip(f"{path}:{number}", "no tab")
            continue
        source, _, rest = line.partition("\t")
        collector.add(source, rest.partition("\t")[0], f"{path}:{number}")
    return collector.result


def read_aligned(source_path, target_path, max_reported: int = 5) -> ReadResult:
    """Reads two files whose lines are translations of each other, line by line."""
    sources, targets = list(_lines(source_path)), list(_lines(target_path))
    if len(sources) != len(targets):
        raise DataError(f"aligned files differ in length: {source_path} has {len(sources)} lines, "
                        f"{target_path} has {len(targets)}")
    collector = _Collector(max_reported)
    for number, (source, target) in enumerate(zip(sources, targets), 1):
        path = target_path if source.strip() and not target.strip() else source_path
        collector.add(source, target, f"{path}:{number}")
    return collector.result


def load_pairs(spec) -> ReadResult:
    """Reads "data.tsv", or "source.txt,target.txt" (two aligned files)."""
    paths = str(spec).split(",")
    if len(paths) == 1:
        return read_tsv(paths[0])
    if len(paths) == 2:
        return read_aligned(*paths)
    raise DataError(f"expected 'data.tsv' or 'source.txt,target.txt', got {spec!r}")
