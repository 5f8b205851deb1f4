"""benchmarks/beyond.py end to end on a small synthetic set: every row, the RESULT line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "beyond.py"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_beyond_benchmark_quick_run(capsys):
    spec = importlib.util.spec_from_file_location("beyond_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--quick", "--threads", "1", "--models", "lstm", "minirocket",
                        "--set", "data.synthetic_samples=800"])
    assert code == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1].removeprefix("RESULT "))
    expected = {"climatology", "logistic-last", "logistic-summary", "gboost-last", "gboost-summary", "lstm", "lstm unweighted", "lstm focal",
                "lstm balanced-sampling", "minirocket"}
    assert set(result["models"]) == expected
    assert result["models"]["climatology"]["tss"] == 0.0
    # the synthetic data's known signal (flux and current-helicity trends): every summary or
    # last-step baseline finds some of it even at 800 samples
    for name in ("logistic-last", "logistic-summary", "gboost-last", "gboost-summary"):
        assert result["models"][name]["tss"] > 0.1, name
