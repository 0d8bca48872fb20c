"""docs/tour.py, the learners' tour, runs top to bottom within 4 minutes (2 on an AVX-512 CPU) and shows what it says."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# It trains a model of its own: 2-4 minutes, the longest test; `-m slow` runs it.
@pytest.mark.slow
def test_tour_runs_top_to_bottom(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "TOUR_OUT": str(tmp_path),
           "TOUR_RUN": str(tmp_path / "no_run"),  # the path a fresh clone takes: train first
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "tour.py")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for shown in ("word vectors only: 'you' after attention differs by 0.000000",
                  "the layer's queries, head 1, equal ours: True",
                  "exactly 0: True",
                  "-inf mask: outputs of 'I like going to' change by 0.000000",
                  "W^O equals the layer's output: True",
                  "same tokens: True",
                  "same masked self-attention, last layer: True",
                  "rows sum to 1: True"):
        assert shown in result.stdout, shown
    for figure in ("positional_encoding.png", "mask_minus_inf_vs_zero.png",
                   "masked_self_attention.png", "cross_attention.png", "attention.html"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
