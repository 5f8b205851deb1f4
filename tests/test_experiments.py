"""The main job end to end: a small grid tracked in a real SQLite MLflow store."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest

from flareseq.cli import main
from flareseq.experiments.config import RunConfig
from flareseq.experiments.grid import expand_grid
from flareseq.experiments.runner import run_experiment
from flareseq.experiments.single import run_single
from flareseq.experiments.tracking import resolve_tracking_uri, runs_frame

SMALL = {
    "data": {"synthetic_samples": 500},
    "training": {"epochs": 1, "batch_size": 64, "early_stopping": False},
    "model": {"params": {"hidden_size": 8}},
    "verification": {"n_bootstrap": 100},
    "baselines": ["climatology", "logistic-summary"],
}


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    values = {**SMALL, "tracking": {"output_dir": str(out), "experiment": "grid"},
              "grid": {"zip": {"training.class_weight": [{"0": 1, "1": 5}, {"0": 1, "1": 1}],
                               "training.calibration": ["isotonic", ""]}}}
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
    baseline_row = frame[frame["name"] == "baseline-logistic-summary"].iloc[0]
    assert baseline_row["test_tss"] > 0.1  # the synthetic data's known signal
    run = mlflow.get_run(model_row["run_id"])
    # The flattened config, the data's content hash and the per-epoch history are logged.
    assert run.data.params["training.class_weight.1"] == "5"
    assert run.data.params["data.content_hash"].startswith("sha256:")
    assert run.data.tags["architecture"] == "lstm" and run.data.tags["class_weighted"] == "True"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert len(history) == 1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"config.json", "preparation.json", "plots", "predictions"} <= artifacts


def test_pyfunc_model_predicts_raw_samples_with_its_calibration(finished_grid):
    out, _, _ = finished_grid
    frame = runs_frame(resolve_tracking_uri("", out), "grid")
    run_id = frame[frame["name"] == "grid-c1"].iloc[0]["run_id"]
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    from flareseq.data import synthetic_dataset

    dataset = synthetic_dataset(6, seed=5)
    X = dataset.X.copy()
    X[0, 3, 2] = np.nan  # filled as in training, not refused
    predicted = model.predict(X)
    assert list(predicted.columns) == ["probability", "label"] and len(predicted) == 6
    assert predicted["probability"].between(0, 1).all()
    forecaster = saved_forecaster(run_id)
    raw = forecaster.predict_proba_uncalibrated(dataset.with_X(X))
    np.testing.assert_allclose(predicted["probability"], forecaster.calibrator.transform(raw))
    assert (predicted["label"] == (predicted["probability"] >= forecaster.threshold)).all()


def saved_forecaster(run_id):
    from pathlib import Path

    from flareseq.training.forecaster import Forecaster

    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    return Forecaster.load(next(local.rglob("forecaster.json")).parent)


def test_calibration_reweighting_and_intervals_are_logged_exactly(finished_grid):
    out, _, _ = finished_grid
    frame = runs_frame(resolve_tracking_uri("", out), "grid").set_index("name")
    flags = frame[["calibrated", "class_weighted", "calibration", "reweighting"]].to_dict("index")
    assert flags["grid-c1"] == {"calibrated": "True", "class_weighted": "True", "calibration": "isotonic",
                                "reweighting": "class weights 0: 1, 1: 5"}
    assert flags["grid-c2"] == {"calibrated": "False", "class_weighted": "False", "calibration": "", "reweighting": ""}
    # The summary baselines weight classes ("balanced") by default; climatology does not.
    assert flags["baseline-logistic-summary"]["reweighting"] == "balanced class weights"
    assert flags["baseline-climatology"]["class_weighted"] == "False"
    for name, row in frame.iterrows():
        assert row["test_tss_ci_low"] <= row["test_tss"] <= row["test_tss_ci_high"], name
        assert row["ref_test_optimal_tss"] >= row["test_tss"] - 1e-9, name  # the test optimum bounds every choice
    calibrated = frame.loc["grid-c1"]
    assert {"test_brier_uncalibrated", "test_bss_uncalibrated"} <= set(frame.columns)
    assert calibrated["test_brier"] != calibrated["test_brier_uncalibrated"]


def test_test_forecasts_carry_regions_thresholds_and_both_probabilities(finished_grid):
    out, _, _ = finished_grid
    frame = runs_frame(resolve_tracking_uri("", out), "grid").set_index("name")
    run_id = frame.loc["grid-c1", "run_id"]
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="predictions/test_predictions.csv")
    logged = pd.read_csv(local, dtype={"id": str, "region": str})
    assert {"id", "y", "probability", "threshold", "climatology", "region", "probability_uncalibrated"} <= set(logged)
    forecaster = saved_forecaster(run_id)
    # The calibrator fitted on validation, saved with the model, maps the model's own probabilities.
    np.testing.assert_allclose(logged["probability"], forecaster.calibrator.transform(logged["probability_uncalibrated"]))
    assert (logged["threshold"] == forecaster.threshold).all()
    assert forecaster.threshold == pytest.approx(frame.loc["grid-c1", "threshold"])


def test_resuming_skips_finished_runs(finished_grid):
    _, experiment, _ = finished_grid
    again = run_experiment(experiment, progress=False, echo=lambda line: None)
    assert [r.status for r in again] == ["SKIPPED"] * 4
    # Interval settings are not part of a run's identity: changing them redoes nothing.
    more = replace(experiment, runs=tuple(r.with_overrides({"verification.n_bootstrap": 7}) for r in experiment.runs))
    assert [r.status for r in run_experiment(more, progress=False, echo=lambda line: None)] == ["SKIPPED"] * 4


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
    for heading in ("Confidence intervals", "Paired comparison with the best baseline", "Threshold choice",
                    "Calibration", "test-optimal TSS (reference, not a score)"):
        assert heading in html, heading
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


def test_cli_compare_two_runs_on_the_same_test_set(finished_grid, capsys):
    out, _, _ = finished_grid
    capsys.readouterr()
    assert main(["compare", "grid-c1", "baseline-logistic-summary", "--json", "--n-boot", "200",
                 "--experiment", "grid", "--output-dir", str(out)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"tss", "hss2", "pr_auc"}
    for r in results.values():
        assert r["low"] <= r["difference"] <= r["high"] or r["low"] <= r["high"]
        assert 0 <= r["p_first_better"] <= 1
        assert r["difference"] == pytest.approx(r["first"] - r["second"])


def test_two_output_dirs_in_one_process_keep_two_stores(tmp_path, monkeypatch):
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; read back as the user's choice, it
    # sent the second grid's runs into the first grid's store.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("first", "second"):
        values = {**SMALL, "baselines": [], "tracking": {"output_dir": str(tmp_path / name), "experiment": "same",
                                                        "log_model": False, "plots": False}}
        assert [r.status for r in run_experiment(expand_grid(values, default_name=name), progress=False,
                                                 echo=lambda line: None)] == ["FINISHED"]
    assert "MLFLOW_TRACKING_URI" not in os.environ
    for name in ("first", "second"):
        frame = runs_frame(resolve_tracking_uri("", tmp_path / name), "same")
        assert frame["name"].tolist() == [name]


def test_cli_train_names_the_run_after_the_model_chosen_by_set(tmp_path, capsys):
    import mlflow

    from flareseq.cli import main
    from flareseq.experiments.tracking import use_tracking_uri

    sets = ["model.name=logistic-summary", "data.synthetic_samples=300", "tracking.log_model=false",
            "tracking.plots=false", "verification.n_bootstrap=20", f'tracking.output_dir="{tmp_path}"']
    assert main(["train", "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 0
    assert "run logistic-summary (" in capsys.readouterr().out
    use_tracking_uri(resolve_tracking_uri("", tmp_path))  # not mlflow.set_tracking_uri: it exports the URI
    (run,) = mlflow.search_runs(experiment_names=["flareseq"], output_format="list")
    assert run.info.run_name == "logistic-summary" and run.data.params["model.name"] == "logistic-summary"
