"""Smoke runs of every benchmark script (benchmarks/README.md lists them by folder).

Each script runs as a user runs it, `python benchmarks/<folder>/<script>.py` from the repository
root in a child process, with its smallest options (a tiny model, tiny shapes, one or two
rounds); it must exit with 0 and print, last, the command that reproduces the run. No figure
is checked: these say that the scripts still run. About 8 minutes in all on 2 cores.
"""

import re
import subprocess
import sys

import pytest

from conftest import MARIAN, ROOT, project_env

pytestmark = pytest.mark.slow

TINY = ["--preset", "tiny", "--vocab-size", "100"]

# script: (its smallest options, "{tmp}" standing for a scratch folder; extra environment)
SMOKE = {
    "regression/train_throughput.py": (
        [*TINY, "--quick", "--batch", "4", "--length", "8", "--no-jit", "--matmul-size", "64"], {}),
    "regression/decode_latency.py": (
        [*TINY, "--lengths", "4,8", "--batches", "1,2", "--rounds", "2",
         "--min-sample-seconds", "0.01"], {}),
    "regression/scaling.py": (
        [*TINY, "--batch", "2", "--lengths", "8,16", "--batch-sweep-length", "8",
         "--batches", "2,4", "--rounds", "2"], {}),
    "regression/attention_variants.py": (
        [*TINY, "--core-shapes", "2x2x4x4", "--model-shapes", "2x8", "--rounds", "2",
         "--model-rounds", "2"], {}),
    "regression/pipeline_throughput.py": (
        ["--pairs", "1000", "--vocab-size", "200", "--cached-epochs", "1"], {}),
    # an empty --corpus folder: the pairs come from the embedded grammar
    "studies/data_scale.py": (
        ["--sizes", "2000", "--corpus", "{tmp}", "--preset", "tiny", "--vocab-size", "300",
         "--after-first-step", "0"], {}),
    "studies/lost_worker.py": (["--pairs", "500", "--steps-per-epoch", "5"], {}),
    "studies/fine_tuning.py": (
        ["--base-epochs", "1", "--scales", "0.1", "--steps", "4", "--pairs", "200", "--test",
         "10"], {}),
    "studies/dropout_bits.py": (
        ["--shapes", "2x2x8", "--calls", "2", "--rounds", "2"], {"KERAS_BACKEND": "jax"}),
}


def run_script(script, options, tmp_path, **env):
    """Runs benchmarks/<script> from the repository root; returns its stdout after checking
    that it exited with 0 and printed, last, the command that reproduces it."""
    command = ["bash" if script.endswith(".sh") else sys.executable,
               str(ROOT / "benchmarks" / script), *options]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=project_env(TMPDIR=str(tmp_path), **env))
    output = f"{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    assert result.returncode == 0, output
    last = result.stdout.strip().splitlines()[-1]
    python_script = script.replace(".sh", ".py")
    assert re.fullmatch(rf"reproduce: (KERAS_BACKEND=\w+ )?python "
                        rf"benchmarks/{re.escape(python_script)}( .*)?", last), output
    return result.stdout


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_script_runs(script, tmp_path):
    options, env = SMOKE[script]
    run_script(script, [option.format(tmp=tmp_path) for option in options], tmp_path, **env)


@pytest.mark.skipif(not MARIAN.is_dir(), reason="../shared/marian is not here")
def test_pretrained_script_runs(tmp_path):
    """The pretrained-model benchmark on a tiny shape (it reads the real OPUS-MT en-mg
    vocabulary)."""
    run_script("regression/pretrained.py",
               ["--layers", "1", "--d-model", "16", "--d-ff", "32", "--heads", "2",
                "--max-length", "8", "--sentences", "4", "--latency-sentences", "1"], tmp_path)


@pytest.mark.parametrize("script", ["regression/serving.py", "regression/export_latency.py"])
def test_run_dir_script_runs(script, trained_run, tmp_path):
    """The serving scripts read a trained run (conftest's, read-only: they export into a
    temporary folder)."""
    run_dir, _ = trained_run
    run_script(script, [str(run_dir), "--sentences", "4", "--latency-sentences", "2",
                        "--batch", "2", "--rounds", "1"], tmp_path)


def test_gpu_suite_smoke(tmp_path):
    """The GPU suite's one command, `bash benchmarks/gpu/gpu_suite.sh`, in its --smoke CPU
    rehearsal (KERAS_BACKEND=jax, tiny presets, every section); it writes its tables and
    figures to $OUT."""
    run_script("gpu/gpu_suite.sh", ["--smoke"], tmp_path, PYTHON=sys.executable, NO_WHEELS="1",
               OUT=str(tmp_path / "out"))
    written = {path.name for path in (tmp_path / "out").iterdir()}
    assert {"gpu_suite.md", "gpu_suite.json", "gpu_suite.log"} <= written


def write_tiny_corpus(folder):
    """A corpus folder of the embedded grammar: train 300, val 20, test 20 pairs (en, es)."""
    from pipelines.default_data import generate_pairs

    pairs = generate_pairs(340, seed=5)
    for split, chunk in (("train", pairs[:300]), ("val", pairs[300:320]), ("test", pairs[320:])):
        for side, language in enumerate(("en", "es")):
            (folder / f"{split}.{language}").write_text(
                "".join(pair[side] + "\n" for pair in chunk), encoding="utf-8")
    return folder


def test_real_corpus_runs(tmp_path):
    """Both systems, one after the other, on a tiny corpus: ours for 3 steps of a tiny model
    (greedy and beam), keras-hub for as long as ours trained (--minutes 0)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_tiny_corpus(corpus)
    ours = ("--preset tiny --vocab-size 200 --epochs 1 --steps-per-epoch 3 --bleu-sentences 10 "
            "--no-tune-alpha")
    output = run_script("studies/real_corpus.py",
                        ["--corpus", str(corpus), "--minutes", "0", "--beam", "--ours-args", ours,
                         "--out", str(tmp_path / "out")], tmp_path)
    assert "| keras_hub | greedy (no cache) |" in output
