"""benchmarks/serve.py end to end on the tiny run, with a few requests per phase: the RESULT line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve.py"

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.xdist_group("serve")]


def test_serve_benchmark_quick_run(tiny_run, capsys):
    spec = importlib.util.spec_from_file_location("serve_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--model", tiny_run.run_id, "--output-dir", str(tiny_run.output_dir), "--experiment",
                        tiny_run.experiment, "--single-requests", "4", "--batch-requests", "2", "--concurrency", "2"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("CPU: ")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert set(result["phases"]) == {"single", "batch256", "kaggle_single", "kaggle_batch256"}
    for name, phase in result["phases"].items():
        assert phase["one_client"]["requests"] == (4 if "single" in name else 2)
        assert phase["2_clients"]["requests_per_s"] > 0
        assert 0 < phase["one_client"]["p50_ms"] <= phase["one_client"]["p99_ms"]
    assert result["phases"]["batch256"]["overhead_x"] > 0
