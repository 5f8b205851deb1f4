"""One run: prepare its data, fit, score validation and test, and log it all to MLflow.

A run prepares its data (:mod:`flareseq.experiments.rundata`), fits its classifier (which
calibrates and chooses its decision threshold on validation data), scores validation and test,
and logs everything a later reader needs: the flattened configuration, per-epoch history, final
scores, the model as an MLflow pyfunc, the fitted preparation, ``config.json``, the data's
content hash, test forecasts and plots.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.errors import FlareseqError
from flareseq.evaluation import metrics, verification
from flareseq.experiments.config import RunConfig
from flareseq.experiments.rundata import DataCache, RunData
from flareseq.experiments.tracking import RUN_KEY_TAG, NullTracker
from flareseq.training.baselines import BASELINES
from flareseq.training.estimator import FlareClassifier
from flareseq.training.forecaster import Forecaster


def build_classifier(config: RunConfig, *, progress: bool | None = None) -> FlareClassifier:
    """The unfitted classifier of a run: its model (or baseline), scaler and training settings,
    as they are in the configuration."""
    return FlareClassifier.from_settings(config.model.name, config.model.params, scaler=config.prep.scaler,
                                         settings=config.training, progress=bool(progress))


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
    """What identifies a run for resuming: its whole configuration but where it is tracked,
    how its scores' intervals are drawn and its memory budget (none changes the fitted model)."""
    plain = config.to_dict()
    plain.pop("tracking")
    plain.pop("verification", None)
    plain["data"].pop("memory_budget_mb", None)  # where the data lies while training, not what it is
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def probability_reweighting(config: RunConfig) -> str:
    """Why this run's probabilities are inflated ("balanced class weights", ...), or "".

    Reweighting the classes in training (class weights, balanced batches, a focal loss
    alpha other than 0.5) makes the model see flares more often than they happen, so its
    probabilities overstate them. The logistic and boosting baselines weight classes
    ("balanced") by default too; climatology never does.
    """
    if config.model.name in BASELINES:
        if config.model.name == "climatology":
            return ""
        return _class_weight_text(dict(config.model.params).get("class_weight", "balanced"))
    training = config.training
    reasons = [_class_weight_text(training.class_weight)]
    if training.batching == "balanced":
        reasons.append("balanced batches")
    if training.loss == "focal" and training.focal_alpha and training.focal_alpha != 0.5:
        reasons.append(f"focal loss alpha {training.focal_alpha:g}")
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
    """Fit the run's classifier on ``data.train`` (it calibrates and chooses its threshold on
    ``data.validation``, as configured: :meth:`FlareClassifier.fit`), then score validation and
    test. This function only scores.

    The scores are ``val_<m>`` and ``test_<m>`` (:func:`flareseq.evaluation.metrics.all_scores`),
    ``threshold``; with calibration ``<part>_brier_uncalibrated`` and ``<part>_bss_uncalibrated``;
    bootstrap intervals ``test_<m>_ci_low``/``_ci_high`` (``verification.n_bootstrap`` > 0); and
    ``ref_test_optimal_tss`` with its ``ref_test_optimal_threshold``: the best TSS any
    threshold reaches on the test part, a reference for how much the validation choice loses,
    never a score (it is chosen on the test data).
    """
    classifier = build_classifier(config, progress=progress)
    has_val = data.validation.n_samples > 0
    needs = [n for n in config.training.needs_validation
             if not (config.model.name in BASELINES and n.startswith("early"))]
    if needs and not has_val:
        raise FlareseqError(
            f"{', '.join(needs)} need validation data, but this split has no validation part; give the split a "
            "validation share or fold, or turn them off (training.threshold_metric = '', training.calibration = '', "
            "training.early_stopping = false)."
        )
    classifier.fit(data.train, X_val=data.validation if has_val else None)
    kind = "baseline" if config.model.name in BASELINES else "model"
    samples = data.sample_example  # what the forecaster takes: samples before any study layout
    forecaster = Forecaster(classifier=classifier, feature_names=samples.feature_names,
                            n_timesteps=samples.n_timesteps, layout=config.prep.layout, kind=kind, name=config.name)
    climatology = data.facts["base_rate"]
    raw_val = classifier.predict_proba_uncalibrated(data.validation) if has_val else np.empty(0)
    raw_test = classifier.predict_proba_uncalibrated(data.test)
    calibrator = classifier.calibrator_
    p_val = raw_val if calibrator is None or not has_val else calibrator.transform(raw_val)
    p_test = raw_test if calibrator is None else calibrator.transform(raw_test)
    scores: dict[str, float] = {}
    if calibrator is not None:
        for part, y, raw in (("val", data.validation.y, raw_val), ("test", data.test.y, raw_test)):
            scores[f"{part}_brier_uncalibrated"] = metrics.brier_score(y, raw)
            scores[f"{part}_bss_uncalibrated"] = metrics.brier_skill_score(y, raw, climatology)
    threshold = classifier.threshold_
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
               parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None,
               fold: int | None = None) -> RunResult:
    """Prepare, fit, score and log one run; errors propagate (the run is marked FAILED).

    ``fold`` runs only that rotation fold's split (as a child of ``parent_run_id``); a
    configuration that rotates runs all its folds through :func:`flareseq.experiments.runner.run`.
    """
    if config.data.cv and fold is None:
        raise FlareseqError(f"{config.name or config.model.name} rotates (data.cv = {config.data.cv}): run it with "
                            "flareseq.experiments.runner.run, which runs every fold, or pass fold=k.")
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
        history = forecaster.classifier.history_
        # what the batching made of the data: e.g. a full pass of n samples in steps_per_epoch batches
        tracker.log_params({f"fit.{k}": v for k, v in forecaster.classifier.batches_.items()})
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
            if any((tmp / "split").iterdir()):
                tracker.log_artifact(tmp / "split", subdir="split")
            if config.tracking.plots:
                tracker.log_artifact(tmp / "plots", subdir="plots")
            tracker.log_artifact(tmp / "preparation.json")
            if config.tracking.log_model:
                # a model of the study's windows forecasts no samples: no example to validate it with
                example = data.sample_example.X
                tracker.log_model(tmp / "forecaster", shape=example.shape[1:],
                                  input_example=None if config.prep.layout == "study-windows" else example)
    return RunResult(name=name, status="FINISHED", run_id=run_id, scores=result.scores,
                     seconds=time.perf_counter() - started, predictions=test_frame, validation_predictions=val_frame)


