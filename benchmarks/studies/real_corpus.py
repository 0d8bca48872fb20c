"""Ours vs the keras.io KerasHub translation example, trained on a real corpus for the same time.

Issue 15's benchmark. On one machine, one after the other (never overlapping):

1. **ours**: the CLI exactly as a user runs it, in a subprocess:
       python -m keras_transformer train --data C/train.en,C/train.XX --validation-data ...
           --test-data ... --max-minutes M --out OUT/ours [--ours-args]
       python -m keras_transformer evaluate OUT/ours --data C/test.en,C/test.XX --hypotheses ...
   (greedy; with --beam also `--search beam --beam-size 4`).
2. **keras_hub**: the model and recipe of the keras.io example "English-to-Spanish translation
   with KerasHub" at the shape issue 15 asks for, in a subprocess of this script:
   `TokenAndPositionEmbedding` + 2 `TransformerEncoder` / 2 `TransformerDecoder` layers (d_model
   256, 8 heads, d_ff 1024, the layers' default dropout 0), `Dropout(0.5)` and a `Dense` over the
   target vocabulary; Adam(5e-4), sparse categorical cross-entropy ignoring padding; batches of
   64 sentences padded to --max-length (40) tokens; trained for the same wall-clock budget (a
   callback checks it after every step); greedy decoding of the test set with
   `keras_hub.samplers.GreedySampler` and no cache (each step reruns the decoder on the whole
   prefix), 64 sentences a batch.

Both systems use the same SentencePiece tokenizers (by default keras-hub reuses the ones ours
learned, OUT/ours/{source,target}.spm), so only the model and the recipe differ. Both are scored
the same way: sacrebleu corpus BLEU and chrF of the hypotheses against the test references
normalized as ours' outputs are (`pipelines.normalization.normalize`), cased and lower-cased.

Prints one markdown table (and writes it, the raw JSON and every log and hypothesis file to
--out), then the command that reproduces it. Smoke run (a minute or two on 2 CPU cores):

    python benchmarks/studies/real_corpus.py --minutes 0 --train-limit 2000 --eval-limit 100 \\
        --ours-args "--epochs 1 --steps-per-epoch 20" --out runs/real_corpus/smoke --overwrite
"""

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import ROOT, process  # noqa: E402  (no Keras: this parent process never loads it)

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "iwslt15-en-vi"
SYSTEMS = ("ours", "keras_hub")
HIDDEN = ("hub_worker", "ours_stats")  # the options by which this script runs its own workers
PACKAGES = ("keras", "tensorflow", "keras-hub", "sacrebleu")  # versions named in the results

