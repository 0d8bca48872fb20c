#!/usr/bin/env bash
# The GPU suite on a machine that has JAX (CUDA) but neither TensorFlow nor Keras.
#
#   bash benchmarks/gpu/gpu_suite.sh [gpu_suite.py options]
#   PYTHON=.venv/bin/python NO_WHEELS=1 bash benchmarks/gpu/gpu_suite.sh --smoke   # CPU rehearsal
#
# Installs the wheels carried in .whl/ (keras 3.15.1, namex, optree, keras-hub 0.32.0,
# kagglehub, kagglesdk; see benchmarks/README.md) into /tmp/site, then runs
# benchmarks/gpu/gpu_suite.py with KERAS_BACKEND=jax from the repository root. Output goes to
# $OUT (the device tool's folder) or /tmp/gpu_suite_out: gpu_suite.log, gpu_suite.md (the
# tables), gpu_suite.json (every figure), nvidia-smi.txt, trace.xplane.pb, ours_step.hlo.txt.gz.
set -uo pipefail
cd "$(dirname "$0")/../.."  # the repository root
PYTHON=${PYTHON:-python3}
OUTDIR=${OUT:-/tmp/gpu_suite_out}
mkdir -p "$OUTDIR"
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # keras_transformer from this checkout (no pip there)
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.limit,driver_version \
    --format=csv > "$OUTDIR/nvidia-smi.txt" 2>&1 && cat "$OUTDIR/nvidia-smi.txt"
"$PYTHON" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" \
    2>&1 | tail -3
"$PYTHON" benchmarks/gpu/gpu_suite.py --out "$OUTDIR" "$@" 2>&1 | tee "$OUTDIR/gpu_suite.log"