def run_tags(config: RunConfig, extra: dict[str, str] | None) -> dict[str, str]:
    """The MLflow tags of a run: architecture, kind, run key, threshold choice, reweighting,
    calibration (what the report's calibration warning is driven by) and leaks (the label as an
    input: ``leaky`` with the reason)."""
    reweighting = probability_reweighting(config)
    leak = "the label is an input (prep.label_as_input)" if config.prep.label_as_input else ""
    return {"architecture": config.model.name,
            "kind": "baseline" if config.model.name in BASELINES else "model",
            RUN_KEY_TAG: run_key(config), "threshold_metric": config.training.threshold_metric,
            "class_weighted": str(bool(reweighting)), "reweighting": reweighting,
            "calibrated": str(bool(config.training.calibration)), "calibration": config.training.calibration,
            "leaky": str(bool(leak)), "leak": leak, "layout": config.prep.layout,
            **(extra or {})}


def log_scores(tracker, values: dict[str, float]) -> None:
    """Log many metrics in batches MLflow accepts."""
    items = list(values.items())
    for start in range(0, len(items), 500):  # MLflow takes at most 1,000 metrics per batch
        tracker.log_metrics(dict(items[start:start + 500]))


def write_split_digests(folder: Path, data: RunData) -> None:
    """``split/{train,validation,test}.txt.gz``: a digest of every sample of each part (its id,
    label and values: :func:`flareseq.data.hashing.sample_digests`), so that ``flareseq
    evaluate`` can recognise samples the run has seen in any file, whatever their order."""
    import gzip

    from flareseq.data.hashing import sample_digests

    folder.mkdir()
    for name, part in data.parts().items():
        if part.n_samples == 0 or part.n_timesteps != data.sample_example.n_timesteps:
            continue  # a study layout's rows or windows are not samples anyone will evaluate
        with gzip.open(folder / f"{name}.txt.gz", "wt") as handle:
            handle.writelines(d.hex()[:32] + "\n" for d in sample_digests(part.ids, part.y, part.X))


def _write_run_artifacts(folder: Path, config, data: RunData, result: Evaluation, history, test_frame,
                         val_frame) -> None:
    from flareseq.reporting import plots

    forecaster = result.forecaster
    (folder / "config.json").write_text(config.to_json())
    forecaster.save(folder / "forecaster")
    # the fitted preparation (feature order, fill medians, scaling) beside the model, readable as it is
    (folder / "preparation.json").write_text(json.dumps(forecaster.classifier.preparation_.to_dict(), indent=2))
    predictions = folder / "predictions"
    predictions.mkdir()
    test_frame.to_csv(predictions / "test_predictions.csv", index=False)
    write_split_digests(folder / "split", data)
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
