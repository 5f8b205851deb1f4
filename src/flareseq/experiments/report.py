"""The report of an experiment, built from what its runs logged in MLflow.

Reads the runs (:func:`flareseq.experiments.tracking.runs_frame`), fetches the test forecasts and
histories of the best run per architecture (chosen on validation TSS), compares every model
with the best baseline on the same test samples (paired bootstrap by region,
:func:`compare_with_best_baseline`), draws the comparison figures and renders them with
:func:`flareseq.reporting.report.build_report`. :func:`compare_runs` compares any two runs.
"""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path

import pandas as pd

from flareseq.errors import FlareseqError
from flareseq.evaluation import verification
from flareseq.experiments.tracking import runs_frame
from flareseq.reporting import plots
from flareseq.reporting.report import ReportPaths, build_report
from flareseq.reporting.selection import best_baseline, best_per_architecture

# Experiments shown beside another's report: the study as written beside the study fixed.
COMPANIONS = {"study": "study-fixed"}


def write_experiment_report(tracking_uri: str, experiment: str, out_dir: str | Path, *,
                            n_boot: int = 2000) -> ReportPaths:
    """Write the report of ``experiment`` (Markdown, HTML and figures) into ``out_dir``.

    ``n_boot`` resamples of the paired comparisons with the best baseline (0: none).
    """
    import mlflow

    out = Path(out_dir)
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = runs_frame(tracking_uri, experiment)
    client = mlflow.MlflowClient(tracking_uri)
    runs = _with_settings(runs, client, experiment)
    best = best_per_architecture(runs)
    figures: list[tuple[Path, str]] = []

    finished = runs[runs["status"] == "FINISHED"]
    if not finished.empty:
        table = finished.rename(columns={"test_tss": "tss", "test_hss2": "hss2", "test_accuracy": "accuracy"})
        table = table.sort_values("val_tss", ascending=False, na_position="last")  # the report's order
        pcc = float(finished["pcc"].dropna().iloc[0]) if "pcc" in finished and finished["pcc"].notna().any() else None
        fig_path = figures_dir / "comparison.png"
        ax = plots.plot_run_comparison(table, pcc=pcc, best_per_architecture=len(table) > 12)
        plots.save_figure(ax, fig_path)
        figures.append((fig_path, "Test TSS and HSS2 per run (baselines hatched); accuracy against PCC and 1.25 x PCC"))

    scratch = figures_dir / "downloads"
    roc_ax = rel_ax = None
    for _, row in best.iterrows():
        predictions = _test_predictions(client, row["run_id"], scratch)
        if predictions is None or predictions["y"].nunique() < 2:
            continue
        baseline = row["kind"] == "baseline"
        roc_ax = plots.plot_roc(predictions["y"], predictions["probability"], ax=roc_ax, label=row["name"],
                                baseline=baseline)
        label = row["name"] + (" (calibrated)" if str(row.get("calibrated")) == "True" else
                               " (inflated)" if str(row.get("class_weighted")) == "True" else "")
        rel_ax = plots.plot_reliability(predictions["y"], predictions["probability"], ax=rel_ax, label=label,
                                        baseline=baseline)
    if roc_ax is not None:
        plots.save_figure(roc_ax, figures_dir / "roc.png")
        plots.save_figure(rel_ax, figures_dir / "reliability.png")
        figures.append((figures_dir / "roc.png", "ROC on the test part, best run per architecture (baselines "
                                                 "dashed)"))
        figures.append((figures_dir / "reliability.png",
                        "Reliability on the test part, best run per architecture (baselines dashed); the lower panel "
                        "counts the samples in each bin (log scale): a point of a few samples says little. Runs "
                        "marked 'inflated' were trained with class weights and not calibrated"))
    calibrated = _calibration_figure(client, best, scratch, figures_dir / "calibration.png")
    if calibrated is not None:
        figures.append((figures_dir / "calibration.png", f"Reliability of {calibrated} on the test part before and "
                                                         "after calibration (fitted on validation)"))
    comparisons = compare_with_best_baseline(runs, client, scratch, n_boot=n_boot) if n_boot else None

    models = best[best["kind"] == "model"] if not best.empty else best
    if not models.empty:
        top = models.sort_values("val_tss", ascending=False).iloc[0]
        first_fold = _first_fold_run(client, top["run_id"])  # a rotation's own figures are per fold
        for name, caption in (("training_curves.png", f"Training curves of {top['name']} (best on validation TSS)"),
                              ("class_counts.png", "Class counts per split"),
                              ("threshold_curve.png", f"TSS versus threshold of {top['name']}: validation chooses "
                                                      "(vertical line); the test curve and its optimum are shown "
                                                      "for reference only, never to choose on")):
            local = _download(client, top["run_id"], f"plots/{name}", figures_dir / "downloads")
            if local is None and first_fold is not None:
                local = _download(client, first_fold, f"plots/{name}", figures_dir / "downloads")
                caption += " (fold 1 of the rotation)"
            if local is not None:
                target = figures_dir / name
                target.write_bytes(local.read_bytes())
                figures.append((target, caption))

    first = runs.iloc[0] if len(runs) else {}
    meta = {
        "title": f"flareseq report: {experiment}",
        "experiment": experiment,
        "tracking store": tracking_uri,
        "data": first.get("data_source", "") if len(runs) else "",
        "data content hash": first.get("data_hash", "") if len(runs) else "",
        "runs": f"{len(runs)} ({int((runs['status'] == 'FINISHED').sum()) if len(runs) else 0} finished)",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    companion = None
    if experiment in COMPANIONS and client.get_experiment_by_name(COMPANIONS[experiment]) is not None:
        companion = (COMPANIONS[experiment], runs_frame(tracking_uri, COMPANIONS[experiment]))
    return build_report(runs, figures=figures, meta=meta, out_dir=out, comparisons=comparisons, companion=companion)


# Settings that only a trained model has: a baseline's row shows "–" for them, not the values
# its configuration inherited from the grid (a gradient-boosting baseline has no epochs).
_MODEL_ONLY_PREFIXES = ("training.", "model.params")
_APPLIES_TO_BASELINES = {"training.threshold", "training.threshold_metric", "training.calibration"}
# Not settings of the experiment's design: the run's own name, where it is recorded, the bootstrap.
_NOT_AXES = ("name", "model.name", "baselines", "tracking.", "verification.")


def _with_settings(runs: pd.DataFrame, client, experiment: str) -> pd.DataFrame:
    """``runs`` with a ``params.<key>`` column per configuration key (tables such as
    ``training.class_weight`` joined into one value, ``{0: 1, 1: 5}``), empty where a setting
    does not apply (model-only settings of baselines); the report shows those that vary."""
    from flareseq.experiments.config import RunConfig, valid_keys

    if runs.empty:
        return runs
    leaves = set(valid_keys())
    defaults = RunConfig().to_dict()
    tables = set()
    for key in leaves:
        value = defaults
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            tables.add(key)
    found = client.get_experiment_by_name(experiment)
    params = {r.info.run_id: r.data.params for r in client.search_runs([found.experiment_id], max_results=50000)} \
        if found is not None else {}
    rows = []
    for run_id, kind in zip(runs["run_id"], runs["kind"]):
        logged = params.get(run_id, {})
        settings = {}
        for key in sorted(leaves):
            if key.startswith(_NOT_AXES) and key != "model.params":
                continue
            if key in tables:
                entries = {k[len(key) + 1:]: v for k, v in logged.items() if k.startswith(key + ".")}
                value = ("{" + ", ".join(f"{k}: {v}" for k, v in entries.items()) + "}") if entries \
                    else logged.get(key, "")
                value = "none" if value == "{}" else value
            else:
                value = logged.get(key, "")
            model_only = key.startswith(_MODEL_ONLY_PREFIXES) and key not in _APPLIES_TO_BASELINES
            settings[f"params.{key}"] = "" if kind == "baseline" and model_only else value
        rows.append(settings)
    return pd.concat([runs.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def _calibration_figure(client, best: pd.DataFrame, scratch: Path, path: Path) -> str | None:
    """Reliability before and after calibration of the best calibrated model (by validation TSS)."""
    if best.empty or "calibrated" not in best:
        return None
    calibrated = best[(best["kind"] == "model") & (best["calibrated"].astype(str) == "True")]
    if calibrated.empty:
        return None
    top = calibrated.sort_values("val_tss", ascending=False).iloc[0]
    predictions = _test_predictions(client, top["run_id"], scratch)
    if predictions is None or "probability_uncalibrated" not in predictions or predictions["y"].nunique() < 2:
        return None
    ax = plots.plot_reliability(predictions["y"], predictions["probability_uncalibrated"], label="model's own")
    ax = plots.plot_reliability(predictions["y"], predictions["probability"], ax=ax,
                                label=f"{top.get('calibration', '') or 'calibrated'}")
    plots.save_figure(ax, path)
    return str(top["name"])


def compare_with_best_baseline(runs: pd.DataFrame, client, scratch: Path, *, n_boot: int = 2000,
                               level: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Every finished model run against the best baseline, paired on the same test samples.

    Returns one row per model: ``name``, ``baseline``, and for m in tss, hss2, pr_auc
    ``<m>_first``, ``<m>_second``, ``<m>_difference``, ``<m>_low``, ``<m>_high``,
    ``<m>_p_first_better``; ``error`` says why a model could not be compared (another test
    set, no logged forecasts).
    """
    baseline = best_baseline(runs)
    models = runs[(runs["status"] == "FINISHED") & (runs["kind"] == "model")]
    if baseline is None or models.empty:
        return pd.DataFrame()
    reference = _test_predictions(client, baseline["run_id"], scratch)
    rows = []
    for _, model in models.iterrows():
        row = {"name": model["name"], "baseline": baseline["name"], "level": level, "error": ""}
        mine = _test_predictions(client, model["run_id"], scratch)
        if mine is None or reference is None:
            row["error"] = "no logged test forecasts"
        else:
            try:
                results = verification.compare_predictions(mine, reference, names=(model["name"], baseline["name"]),
                                                           n_boot=n_boot, level=level, random_state=random_state)
            except FlareseqError as exc:
                row["error"] = str(exc).split(":")[0] if "same samples" in str(exc) else str(exc)
            else:
                for metric, result in results.items():
                    row.update({f"{metric}_{k}": v for k, v in vars(result).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(tracking_uri: str, experiment: str, first: str, second: str, *, n_boot: int = 2000,
                 level: float = 0.95, random_state: int = 0) -> dict[str, verification.PairedDifference]:
    """The paired bootstrap of TSS, HSS2 and PR-AUC between two runs (ids or names in
    ``experiment``) on their common test set, from their logged test forecasts."""
    import tempfile

    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    frames = []
    with tempfile.TemporaryDirectory(prefix="flareseq-compare-") as tmp:
        for run in (first, second):
            run_id = resolve_run_id(client, run, experiment, tracking_uri)
            frame = _test_predictions(client, run_id, Path(tmp))
            if frame is None:
                raise FlareseqError(f"run {run!r} ({run_id}) logged no predictions/test_predictions.csv to compare.")
            frames.append(frame)
    return verification.compare_predictions(*frames, names=(first, second), n_boot=n_boot, level=level,
                                            random_state=random_state)


def resolve_run_id(client, run: str, experiment: str, tracking_uri: str, *, hint: str = "") -> str:
    """A run id from an id or a run name (the newest finished run of that name); ``hint``
    adds another way out to the error. A missing experiment is reported as such, and an
    unknown name with the closest run names of the experiment."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run).info.run_id
    except MlflowException:  # not a run id: look it up by name
        pass
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise _missing_experiment(client, experiment, tracking_uri,
                                  f"(looking for the run {run!r}; a run id needs no experiment)")
    escaped = run.replace("'", "\\'")
    runs = client.search_runs([found.experiment_id], max_results=1, order_by=["start_time DESC"],
                              filter_string=f"attributes.run_name = '{escaped}' and attributes.status = 'FINISHED'")
    if runs:
        return runs[0].info.run_id
    names = {r.info.run_name: r.info.status for r in client.search_runs([found.experiment_id], max_results=5000)}
    if run in names:
        why = f"the run {run!r} in experiment {experiment!r} of {tracking_uri} is {names[run]}, not FINISHED"
    else:
        why = f"no finished run with id or name {run!r} in experiment {experiment!r} of {tracking_uri}"
    close = difflib.get_close_matches(run, [n for n, status in names.items() if status == "FINISHED"], n=3)
    suggestion = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise FlareseqError(
        f"{why}.{suggestion} List the runs with `flareseq report --experiment {experiment}` or `flareseq ui`"
        f"{', ' + hint if hint else ''}."
    )


def require_experiment(tracking_uri: str, experiment: str) -> None:
    """Raise the error of a missing ``experiment`` (naming the closest existing ones)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        raise _missing_experiment(client, experiment, tracking_uri)


def _missing_experiment(client, experiment: str, tracking_uri: str, context: str = "") -> FlareseqError:
    names = [e.name for e in client.search_experiments()]
    close = difflib.get_close_matches(experiment, names, n=3)
    suggestion = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = f" Its experiments: {', '.join(sorted(names))}." if names else " It holds no experiment."
    return FlareseqError(f"no experiment {experiment!r} in the tracking store {tracking_uri}"
                         f"{' ' + context if context else ''}.{suggestion}{listing} Choose one with --experiment.")


def _first_fold_run(client, run_id: str) -> str | None:
    """The run id of fold 1 of a rotation's parent run, None for any other run."""
    run = client.get_run(run_id)
    if run.data.tags.get("flareseq.role") != "rotation":
        return None
    children = client.search_runs([run.info.experiment_id], max_results=1,
                                  filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.`flareseq.fold` = '1'")
    return children[0].info.run_id if children else None


def _test_predictions(client, run_id: str, scratch: Path) -> pd.DataFrame | None:
    local = _download(client, run_id, "predictions/test_predictions.csv", scratch)
    # Ids and regions are names, not numbers ("TARP:4780"; Kaggle ids must not lose zeros).
    return None if local is None else pd.read_csv(local, dtype={"id": str, "region": "string"})


def _download(client, run_id: str, artifact: str, scratch: Path) -> Path | None:
    from mlflow.exceptions import MlflowException

    try:
        target = scratch / run_id
        target.mkdir(parents=True, exist_ok=True)
        return Path(client.download_artifacts(run_id, artifact, str(target)))
    except (OSError, MlflowException):  # an artifact a run did not log (a baseline's history)
        return None