# The keras-hub model: the keras.io example's layers at issue 15's shape
HUB_SHAPE = dict(num_layers=2, d_model=256, num_heads=8, d_ff=1024, output_dropout=0.5)
HUB_BATCH = 64
HUB_LEARNING_RATE = 5e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train ours (the CLI) and the keras.io KerasHub translation example on the "
                    "same corpus for the same wall-clock budget, one after the other; print "
                    "BLEU/chrF (cased and lower-cased), training steps, tokens/s and decode time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                        help="a folder of line-aligned {train,val,test}.SRC / .TGT files")
    parser.add_argument("--source", default="en", help="source language suffix")
    parser.add_argument("--target", default=None,
                        help="target language suffix; unset: the other suffix of train.*")
    parser.add_argument("--minutes", type=float, default=12.0,
                        help="training budget per system, wall clock. 0: ours gets no "
                             "--max-minutes (it trains as its other options say) and keras-hub "
                             "gets the time ours' training took")
    parser.add_argument("--systems", default="ours,keras_hub",
                        help="comma-separated, run in this order: ours, keras_hub")
    parser.add_argument("--ours-args", default="",
                        help="extra options for `python -m keras_transformer train`, one string")
    parser.add_argument("--vocab-size", type=int, default=8000,
                        help="keras-hub side: SentencePiece pieces per language, when it learns "
                             "its own tokenizers")
    parser.add_argument("--hub-tokenizers", choices=("ours", "learn"), default="ours",
                        help="keras-hub side: reuse ours' OUT/ours/*.spm (when there), or learn "
                             "tokenizers of --vocab-size from the training sides")
    parser.add_argument("--max-length", type=int, default=40,
                        help="keras-hub side: tokens every sentence is padded (or truncated) to, "
                             "and the longest translation it can generate")
    parser.add_argument("--beam", action="store_true",
                        help="also score ours with --search beam --beam-size 4")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="use only the first N training pairs (smoke runs)")
    parser.add_argument("--eval-limit", type=int, default=None, metavar="N",
                        help="use only the first N validation and test pairs (smoke runs)")
    parser.add_argument("--bleu-tokenize", default="auto",
                        help="sacrebleu tokenizer; auto: as train and evaluate choose it, char "
                             "for a target written without spaces (fewer than one per 12 "
                             "characters: it has no 13a words), else 13a")
    parser.add_argument("--seed", type=int, default=0,
                        help="both systems' seed (ours gets --seed unless --ours-args has one)")
    parser.add_argument("--out", default=None,
                        help="folder for the run directories, logs, hypotheses and results; unset: "
                             "runs/real_corpus/CORPUS_NAME")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the systems' earlier run folders under --out first")
    parser.add_argument("--hub-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ours-stats", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# The parent: data, the two runs, scoring, the table


def corpus_files(args):
    """{split: (source_path, target_path)} of the corpus folder, and the target suffix."""
    folder = Path(args.corpus)
    if not folder.is_dir():
        raise SystemExit(f"--corpus {folder}: no such folder")
    target = args.target
    if target is None:
        suffixes = sorted({path.suffix[1:] for path in folder.glob("train.*")} - {args.source})
        if len(suffixes) != 1:
            raise SystemExit(f"{folder}: cannot tell the target language from train.* "
                             f"({suffixes}); pass --target")
        target = suffixes[0]
    files = {}
    for split in ("train", "val", "test"):
        pair = (folder / f"{split}.{args.source}", folder / f"{split}.{target}")
        for path in pair:
            if not path.is_file():
                raise SystemExit(f"{path}: missing")
        files[split] = pair
    return files, target


def head_lines(path, count, out):
    """Writes the first `count` lines of `path` to `out`."""
    with open(path, "rb") as source, open(out, "wb") as target:
        for number, line in enumerate(source):
            if number >= count:
                break
            target.write(line)


def limited_files(files, args, out):
    """The files to use: the corpus's, or slices of them under OUT/data (--train/--eval-limit)."""
    limits = {"train": args.train_limit, "val": args.eval_limit, "test": args.eval_limit}
    used = {}
    for split, pair in files.items():
        if limits[split] is None:
            used[split] = pair
            continue
        (out / "data").mkdir(parents=True, exist_ok=True)
        used[split] = tuple(out / "data" / path.name for path in pair)
        for path, sliced in zip(pair, used[split]):
            head_lines(path, limits[split], sliced)
    return used


def spec(pair):
    return f"{pair[0]},{pair[1]}"


# not echoed (still logged): Keras's progress bars and TensorFlow's start-up chatter
_QUIET = re.compile(r"━|\x08|\r|^[IWE]\d{4} \d|^WARNING: All log messages before absl")


def run_logged(command, log_path, label):
    """Runs `command` from the repository root, output to `log_path` (and, but for Keras's
    progress bars, to our stdout prefixed with `label`). Returns (exit code, wall seconds, text)."""
    print(f"[{label}] $ {shlex.join(str(word) for word in command)}", flush=True)
    began = time.perf_counter()
    lines = []
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen([str(word) for word in command], cwd=ROOT,
                                 env=process.child_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in child.stdout:
            log.write(line)
            lines.append(line)
            if not _QUIET.search(line) and line.strip():
                print(f"[{label}] {line.rstrip()}", flush=True)
        code = child.wait()
    seconds = time.perf_counter() - began
    if code:
        print(f"[{label}] exited with {code}; the log is {log_path}", flush=True)
    return code, seconds, "".join(lines)


def has_option(words, option):
    return any(word == option or word.startswith(option + "=") for word in words)


def run_ours(args, files, out, result):
    """Trains and evaluates ours through the CLI; fills result["ours"] and the beam row."""
    run_dir = out / "ours"
    extra = shlex.split(args.ours_args)
    command = [sys.executable, "-m", "keras_transformer", "train",
               "--data", spec(files["train"]), "--validation-data", spec(files["val"]),
               "--test-data", spec(files["test"]), "--out", run_dir]
    if args.minutes > 0 and not has_option(extra, "--max-minutes"):
        command += ["--max-minutes", f"{args.minutes:g}"]
    if not has_option(extra, "--seed"):
        command += ["--seed", str(args.seed)]
    command += extra
    ours = {"system": "ours", "search": "greedy (cached)", "load_avg_before": process.load_average(),
            "train_command": shlex.join(str(word) for word in command)}
    result["rows"].append(ours)
    code, wall, text = run_logged(command, out / "ours.train.log", "ours")
    ours["train_job_seconds"] = round(wall, 1)
    if code:
        ours["error"] = f"train exited with {code} (see {out / 'ours.train.log'})"
        return
    ours.update(parse_ours_training(run_dir, text))

    # Target tokens per step, and ours' own truncation of the test set: a subprocess (TensorFlow)
    stats_file = out / "ours.stats.json"
    code, _, _ = run_logged([sys.executable, Path(__file__).resolve(), "--ours-stats",
                             json.dumps({"run_dir": str(run_dir), "test": spec(files["test"]),
                                         "out": str(stats_file)})],
                            out / "ours.stats.log", "ours-stats")
    if code == 0 and stats_file.exists():
        stats = json.loads(stats_file.read_text())
        ours["stats"] = stats
        if ours.get("steps") is None and ours.get("epochs") and not ours.get("budget_spent"):
            ours["steps"] = ours["epochs"] * stats["batches_per_epoch"]
            ours["steps_from"] = "epochs x batches in one pass over the training split"
        if ours.get("steps") and ours.get("train_seconds"):
            ours["target_tokens"] = round(ours["steps"] * stats["target_tokens_per_batch"])
            ours["target_tokens_per_second"] = ours["target_tokens"] / ours["train_seconds"]

    searches = [("greedy", [])]
    if args.beam:
        searches.append(("beam", ["--search", "beam", "--beam-size", "4"]))
    for name, options in searches:
        hypotheses = out / f"ours.{name}.hyp"
        command = [sys.executable, "-m", "keras_transformer", "evaluate", run_dir,
                   "--data", spec(files["test"]), "--hypotheses", hypotheses] + options
        code, wall, _ = run_logged(command, out / f"ours.{name}.evaluate.log", f"ours {name}")
        decoding = run_dir / "decoding.json"  # the alpha `train` chose, which evaluate uses
        alpha = json.loads(decoding.read_text())["alpha"] if decoding.exists() else 0.6
        row = ours if name == "greedy" else {
            "system": "ours", "search": f"beam 4, alpha {alpha:g} (cached)", "of": "ours"}
        if name != "greedy":
            result["rows"].append(row)
        row["evaluate_command"] = shlex.join(str(word) for word in command)
        row["evaluate_seconds"] = round(wall, 1)
        if code:
            row["error"] = f"evaluate exited with {code}"
            continue
        row["hypotheses"] = str(hypotheses)
    # Decode time. Greedy: the train job's own timing of its test translation (in process, like
    # keras_hub's). Otherwise: evaluate's wall time less the CLI's start-up (imports, loading the
    # run), measured as the wall time of `translate` given no sentence.
    command = [sys.executable, "-m", "keras_transformer", "translate", run_dir, "--file",
               os.devnull]
    code, wall, _ = run_logged(command, out / "ours.startup.log", "ours start-up")
    startup = None if code else round(wall, 1)
    ours["cli_startup_seconds"] = startup
    for row in result["rows"]:
        if row is not ours and row.get("of") != "ours":
            continue
        if row is ours and ours.get("job_decode_seconds") is not None:
            row["decode_seconds"] = ours["job_decode_seconds"]
        elif startup is not None and "evaluate_seconds" in row:
            row["decode_seconds"] = round(max(row["evaluate_seconds"] - startup, 0.0), 1)
            row["decode_estimated"] = True


def parse_ours_training(run_dir, log_text):
    """What ours' run reports about training, from whatever is there: progress.json (the
    --max-minutes budget), the log ("... (this session: K steps)", "trained in N s",
    "translated N test sentences in X s"), history.csv and settings.json."""
    found = {}
    progress = run_dir / "progress.json"
    if progress.exists():
        values = json.loads(progress.read_text())
        found["budget_spent"] = values.get("budget_spent")
        if values.get("train_seconds") is not None:
            found["train_seconds"] = float(values["train_seconds"])
            found["train_seconds_from"] = "progress.json"
        if values.get("steps") is not None:
            found["steps"], found["steps_from"] = int(values["steps"]), "progress.json"
    if "train_seconds" not in found:
        match = re.findall(r"trained in ([\d.]+) s", log_text)
        if match:
            found["train_seconds"] = float(match[-1])
            found["train_seconds_from"] = "log (trained in N s)"
    match = re.findall(r"this session: (\d+) steps", log_text)
    if match and "steps" not in found:
        found["steps"], found["steps_from"] = int(match[-1]), "log (this session: K steps)"
    # the job's own lines on its precision and its choice of beam search's alpha
    found["log_lines"] = re.findall(r"^(precision: .*|beam \d+ on \d+ validation sentences.*)$",
                                    log_text, re.MULTILINE)
    match = re.search(r"translated (\d+) test sentences in ([\d.]+) s", log_text)
    if match:
        found["job_decode_seconds"] = float(match.group(2))
    history = run_dir / "history.csv"
    if history.exists():
        with open(history) as file:
            rows = list(csv.DictReader(file))
        found["epochs"] = len(rows)
        found["history_last"] = rows[-1] if rows else None
    settings_file = run_dir / "settings.json"
    if settings_file.exists():
        settings = json.loads(settings_file.read_text())
        found["settings"] = settings
        per_epoch = settings.get("steps_per_epoch")
        if "steps" not in found and per_epoch and found.get("epochs"):
            # exact unless a budget stopped the last epoch early (then an upper bound)
            found["steps"] = per_epoch * found["epochs"]
            found["steps_from"] = "history.csv rows x steps_per_epoch"
            if found.get("budget_spent"):
                found["steps_upper_bound"] = True
    config_file = run_dir / "config.json"
    if config_file.exists():
        found["config"] = json.loads(config_file.read_text())
    return found


def run_hub(args, files, out, result):
    """Trains and decodes the keras-hub model in a subprocess; fills its row."""
    ours = next((row for row in result["rows"] if row["system"] == "ours" and "of" not in row),
                None)
    row = {"system": "keras_hub", "search": "greedy (no cache)", "load_avg_before": process.load_average()}
    result["rows"].append(row)
    if args.minutes > 0:
        seconds = 60 * args.minutes
    elif ours and ours.get("train_seconds"):
        seconds = ours["train_seconds"]
        row["budget_from"] = "ours' training time (--minutes 0)"
    else:
        row["error"] = "no budget: --minutes 0 needs ours to have trained first in this run"
        return
    ours_dir = out / "ours"
    reuse = (args.hub_tokenizers == "ours" and (ours_dir / "source.spm").exists()
             and (ours_dir / "target.spm").exists())
    job = {
        "train": spec(files["train"]), "val": spec(files["val"]), "test": spec(files["test"]),
        "seconds": seconds, "seed": args.seed, "max_length": args.max_length,
        "vocab_size": args.vocab_size, "out": str(out / "keras_hub"),
        "tokenizers": str(ours_dir) if reuse else None,
        "hypotheses": str(out / "keras_hub.greedy.hyp"),
    }
    (out / "keras_hub").mkdir(parents=True, exist_ok=True)
    job_file = out / "keras_hub" / "job.json"
    job_file.write_text(json.dumps(job, indent=2))
    command = [sys.executable, Path(__file__).resolve(), "--hub-worker", job_file]
    row["train_command"] = shlex.join(str(word) for word in command)
    code, wall, _ = run_logged(command, out / "keras_hub.log", "keras_hub")
    row["job_seconds"] = round(wall, 1)
    report = out / "keras_hub" / "report.json"
    if code or not report.exists():
        row["error"] = f"exited with {code} (see {out / 'keras_hub.log'})"
        return
    row.update(json.loads(report.read_text()))


def bleu_tokenizer(args, references):
    """--bleu-tokenize, or with auto the one `train` and `evaluate` use for these references
    (`evaluation.bleu_tokenizer`: char for text written without spaces, else 13a)."""
    from keras_transformer.generation.evaluation import bleu_tokenizer as by_text

    return by_text(references) if args.bleu_tokenize == "auto" else args.bleu_tokenize


def score(rows, references, tokenize):
    """Adds cased and lower-cased BLEU and chrF to every row with a hypotheses file."""
    import sacrebleu

    lowered = [reference.lower() for reference in references]
    signature = None
    for row in rows:
        if "hypotheses" not in row:
            continue
        text = Path(row["hypotheses"]).read_text(encoding="utf-8")
        hypotheses = text.split("\n")
        if hypotheses and hypotheses[-1] == "":
            hypotheses.pop()
        if len(hypotheses) != len(references):
            row["error"] = f"{len(hypotheses)} hypotheses for {len(references)} references"
            continue
        bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
        chrf = sacrebleu.metrics.CHRF()
        row["bleu"] = bleu.corpus_score(hypotheses, [references]).score
        row["chrf"] = chrf.corpus_score(hypotheses, [references]).score
        lower = [hypothesis.lower() for hypothesis in hypotheses]
        row["bleu_lc"] = bleu.corpus_score(lower, [lowered]).score
        row["chrf_lc"] = chrf.corpus_score(lower, [lowered]).score
        signature = f"BLEU {bleu.get_signature()}; chrF {chrf.get_signature()}"
    return signature


def cell(value, digits=1, mark=""):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{mark}{value:,.{digits}f}"
    return f"{mark}{value:,}"


def table(result):
    header = ("| system | search | BLEU | BLEU (lc) | chrF | chrF (lc) | training steps | "
              "train s | target tokens/s | decode s |")
    lines = [header, "|" + "---|" * 10]
    for row in result["rows"]:
        if "of" in row:  # another search of a trained row: no training columns
            steps = seconds = speed = "〃"
        else:
            steps = cell(row.get("steps"), mark="≤" if row.get("steps_upper_bound") else "")
            seconds = cell(row.get("train_seconds"))
            speed = cell(row.get("target_tokens_per_second"), 0)
        decode = cell(row.get("decode_seconds"), mark="≈" if row.get("decode_estimated") else "")
        scores = [cell(row.get(key), 2) for key in ("bleu", "bleu_lc", "chrf", "chrf_lc")]
        name = row["system"] + (" (error)" if row.get("error") else "")
        lines.append(f"| {name} | {row['search']} | " + " | ".join(scores)
                     + f" | {steps} | {seconds} | {speed} | {decode} |")
    return "\n".join(lines)


def describe(result, args):
    """The header lines, the table and the notes, as markdown."""
    corpus = result["corpus"]
    budget = (f"{args.minutes:g} minutes of training per system" if args.minutes > 0 else
              "ours: no --max-minutes (trained as --ours-args say); keras_hub: the time ours' "
              "training took")
    lines = [
        f"## real_corpus: {corpus['name']} ({args.source} -> {corpus['target']}), "
        f"train {corpus['train']:,} / validation {corpus['val']:,} / test {corpus['test']:,} pairs",
        "",
        f"- budget: {budget}; systems one after the other on this machine",
        f"- machine: {result['machine']}; load average {result['load_avg_start']} at the start"
        + "".join(f", {row['load_avg_before']} before {row['system']}"
                  for row in result["rows"] if "load_avg_before" in row),
    ]
    hub = next((row for row in result["rows"] if row["system"] == "keras_hub"), None)
    ours = next((row for row in result["rows"] if row["system"] == "ours" and "of" not in row),
                None)
    if ours and ours.get("config"):
        config = ours["config"]
        stats = ours.get("stats", {})
        lines.append(
            f"- ours: {config.get('num_layers')} layers, d_model {config.get('d_model')}, "
            f"{config.get('num_heads')} heads, d_ff {config.get('d_ff')}, dropout "
            f"{config.get('dropout')}, max_length {config.get('max_length')}, vocabulary "
            f"{config.get('source_vocab_size')}/{config.get('target_vocab_size')}; "
            f"{ours.get('epochs')} epochs in history.csv; steps from {ours.get('steps_from')}"
            + (f"; test pairs longer than max_length: {stats['test_truncated']}"
               if "test_truncated" in stats else "")
            + "".join(f"; {line}" for line in ours.get("log_lines", [])))
    if hub and "parameters" in hub:
        lines.append(
            f"- keras_hub: {hub['shape']}, {hub['parameters']:,} parameters, Adam "
            f"{HUB_LEARNING_RATE:g}, batches of {HUB_BATCH} x {hub['max_length']} tokens, "
            f"jit_compile {hub['jit_compile']}; {hub['epochs']} epochs "
            f"({hub['train_pairs']:,} pairs each), last val_loss {cell(hub.get('val_loss'), 3)}; "
            f"tokenizers: {hub['tokenizers']} ({hub['source_vocab']}/{hub['target_vocab']} "
            f"pieces)")
        lines.append(
            f"- keras_hub truncation at {hub['max_length']} tokens: test "
            f"{hub['test_truncated_source']} sources and {hub['test_truncated_target']} "
            f"references of {corpus['test']:,} "
            f"(training: {hub['train_truncated_source']:,} sources, "
            f"{hub['train_truncated_target']:,} targets of {hub['train_pairs']:,}); its "
            f"translations stop at {hub['max_length'] - 1} tokens")
    if result.get("signature"):
        lines.append(f"- sacrebleu: {result['signature']}; (lc) = hypotheses and references "
                     "lower-cased; references normalized as ours' outputs are")
    lines += ["", table(result), "",
              "train s: wall time of `fit` (steps and the validation after each epoch) as the "
              "budget counts it. target tokens/s: non-padding target tokens trained on / train s "
              "(ours: steps x mean target tokens per batch of its training split). decode s: "
              "the test set; ours' greedy as its train job times it, ≈ = `evaluate`'s wall time "
              "less the CLI's start-up (`translate` of no sentence)."]
    errors = [f"- {row['system']} {row['search']}: {row['error']}"
              for row in result["rows"] if row.get("error")]
    if errors:
        lines += ["", "Errors:"] + errors
    lines += ["", "Reproduce:", "", "```", result["command"], "```"]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.hub_worker:
        return hub_worker(json.loads(Path(args.hub_worker).read_text()))
    if args.ours_stats:
        return ours_stats(json.loads(args.ours_stats))
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"--systems: unknown {sorted(unknown)}; choose from {SYSTEMS}")
    files, target = corpus_files(args)
    corpus_name = Path(args.corpus).resolve().name
    out = Path(args.out) if args.out else ROOT / "runs" / "real_corpus" / corpus_name
    out.mkdir(parents=True, exist_ok=True)
    for name in systems:
        stale = [out / name] + list(out.glob(f"{name}.*"))
        if any(path.exists() for path in stale):
            if not args.overwrite:
                raise SystemExit(f"{out / name} exists: pass --overwrite to start over, or "
                                 "another --out")
            for path in stale:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    files = limited_files(files, args, out)

    from pipelines.normalization import normalize
    from pipelines.readers import count_lines, load_pairs

    test_pairs, report = load_pairs(spec(files["test"]))
    references = [normalize(target_text) for _, target_text in test_pairs]
    result = {
        "corpus": {"name": corpus_name, "folder": str(Path(args.corpus).resolve()),
                   "target": target, "train": count_lines(files["train"][0]),
                   "val": count_lines(files["val"][0]), "test": len(test_pairs),
                   "test_report": report.summary()},
        "machine": process.host_line(PACKAGES, load=False), "load_avg_start": process.load_average(),
        "args": {key: value for key, value in vars(args).items() if key not in HIDDEN},
        "command": process.reproduce_line(__file__, args, skip=HIDDEN, defaults=parse_args([])),
        "rows": [],
    }
    for name in systems:
        (run_ours if name == "ours" else run_hub)(args, files, out, result)
    result["signature"] = score(result["rows"], references, bleu_tokenizer(args, references))
    text = describe(result, args)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print()
    print(text)
    print(f"\nwrote {out / 'results.md'} and {out / 'results.json'}")
    print(f"reproduce: {result['command']}")
    return 1 if any(row.get("error") for row in result["rows"]) else 0


# ---------------------------------------------------------------------------------------------
# Subprocess: target tokens per step of ours' training batches, ours' truncation of the test set


def ours_stats(job):
    import tensorflow as tf

    from keras_transformer.run_dir import RunDir
    from pipelines import batching
    from pipelines.readers import load_pairs
    from pipelines.text_path import TextPath
    from pipelines.tokenizers import SentencePieceTokenizer

    run = RunDir(job["run_dir"])
    settings, config = run.load_settings(), run.load_config()
    text_path = TextPath(SentencePieceTokenizer.load(run.source_tokenizer),
                         SentencePieceTokenizer.load(run.target_tokenizer), config.max_length)
    jit = bool(settings.get("jit_compile"))
    data = batching.make_dataset(run.split_file("train"), text_path,
                                 batch_tokens=settings["batch_tokens"], shuffle=False,
                                 seed=settings.get("seed", 0), pad_to_bucket=jit,
                                 drop_remainder=jit, cache=False)
    batches = tokens = 0
    for (_, _), target_out in data:
        batches += 1
        tokens += int(tf.math.count_nonzero(target_out))
    test_pairs, _ = load_pairs(job["test"])
    stats = {"batches_per_epoch": batches, "target_tokens_per_epoch": tokens,
             "target_tokens_per_batch": tokens / max(batches, 1),
             "batch_tokens": settings["batch_tokens"], "max_length": config.max_length,
             "test_truncated": batching.count_truncated(test_pairs, text_path)}
    Path(job["out"]).write_text(json.dumps(stats, indent=2))
    print(json.dumps(stats))
    return 0


# ---------------------------------------------------------------------------------------------
# Subprocess: the keras.io KerasHub example's model, trained for a wall-clock budget


def hub_worker(job):
    """Trains the keras.io example's model for job["seconds"], decodes the test split, writes
    the hypotheses and OUT/keras_hub/report.json."""
    import keras
    import tensorflow as tf

    from pipelines.readers import load_pairs

    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(job["seed"])
    length = job["max_length"]
    train_pairs, train_report = load_pairs(job["train"])
    val_pairs, _ = load_pairs(job["val"])
    test_pairs, _ = load_pairs(job["test"])
    print(f"train: {train_report.summary()}; validation {len(val_pairs)}, test {len(test_pairs)}")
    source_tokenizer, target_tokenizer, tokenizers = hub_tokenizers(job, train_pairs, out)
    print(f"tokenizers: {tokenizers}")

    def encode(pairs):
        return encode_example(pairs, source_tokenizer, target_tokenizer, length)

    train, val, test = encode(train_pairs), encode(val_pairs), encode(test_pairs)
    encoder, decoder, model = build_example_model(
        source_tokenizer.vocab_size, target_tokenizer.vocab_size, length, **HUB_SHAPE)
    history, budget, tokens = train_example(model, train, val, job)
    model.save_weights(out / "final.weights.h5")

    began = time.perf_counter()
    hypotheses = decode_example(encoder, decoder, test[0], target_tokenizer, length)
    decode_seconds = time.perf_counter() - began
    Path(job["hypotheses"]).write_text("".join(h.replace("\n", " ") + "\n" for h in hypotheses),
                                       encoding="utf-8")
    print(f"decoded {len(hypotheses)} test sentences in {decode_seconds:.1f} s")
    for source, hypothesis in list(zip((s for s, _ in test_pairs), hypotheses))[:3]:
        print(f"  {source}\n  -> {hypothesis}")

    val_losses = history.history.get("val_loss", [])
    report = {
        "hypotheses": job["hypotheses"], "steps": budget.steps, "epochs": len(val_losses),
        "train_seconds": round(budget.elapsed, 1), "step_seconds": round(budget.step_seconds, 1),
        "budget_seconds": job["seconds"], "target_tokens": round(tokens),
        "target_tokens_per_second": tokens / budget.elapsed if budget.elapsed else None,
        "decode_seconds": round(decode_seconds, 1),
        "val_loss": val_losses[-1] if val_losses else None,
        "loss": history.history.get("loss", [None])[-1],
        "parameters": model.count_params(), "jit_compile": model.jit_compile,
        "shape": ", ".join(f"{key} {value}" for key, value in HUB_SHAPE.items()),
        "max_length": length, "tokenizers": tokenizers,
        "source_vocab": source_tokenizer.vocab_size, "target_vocab": target_tokenizer.vocab_size,
        "train_pairs": len(train[0]), "train_truncated_source": train[3][0],
        "train_truncated_target": train[3][1], "test_truncated_source": test[3][0],
        "test_truncated_target": test[3][1],
        "devices": [device.name for device in tf.config.list_physical_devices()],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


def hub_tokenizers(job, train_pairs, out):
    """(source, target) SentencePiece tokenizers: ours' (job["tokenizers"], a run folder) or
    learned here from the training sides; and a line saying which."""
    from pipelines.tokenizers import SentencePieceTokenizer, build_tokenizers

    if job["tokenizers"]:
        folder = Path(job["tokenizers"])
        return (SentencePieceTokenizer.load(folder / "source.spm"),
                SentencePieceTokenizer.load(folder / "target.spm"),
                f"ours' ({folder}/source.spm, target.spm)")
    began = time.perf_counter()
    source_tokenizer, target_tokenizer = build_tokenizers(train_pairs, job["vocab_size"])
    source_tokenizer.save(out / "source.spm")
    target_tokenizer.save(out / "target.spm")
    return (source_tokenizer, target_tokenizer,
            f"learned here from the training sides (vocab_size {job['vocab_size']}, "
            f"{time.perf_counter() - began:.0f} s)")


def encode_example(pairs, source_tokenizer, target_tokenizer, length):
    """Sources (N, L) and, as the example's StartEndPacker(L + 1) then [:-1] / [1:] gives
    them, target_in and target_out (N, L); pieces beyond the length are cut off. Also
    (sources, targets) cut."""
    import numpy as np
    import tensorflow as tf

    from pipelines.tokenizers import END_ID, PAD_ID, START_ID

    sources, targets = zip(*pairs)
    source = source_tokenizer.tokenize(list(sources))
    target = target_tokenizer.tokenize(list(targets))
    kept = np.minimum(target.row_lengths().numpy(), length - 1)
    framed = np.full((len(pairs), length + 1), PAD_ID, np.int32)
    framed[:, 0] = START_ID
    framed[:, 1:length] = target.to_tensor(PAD_ID, shape=[None, length - 1]).numpy()
    framed[np.arange(len(pairs)), kept + 1] = END_ID
    truncated = (int(tf.math.count_nonzero(source.row_lengths() > length)),
                 int(tf.math.count_nonzero(target.row_lengths() > length - 1)))
    source = source.to_tensor(PAD_ID, shape=[None, length]).numpy()
    return source, framed[:, :-1], framed[:, 1:], truncated


def train_example(model, train, val, job):
    """The example's recipe (Adam, cross-entropy ignoring [PAD], batches of HUB_BATCH
    reshuffled each epoch) until job["seconds"] of `fit` are spent. Returns (history, the
    budget callback: steps and seconds, target tokens trained on)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pipelines.tokenizers import PAD_ID

    (train_source, train_in, train_out, _), (val_source, val_in, val_out, _) = train, val
    train_data = (tf.data.Dataset.from_tensor_slices(((train_source, train_in), train_out))
                  .shuffle(len(train_source), seed=job["seed"], reshuffle_each_iteration=True)
                  .batch(HUB_BATCH).prefetch(tf.data.AUTOTUNE))
    val_data = tf.data.Dataset.from_tensor_slices(((val_source, val_in), val_out)).batch(HUB_BATCH)
    tokens_per_epoch = int(np.count_nonzero(train_out))
    batches_per_epoch = -(-len(train_source) // HUB_BATCH)
    model.compile(optimizer=keras.optimizers.Adam(HUB_LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=PAD_ID))
    model.summary(print_fn=lambda line, **_: print(line))
    print(f"training for {job['seconds']:.0f} s: {len(train_source):,} pairs, "
          f"{batches_per_epoch} batches of {HUB_BATCH} x {train_source.shape[1]} a pass")

    budget = _wall_clock_budget_class()(job["seconds"])
    history = model.fit(train_data, validation_data=val_data, epochs=1_000_000,
                        callbacks=[budget], verbose=2)
    full_epochs, partial = divmod(budget.steps, batches_per_epoch)
    tokens = full_epochs * tokens_per_epoch + partial * tokens_per_epoch / batches_per_epoch
    return history, budget, tokens


def decode_example(encoder, decoder, test_source, target_tokenizer, length):
    """The example's decode_sequences, batched (HUB_BATCH sentences): keras-hub's
    GreedySampler, the decoder rerun on the whole prefix each step (no cache), the encoder
    once per batch; stops when every sentence has [END]. Returns the translations."""
    import keras_hub
    import tensorflow as tf

    from pipelines.tokenizers import END_ID, PAD_ID, START_ID

    sampler = keras_hub.samplers.GreedySampler()

    @tf.function(reduce_retracing=True)
    def generate(source):
        encoded = encoder(source, training=False)
        rows = tf.shape(source)[0]
        prompt = tf.concat([tf.fill([rows, 1], START_ID),
                            tf.fill([rows, length - 1], PAD_ID)], axis=1)

        def next(prompt, cache, index):
            logits = decoder([prompt, encoded, source], training=False)[:, index - 1, :]
            return logits, None, cache

        return sampler(next, prompt, stop_token_ids=[END_ID], index=1)

    hypotheses = []
    for start in range(0, len(test_source), HUB_BATCH):
        tokens_out = generate(tf.constant(test_source[start:start + HUB_BATCH]))
        hypotheses += [text.decode("utf-8")
                       for text in target_tokenizer.detokenize(tokens_out).numpy()]
    return hypotheses


def build_example_model(source_vocab, target_vocab, length, num_layers, d_model, num_heads, d_ff,
                        output_dropout):
    """The keras.io example's encoder, decoder and transformer models (functional), with
    `num_layers` blocks a side and padding masks passed explicitly (what the example's
    `mask_zero=True` does). Logits out (the example's softmax is folded into the loss)."""
    import keras
    import keras_hub
    from keras import ops

    source = keras.Input((None,), dtype="int32", name="encoder_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(source_vocab, length, d_model,
                                                   name="source_embedding")(source)
    for i in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(d_ff, num_heads, name=f"encoder_{i}")(
            x, padding_mask=ops.not_equal(source, 0))
    encoder = keras.Model(source, x, name="encoder")

    target = keras.Input((None,), dtype="int32", name="decoder_inputs")
    encoded = keras.Input((None, d_model), name="decoder_state_inputs")
    source_tokens = keras.Input((None,), dtype="int32", name="encoder_tokens")  # for its mask
    y = keras_hub.layers.TokenAndPositionEmbedding(target_vocab, length, d_model,
                                                   name="target_embedding")(target)
    for i in range(num_layers):
        y = keras_hub.layers.TransformerDecoder(d_ff, num_heads, name=f"decoder_{i}")(
            y, encoded, decoder_padding_mask=ops.not_equal(target, 0),
            encoder_padding_mask=ops.not_equal(source_tokens, 0))
    y = keras.layers.Dropout(output_dropout)(y)
    logits = keras.layers.Dense(target_vocab, dtype="float32", name="logits")(y)
    decoder = keras.Model([target, encoded, source_tokens], logits, name="decoder")

    model_source = keras.Input((None,), dtype="int32", name="source")
    model_target = keras.Input((None,), dtype="int32", name="target")
    outputs = decoder([model_target, encoder(model_source), model_source])
    return encoder, decoder, keras.Model([model_source, model_target], outputs, name="transformer")


def _wall_clock_budget_class():
    """The callback class (defined here: the parent process never imports keras)."""
    import keras

    class WallClockBudget(keras.callbacks.Callback):
        """Stops `fit` at the end of the step during which `seconds` of fit's wall time (steps
        and each epoch's validation, as ours' --max-minutes counts) ran out."""

        def __init__(self, seconds):
            super().__init__()
            self.seconds, self.steps, self.step_seconds = seconds, 0, 0.0
            self.began = self.step_began = None
            self.stopped_at = None

        @property
        def elapsed(self):
            return (self.stopped_at or time.perf_counter()) - self.began

        def on_train_begin(self, logs=None):
            self.began = time.perf_counter()

        def on_train_end(self, logs=None):
            self.stopped_at = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            self.step_began = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.steps += 1
            self.step_seconds += now - self.step_began
            if now - self.began >= self.seconds:
                self.model.stop_training = True

    return WallClockBudget


if __name__ == "__main__":
    sys.exit(main())
