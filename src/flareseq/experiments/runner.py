"""Running experiments: one run (or rotation), or every run of a grid, each recorded in MLflow.

:func:`run` runs one configuration: a single fit (:func:`flareseq.experiments.single.run_single`)
or, with ``data.cv = K``, a K-fold rotation (:func:`flareseq.experiments.rotation.run_rotation`).
:func:`run_experiment` runs a grid with its baselines. A grid is resumable: a run whose
configuration already finished in the experiment is skipped, and a failed run is recorded as
failed while the grid goes on.
"""

from __future__ import annotations

import fnmatch
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace

from flareseq.errors import FlareseqError
from flareseq.experiments.config import RunConfig
from flareseq.experiments.grid import Experiment
from flareseq.experiments.rotation import run_rotation
from flareseq.experiments.rundata import DataCache, data_key
from flareseq.experiments.single import RUN_ERRORS, RunResult, run_key, run_single
from flareseq.experiments.tracking import (
    RUN_KEY_TAG,
    MlflowTracker,
    NullTracker,
    resolve_tracking_uri,
)


def make_tracker(config: RunConfig) -> MlflowTracker:
    uri = resolve_tracking_uri(config.tracking.uri, config.tracking.output_dir)
    return MlflowTracker(uri, config.tracking.experiment)


def run(config: RunConfig, *, tracker=None, cache: DataCache | None = None, progress: bool | None = None,
        extra_tags: dict[str, str] | None = None, finished: dict[str, str] | None = None, echo=None) -> RunResult:
    """One configuration: a single fit, or a K-fold rotation when ``config.data.cv = K``
    (``finished`` maps run keys of fold runs finished earlier to their run ids, reused)."""
    if config.data.cv:
        return run_rotation(config, tracker=tracker, cache=cache, progress=progress, extra_tags=extra_tags,
                            finished=finished, echo=echo)
    return run_single(config, tracker=tracker, cache=cache, progress=progress, extra_tags=extra_tags)


# -- a grid ---------------------------------------------------------------------------------
def run_experiment(experiment: Experiment, *, progress: bool | None = None, with_baselines: bool = True,
                   echo=print, only: Sequence[str] | None = None) -> list[RunResult]:
    """Every run of ``experiment`` (and its baselines), resuming where an earlier call stopped;
    with ``only``, just the runs whose names match one of these fnmatch patterns."""
    if not experiment.runs:
        return []
    first = experiment.runs[0]
    tracker = make_tracker(first)
    dead = tracker.mark_dead_runs()
    if dead:
        echo(f"marked {len(dead)} run(s) whose process had ended as KILLED: {', '.join(dead)}")
    cache = DataCache()
    finished = _finished_runs(tracker)
    plan = list(experiment.runs)
    if with_baselines:
        plan = _baseline_runs(experiment) + plan
    if only is not None:
        plan = [c for c in plan if any(fnmatch.fnmatchcase(c.name, pattern) for pattern in only)]
        if not plan:
            raise FlareseqError(f"--only {','.join(only)} matches none of the runs "
                                f"{[c.name for c in experiment.runs]} (nor their baselines).")
    results = []
    grid_started, n_fitted = time.perf_counter(), 0

    def eta(index: int) -> str:
        """Elapsed time and, from the runs fitted so far, the time the rest may take."""
        elapsed = time.perf_counter() - grid_started
        left = elapsed / n_fitted * (len(plan) - index) if n_fitted else float("nan")
        return f"{elapsed / 60:.1f} min elapsed" + (f", ~{left / 60:.1f} min left" if left == left else "")

    for index, config in enumerate(plan, start=1):
        label = f"[{index}/{len(plan)}] {config.name}"
        if run_key(config) in finished:
            echo(f"{label}: already finished, skipped")
            results.append(RunResult(name=config.name, status="SKIPPED"))
            continue
        started = time.perf_counter()
        try:
            result = run(config, tracker=tracker, cache=cache, progress=progress,
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
            n_fitted += 1
            continue
        n_fitted += 1
        tss = result.scores.get("test_tss", float("nan"))
        spread = f" (sd {result.scores['test_tss_sd']:.3f} over {len(result.fold_scores)} folds)" \
            if result.fold_scores else ""
        echo(f"{label}: test TSS {tss:.3f}{spread}, HSS2 {result.scores.get('test_hss2', float('nan')):.3f} "
             f"({result.seconds:.1f} s; {eta(index)})")
        results.append(result)
    return results


def _baseline_runs(experiment: Experiment) -> list[RunConfig]:
    """One run per baseline for each distinct data preparation of the grid."""
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






