"""Serving speed and quality of every engine on one trained run: the Keras `Translator`, the
SavedModel, TFLite float32 / int8 and CTranslate2 float32 / int8, greedy and beam 4, one after the
other in one process.

Exports RUN_DIR (nothing is trained here) into a temporary folder, loads every engine, warms each
up, then, in rounds with the engines in rotating order, times:
    batch 1    one sentence per call over --latency-sentences sentences: median ms per sentence
    batch 32   --batch sentences per call over --sentences sentences: sentences per second
and scores what each translated (sacrebleu BLEU against the references, and agreement: the
fraction of sentences whose translation equals the Keras model's with the same search). TFLite
has no beam search file, so its beam rows are absent. Beam search uses the run's alpha everywhere.
`--parity` also translates the whole test split with Keras and CTranslate2 (float32 and int8) and
prints their token agreement and BLEU.

    python benchmarks/regression/serving.py RUN_DIR
    python benchmarks/regression/serving.py RUN_DIR --sentences 256 --rounds 2 --parity
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
from common.timing import serve_rounds  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a trained run directory (read only)")
    parser.add_argument("--sentences", type=int, default=256,
                        help="test sentences translated per engine for throughput and BLEU")
    parser.add_argument("--latency-sentences", type=int, default=32,
                        help="sentences translated one by one (batch 1) per round")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per engine")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="LiteRT and CTranslate2 threads")
    parser.add_argument("--parity", action="store_true",
                        help="also compare Keras and CTranslate2 on the whole test split")
    parser.add_argument("--device", default="cpu",
                        help="CTranslate2 device (cuda adds float16 rows)")
    return parser.parse_args(argv)


def engines(args, folder):
    """{(engine, search): translate(list[str]) -> list[str]} and the artifact sizes."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    from keras_transformer import export as ex
    from keras_transformer.engines import load_translator
    from keras_transformer.export.ctranslate2 import export_run_ctranslate2
    from keras_transformer.export.ctranslate2_translator import CTranslate2Translator
    from keras_transformer.run_dir import RunDir

    alpha = RunDir(args.run_dir).beam_alpha()
    runners, sizes = {}, {}
    keras_translator = load_translator(args.run_dir)
    runners["Keras Translator", "greedy"] = lambda batch: keras_translator.translate(batch)
    runners["Keras Translator", "beam 4"] = lambda batch: keras_translator.translate(
        batch, "beam", beam_size=4, alpha=alpha)

    exported = ex.export_run(args.run_dir, Path(folder) / "saved", tflite=("translate",
                                                                            "translate_int8"))
    loaded = tf.saved_model.load(str(exported.version_dir))

    def saved(signature):
        function = loaded.signatures[signature]
        return lambda batch: [t.decode() for t in
                              function(sentences=tf.constant(batch))["translations"].numpy()]

    runners["SavedModel", "greedy"] = saved("serving_default")
    runners["SavedModel", "beam 4"] = saved("beam_search")
    sizes["SavedModel"] = exported.artifact(".").size
    for name, variant in (("TFLite float32", "translate"), ("TFLite int8", "translate_int8")):
        path = exported.version_dir / "tflite" / f"{variant}.tflite"
        runner = InterpreterWithCustomOps(
            custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
            model_path=str(path), num_threads=args.threads).get_signature_runner()
        runners[name, "greedy"] = (lambda batch, r=runner: [
            t.decode() for t in r(sentences=np.array(batch, dtype=object))["translations"]])
        sizes[name] = path.stat().st_size

    quantizations = ["float32", "int8"] + (["float16"] if args.device == "cuda" else [])
    for quantization in quantizations:
        directory = export_run_ctranslate2(args.run_dir, Path(folder) / f"ct2_{quantization}",
                                           quantization=quantization)
        engine = CTranslate2Translator(directory, device=args.device, intra_threads=args.threads)
        name = f"CTranslate2 {quantization}" + (" (GPU)" if args.device == "cuda" else "")
        runners[name, "greedy"] = lambda batch, e=engine: e.translate(batch)
        runners[name, "beam 4"] = lambda batch, e=engine: e.translate(batch, "beam", beam_size=4)
        sizes[name] = (directory / "model.bin").stat().st_size
    return runners, sizes, alpha


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.run_dir import RunDir
    from pipelines.normalization import normalize
    from pipelines.readers import load_pairs

    pairs = load_pairs(RunDir(args.run_dir).split_file("test"))[0]
    all_sources = [source for source, _ in pairs]
    all_references = [normalize(target) for _, target in pairs]
    count = min(args.sentences, len(pairs))
    count -= count % args.batch if count >= args.batch else 0
    sources, references = all_sources[:count], all_references[:count]
    batches = [sources[i:i + args.batch] for i in range(0, count, args.batch)]
    singles = sources[:args.latency_sentences]

    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        runners, sizes, alpha = engines(args, folder)
        export_seconds = time.perf_counter() - began
        for run in runners.values():  # traces and caches: batch 1 and --batch
            run(singles[:1])
            run(batches[0])

        latency, throughput, outputs = serve_rounds(runners, singles, batches, args.rounds)

        parity = {}
        if args.parity:
            for search in ("greedy", "beam 4"):
                keras_out = [t for i in range(0, len(all_sources), 64)
                             for t in runners["Keras Translator", search](all_sources[i:i + 64])]
                for quantization in ("float32", "int8"):
                    name = f"CTranslate2 {quantization}"
                    theirs = [t for i in range(0, len(all_sources), 64)
                              for t in runners[name, search](all_sources[i:i + 64])]
                    parity[name, search] = (
                        np.mean([a == b for a, b in zip(theirs, keras_out)]),
                        score_translations(theirs, all_references)["bleu"],
                        score_translations(keras_out, all_references)["bleu"])

    print(f"{device.machine_line()}; LiteRT / CTranslate2 threads {args.threads}")
    print(f"run {args.run_dir}: {count} test sentences, batch {args.batch}, {args.rounds} rounds, "
          f"beam alpha {alpha:g}; exports {export_seconds:.0f} s")
    header = (f"| {'engine':<22} | {'search':<6} | {'size MB':>7} | {'batch 1 ms/sent':>15} | "
              f"{f'batch {args.batch} sent/s':>15} | {'x SavedModel':>12} | {'BLEU':>5} | "
              f"{'agreement':>9} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name in runners:
        engine, search = name
        base = statistics.median(throughput["SavedModel", search]) \
            if ("SavedModel", search) in throughput else float("nan")
        rate = statistics.median(throughput[name])
        bleu = score_translations(outputs[name], references)["bleu"]
        agreement = np.mean([a == b for a, b in
                             zip(outputs[name], outputs["Keras Translator", search])])
        size = sizes.get(engine)
        print(f"| {engine:<22} | {search:<6} | "
              f"{(size / 2 ** 20 if size else float('nan')):>7.2f} | "
              f"{1000 * statistics.median(latency[name]):>15.1f} | {rate:>15.1f} | "
              f"{rate / base:>11.2f}x | {bleu:>5.2f} | {agreement:>9.3f} |")
    print("agreement: translations equal to the Keras Translator's with the same search; "
          "sizes: SavedModel = saved_model.pb + variables + assets (weights twice: greedy and "
          "beam graphs), TFLite = the string-in, string-out file, CTranslate2 = model.bin")
    for (name, search), (agree, theirs, ours) in parity.items():
        print(f"parity on all {len(all_sources)} test sentences, {name} vs Keras, {search}: "
              f"same translation {agree:.3f}; BLEU {theirs:.2f} vs {ours:.2f}")
    print("reproduce: " + process.reproduce_line(__file__, args, positional=("run_dir",)))


if __name__ == "__main__":
    main()
