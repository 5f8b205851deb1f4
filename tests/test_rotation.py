"""K-fold rotation: the splits, and the parent/child runs in a real SQLite MLflow store."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from flareseq.data import synthetic_dataset
from flareseq.errors import ConfigError
from flareseq.experiments.config import DataConfig, RunConfig
from flareseq.experiments.grid import expand_grid
from flareseq.experiments.rundata import DataCache, prepare_run_data, rotation_splits
from flareseq.experiments.runner import run_experiment
from flareseq.experiments.tracking import ROLE_TAG, resolve_tracking_uri, runs_frame


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(600, seed=3)


def times_tested(splits, n):
    counts = np.zeros(n, dtype=int)
    for split in splits:
        counts[split.test] += 1
    return counts


def test_rotation_over_the_fold_files_tests_every_sample_once(dataset):
    splits = rotation_splits(dataset, DataConfig(cv=3))
    assert len(splits) == 3
    assert (times_tested(splits, len(dataset)) == 1).all()
    for k, split in enumerate(splits, start=1):
        assert set(dataset.meta["fold"].iloc[split.test]) == {k}
        assert not set(dataset.meta["fold"].iloc[split.train]) & {k}
        assert split.validation.size > 0 and (dataset.y[split.validation] == 1).any()
        # Validation is carved from the training regions: no region on both sides.
        regions = dataset.meta["region"].astype(str)
        assert not set(regions.iloc[split.validation]) & set(regions.iloc[split.train])
        assert split.description.startswith(f"rotation {k} of 3 (fold)")


def test_more_folds_than_k_are_grouped_and_fewer_rotate_over_regions(dataset):
    grouped = rotation_splits(dataset, DataConfig(cv=2))
    assert [sorted(set(dataset.meta["fold"].iloc[s.test])) for s in grouped] == [[1, 2], [3]]
    by_region = rotation_splits(dataset, DataConfig(cv=4, split={"validation_share": 0.25, "random_state": 1}))
    assert len(by_region) == 4 and all(s.method == "region" and s.region_disjoint for s in by_region)
    assert (times_tested(by_region, len(dataset)) == 1).all()


def test_without_regions_the_next_fold_validates(dataset):
    meta = dataset.meta.assign(region=pd.Series([None] * len(dataset), dtype="string"))
    no_regions = type(dataset)(X=dataset.X, y=dataset.y, ids=dataset.ids, feature_names=dataset.feature_names,
                               meta=meta)
    splits = rotation_splits(no_regions, DataConfig(cv=3))
    folds = dataset.meta["fold"].to_numpy()
    assert [(set(folds[s.test]), set(folds[s.validation]), set(folds[s.train])) for s in splits] == [
        ({1}, {2}, {3}), ({2}, {3}, {1}), ({3}, {1}, {2})]
    with pytest.raises(ConfigError, match="not every sample has meta\\['region'\\]"):
        rotation_splits(no_regions, DataConfig(cv=5))


@pytest.mark.parametrize(("options", "match"), [
    ({"cv": 1}, r"data.cv must be an integer K >= 2"),
    ({"cv": 3, "cv_by": "time"}, "data.cv_by must be 'auto', 'fold' or 'region'"),
    ({"cv": 4, "cv_by": "fold"}, r"the data has 3 fold\(s\) \[1, 2, 3\]; set data.cv to at most 3"),
])
def test_bad_rotation_settings_are_clear_errors(dataset, options, match):
    with pytest.raises(ConfigError, match=match):
        rotation_splits(dataset, DataConfig(**options))


def test_a_rotating_config_is_prepared_one_fold_at_a_time(dataset):
    config = RunConfig().with_overrides({"data.synthetic_samples": 300, "data.cv": 3})
    with pytest.raises(ConfigError, match="prepare one fold at a time"):
        prepare_run_data(config)
    cache = DataCache()
    folds = [cache.get(config, fold=k) for k in range(3)]
    assert sum(d.test.n_samples for d in folds) == 300
    assert cache.get(config, fold=1) is folds[1]  # prepared once


SMALL = {
    "data": {"synthetic_samples": 300, "cv": 3},
    "training": {"epochs": 1, "batch_size": 64, "early_stopping": False, "class_weight": {"0": 1, "1": 5}},
    "model": {"params": {"hidden_size": 4}},
    "verification": {"n_bootstrap": 50},
    "baselines": ["logistic-summary"],
}


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    out = tmp_path_factory.mktemp("rotation")
    values = {**SMALL, "tracking": {"output_dir": str(out), "experiment": "rot", "log_model": False, "plots": False}}
    experiment = expand_grid(values, default_name="rot")
    results = run_experiment(experiment, progress=False, echo=lambda line: None)
    return out, experiment, results


def test_one_parent_per_configuration_with_a_child_per_fold(rotated):
    out, _, results = rotated
    assert [r.status for r in results] == ["FINISHED", "FINISHED"]
    client = mlflow.MlflowClient(resolve_tracking_uri("", out))
    for result in results:
        parent = client.get_run(result.run_id)
        assert parent.data.tags[ROLE_TAG] == "rotation" and parent.data.tags["flareseq.cv"] == "3"
        children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                      filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
        assert sorted(c.info.run_name for c in children) == [f"{result.name}/fold{k}" for k in (1, 2, 3)]
        by_fold = {int(c.data.tags["flareseq.fold"]): c.data.metrics for c in children}
        values = [by_fold[k]["test_tss"] for k in (1, 2, 3)]
        m = parent.data.metrics
        assert m["test_tss"] == pytest.approx(np.mean(values))
        assert m["test_tss_sd"] == pytest.approx(np.std(values, ddof=1))
        assert [m[f"test_tss_fold{k}"] for k in (1, 2, 3)] == pytest.approx(values)
        assert m["pooled_test_tss_ci_low"] <= m["pooled_test_tss"] <= m["pooled_test_tss_ci_high"]


def test_pooled_out_of_fold_predictions_cover_every_sample_once(rotated):
    out, _, results = rotated
    model = next(r for r in results if r.name == "rot")
    pooled = model.predictions
    assert len(pooled) == 300 and pooled["id"].is_unique
    assert sorted(pooled["fold"].unique()) == [1, 2, 3]
    # Each fold's forecasts carry that fold's own validation-chosen threshold.
    assert pooled.groupby("fold")["threshold"].nunique().max() == 1
    local = mlflow.artifacts.download_artifacts(run_id=model.run_id, artifact_path="predictions/test_predictions.csv",
                                                tracking_uri=resolve_tracking_uri("", out))
    logged = pd.read_csv(local, dtype={"id": str})
    assert set(logged["id"]) == set(pooled["id"].astype(str)) and "region" in logged.columns


def test_runs_frame_shows_parents_only(rotated):
    out, _, _ = rotated
    frame = runs_frame(resolve_tracking_uri("", out), "rot")
    assert set(frame["name"]) == {"rot", "baseline-logistic-summary"}
    assert (frame["n_folds"] == 3).all() and {"test_tss_sd", "test_tss_fold3"} <= set(frame.columns)


def test_resuming_reuses_finished_folds_of_an_interrupted_rotation(rotated):
    out, experiment, results = rotated
    assert [r.status for r in run_experiment(experiment, progress=False, echo=lambda line: None)] == ["SKIPPED"] * 2
    uri = resolve_tracking_uri("", out)
    client = mlflow.MlflowClient(uri)
    old_parent = next(r for r in results if r.name == "rot").run_id
    client.set_terminated(old_parent, status="FAILED")  # as if the process died before the parent finished
    fold_filter = f"tags.`{ROLE_TAG}` = 'fold'"
    n_fold_runs = len(mlflow.search_runs(search_all_experiments=True, filter_string=fold_filter, output_format="list"))
    lines = []
    again = run_experiment(experiment, progress=False, echo=lines.append)
    assert [r.status for r in again] == ["SKIPPED", "FINISHED"]
    assert sum("finished earlier, reused" in line for line in lines) == 3
    assert len(mlflow.search_runs(search_all_experiments=True, filter_string=fold_filter,
                                  output_format="list")) == n_fold_runs  # nothing refitted
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{again[1].run_id}'")
    assert len(children) == 3
    assert client.get_run(again[1].run_id).data.metrics["test_tss"] == pytest.approx(
        client.get_run(old_parent).data.metrics.get("test_tss", again[1].scores["test_tss"]))


def test_a_failing_fold_fails_its_parent_and_the_grid_goes_on(rotated):
    out = rotated[0]  # the same store, another experiment
    values = {**SMALL, "baselines": [],
              "tracking": {"output_dir": str(out), "experiment": "bad", "log_model": False, "plots": False},
              "grid": {"model.params": [{"no_such_parameter": 1}, {"hidden_size": 4}]}}
    results = run_experiment(expand_grid(values, default_name="bad"), progress=False, echo=lambda line: None)
    assert [r.status for r in results] == ["FAILED", "FINISHED"]
    assert "3 of 3 folds failed" in results[0].error and "no_such_parameter" in results[0].error
    frame = runs_frame(resolve_tracking_uri("", out), "bad")
    assert dict(zip(frame["name"], frame["status"])) == {"no_such_parameter1": "FAILED", "hidden_size4": "FINISHED"}


def test_run_single_rotates_without_tracking():
    from flareseq.experiments.runner import run as run_single

    config = RunConfig.from_dict({**SMALL, "model": {"name": "climatology"}})
    result = run_single(config, progress=False)
    assert result.status == "FINISHED" and len(result.fold_scores) == 3
    assert result.scores["test_bss"] == pytest.approx(np.mean([s["test_bss"] for s in result.fold_scores]))


def test_report_of_a_rotation_and_no_forecasts_from_a_parent(rotated, tmp_path, capsys):
    from flareseq.cli import main
    from flareseq.experiments.report import write_experiment_report

    out = rotated[0]
    paths = write_experiment_report(resolve_tracking_uri("", out), "rot", tmp_path / "report", n_boot=100)
    text = paths.markdown.read_text(encoding="utf-8")
    rotation = text.split("## Rotation (K-fold)", 1)[1].split("\n## ", 1)[0]
    assert "| rot | model | 3 |" in rotation and " / " in rotation  # per-fold values
    assert "rot (pooled folds)" in text  # intervals of the pooled out-of-fold forecasts
    paired = text.split("## Paired comparison with the best baseline", 1)[1].split("\n## ", 1)[0]
    assert "| rot | baseline-logistic-summary |" in paired
    code = main(["predict", "rot", "--data", str(tmp_path), "--out", str(tmp_path / "x.csv"), "--experiment", "rot",
                 "--output-dir", str(out)])
    assert code == 2 and "is a 3-fold rotation" in capsys.readouterr().err


def test_an_impossible_rotation_is_a_failed_run_with_the_reason(rotated):
    out = rotated[0]
    values = {**SMALL, "data": {"synthetic_samples": 300, "cv": 4, "cv_by": "fold"}, "baselines": [],
              "tracking": {"output_dir": str(out), "experiment": "bad-cv", "log_model": False, "plots": False}}
    results = run_experiment(expand_grid(values, default_name="bad-cv"), progress=False, echo=lambda line: None)
    assert [r.status for r in results] == ["FAILED"]
    frame = runs_frame(resolve_tracking_uri("", out), "bad-cv")
    assert frame["status"].tolist() == ["FAILED"] and "set data.cv to at most 3" in frame["error"].iloc[0]


def test_cli_train_with_cv_reports_means_spread_and_pooled_interval(rotated, capsys):
    from flareseq.cli import main

    out = rotated[0]
    sets = ["data.synthetic_samples=300", "training.epochs=1", "model.params.hidden_size=4", "tracking.log_model=false",
            "tracking.plots=false", "verification.n_bootstrap=20", f'tracking.output_dir="{out}"',
            'tracking.experiment="cli"']
    assert main(["train", "--cv", "3", "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 0
    printed = capsys.readouterr()
    assert "3-fold rotation: the scores above are means over the test folds" in printed.out
    assert printed.err.count("fold ") >= 3  # one progress line per fold


def test_cross_validate_pairs_pooled_forecasts_of_several_configurations():
    from flareseq.evaluation.verification import compare_predictions
    from flareseq.experiments.rotation import cross_validate
    from flareseq.experiments.rundata import load_source

    base = RunConfig.from_dict({**SMALL, "data": {"synthetic_samples": 400}})
    configs = [base.with_overrides({"model.name": name, "model.params": {}, "name": name})
               for name in ("logistic-summary", "climatology")]
    results = cross_validate(configs, 3, source=load_source(base.data))
    assert list(results) == ["logistic-summary", "climatology"]
    assert all(len(r.fold_scores) == 3 and len(r.predictions) == 400 for r in results.values())
    paired = compare_predictions(results["logistic-summary"].predictions, results["climatology"].predictions,
                                 n_boot=200)
    assert paired["tss"].second == 0.0 and paired["tss"].p_first_better > 0.9  # climatology has no skill
