"""Running experiments: one run, or every run of a grid, each recorded in MLflow.

A run prepares its data (:mod:`flareseq.pipeline`), fits its estimator, chooses the decision
threshold on validation data, scores validation and test, and logs everything a later reader
needs: the flattened configuration, per-epoch history, final scores, the model as an MLflow
pyfunc, the scaler, ``config.json``, the data's content hash, test forecasts and plots.
A grid is resumable: a run whose configuration already finished in the experiment is skipped,
and a failed run is recorded as failed while the grid goes on. A configuration with
``data.cv = K`` runs as a K-fold rotation (:mod:`flareseq.rotation`).
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

from . import metrics, verification
from .calibration import fit_calibrator
from .config import RunConfig
from .errors import FlareseqError
from .forecaster import Forecaster, build_estimator
from .grid import Experiment
from .pipeline import DataCache, RunData
from .tracking import MlflowTracker, NullTracker, resolve_tracking_uri, use_tracking_uri

RUN_KEY_TAG = "flareseq.run_key"
ROLE_TAG = "flareseq.role"  # "rotation": the parent of K fold runs; "fold": one of them
# Errors that fail one run (recorded as FAILED) while a grid goes on with the next.
RUN_ERRORS = (FlareseqError, ValueError, RuntimeError, ArithmeticError)


@dataclass
class RunResult:
    name: str
    status: str  # "FINISHED", "FAILED" or "SKIPPED" (already finished earlier)
    run_id: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    predictions: pd.DataFrame | None = None  # test forecasts (pooled out-of-fold ones for a rotation)
    validation_predictions: pd.DataFrame | None = None
    fold_scores: list[dict[str, float]] = field(default_factory=list)  # a rotation's, one per fold


def run_key(config: RunConfig) -> str:
    """What identifies a run for resuming: its whole configuration but where it is tracked and
    how its scores' intervals are drawn (neither changes the fitted model)."""
    plain = config.to_dict()
    plain.pop("tracking")
    plain.pop("verification", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def make_tracker(config: RunConfig):
    uri = resolve_tracking_uri(config.tracking.uri, config.tracking.output_dir)
    return MlflowTracker(uri, config.tracking.experiment)


def probability_reweighting(config: RunConfig) -> str:
    """Why this run's probabilities are inflated ("balanced class weights", ...), or "".

    Reweighting the classes in training (class weights, balanced sampling, a focal loss
    alpha other than 0.5) makes the model see flares more often than they happen, so its
    probabilities overstate them. The summary baselines weight classes ("balanced") by
    default too; climatology never does.
    """
    if config.model.name in _baseline_names():
        if config.model.name == "climatology":
            return ""
        return _class_weight_text(dict(config.model.params).get("class_weight", "balanced"))
    training = config.training
    reasons = [_class_weight_text(training.class_weight)]
    if getattr(training, "sampling", "shuffle") not in ("shuffle", ""):
        reasons.append(f"{training.sampling} sampling")
    alpha = getattr(training, "focal_alpha", None)
    if training.loss == "focal" and alpha is not None and alpha != 0.5:
        reasons.append(f"focal loss alpha {alpha:g}")
    return "; ".join(r for r in reasons if r)


def _class_weight_text(weight) -> str:
    if isinstance(weight, str):
        return f"{weight} class weights" if weight else ""
    if isinstance(weight, dict) and len({float(v) for v in weight.values()}) > 1:
        return "class weights " + ", ".join(f"{k}: {v:g}" for k, v in sorted(weight.items()))
    return ""


# -- one fit --------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """A fitted run's forecaster, its forecasts (calibrated when the run calibrates; the
    model's own beside them) and its scores."""

    forecaster: Forecaster
    p_val: np.ndarray
    p_test: np.ndarray
    scores: dict[str, float]
    p_val_uncalibrated: np.ndarray
    p_test_uncalibrated: np.ndarray


def evaluate_run(config: RunConfig, data: RunData, *, progress: bool | None = None) -> Evaluation:
    """Fit the run's estimator on ``data.train``, calibrate and choose the threshold on
    ``data.validation`` (as configured), and score validation and test.

    The scores are ``val_<m>`` and ``test_<m>`` (:func:`flareseq.metrics.all_scores`),
    ``threshold``; with calibration ``<part>_brier_uncalibrated`` and ``<part>_bss_uncalibrated``;
    bootstrap intervals ``test_<m>_ci_low``/``_ci_high`` (``verification.n_bootstrap`` > 0); and
    ``ref_test_optimal_tss`` with its ``ref_test_optimal_threshold``: the best TSS any
    threshold reaches on the test part, a reference for how much the validation choice loses,
    never a score (it is chosen on the test data).
    """
    estimator = build_estimator(config, progress=progress)
    has_val = data.validation.n_samples > 0
    training = config.training
    for option, what in ((training.threshold_metric, "training.threshold_metric chooses the threshold"),
                         (training.calibration, "training.calibration fits its calibrator")):
        if option and not has_val:
            raise FlareseqError(
                f"{what} on validation data, but this split has no validation part; give the split a validation "
                "share or fold, or turn the option off ('')."
            )
    fit_kwargs = {"X_val": data.validation.X, "y_val": data.validation.y} if has_val else {}
    estimator.fit(data.train.X, data.train.y, **fit_kwargs)
    kind = "baseline" if config.model.name in _baseline_names() else "model"
    forecaster = Forecaster(estimator=estimator, missing=data.missing, feature_names=data.train.feature_names,
                            n_timesteps=data.train.n_timesteps, layout=config.prep.layout, kind=kind,
                            name=config.name)
    climatology = data.facts["base_rate"]
    raw_val = estimator.predict_proba(data.validation.X)[:, 1] if has_val else np.empty(0)
    raw_test = estimator.predict_proba(data.test.X)[:, 1]
    p_val, p_test = raw_val, raw_test
    scores: dict[str, float] = {}
    if training.calibration:
        calibrator = fit_calibrator(training.calibration, data.validation.y, raw_val)
        p_val, p_test = calibrator.transform(raw_val), calibrator.transform(raw_test)
        # The threshold lives on the scale forecasts are given in: chosen again on the
        # calibrated validation probabilities (or the fixed one applied to them).
        threshold = (metrics.choose_threshold(data.validation.y, p_val, training.threshold_metric)
                     if training.threshold_metric else float(training.threshold))
        forecaster.calibrator, forecaster.calibrated_threshold = calibrator, threshold
        for part, y, raw in (("val", data.validation.y, raw_val), ("test", data.test.y, raw_test)):
            scores[f"{part}_brier_uncalibrated"] = metrics.brier_score(y, raw)
            scores[f"{part}_bss_uncalibrated"] = metrics.brier_skill_score(y, raw, climatology)
    threshold = forecaster.threshold
    if has_val:
        scores.update({f"val_{k}": v for k, v in metrics.all_scores(data.validation.y, p_val, threshold=threshold,
                                                                      climatology=climatology).items()})
    scores.update({f"test_{k}": v for k, v in metrics.all_scores(data.test.y, p_test, threshold=threshold,
                                                                   climatology=climatology).items()})
    scores["threshold"] = threshold
    if len(np.unique(data.test.y)) == 2:
        best = metrics.choose_threshold(data.test.y, p_test, "tss")
        scores["ref_test_optimal_threshold"] = best
        scores["ref_test_optimal_tss"] = metrics.true_skill_statistic(data.test.y, (p_test >= best).astype(np.int8))
    settings = config.verification
    if settings.n_bootstrap:
        intervals = verification.bootstrap_intervals(
            data.test.y, p_test, threshold=threshold, groups=verification.region_groups(data.test.meta, len(p_test)),
            climatology=climatology, n_boot=settings.n_bootstrap, level=settings.confidence_level,
            random_state=settings.random_state)
        scores.update(verification.interval_scores(intervals, "test_"))
    return Evaluation(forecaster, p_val, p_test, scores, raw_val, raw_test)


def fit_and_score(config: RunConfig, data: RunData, *, progress: bool | None = None):
    """:func:`evaluate_run` as ``(forecaster, p_val, p_test, scores)``."""
    result = evaluate_run(config, data, progress=progress)
    return result.forecaster, result.p_val, result.p_test, result.scores


def predictions_frame(part, p: np.ndarray, threshold: float, climatology: float,
                      p_uncalibrated: np.ndarray | None = None) -> pd.DataFrame:
    """A part's forecasts as logged in ``predictions/<part>_predictions.csv``: ``id, y,
    probability, threshold, climatology`` (the training event rate), ``region`` when the data
    has regions (paired comparisons resample them), and ``probability_uncalibrated`` for a
    calibrated run. Self-contained: any two runs' files can be compared."""
    frame = pd.DataFrame({"id": part.ids, "y": part.y, "probability": p, "threshold": threshold,
                          "climatology": climatology})
    if "region" in part.meta.columns and len(part.meta) == len(frame) and part.meta["region"].notna().any():
        frame["region"] = part.meta["region"].astype("string").to_numpy()
    if p_uncalibrated is not None:
        frame["probability_uncalibrated"] = p_uncalibrated
    return frame


# -- one run --------------------------------------------------------------------------------
def run_single(config: RunConfig, *, tracker=None, cache: DataCache | None = None, progress: bool | None = None,
               parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None, fold: int | None = None,
               finished: dict[str, str] | None = None, echo=None) -> RunResult:
    """Prepare, fit, score and log one run; errors propagate (the run is marked FAILED).

    A configuration that rotates (``data.cv = K``) runs as :func:`flareseq.rotation.run_rotation`
    (``finished`` and ``echo`` are for it); ``fold`` runs only that fold's split (as a child of
    ``parent_run_id``).
    """
    if config.data.cv and fold is None:
        from .rotation import run_rotation  # rotation runs its folds through this function

        return run_rotation(config, tracker=tracker, cache=cache, progress=progress, extra_tags=extra_tags,
                            finished=finished, echo=echo)
    tracker = tracker or NullTracker()
    cache = cache or DataCache()
    started = time.perf_counter()
    name = config.name or config.model.name
    with tracker.run(name if fold is None else f"{name}/fold{fold + 1}", tags=run_tags(config, extra_tags),
                     parent_run_id=parent_run_id) as active:
        run_id = active.info.run_id if active is not None else None
        tracker.log_params(config.flatten())
        data = cache.get(config, fold=fold, progress=progress)
        tracker.log_params({"data.content_hash": data.source.content_hash, "data.source": data.source.description,
                            "data.split_description": data.split.description})
        tracker.set_tags({"data.content_hash": data.source.content_hash, "split_leaky": str(data.split.leaky)})
        tracker.log_metrics({k: float(v) for k, v in data.facts.items()
                             if isinstance(v, (int, float)) and v is not None})
        result = evaluate_run(config, data, progress=progress)
        groups = verification.region_groups(data.test.meta, data.test.n_samples)
        tracker.set_tags({"ci_resampling": "samples" if groups is None else f"{len(set(groups))} regions"})
        forecaster = result.forecaster
        history = getattr(forecaster.estimator, "history_", None) or {}
        tracker.log_history(history)
        log_scores(tracker, result.scores)
        calibrated = forecaster.calibrator is not None
        climatology = data.facts["base_rate"]
        test_frame = predictions_frame(data.test, result.p_test, forecaster.threshold, climatology,
                                       result.p_test_uncalibrated if calibrated else None)
        val_frame = predictions_frame(data.validation, result.p_val, forecaster.threshold, climatology,
                                      result.p_val_uncalibrated if calibrated else None) \
            if data.validation.n_samples else None
        with tempfile.TemporaryDirectory(prefix="flareseq-run-") as tmp:
            tmp = Path(tmp)
            _write_run_artifacts(tmp, config, data, result, history, test_frame, val_frame)
            tracker.log_artifact(tmp / "config.json")
            tracker.log_artifact(tmp / "predictions", subdir="predictions")
            if config.tracking.plots:
                tracker.log_artifact(tmp / "plots", subdir="plots")
            scaler = getattr(forecaster.estimator, "scaler_", None)
            if scaler is not None:
                tracker.log_artifact(tmp / "scaler.json")
            if config.tracking.log_model:
                tracker.log_model(tmp / "forecaster", input_example=data.train.X[:2])
    return RunResult(name=name, status="FINISHED", run_id=run_id, scores=result.scores,
                     seconds=time.perf_counter() - started, predictions=test_frame, validation_predictions=val_frame)


def run_tags(config: RunConfig, extra: dict[str, str] | None) -> dict[str, str]:
    """The MLflow tags of a run: architecture, kind, run key, threshold choice, reweighting
    and calibration (what the report's calibration warning is driven by)."""
    reweighting = probability_reweighting(config)
    return {"architecture": config.model.name,
            "kind": "baseline" if config.model.name in _baseline_names() else "model",
            RUN_KEY_TAG: run_key(config), "threshold_metric": config.training.threshold_metric,
            "class_weighted": str(bool(reweighting)), "reweighting": reweighting,
            "calibrated": str(bool(config.training.calibration)), "calibration": config.training.calibration,
            **(extra or {})}


def log_scores(tracker, values: dict[str, float]) -> None:
    """Log many metrics in batches MLflow accepts."""
    items = list(values.items())
    for start in range(0, len(items), 500):  # MLflow takes at most 1,000 metrics per batch
        tracker.log_metrics(dict(items[start:start + 500]))


def _write_run_artifacts(folder: Path, config, data: RunData, result: Evaluation, history, test_frame,
                         val_frame) -> None:
    from . import plots

    forecaster = result.forecaster
    (folder / "config.json").write_text(config.to_json())
    forecaster.save(folder / "forecaster")
    scaler = getattr(forecaster.estimator, "scaler_", None)
    if scaler is not None:
        scaler.save(folder / "scaler.json")
    predictions = folder / "predictions"
    predictions.mkdir()
    test_frame.to_csv(predictions / "test_predictions.csv", index=False)
    if val_frame is not None:
        val_frame.to_csv(predictions / "validation_predictions.csv", index=False)
    if not config.tracking.plots:
        return
    figures = folder / "plots"
    figures.mkdir()
    if history:
        plots.save_figure(plots.plot_training_curves(history, title=config.name), figures / "training_curves.png")
    plots.save_figure(plots.plot_class_counts(data.class_counts()), figures / "class_counts.png")
    if len(np.unique(data.test.y)) == 2:
        plots.save_figure(plots.plot_roc(data.test.y, result.p_test, label=config.name), figures / "roc_test.png")
        ax = None
        if forecaster.calibrator is not None:
            ax = plots.plot_reliability(data.test.y, result.p_test_uncalibrated, label=f"{config.name} uncalibrated")
        ax = plots.plot_reliability(data.test.y, result.p_test, ax=ax, label=config.name + (
            f" ({config.training.calibration})" if forecaster.calibrator is not None else ""))
        plots.save_figure(ax, figures / "reliability_test.png")
        if data.validation.n_samples and len(np.unique(data.validation.y)) == 2:
            plots.save_figure(plots.plot_threshold_curve(data.validation.y, result.p_val, data.test.y, result.p_test,
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
    finished = _finished_runs(tracker)
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
                                extra_tags={"flareseq.experiment_file": experiment.source}, finished=finished,
                                echo=echo)
        except RUN_ERRORS as exc:
            # The run is marked FAILED in MLflow; the grid goes on with the next one.
            message = f"{type(exc).__name__}: {exc}"
            echo(f"{label}: FAILED ({message})")
            if not isinstance(exc, FlareseqError):
                traceback.print_exc(file=sys.stderr)
            results.append(RunResult(name=config.name, status="FAILED", error=message,
                                     seconds=time.perf_counter() - started))
            continue
        tss = result.scores.get("test_tss", float("nan"))
        spread = f" (sd {result.scores['test_tss_sd']:.3f} over {len(result.fold_scores)} folds)" \
            if result.fold_scores else ""
        echo(f"{label}: test TSS {tss:.3f}{spread}, HSS2 {result.scores.get('test_hss2', float('nan')):.3f} "
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


def _finished_runs(tracker) -> dict[str, str]:
    """Run key -> run id of every FINISHED run of the tracker's experiment (folds included)."""
    if isinstance(tracker, NullTracker):
        return {}
    import mlflow

    runs = mlflow.search_runs(experiment_ids=[tracker.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              output_format="list")
    return {r.data.tags[RUN_KEY_TAG]: r.info.run_id for r in runs if r.data.tags.get(RUN_KEY_TAG)}


def _baseline_names() -> set[str]:
    from .baselines import BASELINES

    return set(BASELINES)


def runs_frame(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """The runs of an experiment as the report's table (one row per run, newest kept per name)."""
    import mlflow

    use_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise FlareseqError(f"no experiment {experiment!r} in the tracking store {tracking_uri}.")
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="list", order_by=["start_time DESC"])
    rows, seen = [], set()
    for run in runs:
        name = run.info.run_name
        tags, params, m = run.data.tags, run.data.params, run.data.metrics
        if tags.get(ROLE_TAG) == "fold":
            continue  # a rotation's fold: its parent's row carries the mean, sd and per-fold values
        if name in seen:
            continue  # a rerun (after a failure) supersedes the older attempt
        seen.add(name)
        row: dict[str, Any] = {
            "run_id": run.info.run_id, "name": name, "architecture": tags.get("architecture", ""),
            "kind": tags.get("kind", "model"), "status": run.info.status,
            "threshold_metric": tags.get("threshold_metric", ""), "calibrated": tags.get("calibrated", "False"),
            "calibration": tags.get("calibration", ""), "class_weighted": tags.get("class_weighted", "False"),
            "reweighting": tags.get("reweighting", ""), "split_leaky": tags.get("split_leaky", "False"),
            "n_folds": int(tags["flareseq.cv"]) if tags.get("flareseq.cv", "").isdigit() else None,
            "ci_resampling": tags.get("ci_resampling", ""),
            "ci_level": float(params.get("verification.confidence_level", "nan")),
            "config": _describe(params), "error": tags.get("error", ""),
            "data_hash": params.get("data.content_hash", ""), "data_source": params.get("data.source", ""),
        }
        for key in ("n_train", "n_validation", "n_test", "pcc", "pcc_125", "threshold", "threshold_sd"):
            if key in m:
                row[key] = m[key]
        row["n_val"] = m.get("n_validation")
        for key, value in m.items():
            if key.startswith(("val_", "test_", "ref_", "pooled_", "threshold_fold")):
                row[key] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(params: dict[str, str]) -> str:
    keys = ("training.epochs", "training.steps_per_epoch", "training.class_weight", "training.loss",
            "training.calibration", "prep.missing", "prep.layout", "data.cv")
    optional = ("training.calibration", "data.cv")  # shown only when set
    return ", ".join(f"{k.split('.')[-1]}={params[k]}" for k in keys
                     if k in params and not (k in optional and params[k] in ("", "0")))
