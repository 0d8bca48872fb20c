"""What the benchmark scripts share, each helper in one place.

    process  the child processes' environment, the command that reproduces a run, the host line
    timing   interleaved rounds in rotating order, paired ratios, spread, percentiles
    flops    model FLOPs of a training step, their shares by part, an uncached decode's work
    memory   resident-set probes (/proc) and the accelerator's peak
    device   the Keras backend, the machine line, the dtype policy, waiting for results, the
             reference matmul
    models   our model and its keras-hub twin (same shape, same parameters), their compile,
             keras-hub's cached greedy decode, dropout bits from XLA's RngBitGenerator
    data     synthetic batches and decode sources

`process`, `timing`, `flops` and `memory` import no Keras (real_corpus.py's parent process never
loads it); `device`, `models` and `data` do.

A script in benchmarks/<folder>/ puts benchmarks/ on sys.path (`sys.path.insert(0,
parents[1])`) and imports what it needs: `from common import models, timing`. Importing this
package also makes the repository root importable, so the scripts find `keras_transformer` and
`pipelines` in this checkout where the project is not pip-installed (a GPU machine).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
