"""The main job end to end: a small grid tracked in a real SQLite MLflow store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flareseq.cli import main
from flareseq.config import RunConfig
from flareseq.experiments import run_experiment, run_single, runs_frame
from flareseq.grid import expand_grid
from flareseq.tracking import resolve_tracking_uri

mlflow = pytest.importorskip("mlflow")

SMALL = {
    "data": {"synthetic_samples": 500},
    "training": {"epochs": 1, "batch_size": 64, "early_stopping": False},
    "model": {"params": {"hidden_size": 8}},
    "baselines": ["climatology", "logistic-summary"],
}


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    values = {**SMALL, "tracking": {"output_dir": str(out), "experiment": "grid"},
              "grid": {"zip": {"training.class_weight": [{"0": 1, "1": 5}, {"0": 1, "1": 1}]}}}
    experiment = expand_grid(values, default_name="grid")
    results = run_experiment(experiment, progress=False, echo=lambda line: None)
    return out, experiment, results


def test_grid_runs_baselines_and_models_into_mlflow(finished_grid):
    out, experiment, results = finished_grid
    assert [r.status for r in results] == ["FINISHED"] * 4
    frame = runs_frame(resolve_tracking_uri("", out), "grid")
    assert set(frame["name"]) == {"grid-c1", "grid-c2", "baseline-climatology", "baseline-logistic-summary"}
    assert set(frame["kind"]) == {"model", "baseline"}
    model_row = frame[frame["name"] == "grid-c1"].iloc[0]
    assert -1 <= model_row["test_tss"] <= 1 and 0 <= model_row["threshold"] <= 1
    run = mlflow.get_run(model_row["run_id"])
    # The flattened config, the data's content hash and the per-epoch history are logged.
    assert run.data.params["training.class_weight.1"] == "5"
    assert run.data.params["data.content_hash"].startswith("sha256:")
    assert run.data.tags["architecture"] == "lstm" and run.data.tags["class_weighted"] == "True"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert len(history) == 1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"config.json", "scaler.json", "plots", "predictions"} <= artifacts


def test_pyfunc_model_predicts_raw_samples(finished_grid):
    out, _, _ = finished_grid
    frame = runs_frame(resolve_tracking_uri("", out), "grid")
    run_id = frame[frame["name"] == "grid-c2"].iloc[0]["run_id"]
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    from flareseq.data import synthetic_dataset

    X = synthetic_dataset(6, seed=5).X
    X[0, 3, 2] = np.nan  # filled as in training, not refused
    predicted = model.predict(X)
    assert list(predicted.columns) == ["probability", "label"] and len(predicted) == 6
    assert predicted["probability"].between(0, 1).all()


def test_resuming_skips_finished_runs(finished_grid):
    _, experiment, _ = finished_grid
    again = run_experiment(experiment, progress=False, echo=lambda line: None)
    assert [r.status for r in again] == ["SKIPPED"] * 4


def test_a_failed_run_is_recorded_and_the_grid_goes_on(tmp_path):
    values = {**SMALL, "baselines": [], "tracking": {"output_dir": str(tmp_path), "experiment": "bad"},
              "grid": {"model.params": [{"hidden_size": 8}, {"no_such_parameter": 1}, {"hidden_size": 4}]}}
    results = run_experiment(expand_grid(values, default_name="bad"), progress=False, echo=lambda line: None)
    assert [r.status for r in results] == ["FINISHED", "FAILED", "FINISHED"]
    assert "no_such_parameter" in results[1].error
    frame = runs_frame(resolve_tracking_uri("", tmp_path), "bad")
    failed = frame[frame["status"] == "FAILED"]
    assert len(failed) == 1 and "no_such_parameter" in failed.iloc[0]["error"]


def test_cli_report_predict_and_evaluate(finished_grid, tmp_path, capsys):
    out, _, _ = finished_grid
    assert main(["report", "--experiment", "grid", "--output-dir", str(out), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "baseline-logistic-summary" in html and "data:image/png;base64," in html
    from flareseq.data import write_synthetic_kaggle

    data = write_synthetic_kaggle(tmp_path / "new.jsonl", 40, seed=9, labelled=False)
    common = ["--experiment", "grid", "--output-dir", str(out)]
    assert main(["predict", "grid-c1", "--data", str(data), "--out", str(tmp_path / "sub.csv"), *common]) == 0
    submission = pd.read_csv(tmp_path / "sub.csv")
    assert list(submission.columns) == ["Id", "ClassLabel"] and len(submission) == 40
    assert set(submission["ClassLabel"]) <= {0, 1}
    labelled = write_synthetic_kaggle(tmp_path / "lab.jsonl", 60, seed=10)
    capsys.readouterr()
    assert main(["evaluate", "grid-c1", "--data", str(labelled), "--json", *common]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 60 and -1 <= scores["tss"] <= 1


def test_unknown_run_is_a_clear_error(finished_grid, tmp_path, capsys):
    out, _, _ = finished_grid
    code = main(["predict", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "x.csv"),
                 "--experiment", "grid", "--output-dir", str(out)])
    assert code == 2 and "no finished run with id or name 'nope'" in capsys.readouterr().err


def test_run_single_without_tracking_scores_the_test_part():
    config = RunConfig.from_dict({**SMALL, "model": {"name": "logistic-summary"}})
    result = run_single(config, progress=False)
    assert result.status == "FINISHED" and result.run_id is None
    assert {"test_tss", "val_tss", "test_bss", "threshold"} <= set(result.scores)
