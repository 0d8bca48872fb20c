"""Corpus size vs the train job's start: time to the first training step and peak memory.

Makes TSVs of N pairs by repeating a real corpus with a counter appended to each sentence (so every
pair is distinct), then runs `python -m keras_transformer train` on each, as a user would, and reads
from its output when the data was prepared, when the vocabularies were learned and when the first
training step finished. The job is stopped a few seconds after that first step; its peak resident
memory (VmHWM) is read just before. Targets (issue 14, 2 cores): first step <= 60 s at 1M pairs and
<= 90 s at 5M, peak memory <= 2 GB at both.

`--whole-job` runs the real-corpus recipe to its end instead, as `train --data` does it: training
under a `--max-minutes` budget (epochs of `--steps-per-epoch` steps, validation BLEU at each epoch's
end), the test split translated, beam search's alpha chosen. It reports the process's exact peak
(ru_maxrss, from wait4) and the largest resident size seen in each phase (sampled every 0.25 s).
Target (issue 23): <= 2,000 MiB at 1M and 5M pairs, flat in the corpus size.

    python benchmarks/studies/data_scale.py --sizes 100000 1000000 5000000
    python benchmarks/studies/data_scale.py --whole-job --sizes 1000000 5000000
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import ROOT, process  # noqa: E402
from common.memory import status_bytes  # noqa: E402

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


def status_mb(pid, field="VmHWM"):
    """A memory field of a running process's /proc status, in MiB: VmHWM (its peak resident set)
    or VmRSS (now); NaN once it has exited."""
    value = status_bytes(field, pid)
    return float("nan") if value is None else value / 2 ** 20


def measure(tsv, out, args):
    """Runs the train job until its first step; returns the moments (s) of its milestones."""
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", str(tsv), "--out", str(out),
               "--preset", args.preset, "--vocab-size", str(args.vocab_size), "--epochs", "1",
               "--steps-per-epoch", "1000", "--examples", "0"]
    began = time.perf_counter()
    job = subprocess.Popen(command, cwd=ROOT, env=process.child_env(TF_CPP_MIN_LOG_LEVEL="3"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace")
    moments, lines = {}, []
    peak = [0.0]

    def watch_memory():
        while job.poll() is None:
            try:
                peak[0] = max(peak[0], status_mb(job.pid))
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
            peak[0] = max(peak[0], status_mb(job.pid))
            job.kill()
            break
    job.wait()
    if "first_step" not in moments:
        raise RuntimeError("the job ended before its first step:\n" + "".join(lines[-30:]))
    moments["peak_mb"] = peak[0]
    return moments


# Options only one mode reads, left out of the other's reproduce command
FIRST_STEP_ONLY = ("preset", "vocab_size", "after_first_step")
WHOLE_JOB_ONLY = ("whole_job", "minutes", "steps_per_epoch", "mixed_precision")

# The whole job's phases, each begun by the first log line that starts with its marker.
PHASES = (("data and vocabularies", ""), ("training", "Epoch 1/"),
          ("test translated", "trained in"), ("alpha chosen", "test ("))


def measure_whole_job(tsv, out, args):
    """Runs `train --data tsv` to its end; returns its exact peak and the peak seen in each phase
    (MiB), and its duration (s)."""
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", str(tsv), "--out", str(out),
               "--max-minutes", str(args.minutes), "--steps-per-epoch", str(args.steps_per_epoch),
               "--examples", "0"] + (["--mixed-precision", args.mixed_precision]
                                     if args.mixed_precision else [])
    began = time.perf_counter()
    job = subprocess.Popen(command, cwd=ROOT, env=process.child_env(TF_CPP_MIN_LOG_LEVEL="3"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace")
    phase, peaks, lines = [PHASES[0][0]], {name: 0.0 for name, _ in PHASES}, []

    def watch_memory():
        while job.returncode is None:
            try:
                peaks[phase[0]] = max(peaks[phase[0]], status_mb(job.pid, "VmRSS"))
            except OSError:
                return
            time.sleep(0.25)

    threading.Thread(target=watch_memory, daemon=True).start()
    for line in job.stdout:
        lines.append(line)
        for name, marker in PHASES[1:]:
            if line.startswith(marker) and list(peaks).index(name) > list(peaks).index(phase[0]):
                phase[0] = name
    _, status, usage = os.wait4(job.pid, 0)
    job.returncode = os.waitstatus_to_exitcode(status)
    if job.returncode != 0 or phase[0] != PHASES[-1][0]:
        raise RuntimeError(f"the job ended with {job.returncode} in phase {phase[0]}:\n"
                           + "".join(lines[-30:]))
    return {"peak_mb": usage.ru_maxrss / 1024, "phases": peaks,
            "seconds": time.perf_counter() - began}


def measured_sizes(args, measure_one, what):
    """(pairs, TSV MiB, measure_one's result) for each of args.sizes, TSVs made as needed."""
    pairs, origin = base_pairs(args.corpus)
    print(f"pairs made from {origin} ({len(pairs):,} distinct pairs, repeated with a counter); "
          f"{process.host_line()}{what}")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            tsv = workdir / f"pairs_{size}.tsv"
            if not tsv.exists():
                make_tsv(tsv, pairs, size)
            result = measure_one(tsv, Path(scratch) / f"run_{size}", args)
            yield size, tsv.stat().st_size / 2 ** 20, result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="a folder with train.en and train.XX")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--after-first-step", type=float, default=5.0)
    parser.add_argument("--workdir", default=None, help="where the TSVs go (default: a temporary folder)")
    parser.add_argument("--whole-job", action="store_true",
                        help="run the real-corpus recipe to its end (training, test, alpha); report its "
                             "peak memory by phase (--preset and --vocab-size are then the recipe's)")
    parser.add_argument("--minutes", type=float, default=2.0, help="--whole-job: the training budget")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="--whole-job")
    parser.add_argument("--mixed-precision", default=None,
                        help="--whole-job: the job's --mixed-precision (default: the recipe's, auto)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.whole_job:
        return main_whole_job(args)

    rows = []
    for size, megabytes, moments in measured_sizes(args, measure, ""):
        rows.append((size, megabytes, moments))
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
    print("reproduce: " + process.reproduce_line(__file__, args, skip=WHOLE_JOB_ONLY))


def main_whole_job(args):
    rows = []
    for size, megabytes, result in measured_sizes(
            args, measure_whole_job, f"; train --data, its recipe, --max-minutes {args.minutes:g} "
                                     f"--steps-per-epoch {args.steps_per_epoch}"):
        rows.append((size, megabytes, result))
        print(f"  {size:,} pairs: peak {result['peak_mb']:.0f} MiB, job {result['seconds']:.0f} s",
              flush=True)
    print()
    names = [name for name, _ in PHASES]
    print("| pairs | TSV MB | peak MiB (whole job) | " + " | ".join(names) + " | job (s) |")
    print("|---|---|---|" + "---|" * len(names) + "---|")
    for size, megabytes, r in rows:
        print(f"| {size:,} | {megabytes:.0f} | {r['peak_mb']:.0f} | "
              + " | ".join(f"{r['phases'][name]:.0f}" for name in names) + f" | {r['seconds']:.0f} |")
    print("\npeak: the process's maximum resident set (ru_maxrss); phases: the largest resident size "
          "sampled in each (MiB)")
    print("reproduce: " + process.reproduce_line(__file__, args, skip=FIRST_STEP_ONLY))


if __name__ == "__main__":
    main()
