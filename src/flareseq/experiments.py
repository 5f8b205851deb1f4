"""Running experiments: one run, or every run of a grid, each recorded in MLflow.

A run prepares its data (:mod:`flareseq.pipeline`), fits its estimator, chooses the decision
threshold on validation data, scores validation and test, and logs everything a later reader
needs: the flattened configuration, per-epoch history, final scores, the model as an MLflow
pyfunc, the scaler, ``config.json``, the data's content hash, test forecasts and plots.
A grid is resumable: a run whose configuration already finished in the experiment is skipped,
and a failed run is recorded as failed while the grid goes on.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .config import RunConfig
from .errors import FlareseqError
from .forecaster import Forecaster, build_estimator
from .grid import Experiment
from .pipeline import DataCache, RunData
from .tracking import MlflowTracker, NullTracker, resolve_tracking_uri

RUN_KEY_TAG = "flareseq.run_key"


@dataclass
class RunResult:
    name: str
    status: str  # "FINISHED", "FAILED" or "SKIPPED" (already finished earlier)
    run_id: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0


def run_key(config: RunConfig) -> str:
    """What identifies a run for resuming: its whole configuration but where it is tracked."""
    plain = config.to_dict()
    plain.pop("tracking")
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def make_tracker(config: RunConfig):
    uri = resolve_tracking_uri(config.tracking.uri, config.tracking.output_dir)
    return MlflowTracker(uri, config.tracking.experiment)


# -- one run -------------------------------------------------------------------------------
def fit_and_score(config: RunConfig, data: RunData, *, progress: bool | None = None):
    """Fit the run's estimator on ``data.train`` and score it; returns the forecaster,
    validation and test probabilities, and the scores."""
    estimator = build_estimator(config, progress=progress)
    has_val = data.validation.n_samples > 0
    if not has_val and config.training.threshold_metric:
        raise FlareseqError(
            "training.threshold_metric chooses the threshold on validation data, but this split has no "
            "validation part; give the split a validation share or fold, or set training.threshold_metric = ''."
        )
    fit_kwargs = {"X_val": data.validation.X, "y_val": data.validation.y} if has_val else {}
    estimator.fit(data.train.X, data.train.y, **fit_kwargs)
    kind = "baseline" if config.model.name in _baseline_names() else "model"
    forecaster = Forecaster(estimator=estimator, missing=data.missing, feature_names=data.train.feature_names,
                            n_timesteps=data.train.n_timesteps, layout=config.prep.layout, kind=kind,
                            name=config.name)
    climatology = data.facts["base_rate"]
    threshold = forecaster.threshold
    p_val = estimator.predict_proba(data.validation.X)[:, 1] if has_val else np.empty(0)
    p_test = estimator.predict_proba(data.test.X)[:, 1]
    scores: dict[str, float] = {}
    if has_val:
        scores.update({f"val_{k}": v for k, v in metrics.all_scores(data.validation.y, p_val, threshold=threshold,
                                                                      climatology=climatology).items()})
    scores.update({f"test_{k}": v for k, v in metrics.all_scores(data.test.y, p_test, threshold=threshold,
                                                                   climatology=climatology).items()})
    scores["threshold"] = threshold
    return forecaster, p_val, p_test, scores


def run_single(config: RunConfig, *, tracker=None, cache: DataCache | None = None, progress: bool | None = None,
               parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None) -> RunResult:
    """Prepare, fit, score and log one run; errors propagate (the run is marked FAILED)."""
    tracker = tracker or NullTracker()
    cache = cache or DataCache()
    started = time.perf_counter()
    kind = "baseline" if config.model.name in _baseline_names() else "model"
    tags = {"architecture": config.model.name, "kind": kind, RUN_KEY_TAG: run_key(config),
            "threshold_metric": config.training.threshold_metric, **(extra_tags or {})}
    name = config.name or config.model.name
    with tracker.run(name, tags=tags, parent_run_id=parent_run_id) as active:
        run_id = active.info.run_id if active is not None else None
        tracker.log_params(config.flatten())
        data = cache.get(config, progress=progress)
        tracker.log_params({"data.content_hash": data.source.content_hash, "data.source": data.source.description})
        tracker.set_tags({"data.content_hash": data.source.content_hash, "split_leaky": str(data.split.leaky),
                          "class_weighted": str(_class_weighted(config)), "calibrated": "False"})
        tracker.log_metrics({k: float(v) for k, v in data.facts.items()
                             if isinstance(v, (int, float)) and v is not None})
        forecaster, p_val, p_test, scores = fit_and_score(config, data, progress=progress)
        history = getattr(forecaster.estimator, "history_", None) or {}
        tracker.log_history(history)
        tracker.log_metrics(scores)
        with tempfile.TemporaryDirectory(prefix="flareseq-run-") as tmp:
            tmp = Path(tmp)
            _write_run_artifacts(tmp, config, data, forecaster, p_val, p_test, history)
            tracker.log_artifact(tmp / "config.json")
            tracker.log_artifact(tmp / "predictions", subdir="predictions")
            tracker.log_artifact(tmp / "plots", subdir="plots")
            scaler = getattr(forecaster.estimator, "scaler_", None)
            if scaler is not None:
                tracker.log_artifact(tmp / "scaler.json")
            if config.tracking.log_model:
                tracker.log_model(tmp / "forecaster", input_example=data.train.X[:2])
    return RunResult(name=name, status="FINISHED", run_id=run_id, scores=scores,
                     seconds=time.perf_counter() - started)


def _write_run_artifacts(folder: Path, config, data: RunData, forecaster, p_val, p_test, history) -> None:
    from . import plots

    (folder / "config.json").write_text(config.to_json())
    forecaster.save(folder / "forecaster")
    scaler = getattr(forecaster.estimator, "scaler_", None)
    if scaler is not None:
        scaler.save(folder / "scaler.json")
    predictions = folder / "predictions"
    predictions.mkdir()
    pd.DataFrame({"id": data.test.ids, "y": data.test.y, "probability": p_test}).to_csv(
        predictions / "test_predictions.csv", index=False)
    if data.validation.n_samples:
        pd.DataFrame({"id": data.validation.ids, "y": data.validation.y, "probability": p_val}).to_csv(
            predictions / "validation_predictions.csv", index=False)
    figures = folder / "plots"
    figures.mkdir()
    if history:
        plots.save_figure(plots.plot_training_curves(history, title=config.name), figures / "training_curves.png")
    plots.save_figure(plots.plot_class_counts(data.class_counts()), figures / "class_counts.png")
    if len(np.unique(data.test.y)) == 2:
        plots.save_figure(plots.plot_roc(data.test.y, p_test, label=config.name), figures / "roc_test.png")
        plots.save_figure(plots.plot_reliability(data.test.y, p_test, label=config.name),
                          figures / "reliability_test.png")
        if data.validation.n_samples and len(np.unique(data.validation.y)) == 2:
            plots.save_figure(plots.plot_threshold_curve(data.validation.y, p_val, data.test.y, p_test,
                                                         chosen=forecaster.threshold),
                              figures / "threshold_curve.png")


# -- a grid ---------------------------------------------------------------------------------
def run_experiment(experiment: Experiment, *, progress: bool | None = None, with_baselines: bool = True,
                   echo=print) -> list[RunResult]:
    """Every run of ``experiment`` (and its baselines), resuming where an earlier call stopped."""
    if not experiment.runs:
        return []
    first = experiment.runs[0]
    tracker = make_tracker(first)
    cache = DataCache()
    finished = _finished_run_keys(tracker)
    plan = list(experiment.runs)
    if with_baselines:
        plan = _baseline_runs(experiment) + plan
    results = []
    for index, config in enumerate(plan, start=1):
        label = f"[{index}/{len(plan)}] {config.name}"
        if run_key(config) in finished:
            echo(f"{label}: already finished, skipped")
            results.append(RunResult(name=config.name, status="SKIPPED"))
            continue
        started = time.perf_counter()
        try:
            result = run_single(config, tracker=tracker, cache=cache, progress=progress,
                                extra_tags={"flareseq.experiment_file": experiment.source})
        except (FlareseqError, ValueError, RuntimeError, ArithmeticError) as exc:
            # The run is marked FAILED in MLflow; the grid goes on with the next one.
            message = f"{type(exc).__name__}: {exc}"
            echo(f"{label}: FAILED ({message})")
            if not isinstance(exc, FlareseqError):
                traceback.print_exc(file=sys.stderr)
            results.append(RunResult(name=config.name, status="FAILED", error=message,
                                     seconds=time.perf_counter() - started))
            continue
        tss = result.scores.get("test_tss", float("nan"))
        echo(f"{label}: test TSS {tss:.3f}, HSS2 {result.scores.get('test_hss2', float('nan')):.3f} "
             f"({result.seconds:.1f} s)")
        results.append(result)
    return results


def _baseline_runs(experiment: Experiment) -> list[RunConfig]:
    """One run per baseline for each distinct data preparation of the grid."""
    from .pipeline import data_key

    runs, seen = [], set()
    for config in experiment.runs:
        key = data_key(config)
        if key in seen:
            continue
        seen.add(key)
        suffix = "" if len(seen) == 1 else f"-d{len(seen)}"
        for name in config.baselines:
            runs.append(replace(config.with_overrides({"model.name": name, "model.params": {}}),
                                name=f"baseline-{name}{suffix}"))
    return runs


def _finished_run_keys(tracker) -> set[str]:
    if isinstance(tracker, NullTracker):
        return set()
    import mlflow

    runs = mlflow.search_runs(experiment_ids=[tracker.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              output_format="list")
    return {r.data.tags.get(RUN_KEY_TAG) for r in runs if r.data.tags.get(RUN_KEY_TAG)}


def _baseline_names() -> set[str]:
    from .baselines import BASELINES

    return set(BASELINES)


def _class_weighted(config: RunConfig) -> bool:
    weight = config.training.class_weight
    if isinstance(weight, str):
        return weight != ""
    return bool(weight) and len({float(v) for v in weight.values()}) > 1


def runs_frame(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """The runs of an experiment as the report's table (one row per run, newest kept per name)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise FlareseqError(f"no experiment {experiment!r} in the tracking store {tracking_uri}.")
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="list", order_by=["start_time DESC"])
    rows, seen = [], set()
    for run in runs:
        name = run.info.run_name
        if name in seen:
            continue  # a rerun (after a failure) supersedes the older attempt
        seen.add(name)
        tags, params, m = run.data.tags, run.data.params, run.data.metrics
        row: dict[str, Any] = {
            "run_id": run.info.run_id, "name": name, "architecture": tags.get("architecture", ""),
            "kind": tags.get("kind", "model"), "status": run.info.status,
            "threshold_metric": tags.get("threshold_metric", ""), "calibrated": tags.get("calibrated", "False"),
            "class_weighted": tags.get("class_weighted", "False"), "split_leaky": tags.get("split_leaky", "False"),
            "config": _describe(params), "error": tags.get("error", ""),
            "data_hash": params.get("data.content_hash", ""), "data_source": params.get("data.source", ""),
        }
        for key in ("n_train", "n_validation", "n_test", "pcc", "pcc_125", "threshold"):
            if key in m:
                row[key] = m[key]
        row["n_val"] = m.get("n_validation")
        for key, value in m.items():
            if key.startswith(("val_", "test_")):
                row[key] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(params: dict[str, str]) -> str:
    keys = ("training.epochs", "training.steps_per_epoch", "training.class_weight", "training.loss",
            "prep.missing", "prep.layout")
    return ", ".join(f"{k.split('.')[-1]}={params[k]}" for k in keys if k in params)
