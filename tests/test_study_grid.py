"""experiments/study.toml is the study's notebook, run by run (../shared/study/notebook.txt)."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest

from flareseq.errors import ConfigError, FlareseqWarning
from flareseq.experiments.grid import load_experiment
from flareseq.experiments.rundata import check_prep
from flareseq.experiments.runner import run_experiment
from flareseq.experiments.tracking import resolve_tracking_uri

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# (run, notebook cell, layout, batching, class weights used): cells [54], [56], [65], [69], [72], [75]
NOTEBOOK = [
    ("lstm", "[54]", "study-rows", "full-pass", True),
    ("stacked-lstm", "[56]", "study-rows", "full-pass", True),
    ("embed-lstm", "[65]", "study-rows", "full-pass", False),
    ("tied-stacked-lstm", "[69]", "study-rows", "full-pass", False),
    ("embed-stacked-lstm", "[72]", "study-rows", "full-pass", False),
    ("embed-tied-stacked-lstm", "[75]", "study-windows", "sampled", True),
]
# cell [37], zipped
STEPS, EPOCHS, VALIDATION_STEPS = [100, 300, 500], [10, 20, 30], [50, 100, 200]
CLASS_WEIGHTS = [{"0": 1, "1": 5}, {"0": 1, "1": 1}, {"0": 1, "1": 2}]


def test_the_18_runs_are_the_notebook_cell_by_cell():
    runs = {r.name: r for r in load_experiment(EXPERIMENTS / "study.toml").runs}
    assert len(runs) == 18
    for model, _cell, layout, batching, weighted in NOTEBOOK:
        for k in range(3):
            run = runs[f"{model}-c{k + 1}"]
            assert (run.model.name, run.prep.layout, run.training.batching) == (model, layout, batching)
            assert (run.training.steps_per_epoch, run.training.epochs, run.training.validation_steps) == (
                STEPS[k], EPOCHS[k], VALIDATION_STEPS[k])
            assert dict(run.training.class_weight) == (CLASS_WEIGHTS[k] if weighted else {})
            assert run.training.optimizer == "rmsprop" and run.training.threshold_metric == ""
            assert (run.prep.missing, run.prep.train_fraction, run.prep.val_fraction, run.prep.test_fraction) == (
                "drop-rows", 0.3, 0.1, 0.05)
            assert not run.training.early_stopping and not run.prep.label_as_input


def test_the_label_leak_is_refused_unless_asked_for():
    leak = load_experiment(EXPERIMENTS / "study-leak.toml")
    with pytest.raises(ConfigError, match="refused unless the run says allow_leaky = true"):
        check_prep(leak.runs[0].prep, allow_leaky=leak.runs[0].allow_leaky)
    allowed = load_experiment(EXPERIMENTS / "study-leak.toml", overrides=["allow_leaky=true"])
    check_prep(allowed.runs[0].prep, allow_leaky=allowed.runs[0].allow_leaky)


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    """Three of the study's runs (an array-fed and the generator-fed one) and the leak, on synthetic data."""
    out = tmp_path_factory.mktemp("study")
    small = ["data.synthetic_samples=4000", "training.epochs=1", f"tracking.output_dir={str(out)!r}",
             "verification.n_bootstrap=0", "tracking.plots=false"]
    study = load_experiment(EXPERIMENTS / "study.toml", overrides=small)
    chosen = [r for r in study.runs if r.name in ("lstm-c1", "embed-lstm-c2", "embed-tied-stacked-lstm-c1")]
    study = type(study)(name=study.name, runs=tuple(chosen), source=study.source)
    leak = load_experiment(EXPERIMENTS / "study-leak.toml", overrides=[*small, "allow_leaky=true"])
    leak = type(leak)(name=leak.name, runs=leak.runs[3:4], source=leak.source)
    with pytest.warns(FlareseqWarning, match="reproduces the study's flawed sample layout"):
        for experiment in (study, leak):
            results = run_experiment(experiment, with_baselines=False, progress=False, echo=lambda line: None)
            assert [r.status for r in results] == ["FINISHED"] * len(experiment.runs), [r.error for r in results]
    fixed = load_experiment(EXPERIMENTS / "study-fixed.toml", overrides=small)
    fixed = type(fixed)(name=fixed.name, runs=fixed.runs[:1], source=fixed.source)
    run_experiment(fixed, with_baselines=False, progress=False, echo=lambda line: None)
    client = mlflow.MlflowClient(resolve_tracking_uri("", out))
    experiment = client.get_experiment_by_name("study")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    runs["_out"] = out
    return runs


def test_array_fed_runs_split_the_rows_into_steps_per_epoch_batches(study_store):
    lstm = study_store["lstm-c1"].data
    n_rows = int(lstm.metrics["n_train"])
    assert lstm.params["prep.layout"] == "study-rows" and lstm.params["training.batching"] == "full-pass"
    assert int(lstm.params["fit.batch_size"]) == math.ceil(n_rows / 100)  # TensorFlow's split of the arrays
    assert int(lstm.params["fit.batches_per_epoch"]) == math.ceil(n_rows / math.ceil(n_rows / 100))
    assert int(lstm.params["fit.validation_samples_per_epoch"]) == int(lstm.metrics["n_validation"])  # all of them
    assert (lstm.params["training.class_weight.0"], lstm.params["training.class_weight.1"]) == ("1", "5")
    assert study_store["embed-lstm-c2"].data.params["training.class_weight"] == "{}"  # cell [65]: commented out


def test_generator_fed_run_draws_batches_of_128_and_validates_in_order(study_store):
    windows = study_store["embed-tied-stacked-lstm-c1"].data
    assert windows.params["prep.layout"] == "study-windows" and windows.params["training.batching"] == "sampled"
    assert (windows.params["fit.batch_size"], windows.params["fit.batches_per_epoch"]) == ("128", "100")
    assert int(windows.params["fit.validation_samples_per_epoch"]) == min(50 * 128, int(windows.metrics["n_validation"]))


def test_the_leaky_run_is_tagged_and_takes_the_label_as_26th_input(study_store, tmp_path):
    leaky = study_store["embed-tied-stacked-lstm-leaky-c1"]
    assert leaky.data.tags["leaky"] == "True" and "label" in leaky.data.tags["leak"]
    assert study_store["embed-tied-stacked-lstm-c1"].data.tags["leaky"] == "False"
    local = Path(mlflow.artifacts.download_artifacts(run_id=leaky.info.run_id, artifact_path="preparation.json",
                                                     dst_path=str(tmp_path)))
    assert '"label"' in local.read_text() and len(__import__("json").loads(local.read_text())["feature_names"]) == 26


def test_the_report_shows_the_leak_and_sets_the_fixed_study_beside(study_store, tmp_path):
    from flareseq.experiments.report import write_experiment_report

    out = study_store["_out"]
    paths = write_experiment_report(resolve_tracking_uri("", out), "study", tmp_path / "report", n_boot=0)
    text = paths.markdown.read_text()
    assert "The label as an input (a leak)" in text and "embed-tied-stacked-lstm-leaky-c1" in text
    assert "The study as written and as 'study-fixed'" in text
    import json

    headline = json.loads((tmp_path / "report" / "headline.json").read_text())
    assert "leaky" not in headline["best_model"]["name"]  # a run fed the label is never the best model
