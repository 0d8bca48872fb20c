"""The practical peak of the device: an n^3 bf16 matmul (n = --matmul-size, 8192), the figure
the training sections' "vs matmul" divides by."""

import statistics
import time

from common.device import make_matmul
from common.timing import spread
from harness import log

WARMUP_CALLS, SAMPLES, PRODUCTS_PER_SAMPLE = 4, 7, 10


def matmul_section(args, budget, results):
    """Random bf16 operands (never zeros: benchmarks/README.md, "How the measurements are
    made"), 10 products dispatched back to back per sample, 7 samples; median and best."""
    n = args.matmul_size
    run, flops = make_matmul(n, "bfloat16", args.seed)
    for _ in range(WARMUP_CALLS):
        run()
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        run(PRODUCTS_PER_SAMPLE)
        samples.append((time.perf_counter() - start) / PRODUCTS_PER_SAMPLE)
    seconds = statistics.median(samples)
    results["matmul"] = dict(size=n, ms=seconds * 1e3, tflops=flops / seconds / 1e12,
                             spread=spread(samples), best_tflops=flops / min(samples) / 1e12)
    log(f"== matmul {n}^3 bf16: {seconds * 1e3:.3f} ms, {flops / seconds / 1e12:.1f} TFLOP/s "
        f"(best sample {flops / min(samples) / 1e12:.1f})  [{budget.elapsed():.0f} s]")
