"""Input pipeline throughput on the default data's train split, with and without length bucketing.

For each setting: one epoch with tokenization (the first, filling the cache), then cached epochs (the
median is reported); sentences/s and tokens/s (non-padding source + target_out ids), and the padding
fraction of the batches.

    python benchmarks/regression/pipeline_throughput.py [--seed 0] [--vocab-size 1000] [--max-length 32] [--batch-tokens 2048]
    python benchmarks/regression/pipeline_throughput.py --pairs 2000 --cached-epochs 1   # a smoke run
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import process  # noqa: E402
from pipelines.batching import make_dataset, padding_fraction  # noqa: E402
from pipelines.default_data import default_splits  # noqa: E402
from pipelines.text_path import TextPath  # noqa: E402
from pipelines.tokenizers import build_tokenizers  # noqa: E402


def timed_epoch(dataset):
    """Seconds to iterate `dataset` once, doing nothing with the batches."""
    start = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - start


def count_tokens(dataset):
    """(sentences, non-padding source + target_out ids) in one epoch."""
    sentences = tokens = 0
    for (source, _), target_out in dataset:
        sentences += int(tf.shape(source)[0])
        tokens += int(tf.math.count_nonzero(source)) + int(tf.math.count_nonzero(target_out))
    return sentences, tokens


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--cached-epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=20000,
                        help="training pairs of the default data (its train split's size)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pairs = default_splits(seed=args.seed, train=args.pairs)["train"]
    start = time.perf_counter()
    tokenizers = build_tokenizers(pairs, args.vocab_size)
    learn_seconds = time.perf_counter() - start
    print(f"{len(pairs)} train pairs; vocabularies {tokenizers[0].vocab_size} / {tokenizers[1].vocab_size} "
          f"learned in {learn_seconds:.1f} s; {process.host_line(['tensorflow'])}")
    print(f"{'bucketing':<10} {'epoch':<7} {'seconds':>8} {'sentences/s':>12} {'tokens/s':>11} {'padding':>8}")
    for bucketing in (True, False):
        dataset = make_dataset(pairs, TextPath(*tokenizers, args.max_length), batch_tokens=args.batch_tokens,
                               shuffle=True, seed=args.seed, bucketing=bucketing)
        first = timed_epoch(dataset)
        cached = statistics.median(timed_epoch(dataset) for _ in range(args.cached_epochs))
        sentences, tokens = count_tokens(dataset)
        padding = padding_fraction(dataset)
        for name, seconds in (("first", first), ("cached", cached)):
            print(f"{'yes' if bucketing else 'no':<10} {name:<7} {seconds:>8.2f} {sentences / seconds:>12,.0f} "
                  f"{tokens / seconds:>11,.0f} {padding:>8.1%}")
    print("reproduce: " + process.reproduce_line(__file__, args))


if __name__ == "__main__":
    main()
