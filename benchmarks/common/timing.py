"""Interleaved timing and what is read from its samples (no Keras imported here).

Every comparison warms its variants up first, then times them in rounds with the variants in
rotating order; ratios are medians of per-round ratios, so a slow minute of a shared machine
falls on both sides of a pair (benchmarks/README.md, "How the measurements are made").
"""

import statistics
import time


def rotation(names, round_index):
    """The order of the variants in round `round_index`: shifted by one each round and
    reversed every other round (A B C, C A B reversed, ...)."""
    shift = round_index % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if round_index % 2 else order


def interleaved(runners, rounds, reps=1, cpu=None):
    """Time each runner `reps` times per round, runners in `rotation` order every round.

    runners: {name: zero-argument callable that does one unit of work and waits for it}.
    Returns {name: [wall seconds per unit, one per round]}; if `cpu` is a dict it receives the
    same for this process's CPU time (all threads, user + system), which waiting for a core
    on a shared machine does not inflate. Pair the per-round samples to compute ratios.
    """
    names = list(runners)
    samples = {name: [] for name in names}
    if cpu is not None:
        cpu.update({name: [] for name in names})
    for r in range(rounds):
        for name in rotation(names, r):
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(reps):
                runners[name]()
            samples[name].append((time.perf_counter() - start) / reps)
            if cpu is not None:
                cpu[name].append((time.process_time() - start_cpu) / reps)
    return samples


def paired_ratio(numerator, denominator):
    """Median over rounds of numerator[r] / denominator[r] (both sampled in the same round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def spread(values):
    """(max - min) / median: how noisy the samples were."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


def percentile(values, q):
    """The sample at quantile q (0-1) of `values`, nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def serve_rounds(runners, singles, batches, rounds):
    """Times translation engines in rounds of rotating order: each round, per engine, every
    sentence of `singles` alone (seconds each) and then all `batches` (sentences per second).
    `runners`: name -> function(list of sentences) -> list of translations. Returns
    (latency {name: [s]}, throughput {name: [sentences/s]}, outputs {name: the batches'
    translations, of the last round})."""
    names = list(runners)
    count = sum(len(batch) for batch in batches)
    latency, throughput, outputs = ({name: [] for name in names} for _ in range(3))
    for round_index in range(rounds):
        for name in rotation(names, round_index):
            run = runners[name]
            for sentence in singles:
                began = time.perf_counter()
                run([sentence])
                latency[name].append(time.perf_counter() - began)
            began = time.perf_counter()
            outputs[name] = [text for batch in batches for text in run(batch)]
            throughput[name].append(count / (time.perf_counter() - began))
    return latency, throughput, outputs
