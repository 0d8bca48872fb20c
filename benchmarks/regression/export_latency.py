"""Serving latency and throughput of the exported artifacts: SavedModel (plain and XLA) and the
string-in, string-out TFLite models (float32, float16, int8; greedy, and beam search float32 and
int8 beside the SavedModel's beam_search signature), with their file sizes.

Exports RUN_DIR (a trained run; nothing is trained here) into a temporary folder, loads every
artifact in this process, warms each up (XLA compiles once per batch size: 1 and --batch), then
times, in rounds with the artifacts in rotating order:
    latency     one sentence per call (batch 1), median and 90th percentile over sentences
    throughput  --batch sentences per call over the sentences (full batches only)
Sentences come from the run's test split. Agreement is the fraction of sentences whose
translation equals the plain SavedModel's (greedy; beam search's rows: its beam_search signature).

    python benchmarks/regression/export_latency.py RUN_DIR
    python benchmarks/regression/export_latency.py RUN_DIR --sentences 128 --rounds 2 --threads 2
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import device, process  # noqa: E402
from common.timing import percentile, serve_rounds, spread  # noqa: E402

TFLITE = {"TFLite float32": "translate", "TFLite float16": "translate_float16",
          "TFLite int8": "translate_int8", "TFLite beam": "translate_beam",
          "TFLite beam int8": "translate_beam_int8"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a trained run directory (read only)")
    parser.add_argument("--sentences", type=int, default=256,
                        help="test sentences timed for throughput and agreement")
    parser.add_argument("--latency-sentences", type=int, default=32,
                        help="sentences timed one by one (batch 1) per round")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per artifact")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="LiteRT interpreter threads")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf
    import tensorflow_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    from keras_transformer import export as ex
    from keras_transformer.run_dir import RunDir
    from pipelines.readers import load_pairs

    pairs = load_pairs(RunDir(args.run_dir).split_file("test"))[0]
    sentences = [source for source, _ in pairs][:args.sentences]
    sentences = sentences[:len(sentences) - len(sentences) % args.batch] or sentences
    batches = [sentences[i:i + args.batch] for i in range(0, len(sentences), args.batch)]
    singles = sentences[:args.latency_sentences]

    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        plain = ex.export_run(args.run_dir, Path(folder) / "plain", tflite=tuple(TFLITE.values()))
        xla = ex.export_run(args.run_dir, Path(folder) / "xla", jit_compile=True, tflite=())
        export_seconds = time.perf_counter() - began

        sizes, runners = {}, {}
        for name, result in (("SavedModel", plain), ("SavedModel XLA", xla)):
            signature = tf.saved_model.load(str(result.version_dir)).signatures["serving_default"]
            runners[name] = (lambda batch, f=signature: [
                t.decode() for t in f(sentences=tf.constant(batch))["translations"].numpy()])
            sizes[name] = result.artifact(".").size
        beam = tf.saved_model.load(str(plain.version_dir)).signatures["beam_search"]
        runners["SavedModel beam"] = (lambda batch, f=beam: [
            t.decode() for t in f(sentences=tf.constant(batch))["translations"].numpy()])
        sizes["SavedModel beam"] = sizes["SavedModel"]
        for name, variant in TFLITE.items():
            path = plain.version_dir / "tflite" / f"{variant}.tflite"
            runner = InterpreterWithCustomOps(
                custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
                model_path=str(path), num_threads=args.threads).get_signature_runner()
            runners[name] = (lambda batch, r=runner: [
                t.decode() for t in r(sentences=np.array(batch, dtype=object))["translations"]])
            sizes[name] = path.stat().st_size

        warm_began = time.perf_counter()
        for run in runners.values():  # traces, XLA compilations (batch 1 and --batch), caches
            run(singles[:1])
            run(batches[0])
        warm_seconds = time.perf_counter() - warm_began

        latency, throughput, outputs = serve_rounds(runners, singles, batches, args.rounds)

    print(f"{device.machine_line()}; LiteRT threads {args.threads}")
    print(f"run {args.run_dir}: {len(sentences)} test sentences, batch {args.batch}, "
          f"{args.rounds} rounds; export {export_seconds:.0f} s, warm-up {warm_seconds:.0f} s")
    header = (f"{'artifact':<16} {'size MB':>8} {'batch 1 ms (median)':>20} {'p90 ms':>8} "
              f"{f'batch {args.batch} sent/s':>16} {'spread':>7} {'agreement':>10}")
    print(header)
    print("-" * len(header))
    for name in runners:
        ms = [1000 * value for value in latency[name]]
        reference = outputs["SavedModel beam" if "beam" in name else "SavedModel"]
        agreement = np.mean([a == b for a, b in zip(outputs[name], reference)])
        print(f"{name:<16} {sizes[name] / 2 ** 20:>8.2f} {statistics.median(ms):>20.1f} "
              f"{percentile(ms, 0.9):>8.1f} {statistics.median(throughput[name]):>16.1f} "
              f"{spread(throughput[name]):>7.0%} {agreement:>10.3f}")
    print("spread: (max - min) / median of the per-round throughputs; agreement: exact match "
          "with the plain SavedModel's translations (beam rows: its beam_search signature's)")
    print("sizes: SavedModel = saved_model.pb + variables + assets (weights stored twice: greedy "
          "and beam graphs); TFLite = the string-in, string-out file")
    print("reproduce: " + process.reproduce_line(__file__, args, positional=("run_dir",)))


if __name__ == "__main__":
    main()
