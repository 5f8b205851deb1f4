"""benchmarks/full_data.py, scaling.py and ddp.py: quick runs end to end on small data, and the
grid's extrapolation. The figures are not asserted (a shared machine moves them); what each
run must report, and the few things that must hold whatever the load, are."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import their siblings (machine, ingest)
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _result(out: str) -> dict:
    lines = out.strip().splitlines()
    assert lines[0].startswith("cpu: "), "the CPU line comes first"
    assert lines[-1].startswith("RESULT ")
    return json.loads(lines[-1].removeprefix("RESULT "))


def _run(script: str, *args: str, timeout: int = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return _result(done.stdout)


def test_grid_extrapolation_scales_each_model_by_its_epochs_and_steps():
    full_data = _load("full_data")
    rows = [{"name": "lstm-c1", "model": "lstm", "epochs": 10, "train_s": 20.0, "run_s": 23.0, "data_s": 1.0,
             "samples": 1000.0, "steps_per_epoch": 100, "n_timesteps": 1},
            {"name": "gen-c1", "model": "gen", "epochs": 10, "train_s": 50.0, "run_s": 51.0, "data_s": 0.5,
             "samples": 12800.0, "steps_per_epoch": 100, "n_timesteps": 100}]
    plan = [{"name": "lstm-c1", "model": "lstm", "epochs": 10, "batching": "full-pass", "steps_per_epoch": 100},
            {"name": "gen-c1", "model": "gen", "epochs": 10, "batching": "sampled", "steps_per_epoch": 100},
            {"name": "lstm-c3", "model": "lstm", "epochs": 30, "batching": "full-pass", "steps_per_epoch": 500},
            {"name": "gen-c3", "model": "gen", "epochs": 30, "batching": "sampled", "steps_per_epoch": 500},
            {"name": "other-c1", "model": "other", "epochs": 10, "batching": "full-pass", "steps_per_epoch": 100}]
    runs = {r["name"]: r for r in full_data.extrapolate_grid(rows, plan)}
    assert not runs["lstm-c1"]["estimated"] and runs["lstm-c1"]["run_s"] == 23.0
    # a full pass per epoch: 3x the epochs, 3x the time; the scoring overhead once
    assert runs["lstm-c3"]["estimated"] and runs["lstm-c3"]["train_s"] == pytest.approx(60.0)
    assert runs["lstm-c3"]["run_s"] == pytest.approx(63.0) and runs["lstm-c3"]["samples"] == pytest.approx(3000)
    # generator-fed: an epoch is its steps: 3x the epochs x 5x the steps
    assert runs["gen-c3"]["train_s"] == pytest.approx(750.0) and runs["gen-c3"]["samples"] == pytest.approx(192_000)
    assert runs["other-c1"]["estimated"] and runs["other-c1"]["run_s"] is None  # nothing to scale from


@pytest.mark.slow
def test_full_data_quick_run_reports_rss_before_and_after_and_the_grid(tmp_path):
    result = _run("full_data.py", "--scale", "0.03", "--runs", "2", "--grid-epochs", "1", "--budget-mb", "1",
                  "--threads", "1", "--data-dir", str(tmp_path), "--no-doubled")
    assert result["cpu"] and result["n_samples"] == sum(round(n * 0.03) for n in (76_773, 92_481, 27_006))
    memory, cache = result["train"]["memory"], result["train"]["cache"]
    assert memory["n_train"] == cache["n_train"] == round(76_773 * 0.03)  # fold 1, labelled
    assert cache["cache_written"] is True and memory["cache_written"] is None
    # one epoch on the same samples, seed and settings: the same model, so the same validation score
    assert memory["val_tss_after_one_epoch"] == cache["val_tss_after_one_epoch"]
    assert result["peak_rss_before_mb"] > 0 and result["peak_rss_after_mb"] > 0 and result["cache_mb"] > 0
    grid = result["grid"]
    assert (grid["runs_measured"], grid["runs"], grid["epochs_override"]) == (2, 18, 1)
    assert grid["total_is_extrapolated"] and grid["wall_s_total"] > grid["wall_s_measured"]
    measured = [r["name"] for r in grid["rows"] if not r["estimated"]]
    assert measured == ["lstm-c1", "stacked-lstm-c1"]
    assert 0 <= grid["data_share"] < 1
    assert not list(tmp_path.glob("store-*")), "the scratch store and its cache are removed"


@pytest.mark.slow
def test_scaling_quick_run_prints_one_row_per_size(tmp_path):
    result = _run("scaling.py", "--sizes", "600", "1200", "--chunk", "600", "--threads", "1", "--data-dir",
                  str(tmp_path))
    rows = result["rows"]
    assert [r["n_samples"] for r in rows] == [600, 1200]
    assert len(list(tmp_path.glob("chunk-*.json"))) == 2  # the larger size reused the smaller one's file
    for row in rows:
        assert row["store_mb"] > 0 and row["cache_mb"] > 0 and row["epoch_s"] > 0 and row["ingest_s"] > 0
        assert row["memory_peak_rss_mb"] is not None  # small enough to run in memory too
    assert rows[1]["json_mb"] == pytest.approx(2 * rows[0]["json_mb"], rel=0.05)
    assert rows[1]["n_train"] > rows[0]["n_train"]


@pytest.mark.slow
def test_ddp_with_two_processes_trains_the_single_process_model():
    result = _run("ddp.py", "--n-samples", "512", "--epochs", "1", "--world-size", "2")
    assert result["world_size"] == 2 and result["samples_seen"] == [512, 512] and result["steps"] == 2
    # float sums in another order: differences of the order of float32 rounding, never of a step
    assert result["max_weight_difference"] < 1e-5 * max(1.0, result["largest_weight"])
