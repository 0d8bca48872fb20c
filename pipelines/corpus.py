"""A training corpus made ready in one streaming pass: cleaned TSV splits on disk and a bounded sample.

`prepare_corpus` reads the user's files once, line by line (memory does not grow with the corpus):

- malformed lines are skipped and reported (`pipelines.readers`); more than `max_bad_fraction` of them
  stops the job, since the file is then probably not what the user meant;
- without a given validation or test file, each is held out of the training file by a hash of the
  source sentence and the seed (a source and all its translations land in one split; about
  min(5%, 2000 sentences) each), so no split needs the corpus in memory;
- the kept pairs are written to `OUT/{train,validation,test}.tsv`, one `source<TAB>target` per line,
  which `pipelines.batching` streams with `tf.data`;
- a uniform random sample of at most `sample_size` training pairs (reservoir sampling) is kept for
  learning the vocabulary.
"""

import dataclasses
import random
import time
import zlib
from pathlib import Path

from pipelines.readers import DataError, ReadReport, count_lines, read_pairs

SPLITS = ("train", "validation", "test")
HELD_OUT_FRACTION = 0.05
MAX_HELD_OUT = 2000


@dataclasses.dataclass
class PreparedCorpus:
    files: dict           # split -> Path of its cleaned TSV
    sizes: dict           # split -> pairs
    sample: list          # (source, target) pairs: a uniform sample of the training split
    reports: list         # ReadReport per file read


def tsv_line(source, target) -> str:
    """One `source<TAB>target` line; tabs and line breaks inside a side become spaces (the
    tokenizer's normalization would make them spaces anyway)."""
    if "\t" in source or "\r" in source or "\n" in source:
        source = source.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    if "\t" in target or "\r" in target or "\n" in target:
        target = target.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return f"{source}\t{target}\n"


def write_tsv(pairs, path) -> int:
    """Writes (source, target) pairs as a TSV; returns how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as file:
        for source, target in pairs:
            file.write(tsv_line(source, target))
            count += 1
    return count


def held_out_split(source: str, seed: int, fraction: float) -> str:
    """"validation", "test" or "train" for a source sentence: a hash of (seed, sentence), so the
    same sentence always lands in the same split."""
    u = zlib.crc32(source.encode("utf-8"), zlib.crc32(seed.to_bytes(8, "little", signed=True)))
    u /= 2 ** 32
    return "validation" if u < fraction else "test" if u < 2 * fraction else "train"


class _Progress:
    """A line every few seconds while a long file is read."""

    def __init__(self, log, what, every=5.0):
        self.log, self.what, self.every = log, what, every
        self.began = self.last = time.perf_counter()

    def __call__(self, report):
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.log(f"  {self.what}: {report.lines:,} lines read, {report.kept:,} kept "
                     f"({now - self.began:.0f} s)")


def _check_bad_lines(report, max_bad_fraction, log):
    for problem in report.details():
        log(f"  {problem}")
    if report.skipped_lines > max(20, max_bad_fraction * report.lines):
        raise DataError(
            f"{report.source}: {report.skipped_lines} of {report.lines} lines are malformed, "
            f"more than {max_bad_fraction:.0%} ({report.summary()}); is it a TSV of "
            "source<TAB>target lines (or SOURCE,TARGET aligned files)? Raise the threshold "
            "to train anyway")


def prepare_corpus(data, out, *, validation=None, test=None, seed=0, sample_size=100_000,
                   max_bad_fraction=0.05, log=print) -> PreparedCorpus:
    """Reads `data` (and the optional `validation`/`test` files) once and writes OUT/{split}.tsv.

    Args:
        data, validation, test: "file.tsv" or "source.txt,target.txt".
        sample_size: training pairs kept in memory for learning the vocabulary.
        max_bad_fraction: stop (DataError) when more malformed lines than this are skipped.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {split: out / f"{split}.tsv" for split in SPLITS}
    given = {"validation": validation, "test": test}
    held_out = [split for split, spec in given.items() if not spec]
    fraction = 0.0
    if held_out:
        lines = count_lines(data)
        fraction = min(HELD_OUT_FRACTION, MAX_HELD_OUT / max(lines, 1))
    sampler = Reservoir(sample_size, seed)
    sizes, reports = dict.fromkeys(SPLITS, 0), []

    report = ReadReport(max_reported=20)
    progress = _Progress(log, f"reading {data}")
    writers = {split: open(files[split], "w", encoding="utf-8")
               for split in ["train"] + held_out}
    try:
        for source, target in read_pairs(data, report):
            split = held_out_split(source, seed, fraction) if held_out else "train"
            if split not in writers:  # held out for a split the user gave: belongs to train
                split = "train"
            writers[split].write(tsv_line(source, target))
            sizes[split] += 1
            if split == "train":
                sampler.add((source, target))
            if report.lines % 65536 == 0:
                progress(report)
    finally:
        for writer in writers.values():
            writer.close()
    log(f"data: {data}: {report.summary()}")
    _check_bad_lines(report, max_bad_fraction, log)
    reports.append(report)

    for split, spec in given.items():
        if not spec:
            continue
        split_report = ReadReport(max_reported=20)
        sizes[split] = write_tsv(read_pairs(spec, split_report), files[split])
        log(f"{split} data: {spec}: {split_report.summary()}")
        _check_bad_lines(split_report, max_bad_fraction, log)
        reports.append(split_report)

    empty = [split for split in SPLITS if not sizes[split]]
    if empty:
        raise DataError(f"no pairs for the {' and '.join(empty)} split: {data} holds "
                        f"{report.kept} good pairs; too little data to hold sentences out "
                        "(give --validation-data and --test-data)" if held_out else
                        f"no good pairs in the {' and '.join(empty)} data")
    return PreparedCorpus(files, sizes, sampler.sample, reports)


class Reservoir:
    """A uniform random sample of at most `size` of the items added (reservoir sampling), the
    same for the same seed and items."""

    def __init__(self, size, seed):
        self.size, self.rng, self.seen, self.sample = size, random.Random(seed), 0, []

    def add(self, item):
        self.seen += 1
        if len(self.sample) < self.size:
            self.sample.append(item)
        else:
            slot = self.rng.randrange(self.seen)
            if slot < self.size:
                self.sample[slot] = item


def sample_pairs(path, size, seed) -> list:
    """The sample `prepare_corpus` kept, drawn again from its cleaned train split (`path`): the
    same pairs for the same seed and size, read in one streaming pass."""
    sampler = Reservoir(size, seed)
    for pair in read_pairs(path, ReadReport(max_reported=0)):
        sampler.add(pair)
    return sampler.sample

