"""What resuming a run costs its data stream: skipping the batches already trained on.

A run with `--steps-per-epoch` (the real-corpus recipe) reads one endless stream of passes over its
training split; a resumed run skips the steps it already took (`pipelines.batching.continued`), so
it trains on the batches the uninterrupted run would have. Skipping runs the input pipeline (read,
shuffle, tokenize, bucket) without training. This times it on a TSV of N pairs (a real corpus
repeated, as `data_scale.py` makes it; above 200,000 pairs the job streams the file through a
200,000-line shuffle buffer rather than caching it), at the real-corpus recipe's shapes, against
reading the same batches (what training from the start pulls), and reports the peak memory.

    python benchmarks/studies/resume_skip.py --pairs 1000000 --skip 2000 20000
    python benchmarks/studies/resume_skip.py --pairs 20000 --skip 50 --read 50   # a smoke run
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import ROOT, process  # noqa: E402
from common.memory import status_bytes  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "iwslt15-en-vi"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--skip", type=int, nargs="+", default=[2000, 20000],
                        help="steps already taken, skipped before the first batch")
    parser.add_argument("--read", type=int, default=500, help="batches read to time reading")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    args = parser.parse_args()

    import tensorflow as tf
    from studies.data_scale import base_pairs, make_tsv

    import keras_transformer  # noqa: F401  (a quiet start)
    from pipelines import batching
    from pipelines.text_path import TextPath
    from pipelines.tokenizers import build_tokenizers

    print(process.host_line())
    pairs, _ = base_pairs(args.corpus)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "pairs.tsv"
        make_tsv(data, pairs, args.pairs)
        text_path = TextPath(*build_tokenizers(pairs[:20000], 4000), 128)  # the recipe's shapes
        cached = args.pairs <= 200_000  # as the job decides (CACHED_PAIRS)

        def stream(skip):
            endless = batching.make_dataset(
                data, text_path, batch_tokens=2048, shuffle=True, seed=0, cache=cached,
                shuffle_buffer=min(args.pairs, batching.STREAM_SHUFFLE_BUFFER)).repeat()
            return batching.continued(endless, tf.Variable(skip, dtype=tf.int64))

        began = time.perf_counter()
        for _ in stream(0).take(args.read):
            pass
        read = (time.perf_counter() - began) / args.read
        rows = []
        for skip in args.skip:
            began = time.perf_counter()
            next(iter(stream(skip)))
            rows.append((skip, time.perf_counter() - began))
    print(f"\n{args.pairs:,} pairs ({'cached' if cached else 'streamed'}), batches of 2,048 tokens:")
    print(f"reading: {1000 * read:.1f} ms per batch ({args.read} batches)")
    print(f"{'steps skipped':>14} {'seconds':>8} {'ms per step':>12}")
    for skip, seconds in rows:
        print(f"{skip:>14,} {seconds:>8.1f} {1000 * seconds / skip:>12.2f}")
    print(f"peak resident memory: {status_bytes('VmHWM') / 2 ** 20:,.0f} MiB")
    print(f"reproduce: {process.reproduce_line(__file__, args)}")


if __name__ == "__main__":
    main()
