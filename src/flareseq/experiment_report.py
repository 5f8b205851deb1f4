"""The report of an experiment, built from what its runs logged in MLflow.

Reads the runs (:func:`flareseq.experiments.runs_frame`), fetches the test forecasts and
histories of the best run per architecture (chosen on validation TSS), draws the comparison
figures and renders them with :func:`flareseq.report.build_report`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .experiments import runs_frame
from .report import ReportPaths, build_report


def best_per_architecture(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished run of each architecture with the highest validation TSS."""
    finished = runs[(runs["status"] == "FINISHED")]
    if finished.empty:
        return finished
    key = finished["val_tss"] if "val_tss" in finished else pd.Series(np.nan, index=finished.index)
    ranked = finished.assign(_key=key.fillna(-np.inf)).sort_values("_key", ascending=False)
    return ranked.drop_duplicates("architecture").drop(columns="_key")


def write_experiment_report(tracking_uri: str, experiment: str, out_dir: str | Path) -> ReportPaths:
    import mlflow

    out = Path(out_dir)
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = runs_frame(tracking_uri, experiment)
    best = best_per_architecture(runs)
    figures: list[tuple[Path, str]] = []

    finished = runs[runs["status"] == "FINISHED"]
    if not finished.empty:
        table = finished.rename(columns={"test_tss": "tss", "test_hss2": "hss2", "test_accuracy": "accuracy"})
        pcc = float(finished["pcc"].dropna().iloc[0]) if "pcc" in finished and finished["pcc"].notna().any() else None
        fig_path = figures_dir / "comparison.png"
        ax = plots.plot_run_comparison(table, pcc=pcc, best_per_architecture=len(table) > 12)
        plots.save_figure(ax, fig_path)
        figures.append((fig_path, "Test TSS and HSS2 per run (baselines hatched); accuracy against PCC and 1.25 x PCC"))

    client = mlflow.MlflowClient(tracking_uri)
    roc_ax = rel_ax = None
    for _, row in best.iterrows():
        predictions = _test_predictions(client, row["run_id"], figures_dir / "downloads")
        if predictions is None or predictions["y"].nunique() < 2:
            continue
        roc_ax = plots.plot_roc(predictions["y"], predictions["probability"], ax=roc_ax, label=row["name"])
        rel_ax = plots.plot_reliability(predictions["y"], predictions["probability"], ax=rel_ax, label=row["name"])
    if roc_ax is not None:
        plots.save_figure(roc_ax, figures_dir / "roc.png")
        plots.save_figure(rel_ax, figures_dir / "reliability.png")
        figures.append((figures_dir / "roc.png", "ROC on the test part, best run per architecture"))
        figures.append((figures_dir / "reliability.png",
                        "Reliability on the test part (counts per bin); class-weighted runs are not calibrated"))

    models = best[best["kind"] == "model"] if not best.empty else best
    if not models.empty:
        top = models.sort_values("val_tss", ascending=False).iloc[0]
        for name, caption in (("training_curves.png", f"Training curves of {top['name']} (best on validation TSS)"),
                              ("class_counts.png", "Class counts per split"),
                              ("threshold_curve.png", f"TSS versus threshold of {top['name']}: validation chooses, "
                                                      "test shown for reference only")):
            local = _download(client, top["run_id"], f"plots/{name}", figures_dir / "downloads")
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
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return build_report(runs, figures=figures, meta=meta, out_dir=out)


def _test_predictions(client, run_id: str, scratch: Path) -> pd.DataFrame | None:
    local = _download(client, run_id, "predictions/test_predictions.csv", scratch)
    return None if local is None else pd.read_csv(local)


def _download(client, run_id: str, artifact: str, scratch: Path) -> Path | None:
    from mlflow.exceptions import MlflowException

    try:
        target = scratch / run_id
        target.mkdir(parents=True, exist_ok=True)
        return Path(client.download_artifacts(run_id, artifact, str(target)))
    except (OSError, MlflowException):  # an artifact a run did not log (a baseline's history)
        return None
