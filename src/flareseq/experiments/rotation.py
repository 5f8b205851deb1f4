"""K-fold rotation: each fold in turn is the test set; one parent run, a child run per fold.

On real flare data one test fold's score depends heavily on which active regions it holds (a
SMARP test fold has about a dozen flaring regions), so a single split says little about how
two methods compare. A rotation (``data.cv = K``, ``flareseq experiments GRID --cv K``) fits
every configuration K times, each fold of the data (fold files or partitions, or region
groups; :func:`flareseq.experiments.rundata.rotation_splits`) the test set once, with validation carved
from that fold's training regions. Each fold fits, calibrates and chooses its threshold on
its own training and validation parts and is logged as a child run; the parent run carries
the mean, standard deviation and per-fold values of every score, and the pooled out-of-fold
test forecasts (every sample tested exactly once) with bootstrap intervals, which is what
paired comparisons between rotated runs use.

Usable without MLflow (the default tracker records nothing)::

    from flareseq.experiments.rotation import cross_validate
    from flareseq.evaluation.verification import compare_predictions

    results = cross_validate([model_config, baseline_config], 5)  # run name -> RunResult
    compare_predictions(results["lstm"].predictions, results["baseline"].predictions)  # paired, by region

Nested mode (:func:`nested_cross_validate`): any choice among runs (the best model, the best
baseline, the best settings) is made once per outer test fold, on that fold's validation part
only (carved by region from its training folds), never on a fold that is later a test fold;
stacked ensembles are fitted the same way (:mod:`flareseq.experiments.nested`)::

    nested = nested_cross_validate(configs, 5, groups={"best-baseline": ["logistic-last", "logistic-summary"],
                                                       "best-model": ["lstm", "wide-deep-lstm"]},
                                   stacks={"stack": ["wide-deep-lstm", "logistic-last"]})
    nested.results["best-model"].predictions  # each fold's forecasts by the model chosen without it
    nested.chosen["best-model"]               # which, per fold
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.errors import FlareseqError
from flareseq.evaluation import verification
from flareseq.experiments.config import RunConfig
from flareseq.experiments.nested import FoldPicks, check_inner_outer_disjoint, select_per_fold, stack_folds
from flareseq.experiments.rundata import DataCache, Source
from flareseq.experiments.single import (
    RUN_ERRORS,
    RunResult,
    log_scores,
    run_key,
    run_single,
    run_tags,
)
from flareseq.experiments.tracking import ROLE_TAG, RUN_KEY_TAG, NullTracker

# Per-fold values logged on a rotation's parent run (mean and sd are logged for every score).
FOLD_METRICS = (*(f"test_{m}" for m in ("tss", "hss2", "roc_auc", "pr_auc", "bss", "brier", "precision", "recall",
                                         "f1", "accuracy")), "val_tss", "threshold")


def run_rotation(config: RunConfig, *, tracker=None, cache: DataCache | None = None, progress: bool | None = None,
                 extra_tags: dict[str, str] | None = None, finished: dict[str, str] | None = None,
                 echo=None) -> RunResult:
    """K-fold rotation (``config.data.cv = K``): one parent run with a child run per fold.

    Each fold in turn is the test set (:func:`flareseq.experiments.rundata.rotation_splits`); every fold
    fits, calibrates and chooses its threshold on its own training and validation parts. The
    parent logs, for every score, the mean over folds under the score's own name (so tables
    of runs show the mean), ``<score>_sd`` (standard deviation, ddof 1) and, for
    :data:`FOLD_METRICS`, ``<score>_fold<k>``; and ``pooled_test_<m>`` with bootstrap
    intervals: the scores of all folds' test forecasts pooled (every sample is tested once),
    each at its fold's threshold. ``finished`` maps run keys of fold runs finished earlier to
    their run ids: those are reused (moved under this parent), not refitted.

    Returns a :class:`RunResult` whose ``predictions`` are the pooled out-of-fold forecasts
    (with a ``fold`` column) and ``fold_scores`` the folds' scores. A failed fold fails the
    parent (after the other folds ran) with a :class:`FlareseqError`.
    """
    tracker = tracker or NullTracker()
    cache = cache or DataCache()
    echo = echo or (lambda line: None)
    started = time.perf_counter()
    name = config.name or config.model.name
    key = run_key(config)
    tags = {**run_tags(config, extra_tags), ROLE_TAG: "rotation", "flareseq.cv": str(config.data.cv),
            RUN_KEY_TAG: key}
    fold_scores, tests, validations, errors = [], [], [], []
    with tracker.run(name, tags=tags) as parent:
        parent_id = parent.info.run_id if parent is not None else None
        tracker.log_params(config.flatten())
        splits = cache.rotation(config, progress=progress)  # inside the run: a bad setting is a FAILED run
        k = len(splits)
        source = cache.source(config, progress=progress)
        tracker.log_params({"data.content_hash": source.content_hash, "data.source": source.description})
        groups = verification.region_groups(source.dataset.meta, source.dataset.n_samples)
        tracker.set_tags({"data.content_hash": source.content_hash, "split_leaky": "False",
                          "ci_resampling": "samples" if groups is None else f"{len(set(groups))} regions"})
        for i in range(k):
            child_key = f"{key}/fold{i + 1}"
            fold_tags = {RUN_KEY_TAG: child_key, ROLE_TAG: "fold", "flareseq.fold": str(i + 1),
                         "flareseq.fold_split": splits[i].description[:5000]}
            try:
                if finished and child_key in finished:
                    result = _reuse_fold_run(finished[child_key], parent_id, tracker)
                    how = "finished earlier, reused"
                else:
                    result = run_single(config, tracker=tracker, cache=cache, progress=progress, fold=i,
                                        parent_run_id=parent_id, extra_tags={**(extra_tags or {}), **fold_tags})
                    how = f"{result.seconds:.1f} s"
            except RUN_ERRORS as exc:
                errors.append(f"fold {i + 1}: {type(exc).__name__}: {exc}")
                echo(f"  {name} fold {i + 1}/{k}: FAILED ({type(exc).__name__}: {exc})")
                continue
            fold_scores.append(result.scores)
            tests.append(result.predictions.assign(fold=i + 1))
            if result.validation_predictions is not None:
                validations.append(result.validation_predictions.assign(fold=i + 1))
            echo(f"  {name} fold {i + 1}/{k}: test TSS {result.scores.get('test_tss', np.nan):.3f}, "
                 f"HSS2 {result.scores.get('test_hss2', np.nan):.3f} ({how})")
        if errors:
            raise FlareseqError(f"{len(errors)} of {k} folds failed ({'; '.join(errors)}); rerun the grid to retry "
                                "them (finished folds are kept).")
        pooled = pd.concat(tests, ignore_index=True)
        scores = {**summarise_folds(fold_scores), **pooled_scores(pooled, config)}
        log_scores(tracker, scores)
        with tempfile.TemporaryDirectory(prefix="flareseq-rotation-") as tmp:
            tmp = Path(tmp)
            (tmp / "predictions").mkdir()
            pooled.to_csv(tmp / "predictions" / "test_predictions.csv", index=False)
            if validations:
                pd.concat(validations, ignore_index=True).to_csv(tmp / "predictions" / "validation_predictions.csv",
                                                                 index=False)
            (tmp / "config.json").write_text(config.to_json())
            tracker.log_artifact(tmp / "config.json")
            tracker.log_artifact(tmp / "predictions", subdir="predictions")
            if validations and config.tracking.plots:
                from flareseq.reporting import plots

                figure = plots.plot_threshold_curves_by_fold(validations, tests)
                plots.save_figure(figure, tmp / "plots" / "threshold_curve.png")
                tracker.log_artifact(tmp / "plots", subdir="plots")
    return RunResult(name=name, status="FINISHED", run_id=parent_id, scores=scores,
                     seconds=time.perf_counter() - started, predictions=pooled,
                     validation_predictions=pd.concat(validations, ignore_index=True) if validations else None,
                     fold_scores=fold_scores)


def cross_validate(configs: Sequence[RunConfig], k: int, *, source: Source | None = None, tracker=None,
                   progress: bool | None = None, echo=None) -> dict[str, RunResult]:
    """Rotate every configuration over the same K folds: the data loaded and split once.

    Parameters
    ----------
    configs : the runs to compare (models and baselines), sharing one data section.
    k : the number of folds (``data.cv``), e.g. 5 for the five SMARP fold files.
    source : the samples, already loaded (:func:`flareseq.experiments.rundata.load_source`); loaded from
        the first configuration's data section when omitted.
    tracker : where to log (none by default); ``progress``, ``echo`` as :func:`run_rotation`.

    Returns
    -------
    run name -> :class:`~flareseq.experiments.runner.RunResult` with the fold scores and the pooled
    out-of-fold forecasts, which :func:`flareseq.evaluation.verification.compare_predictions` pairs.
    """
    cache = DataCache()
    if source is not None and configs:
        cache.put_source(configs[0].data, source)
    results = {}
    for config in configs:
        rotated = config.with_overrides({"data.cv": k})
        results[rotated.name or rotated.model.name] = run_rotation(rotated, tracker=tracker, cache=cache,
                                                                   progress=progress, echo=echo)
    return results


@dataclass
class NestedRotation:
    """A nested rotation: every run's rotation, the stacks' and the nested picks' (each a
    :class:`RunResult` with fold scores and pooled forecasts), and what each pick chose per fold."""

    results: dict[str, RunResult]
    chosen: dict[str, list[str]] = field(default_factory=dict)
    n_validation_regions: dict[str, dict[int, int]] = field(default_factory=dict)


def nested_cross_validate(configs: Sequence[RunConfig], k: int, *, groups: Mapping[str, Sequence[str]],
                          stacks: Mapping[str, Sequence[str]] | None = None, metric: str = "val_tss",
                          source: Source | None = None, tracker=None, progress: bool | None = None,
                          echo=None) -> NestedRotation:
    """:func:`cross_validate` with nested selection: choices made inside each outer training set.

    Parameters
    ----------
    configs, k, source, tracker, progress, echo : as :func:`cross_validate`.
    groups : pick name -> candidate run names; per outer fold the candidate with the highest
        inner-validation ``metric`` (that fold's validation part, carved by region from its
        training folds) is chosen, and its test forecasts of that fold are the pick's.
        Candidates may be stacks, or earlier picks.
    stacks : stack name -> member run names; a logistic regression on the members' logits,
        fitted per fold on that fold's validation forecasts (:func:`~flareseq.experiments.nested.stack_folds`).

    Every run's inner validation regions are checked to be disjoint from its outer test regions
    (:class:`~flareseq.errors.LeakageError` otherwise) where the data has regions.
    """
    results = cross_validate(configs, k, source=source, tracker=tracker, progress=progress, echo=echo)
    regions: dict[str, dict[int, int]] = {}
    for name, result in results.items():
        if result.validation_predictions is not None and "region" in result.predictions.columns:
            regions[name] = check_inner_outer_disjoint(result)
    first = configs[0]
    nested = NestedRotation(results=dict(results), n_validation_regions=regions)
    for name, members in (stacks or {}).items():
        nested.results[name] = _as_result(stack_folds(nested.results, members, name=name), first)
    for name, candidates in groups.items():
        picks = select_per_fold(nested.results, candidates, name=name, metric=metric)
        nested.results[name] = _as_result(picks, first)
        nested.chosen[name] = picks.chosen
    return nested


def _as_result(picks: FoldPicks, config: RunConfig) -> RunResult:
    """A nested pick or stack as a rotation's :class:`RunResult` (fold means and pooled scores,
    with the bootstrap settings of ``config.verification``)."""
    scores = summarise_folds(picks.fold_scores)
    scores.update(pooled_scores(picks.predictions, config))
    return RunResult(name=picks.name, status="FINISHED", scores=scores, predictions=picks.predictions,
                     validation_predictions=picks.validation_predictions, fold_scores=picks.fold_scores)


def summarise_folds(fold_scores: list[dict[str, float]]) -> dict[str, float]:
    """Mean (under the score's name), ``_sd`` and, for :data:`FOLD_METRICS`, ``_fold<k>``
    of every score the folds share (bootstrap bounds excluded: they do not average)."""
    out: dict[str, float] = {"n_folds": float(len(fold_scores))}
    if not fold_scores:
        return out
    shared = [k for k in fold_scores[0] if all(k in s for s in fold_scores)
              and (k.startswith(("val_", "test_", "ref_")) or k == "threshold") and "_ci_" not in k]
    for key in shared:
        values = np.array([s[key] for s in fold_scores], dtype=np.float64)
        defined = values[np.isfinite(values)]
        out[key] = float(defined.mean()) if defined.size else float("nan")
        out[f"{key}_sd"] = float(defined.std(ddof=1)) if defined.size > 1 else float("nan")
        if key in FOLD_METRICS:
            out.update({f"{key}_fold{i + 1}": float(v) for i, v in enumerate(values)})
    return out


def pooled_scores(pooled: pd.DataFrame, config: RunConfig) -> dict[str, float]:
    """``pooled_test_<m>`` (and ``_ci_low``/``_ci_high``) of out-of-fold forecasts pooled
    over a rotation, each at its own fold's threshold and against its fold's climatology."""
    settings = config.verification
    y = pooled["y"].to_numpy().astype(int)
    groups = verification.region_groups(pooled, len(pooled)) if "region" in pooled.columns else None
    intervals = verification.bootstrap_intervals(
        y, pooled["probability"].to_numpy(float), threshold=pooled["threshold"].to_numpy(float), groups=groups,
        climatology=pooled["climatology"].to_numpy(float), n_boot=max(settings.n_bootstrap, 1),
        level=settings.confidence_level, random_state=settings.random_state)
    out = {f"pooled_test_{m}": interval.estimate for m, interval in intervals.items()}
    if settings.n_bootstrap:
        out.update(verification.interval_scores(intervals, "pooled_test_"))
    return out


def _reuse_fold_run(run_id: str, parent_id: str | None, tracker) -> RunResult:
    """A fold run finished by an earlier, interrupted rotation: moved under the new parent,
    its scores and forecasts read back from MLflow."""
    import mlflow

    client = mlflow.MlflowClient(tracker.tracking_uri)
    if parent_id is not None:
        client.set_tag(run_id, "mlflow.parentRunId", parent_id)
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="flareseq-reuse-") as tmp:
        local = Path(client.download_artifacts(run_id, "predictions", tmp))
        test = pd.read_csv(local / "test_predictions.csv", dtype={"id": str, "region": "string"})
        val_path = local / "validation_predictions.csv"
        val = pd.read_csv(val_path, dtype={"id": str, "region": "string"}) if val_path.is_file() else None
    return RunResult(name=run.info.run_name, status="FINISHED", run_id=run_id, scores=dict(run.data.metrics),
                     predictions=test, validation_predictions=val)


__all__ = ["FOLD_METRICS", "NestedRotation", "run_rotation", "cross_validate", "nested_cross_validate",
           "summarise_folds", "pooled_scores"]
