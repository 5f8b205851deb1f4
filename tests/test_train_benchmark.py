"""benchmarks/train.py runs end to end (flareseq's side; Keras is not installed for the suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train.py"


def test_train_benchmark_quick_run_prints_its_result():
    result = subprocess.run([sys.executable, str(SCRIPT), "--models", "lstm", "--threads", "1", "--batch-size", "32",
                             "--batches", "2", "--repeats", "1", "--timesteps", "8", "--no-keras", "--no-paths"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert summary["cpu"] and summary["rd_loop"] and summary["threads"] == 1
    assert summary["models"]["lstm"]["study"]["train_samples_per_s"] > 0
