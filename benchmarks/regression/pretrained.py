"""A pretrained-translator-shaped model through import, export and every serving engine.

Makes a Marian release of OPUS-MT-base's shape (6 + 6 layers, d_model 512, 8 heads, d_ff 2048,
swish, shared embeddings) with random weights and the real OPUS-MT en-mg vocabulary (54,687
pieces) and SentencePiece models of ../shared/marian, then, each step in a process of its own:

    import      `python -m keras_transformer import`'s work: seconds, peak resident memory
    export      the SavedModel and translate_int8.tflite: seconds, peak memory, file sizes
    ct2         our CTranslate2 int8 export of the imported run, and CTranslate2's own
                MarianConverter of the npz, int8: seconds and sizes
    engines     Keras `Translator`, the SavedModel, TFLite int8 (LiteRT, one thread, as on a phone),
                CTranslate2 int8 (our export and its own conversion): greedy, median ms per
                sentence at batch 1 and sentences/s at batch 32

Each engine runs in a fresh process (none shares TensorFlow's thread pools with another);
CTranslate2's threads are the best of 1 and all cores, measured. Random weights never emit
</s>, so every engine decodes --max-length tokens per sentence: the same work everywhere, but
more tokens than a trained model's translations of these sentences would have.

    python benchmarks/regression/pretrained.py
    python benchmarks/regression/pretrained.py --layers 1 --d-model 64 --d-ff 128 --heads 4 --max-length 16 --sentences 8
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import ROOT, process  # noqa: E402
from common.memory import peak_rss_bytes  # noqa: E402

MARIAN = ROOT.parent / "shared" / "marian" / "opus-mt-en-mg"
CORPUS = ROOT.parent / "shared" / "corpora" / "iwslt15-en-vi" / "test.en"
ENGINES = ("keras", "saved_model", "tflite_int8", "ct2_ours_int8", "ct2_own_int8")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d-ff", type=int, default=2048)
    parser.add_argument("--max-length", type=int, default=32,
                        help="pieces per source and per translation (each decodes this many)")
    parser.add_argument("--sentences", type=int, default=64,
                        help="sentences of the batch-32 run (English TED talks, else the grammar)")
    parser.add_argument("--latency-sentences", type=int, default=8, help="sentences at batch 1")
    parser.add_argument("--folder", help="work folder (default: a temporary one, removed)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # a child's step
    return parser.parse_args(argv)


def sentences(count):
    if CORPUS.exists():
        lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines()]
        return [line for line in lines if 3 <= len(line.split()) <= 25][:count]
    from pipelines.default_data import generate_pairs

    return [source for source, _ in generate_pairs(count, seed=1)]


def vocabulary():
    table = json.loads((MARIAN / "vocab.json").read_text(encoding="utf-8"))
    return [p for p, _ in sorted(table.items(), key=lambda item: item[1]) if p != "<pad>"]


def mib(count):
    return count / 2 ** 20


def folder_bytes(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- child steps

def step_release(args, folder):
    from keras_transformer.pretrained import random_marian

    tensors = random_marian.random_marian_tensors(
        len(vocabulary()), layers=args.layers, d_model=args.d_model, d_ff=args.d_ff, seed=0)
    random_marian.write_marian_release(
        folder / "release", tensors,
        random_marian.marian_options(args.layers, args.d_model, args.heads, args.d_ff),
        vocabulary(), (MARIAN / "source.spm").read_bytes(), (MARIAN / "target.spm").read_bytes())
    return {"npz_mib": mib(folder_bytes(folder / "release" / "model.npz"))}


def step_import(args, folder):
    from keras_transformer.pretrained.marian import import_marian

    began = time.perf_counter()
    import_marian(folder / "release", folder / "run", max_length=args.max_length,
                  log=lambda *_: None)
    return {"seconds": time.perf_counter() - began, "peak_mib": mib(peak_rss_bytes()),
            "keras_mib": mib(folder_bytes(folder / "run" / "best.keras"))}


def step_export(args, folder):
    from keras_transformer.export import export_run

    began = time.perf_counter()
    export_run(folder / "run", folder / "exported", tflite=("translate_int8",))
    version = folder / "exported" / "1"
    return {"seconds": time.perf_counter() - began, "peak_mib": mib(peak_rss_bytes()),
            "saved_model_mib": mib(folder_bytes(version / "saved_model.pb")
                                   + folder_bytes(version / "variables")),
            "tflite_int8_mib": mib(folder_bytes(version / "tflite" / "translate_int8.tflite"))}


def step_ct2(args, folder):
    from ctranslate2.converters import MarianConverter

    from keras_transformer.export.ctranslate2 import export_run_ctranslate2

    began = time.perf_counter()
    ours = export_run_ctranslate2(folder / "run", folder / "ct2_ours", quantization="int8")
    ours_seconds = time.perf_counter() - began
    began = time.perf_counter()
    MarianConverter(str(folder / "release" / "model.npz"),
                    [str(folder / "release" / "vocab.yml")]).convert(
        str(folder / "ct2_own"), quantization="int8")
    return {"ours_seconds": ours_seconds, "own_seconds": time.perf_counter() - began,
            "ours_mib": mib(folder_bytes(Path(ours) / "model.bin")),
            "own_mib": mib(folder_bytes(folder / "ct2_own" / "model.bin")),
            "ours_dir": str(ours)}


def translator(engine, args, folder, threads):
    """translate(list[str]) -> list[str] of one engine."""
    if engine == "keras":
        from keras_transformer.generation.translator import Translator
        from keras_transformer.run_dir import RunDir

        return Translator(*RunDir(folder / "run").load_trained()[:2]).translate
    if engine == "saved_model":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (its ops)

        signature = tf.saved_model.load(str(folder / "exported" / "1")).signatures[
            "serving_default"]
        return lambda batch: [t.decode() for t in signature(
            sentences=tf.constant(batch))["translations"].numpy()]
    if engine == "tflite_int8":
        import numpy as np

        from keras_transformer import export as ex

        runner = ex.tflite_interpreter(folder / "exported" / "1" / "tflite" /
                                       "translate_int8.tflite", num_threads=1
                                       ).get_signature_runner()
        return lambda batch: [t.decode() for t in np.asarray(runner(
            sentences=np.array(batch, dtype=object))["translations"]).reshape(-1)]
    if engine == "ct2_ours_int8":
        from keras_transformer.export.ctranslate2_translator import CTranslate2Translator

        directory = json.loads((folder / "ct2.json").read_text())["ours_dir"]
        return CTranslate2Translator(directory, compute_type="int8",
                                     intra_threads=threads).translate
    if engine == "ct2_own_int8":
        import ctranslate2
        import sentencepiece as spm

        source = spm.SentencePieceProcessor(model_file=str(MARIAN / "source.spm"))
        target = spm.SentencePieceProcessor(model_file=str(MARIAN / "target.spm"))
        engine = ctranslate2.Translator(str(folder / "ct2_own"), compute_type="int8",
                                        intra_threads=threads)

        def translate(batch):
            pieces = [source.encode(s, out_type=str)[:args.max_length - 1] for s in batch]
            results = engine.translate_batch(pieces, beam_size=1,
                                             max_decoding_length=args.max_length)
            return [target.decode(r.hypotheses[0]) for r in results]
        return translate
    raise ValueError(engine)


def step_engine(args, folder, engine, threads=1):
    translate = translator(engine, args, folder, threads)
    texts = sentences(args.sentences)
    singles = texts[:args.latency_sentences]
    translate(singles[:1])
    translate(texts[:32])  # warm-up: traces, allocations
    latency = []
    for sentence in singles:
        began = time.perf_counter()
        translate([sentence])
        latency.append(time.perf_counter() - began)
    began = time.perf_counter()
    for start in range(0, len(texts), 32):
        translate(texts[start:start + 32])
    return {"ms_per_sentence": 1000 * statistics.median(latency),
            "sentences_per_s": len(texts) / (time.perf_counter() - began),
            "peak_mib": mib(peak_rss_bytes()), "threads": threads}


def child(args):
    folder = Path(args.folder)
    name, _, threads = args.step.partition(":")
    steps = {"release": step_release, "import": step_import, "export": step_export,
             "ct2": step_ct2}
    result = (steps[name](args, folder) if name in steps
              else step_engine(args, folder, name, int(threads or 1)))
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------- the parent

def run_step(args, folder, step):
    command = [sys.executable, __file__, "--step", step, "--folder", str(folder),
               "--layers", str(args.layers), "--d-model", str(args.d_model),
               "--heads", str(args.heads), "--d-ff", str(args.d_ff),
               "--max-length", str(args.max_length), "--sentences", str(args.sentences),
               "--latency-sentences", str(args.latency_sentences)]
    done = subprocess.run(command, capture_output=True, text=True, env=process.child_env(),
                          cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(f"step {step} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    args = parse_args(argv)
    if args.step:
        return child(args)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.folder or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"# {process.host_line(('tensorflow', 'keras', 'ctranslate2', 'ai-edge-litert'))}")
        print(f"# model: {args.layers}+{args.layers} layers, d_model {args.d_model}, "
              f"{args.heads} heads, d_ff {args.d_ff}, {len(vocabulary()):,} pieces; "
              f"{args.max_length} tokens decoded per sentence")
        release = run_step(args, folder, "release")
        imported = run_step(args, folder, "import")
        exported = run_step(args, folder, "export")
        converted = run_step(args, folder, "ct2")
        (folder / "ct2.json").write_text(json.dumps(converted))
        print(f"model.npz {release['npz_mib']:.0f} MiB -> import {imported['seconds']:.1f} s, "
              f"peak {imported['peak_mib']:.0f} MiB, best.keras {imported['keras_mib']:.0f} MiB")
        print(f"export (SavedModel + translate_int8.tflite) {exported['seconds']:.1f} s, peak "
              f"{exported['peak_mib']:.0f} MiB; SavedModel {exported['saved_model_mib']:.0f} MiB, "
              f"TFLite int8 {exported['tflite_int8_mib']:.0f} MiB")
        print(f"CTranslate2 int8: ours {converted['ours_seconds']:.1f} s, "
              f"{converted['ours_mib']:.0f} MiB; its own MarianConverter "
              f"{converted['own_seconds']:.1f} s, {converted['own_mib']:.0f} MiB")
        print("\n| engine | threads | ms/sentence (batch 1) | sentences/s (batch 32) | peak MiB |")
        print("|---|---|---|---|---|")
        for engine in ENGINES:
            if engine.startswith("ct2"):
                tried = [run_step(args, folder, f"{engine}:{n}")
                         for n in sorted({1, os.cpu_count() or 1})]
                result = max(tried, key=lambda r: r["sentences_per_s"])
            else:
                result = run_step(args, folder, engine)
                result["threads"] = 1 if engine == "tflite_int8" else "TF default"
            print(f"| {engine} | {result['threads']} | {result['ms_per_sentence']:.1f} | "
                  f"{result['sentences_per_s']:.1f} | {result['peak_mib']:.0f} |")
    print("\nreproduce: " + process.reproduce_line(__file__, args, skip=("folder", "step"),
                                        defaults=parse_args([])))


if __name__ == "__main__":
    main()
