"""Corpus size vs the train job's start: time to the first training step and peak memory.

Makes TSVs of N pairs by repeating a real corpus with a counter appended to each sentence (so every
pair is distinct), then runs `python -m keras_transformer train` on each, as a user would, and reads
from its output when the data was prepared, when the vocabularies were learned and when the first
training step finished. The job is stopped a few seconds after that first step; its peak resident
memory (VmHWM) is read just before. Targets (issue 14, 2 cores): first step <= 60 s at 1M pairs and
<= 90 s at 5M, peak memory <= 2 GB at both.

    python benchmarks/data_scale.py --sizes 100000 1000000 5000000
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "iwslt15-en-vi"


def make_tsv(path, pairs, size):
    """`size` lines "source i<TAB>target i", cycling through `pairs`."""
    with open(path, "w", encoding="utf-8") as file:
        for i in range(size):
            source, target = pairs[i % len(pairs)]
            file.write(f"{source} {i}\t{target} {i}\n")


def base_pairs(corpus):
    corpus = Path(corpus)
    if (corpus / "train.en").exists():
        other = next(p.suffix for p in corpus.glob("train.*") if p.suffix != ".en")
        sources = (corpus / "train.en").read_text(encoding="utf-8").splitlines()
        targets = (corpus / f"train{other}").read_text(encoding="utf-8").splitlines()
        return [(s, t) for s, t in zip(sources, targets) if s.strip() and t.strip()], str(corpus)
    from pipelines.default_data import generate_pairs
    return generate_pairs(20000, seed=0), "the embedded grammar"


def peak_memory_mb(pid):
    """VmHWM (peak resident set) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(tsv, out, args):
    """Runs the train job until its first step; returns the moments (s) of its milestones."""
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", str(tsv), "--out", str(out),
               "--preset", args.preset, "--vocab-size", str(args.vocab_size), "--epochs", "1",
               "--steps-per-epoch", "1000", "--examples", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace")
    moments, lines = {}, []
    peak = [0.0]

    def watch_memory():
        while job.poll() is None:
            try:
                peak[0] = max(peak[0], peak_memory_mb(job.pid))
            except OSError:
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_memory, daemon=True)
    watcher.start()
    for line in job.stdout:
        lines.append(line)
        now = time.perf_counter() - began
        if line.startswith("data: ") and "data" not in moments:
            moments["data"] = now
        elif "learned in" in line:
            moments["vocabulary"] = now
            moments["vocabulary_seconds"] = float(line.split("learned in")[1].split()[0])
        elif line.startswith("first training step done"):
            moments["first_step"] = now
            time.sleep(args.after_first_step)  # a few more steps: memory in the steady state
            peak[0] = max(peak[0], peak_memory_mb(job.pid))
            job.kill()
            break
    job.wait()
    if "first_step" not in moments:
        raise RuntimeError("the job ended before its first step:\n" + "".join(lines[-30:]))
    moments["peak_mb"] = peak[0]
    return moments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="a folder with train.en and train.XX")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--after-first-step", type=float, default=5.0)
    parser.add_argument("--workdir", default=None, help="where the TSVs go (default: a temporary folder)")
    args = parser.parse_args(argv)

    pairs, origin = base_pairs(args.corpus)
    print(f"pairs made from {origin} ({len(pairs):,} distinct pairs, repeated with a counter); "
          f"{os.cpu_count()} CPUs")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            tsv = workdir / f"pairs_{size}.tsv"
            if not tsv.exists():
                make_tsv(tsv, pairs, size)
            moments = measure(tsv, Path(scratch) / f"run_{size}", args)
            rows.append((size, tsv.stat().st_size / 2 ** 20, moments))
            print(f"  {size:,} pairs: first step after {moments['first_step']:.1f} s, "
                  f"peak {moments['peak_mb']:.0f} MB", flush=True)
    print()
    print("| pairs | TSV MB | data read + written (s) | vocabularies learned (s) | first training step (s) | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for size, megabytes, m in rows:
        print(f"| {size:,} | {megabytes:.0f} | {m['data']:.1f} | {m['vocabulary_seconds']:.1f} "
              f"| {m['first_step']:.1f} | {m['peak_mb']:.0f} |")
    print("\ntimes from the start of the process (Python and TensorFlow imports included); "
          "vocabularies: learning time alone")
    print("reproduce: python benchmarks/data_scale.py --sizes " + " ".join(map(str, args.sizes))
          + f" --preset {args.preset} --vocab-size {args.vocab_size}")


if __name__ == "__main__":
    main()
