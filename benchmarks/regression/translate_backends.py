"""`Translator.translate` (greedy, with the cache) on TensorFlow and on JAX, each in its own process.

The same model (random weights of the `small` preset, or --preset) and SentencePiece models (learned
from the embedded grammar) on both backends: the model is saved once as `.keras` and loaded in each
process. Per backend: the first call (tracing / compilation) and the median of timed calls over
batches of --batch sentences, as ms per batch and sentences/s. The JAX search is compiled by
`jax.jit` once per input shape (`decoding.jax_compiled`); `--jax-eager` times it without (as before).

    python benchmarks/regression/translate_backends.py [--preset small] [--batch 32] [--calls 5]
    python benchmarks/regression/translate_backends.py --calls 1 --sentences 16   # a smoke run
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import process  # noqa: E402


def measure(args):
    """In this process (its KERAS_BACKEND): the first call and the timed calls, as JSON."""
    import keras

    from keras_transformer.generation import decoding, translator
    from pipelines.text_path import TextPath
    from pipelines.tokenizers import SentencePieceTokenizer

    folder = Path(args.folder)
    model = keras.models.load_model(folder / "model.keras", compile=False)
    tokenizer = SentencePieceTokenizer.load(folder / "tokenizer.spm")
    if args.jax_eager:  # the search called as it is, between the tokenizers (before jax.jit)
        decoding.jax_compiled = lambda model, function: function
    translate = translator.Translator(model, TextPath(tokenizer, tokenizer, 64))
    sentences = json.loads((folder / "sentences.json").read_text())
    began = time.perf_counter()
    first = translate.translate(sentences[:args.batch], batch_size=args.batch)
    first_seconds = time.perf_counter() - began
    times = []
    for _ in range(args.calls):
        began = time.perf_counter()
        translate.translate(sentences, batch_size=args.batch)
        times.append((time.perf_counter() - began) / max(1, len(sentences) // args.batch))
    print(json.dumps({"backend": keras.backend.backend(), "first_s": first_seconds,
                      "ms_per_batch": 1000 * statistics.median(times), "first": first[:3]}))


def prepare(args, folder):
    """The shared model file, tokenizer and sentences."""
    import keras_transformer  # noqa: F401  (a quiet start)
    from keras_transformer import build_transformer, preset
    from pipelines.default_data import generate_pairs
    from pipelines.tokenizers import learn_tokenizer

    pairs = generate_pairs(2000, seed=args.seed)
    tokenizer = learn_tokenizer([s for s, _ in pairs] + [t for _, t in pairs], 1000)
    tokenizer.save(folder / "tokenizer.spm")
    model = build_transformer(preset(args.preset, source_vocab_size=tokenizer.vocab_size,
                                     target_vocab_size=tokenizer.vocab_size, max_length=64))
    model.save(folder / "model.keras")
    sentences = [s for s, _ in pairs[:args.sentences]]
    (folder / "sentences.json").write_text(json.dumps(sentences))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jax-eager", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.folder:
        return measure(args)
    print(process.host_line())
    with tempfile.TemporaryDirectory() as folder:
        prepare(args, Path(folder))
        rows = []
        for backend, extra in (("tensorflow", []), ("jax", []), ("jax", ["--jax-eager"])):
            done = subprocess.run(
                [sys.executable, __file__, "--folder", folder, "--batch", str(args.batch),
                 "--calls", str(args.calls), *extra], capture_output=True, text=True,
                env=process.child_env(KERAS_BACKEND=backend), check=True)
            rows.append((backend + (" (no jax.jit)" if extra else ""),
                         json.loads(done.stdout.strip().splitlines()[-1])))
    print(f"\nTranslator.translate, greedy, {args.preset} preset, batches of {args.batch}:")
    print(f"{'backend':<22} {'first call s':>12} {'ms/batch':>10} {'sentences/s':>12}")
    for name, row in rows:
        print(f"{name:<22} {row['first_s']:>12.2f} {row['ms_per_batch']:>10.1f} "
              f"{1000 * args.batch / row['ms_per_batch']:>12.1f}")
    same = all(row["first"] == rows[0][1]["first"] for _, row in rows)
    print(f"same translations on every backend: {same}")
    print(f"reproduce: {process.reproduce_line(__file__, args, skip=('folder', 'jax_eager'))}")


if __name__ == "__main__":
    main()
