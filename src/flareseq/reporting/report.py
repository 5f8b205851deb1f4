"""The experiment report: one Markdown file and one self-contained HTML page.

Both are rendered from the same small document model (paragraphs, warnings and tables), so
they cannot drift apart. The HTML page embeds its figures as base64 data URIs and its style
inline: it is one file that can be mailed or archived and opens offline, with no request to
any server. The Markdown links its figures relatively, for reading in a repository.

The "best" run is always chosen by *validation* TSS and then shown with its test scores:
choosing on the test scores would report the luckiest run, not the best one. For the same
reason every table lists the runs ranked by validation TSS.

Besides the two pages, :func:`build_report` writes ``headline.json``: the best model against
the best baseline (both chosen on validation) with the paired verdict, which
:mod:`flareseq.reporting.index` gathers into an index page of several experiments.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from flareseq.reporting import selection
from flareseq.reporting.render import MISSING
from flareseq.reporting.render import Paragraph as _Paragraph
from flareseq.reporting.render import Table as _Table
from flareseq.reporting.render import figure_list as _figure_list
from flareseq.reporting.render import fmt as _fmt
from flareseq.reporting.render import md_table as _md_table
from flareseq.reporting.render import render_html as _render_html
from flareseq.reporting.render import render_markdown as _render_markdown

__all__ = ["ReportPaths", "build_report", "headline", "runs_table_markdown", "STUDY_REPORTED"]

METRICS = ("tss", "hss2", "precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc", "brier", "bss")
NUMERIC = (*(f"{s}_{m}" for s in ("val", "test") for m in METRICS), "threshold", "n_train", "n_val", "n_test",
           "pcc", "pcc_125")
# The main table: header -> column, one row per run; test scores except the last column.
MAIN_COLUMNS = {
    "test TSS": "test_tss", "HSS2": "test_hss2", "BSS": "test_bss", "precision": "test_precision",
    "recall": "test_recall", "F1": "test_f1", "accuracy": "test_accuracy", "ROC-AUC": "test_roc_auc",
    "PR-AUC": "test_pr_auc", "Brier": "test_brier", "val TSS": "val_tss",
}
# What "Staring into the Sun" reported on its own test sample (SPEC section 2).
STUDY_REPORTED = {"accuracy": (0.75, 0.89), "recall": (0.55, 0.96), "tss": (0.59, 0.67), "pcc": 0.7380,
                  "pcc_125": 0.9225}
CALIBRATION_WARNING = "probabilities from class-weighted training are inflated; not forecasts"
INFLATED_MARK = "†"  # beside the Brier score and BSS of runs whose probabilities are inflated
NBSP = "\u00a0"  # joins a number and its mark, so the mark never wraps onto a line of its own
PARAM_PREFIX = "params."  # columns "params.<section.key>": a run's setting, shown when it varies
HEADLINE_FILE = "headline.json"
_ZIPPED_NAME = re.compile(r"-c(\d+)$")  # run names of a grid's zipped configurations: lstm-c1, lstm-c2, ...
# Scores with bootstrap intervals, and those of the rotation table: header -> metric.
CI_METRICS = {"TSS": "tss", "HSS2": "hss2", "precision": "precision", "recall": "recall", "F1": "f1",
              "accuracy": "accuracy", "ROC-AUC": "roc_auc", "PR-AUC": "pr_auc", "Brier": "brier", "BSS": "bss"}
ROTATION_METRICS = {"TSS": "tss", "HSS2": "hss2", "ROC-AUC": "roc_auc", "PR-AUC": "pr_auc", "BSS": "bss"}
PAIRED_HEADERS = {"tss": "TSS", "hss2": "HSS2", "pr_auc": "PR-AUC"}
_DERIVED = ("_sd", "_ci_low", "_ci_high", "_uncalibrated")
class ReportPaths(NamedTuple):
    """Where :func:`build_report` wrote the report."""

    markdown: Path
    html: Path


# --------------------------------------------------------------------------- input handling

_BOOLEAN_STRINGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _truthy(value) -> bool | None:
    # MLflow hands tags and params back as strings, so "True"/"false" must read as booleans.
    if isinstance(value, str):
        return _BOOLEAN_STRINGS.get(value.strip().lower())
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return bool(value)


def _normalise(runs) -> pd.DataFrame:
    """A copy with every expected column present, numbers as floats and flags as booleans."""
    df = pd.DataFrame(runs).reset_index(drop=True).copy()
    for column in ("run_id", "name", "architecture", "config", "threshold_metric"):
        df[column] = df[column].astype(object).where(df[column].notna(), "") if column in df else ""
    names = zip(df["name"].astype(str), df["run_id"].astype(str))
    df["name"] = [name or run_id or f"run {i + 1}" for i, (name, run_id) in enumerate(names)]
    df["kind"] = df["kind"].fillna("model").astype(str).str.lower() if "kind" in df else "model"
    # A run without a status column is taken as finished: its metrics say whether it produced any.
    df["status"] = df["status"].fillna("FINISHED").astype(str).str.upper() if "status" in df else "FINISHED"
    for column in NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce") if column in df else float("nan")
    for column in df.columns:  # per-fold values, spreads, intervals, references
        if str(column).startswith(("val_", "test_", "pooled_", "ref_", "threshold_fold", "threshold_sd")) \
                or column in ("n_folds", "ci_level"):
            df[column] = pd.to_numeric(df[column], errors="coerce")
    for column in ("n_folds", "ci_level"):
        if column not in df:
            df[column] = float("nan")
    for column in ("reweighting", "calibration", "ci_resampling"):
        df[column] = df[column].fillna("").astype(str) if column in df else ""
    for column in ("pcc", "pcc_125"):
        df[column] = df[column].where(~(df[column] > 1), df[column] / 100)  # a percentage, made a fraction
    df["pcc_125"] = df["pcc_125"].fillna(1.25 * df["pcc"])
    for column in ("calibrated", "split_leaky", "class_weighted", "leaky"):
        df[column] = [_truthy(v) for v in df[column]] if column in df else None
    for column in df.columns:
        if str(column).startswith(PARAM_PREFIX):
            df[column] = df[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                                        else str(v))
    return df


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs by validation TSS, best first (no score last), then the unfinished ones:
    the order every table lists runs in."""
    key = df["val_tss"].where(df["status"] == "FINISHED").fillna(-math.inf)
    unfinished = (df["status"] != "FINISHED").astype(int)
    order = pd.DataFrame({"unfinished": unfinished, "key": -key}).sort_values(["unfinished", "key"], kind="stable")
    return df.loc[order.index].reset_index(drop=True)


def grid_axes(df: pd.DataFrame) -> list[str]:
    """The ``params.*`` columns whose values differ between the model runs: what the grid
    varied (the architecture has its own column)."""
    models = df[df["kind"] == "model"]
    return [c for c in df.columns if str(c).startswith(PARAM_PREFIX) and c != f"{PARAM_PREFIX}model.name"
            and models[c].nunique() > 1]


def _axis_headers(axes: list[str]) -> dict[str, str]:
    """Column -> header: the key's last part (``epochs``), or the whole key where two axes
    would share a last part."""
    keys = {c: c[len(PARAM_PREFIX):] for c in axes}
    last = [k.rsplit(".", 1)[-1] for k in keys.values()]
    return {c: (k.rsplit(".", 1)[-1] if last.count(k.rsplit(".", 1)[-1]) == 1 else k) for c, k in keys.items()}


def _percent(value) -> str:
    return MISSING if value is None or math.isnan(value) else f"{100 * value:.2f} %"


def _range(values: pd.Series, percent: bool = False) -> str:
    values = values.dropna()
    if values.empty:
        return MISSING
    show = _percent if percent else _fmt
    low, high = values.min(), values.max()
    return show(low) if low == high else f"{show(low)}–{show(high)}"


_finished = selection.finished
_best_by_validation = selection.best_by_validation


# --------------------------------------------------------------------------- sections

def threshold_value(value: float) -> str:
    """A probability threshold with the digits that matter: 0.42, or 0.0031 rather than a
    misleading 0.00 for the tiny thresholds of sharply peaked forecasts."""
    if value is None or math.isnan(value):
        return MISSING
    if value == 0 or abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def _threshold_text(row: pd.Series) -> str:
    if math.isnan(row["threshold"]):
        return MISSING
    metric = str(row["threshold_metric"] or "").strip()
    return f"{threshold_value(row['threshold'])}{NBSP}({f'val{NBSP}{metric.upper()}' if metric else 'fixed'})"


def _inflated(df: pd.DataFrame) -> pd.Series:
    """Finished runs whose probabilities are inflated and not calibrated (weighting unknown:
    assumed possible, so it is said rather than hidden)."""
    weighted = df["class_weighted"].map(lambda v: v is not False)
    return df["calibrated"].map(lambda v: v is False) & weighted & (df["status"] == "FINISHED")


def _kind_class(row) -> str:
    """The row's CSS class: baselines are set apart."""
    return "baseline" if row["kind"] == "baseline" else ""


def _names_say_architecture(df: pd.DataFrame) -> bool:
    """True when every run's name contains its architecture (lstm-c1, baseline-climatology):
    an architecture column would repeat the names."""
    return all(str(a) in str(n) for n, a in zip(df["name"], df["architecture"]) if str(a))


def _main_table(df: pd.DataFrame) -> _Table:
    axes = grid_axes(df)
    headers = _axis_headers(axes)
    architecture = not _names_say_architecture(df)
    table = _Table(["run", *(["architecture"] if architecture else []), *headers.values(), "threshold", "val TSS",
                    *(h for h in MAIN_COLUMNS if h != "val TSS")])
    inflated = _inflated(df)
    for index, row in df.iterrows():
        failed = row["status"] != "FINISHED"
        name = f"{row['name']} ({row['status']})" if failed else str(row["name"])
        if row["kind"] == "baseline" and "baseline" not in name:
            name += " (baseline)"
        cells = [name, *([str(row["architecture"]) or MISSING] if architecture else []),
                 *(row[c] or MISSING for c in axes), _threshold_text(row), _fmt(row["val_tss"])]
        for header, column in MAIN_COLUMNS.items():
            if header == "val TSS":
                continue
            text = _fmt(row[column])
            if inflated[index] and column in ("test_brier", "test_bss") and text != MISSING:
                text += f"{NBSP}{INFLATED_MARK}"
            cells.append(text)
        table.add(cells, "failed" if failed else _kind_class(row))
    return table


def _runs_note(df: pd.DataFrame) -> list[_Paragraph]:
    text = ("Runs ranked by validation TSS (the score runs are chosen by), best first; the other scores are test "
            "scores at each run's threshold. Baseline rows are shaded.")
    if _names_say_architecture(df) and df["architecture"].astype(str).str.len().gt(0).any():
        text += " Each run's name includes its architecture."
    axes = grid_axes(df)
    if axes:
        text += (f" {', '.join(_axis_headers(axes).values())}: the settings that differ between the model runs; "
                 "'–' where the grid's setting does not apply (baselines are not trained with the grid's epochs "
                 "or class weights).")
    if df["n_folds"].notna().any():
        text += (" Rotated runs (see Rotation) show the mean over their test folds, each fold with its own "
                 "validation-chosen threshold.")
    if _inflated(df).any():
        text += (f" {INFLATED_MARK}: Brier score and BSS of probabilities that class-weighted training inflated and "
                 "no calibration repaired; they judge inflated numbers, not forecasts.")
    blocks = [_Paragraph(text)]
    zipped = _zipped_configurations(df, axes)
    if zipped:
        blocks.append(_Paragraph(zipped))
    return blocks


def _zipped_configurations(df: pd.DataFrame, axes: list[str]) -> str:
    """What -c1, -c2, ... in the run names stand for: the k-th zipped configuration of the
    grid, described by the settings that are the same in every run of that k."""
    models = df[df["kind"] == "model"]
    number = models["name"].astype(str).str.extract(_ZIPPED_NAME, expand=False)
    if models.empty or number.isna().any() or number.nunique() < 2:
        return ""
    headers = _axis_headers(axes)
    parts = []
    for k in sorted(number.unique(), key=int):
        group = models[number == k]
        shared = [f"{headers[c]} {group[c].iloc[0]}" for c in axes if group[c].nunique() == 1]
        parts.append(f"c{k} = {', '.join(shared) or 'the same settings'}")
    return ("Run names ending in -c1, -c2, ... are the grid's zipped configurations: cK is zipped configuration K "
            f"([grid.zip]: run K takes the K-th value of every zipped setting). {'; '.join(parts)}.")


def _interval(row, estimate: str, low: str, high: str) -> str:
    if math.isnan(row.get(estimate, float("nan"))):
        return MISSING
    if math.isnan(row.get(low, float("nan"))) or math.isnan(row.get(high, float("nan"))):
        return _fmt(row[estimate])
    return f"{row[estimate]:.3f} [{row[low]:.3f}, {row[high]:.3f}]"


def _rotation(df: pd.DataFrame) -> list:
    rotated = _finished(df[df["n_folds"].notna()])
    if rotated.empty:
        return []
    table = _Table(["run", "kind", "folds", *(f"{h} mean ± sd" for h in ROTATION_METRICS), "TSS per fold",
                    "val TSS mean"])
    for _, row in rotated.iterrows():
        cells = [str(row["name"]), row["kind"], str(int(row["n_folds"]))]
        for metric in ROTATION_METRICS.values():
            mean, sd = row.get(f"test_{metric}", float("nan")), row.get(f"test_{metric}_sd", float("nan"))
            cells.append(MISSING if math.isnan(mean) else _fmt(mean) + ("" if math.isnan(sd) else f" ± {sd:.3f}"))
        folds = [row.get(f"test_tss_fold{k}", float("nan")) for k in range(1, int(row["n_folds"]) + 1)]
        cells += [" / ".join(_fmt(v, 2) for v in folds), _fmt(row["val_tss"])]
        table.add(cells, _kind_class(row))
    return [table, _Paragraph(
        "K-fold rotation: each fold in turn is the test set; the model is fitted, calibrated (if configured) and "
        "its threshold chosen on that fold's own training and validation parts (validation carved from the training "
        "regions). Mean ± standard deviation over the test folds; the spread is how much one test fold's score "
        "depends on which regions it holds.")]


def _intervals(df: pd.DataFrame) -> list:
    table = _Table(["run", "kind", *CI_METRICS])
    for _, row in _finished(df).iterrows():
        prefix = "pooled_test_" if not math.isnan(row["n_folds"]) else "test_"
        if not any(f"{prefix}{m}_ci_low" in row.index and not math.isnan(row[f"{prefix}{m}_ci_low"])
                   for m in CI_METRICS.values()):
            continue
        name = str(row["name"]) + (" (pooled folds)" if prefix == "pooled_test_" else "")
        cells = [_interval(row, f"{prefix}{m}", f"{prefix}{m}_ci_low", f"{prefix}{m}_ci_high")
                 for m in CI_METRICS.values()]
        table.add([name, row["kind"], *cells], _kind_class(row))
    if not table.rows:
        return []
    levels = df["ci_level"].dropna().unique()
    level = f"{100 * levels[0]:g} %" if len(levels) == 1 else "the configured"
    counts = sorted({int(m.group(1)) for r in df["ci_resampling"] if (m := re.match(r"(\d+) regions", r))})
    if counts:
        span = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"
        how = f"whole regions ({span} per test set)"
    else:
        how = "samples (the data has no region ids)"
    return [table, _Paragraph(
        f"Test score [{level} bootstrap interval]. Each resample draws {how} with replacement -- overlapping windows "
        "of one region are not independent evidence -- and scores it at the run's fixed, validation-chosen "
        "threshold. Rotated runs: all folds' test forecasts pooled (every sample once, each at its fold's "
        "threshold). Two runs whose intervals overlap may still differ: see the paired comparison.")]


def _paired(comparisons: pd.DataFrame | None, order: list[str] | None = None) -> list:
    if comparisons is None or comparisons.empty:
        return []
    if order:  # the runs' order (by validation TSS); names the report does not list go last
        rank = {name: i for i, name in enumerate(order)}
        comparisons = comparisons.iloc[sorted(range(len(comparisons)),
                                              key=lambda i: rank.get(comparisons["name"].iloc[i], len(rank)))]
    metrics = [m for m in PAIRED_HEADERS if f"{m}_difference" in comparisons.columns]
    header = ["model", "baseline"]
    for m in metrics:
        header += [f"Δ{PAIRED_HEADERS[m]} [95 % CI]", f"P(model better, {PAIRED_HEADERS[m]})"]
    table = _Table([*header, "distinguishable from the baseline"])
    for _, row in comparisons.iterrows():
        cells = [str(row["name"]), str(row["baseline"])]
        if isinstance(row.get("error"), str) and row["error"]:
            table.add(cells + [MISSING] * (2 * len(metrics)) + [f"not compared: {row['error']}"])
            continue
        verdicts = []
        for m in metrics:
            diff, low, high = row[f"{m}_difference"], row[f"{m}_low"], row[f"{m}_high"]
            cells += [MISSING if math.isnan(diff) else f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]",
                      _fmt(row[f"{m}_p_first_better"], 2)]
            if not math.isnan(low):
                verdicts.append(f"{PAIRED_HEADERS[m]} " + ("better" if low > 0 else "worse" if high < 0 else "no"))
        table.add(cells + ["; ".join(verdicts) or MISSING])
    level = comparisons["level"].iloc[0] if "level" in comparisons.columns else 0.95
    return [table, _Paragraph(
        f"Paired bootstrap on the same test samples: each resample draws regions with replacement (samples, when "
        f"there are no region ids) and scores both runs on the same draw at their own thresholds, so the luck of the "
        f"draw is shared. Δ = model minus "
        f"baseline with its {100 * level:g} % interval; 'better'/'worse' when the interval excludes 0, 'no' when "
        f"the test set cannot tell them apart. P(model better) is the share of resamples in which the model scored "
        f"higher. Rotated runs are compared on their pooled out-of-fold forecasts.")]


def _thresholds(df: pd.DataFrame) -> list:
    finished = _finished(df)
    if "ref_test_optimal_tss" not in finished or finished["ref_test_optimal_tss"].isna().all():
        return []
    table = _Table(["run", "threshold", "val TSS", "test TSS (the score)",
                    "test-optimal TSS (reference, not a score)", "test-optimal threshold (reference)"])
    n_degenerate = 0
    for _, row in finished.iterrows():
        optimal_tss = row.get("ref_test_optimal_tss", float("nan"))
        optimal = row.get("ref_test_optimal_threshold", float("nan"))
        if not math.isnan(optimal_tss) and optimal_tss <= 0:
            # No threshold separates the classes at all (climatology's one value): no threshold is optimal.
            optimal_text, n_degenerate = f"{MISSING} (none helps)", n_degenerate + 1
        else:
            optimal_text = threshold_value(optimal)
        table.add([str(row["name"]), _threshold_text(row), _fmt(row["val_tss"]), _fmt(row["test_tss"]),
                   _fmt(optimal_tss), optimal_text], _kind_class(row))
    text = ("The score is the test TSS at the threshold chosen on validation. The test-optimal TSS is what a threshold "
            "chosen on the test data itself would reach: an upper reference that shows how much the validation choice "
            "gives up, never a score (choosing on test data is fitting to it). Thresholds below 0.1 are shown to two "
            "significant digits: models with sharply peaked probabilities (gradient boosting) put their best "
            "threshold at a few thousandths, which two decimals would round to a meaningless 0.00.")
    if n_degenerate:
        text += (" 'none helps': no threshold gives a positive test TSS (a forecast of one value, as climatology's, "
                 "cannot separate the classes), so no threshold is test-optimal.")
    text += " Rotated runs: means over folds. The TSS-versus-threshold figure below draws both curves."
    return [table, _Paragraph(text)]


def _calibration(df: pd.DataFrame) -> list:
    finished = _finished(df)
    calibrated = finished[finished["calibrated"].map(lambda v: v is True)]
    blocks: list = []
    if not calibrated.empty:
        table = _Table(["run", "kind", "calibration", "training reweighting", "test Brier before", "test Brier after",
                        "test BSS before", "test BSS after"])
        for _, row in calibrated.iterrows():
            table.add([str(row["name"]), row["kind"], row["calibration"] or "yes", row["reweighting"] or "none",
                       _fmt(row.get("test_brier_uncalibrated", float("nan"))), _fmt(row["test_brier"]),
                       _fmt(row.get("test_bss_uncalibrated", float("nan"))), _fmt(row["test_bss"])], _kind_class(row))
        blocks += [table, _Paragraph(
            "Calibrators are fitted on the validation part only; 'before' scores the model's own probabilities, "
            "'after' the calibrated ones, on the test part. BSS is against the training event rate.")]
    inflated = finished[_inflated(finished)]
    if not inflated.empty:
        blocks.append(_Paragraph(
            f"{len(inflated)} run(s) are not calibrated although their training reweighted the classes: their "
            "probabilities are not forecasts. Calibrate them on validation with --set training.calibration=platt "
            "(or isotonic).", warning=True))
    return blocks


def _paired_tss(comparisons: pd.DataFrame | None, name: str) -> dict | None:
    """The paired TSS comparison of run ``name`` with the best baseline, or None."""
    if comparisons is None or comparisons.empty or "tss_low" not in comparisons:
        return None
    found = comparisons[comparisons["name"] == name]
    if found.empty or (isinstance(found.iloc[0].get("error"), str) and found.iloc[0]["error"]):
        return None
    row = found.iloc[0]
    if math.isnan(row["tss_low"]):
        return None
    verdict = "better" if row["tss_low"] > 0 else "worse" if row["tss_high"] < 0 else "indistinguishable"
    return {"difference": float(row["tss_difference"]), "low": float(row["tss_low"]), "high": float(row["tss_high"]),
            "p_model_better": float(row["tss_p_first_better"]), "level": float(row.get("level", 0.95)),
            "verdict": verdict}


def _headline(df: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> dict:
    def number(value) -> float | None:
        return None if value is None or math.isnan(value) else float(value)

    honest = df.loc[df["leaky"].map(lambda v: v is not True).astype(bool)]  # never "best" if fed the label; .loc as an empty mask is no column list
    best = _best_by_validation(honest[honest["kind"] == "model"])
    baseline = _best_by_validation(honest[honest["kind"] == "baseline"])
    out: dict = {
        "n_runs": len(df), "n_models": int((df["kind"] != "baseline").sum()),
        "n_baselines": int((df["kind"] == "baseline").sum()), "n_unfinished": int((df["status"] != "FINISHED").sum()),
        "best_model": None if best is None else {
            "name": str(best["name"]), "architecture": str(best["architecture"]), "val_tss": number(best["val_tss"]),
            "test_tss": number(best["test_tss"]), "test_hss2": number(best["test_hss2"])},
        "best_baseline": None if baseline is None else {
            "name": str(baseline["name"]), "val_tss": number(baseline["val_tss"]),
            "test_tss": number(baseline["test_tss"])},
        "test_tss_difference": None, "paired": None,
    }
    if best is None:
        out["text"] = "No finished model run has a validation TSS; there is no best model."
        return out
    text = (f"Best model by validation TSS: {best['name']} (validation {_fmt(best['val_tss'])}), "
            f"test TSS {_fmt(best['test_tss'])}")
    if baseline is None:
        out["text"] = text + "; no baseline to compare with."
        return out
    text += (f"; best baseline: {baseline['name']} (validation {_fmt(baseline['val_tss'])}), "
             f"test TSS {_fmt(baseline['test_tss'])}.")
    if not math.isnan(best["test_tss"]) and not math.isnan(baseline["test_tss"]):
        out["test_tss_difference"] = float(best["test_tss"] - baseline["test_tss"])
    paired = _paired_tss(comparisons, str(best["name"]))
    out["paired"] = paired
    if paired is not None:
        said = {"better": "the model is better", "worse": "the baseline is better",
                "indistinguishable": "the test set cannot tell them apart"}[paired["verdict"]]
        text += (f" Paired bootstrap on the same test samples: ΔTSS {paired['difference']:+.3f} "
                 f"[{paired['low']:+.3f}, {paired['high']:+.3f}], P(model better) {paired['p_model_better']:.2f}: "
                 f"{said}.")
    elif out["test_tss_difference"] is not None:
        text += f" ΔTSS {out['test_tss_difference']:+.3f} (not compared paired: no common logged test forecasts)."
    out["text"] = text
    return out


def headline(runs, comparisons: pd.DataFrame | None = None) -> dict:
    """The experiment in one result: the best model against the best baseline.

    Both are chosen by validation TSS; their test TSS, the difference and, when
    ``comparisons`` (see :func:`build_report`) has the model, the paired bootstrap of the
    difference with its verdict ("better", "worse" or "indistinguishable"). ``text`` says it
    in one paragraph. Numbers that are missing are None, so the dict is valid JSON.
    """
    return _headline(_normalise(runs), comparisons)


def _summary(df: pd.DataFrame, n_warnings: int, comparisons: pd.DataFrame | None = None) -> list[_Paragraph]:
    n_failed = int((df["status"] != "FINISHED").sum())
    n_baselines = int((df["kind"] == "baseline").sum())
    lines = [_Paragraph(f"{len(df)} runs: {len(df) - n_baselines} models, {n_baselines} baselines, "
                        f"{n_failed} not finished.")]
    top = _headline(df, comparisons)
    lines.append(_Paragraph(top["text"], warning=top["best_model"] is None))
    if n_warnings:
        lines.append(_Paragraph(f"{n_warnings} warning(s) below, under Notes, change how these numbers read.",
                                warning=True))
    return lines


def _sample_sizes(df: pd.DataFrame) -> list[_Paragraph]:
    sizes = df[["n_train", "n_val", "n_test"]].dropna().drop_duplicates()
    return [_Paragraph("Samples (train / validation / test): "
                       + "; ".join(" / ".join(f"{int(n):,}" for n in row) for row in sizes.itertuples(index=False))
                       + ".")] if not sizes.empty else []


def _best_per_architecture(df: pd.DataFrame) -> _Table:
    axes = grid_axes(df)
    headers = _axis_headers(axes)
    table = _Table(["architecture", "run", *headers.values(), "val TSS", "test TSS", "test HSS2", "test recall",
                    "test accuracy"])
    for _, row in selection.best_per_architecture(df).iterrows():
        architecture = row["architecture"]
        table.add([str(architecture) or MISSING, str(row["name"]), *(row[c] or MISSING for c in axes),
                   *(_fmt(row[c]) for c in ("val_tss", "test_tss", "test_hss2", "test_recall",
                                            "test_accuracy"))], _kind_class(row))
    return table


def _study_comparison(df: pd.DataFrame) -> list:
    models = _finished(df[df["kind"] == "model"])
    best = _best_by_validation(models)
    study = STUDY_REPORTED

    def of_best(column: str, percent: bool = False) -> str:
        if best is None:
            return MISSING
        return _percent(best[column]) if percent else _fmt(best[column])

    table = _Table(["", "Staring into the Sun (reported, its test sample)", "ours: model runs (test, range)",
                    "ours: best model by val TSS (test)"])
    table.rows = [
        ["accuracy", "0.75–0.89", _range(models["test_accuracy"]), of_best("test_accuracy")],
        ["recall", "0.55–0.96", _range(models["test_recall"]), of_best("test_recall")],
        ["TSS", "~0.59–0.67 (implied by its accuracy and recall)", _range(models["test_tss"]), of_best("test_tss")],
        ["PCC (test)", _percent(study["pcc"]), _range(models["pcc"], True), of_best("pcc", True)],
        ["1.25 × PCC (test)", _percent(study["pcc_125"]), _range(models["pcc_125"], True)
         + (" (above 100 %: no accuracy can clear it)" if (models["pcc_125"] > 1).any() else ""),
         of_best("pcc_125", True)],
    ]
    table.classes = [""] * len(table.rows)
    judged = models.dropna(subset=["test_accuracy", "pcc"])
    n_pcc = int((judged["test_accuracy"] > judged["pcc"]).sum())
    n_125 = int((judged["test_accuracy"] > judged["pcc_125"]).sum())
    verdict = (f"Test accuracy is above PCC in {n_pcc} of {len(judged)} model runs and above 1.25 × PCC, the "
               f"study's bar, in {n_125} of {len(judged)} (each against its own test split's PCC)."
               if len(judged) else "No model run has both a test accuracy and a PCC to compare.")
    return [table, _Paragraph(verdict), _Paragraph(
        "The study's figures come from another sample and protocol (single 12-minute rows, threshold 0.5); read "
        "them as orientation, not a finish line. Accuracy misleads under class imbalance: always forecasting "
        "'no flare' scores about 84 % on the study's data, so TSS is the primary score here.")]


def _leak(df: pd.DataFrame) -> list:
    """Runs fed the label (the study's generator-fed runs, `study-leak.toml`) beside the same
    configuration without it: how much of the score the leak explains."""
    leaky = _finished(df.loc[df["leaky"].map(lambda v: v is True).astype(bool)])
    if leaky.empty:
        return []
    by_name = {str(n): row for n, row in _finished(df).set_index("name", drop=False).iterrows()}
    table = _Table(["run fed the label", "test TSS", "the same run without it", "test TSS", "TSS explained by the leak"])
    for _, row in leaky.iterrows():
        twin = by_name.get(str(row["name"]).replace("-leaky", ""))
        gap = float(row["test_tss"] - twin["test_tss"]) if twin is not None else float("nan")
        table.add([str(row["name"]), _fmt(row["test_tss"]), MISSING if twin is None else str(twin["name"]),
                   MISSING if twin is None else _fmt(twin["test_tss"]), _fmt(gap)], "leaky")
    return [table, _Paragraph(
        "These runs take every row's label as an input, as the study's generator-fed models did (26 inputs, "
        "the label among them): their scores measure the leak, not forecasting. They are never chosen as the best "
        "model.", warning=True)]


def _companion(df: pd.DataFrame, companion: pd.DataFrame | None, label: str) -> list:
    """The best run per architecture here and in a companion experiment (the study as written
    and the study with its data flaws fixed), side by side."""
    if companion is None or companion.empty:
        return []
    other = _normalise(companion)
    here = {r["architecture"]: r for _, r in selection.best_per_architecture(df[df["kind"] == "model"]).iterrows()}
    there = {r["architecture"]: r for _, r in selection.best_per_architecture(
        other[other["kind"] == "model"]).iterrows()}
    table = _Table(["architecture", "as written: run", "test TSS", "test HSS2", "test recall", f"{label}: run",
                    "test TSS", "test HSS2", "test recall"])
    for architecture in [a for a in here if a in there] + [a for a in there if a not in here]:
        a, b = here.get(architecture), there.get(architecture)
        cells = []
        for row in (a, b):
            cells += [MISSING] * 4 if row is None else [str(row["name"]), *(_fmt(row[c]) for c in (
                "test_tss", "test_hss2", "test_recall"))]
        table.add([str(architecture), *cells], "")
    return [table, _Paragraph(
        f"Best run per architecture by validation TSS in this experiment and in '{label}', which fixes the study's "
        "data flaws (one 60-step sequence per sample instead of single rows or windows cut across samples, no "
        "label among the inputs, interpolated missing values) at the same budget. Their test samples differ "
        "(rows against whole samples), so the scores are not paired.")]


def _notes(df: pd.DataFrame) -> list[_Paragraph]:
    notes = []
    uncalibrated = df[_inflated(df)]
    if not uncalibrated.empty:
        names = [f"{row['name']}: {row['reweighting']}" if row["reweighting"] else str(row["name"])
                 for _, row in uncalibrated.iterrows()]
        notes.append(_Paragraph(
            f"Warning: uncalibrated probabilities in {len(uncalibrated)} run(s) ({', '.join(names)}): "
            f"{CALIBRATION_WARNING}. Use them to rank and threshold; their Brier score and BSS (marked "
            f"{INFLATED_MARK}) judge inflated probabilities.", warning=True))
    leaky = df.loc[df["split_leaky"].map(lambda v: v is True).astype(bool)]
    if not leaky.empty:
        notes.append(_Paragraph(
            f"Warning: leaky split in {len(leaky)} run(s) ({', '.join(leaky['name'])}): overlapping windows of the "
            "same region can fall on both sides of the split, so their validation and test scores are optimistic. "
            "Split by partition, fold or region.", warning=True))
    notes.append(_Paragraph(
        "Decision thresholds were chosen on validation data only, by the metric named in the threshold column; "
        "'fixed' marks a threshold set in advance (the study used 0.5). Best runs are chosen by validation TSS; "
        "test scores are reported, never selected on."))
    return notes


def _failed_table(df: pd.DataFrame) -> _Table | None:
    failed = df[df["status"] != "FINISHED"]
    if failed.empty:
        return None
    table = _Table(["run", "architecture", "status", "config"])
    for _, row in failed.iterrows():
        table.add([str(row["name"]), str(row["architecture"]) or MISSING, row["status"],
                   str(row["config"]) or MISSING], "failed")
    return table


def _document(df: pd.DataFrame, comparisons: pd.DataFrame | None = None,
              companion: tuple[str, pd.DataFrame] | None = None) -> list[tuple[str, list]]:
    df = _ranked(df)
    notes = _notes(df)
    failed = _failed_table(df)
    optional = [("Rotation (K-fold)", _rotation(df)), ("Confidence intervals", _intervals(df)),
                ("Paired comparison with the best baseline", _paired(comparisons, df["name"].tolist())),
                ("Threshold choice", _thresholds(df)), ("Calibration", _calibration(df))]
    return [
        ("Summary", _summary(df, sum(n.warning for n in notes), comparisons)),
        ("Runs", [_main_table(df), *_sample_sizes(df), *_runs_note(df)]),
        *([("Failed runs", [failed])] if failed else []),
        *[(heading, blocks) for heading, blocks in optional if blocks],
        ("Best run per architecture (by validation TSS)", [_best_per_architecture(df)]),
        *([(f"The study as written and as '{companion[0]}'", _companion(df, companion[1], companion[0]))]
          if companion is not None and not companion[1].empty else []),
        *([("The label as an input (a leak)", _leak(df))] if _leak(df) else []),
        ("Compared with the study", _study_comparison(df)),
        ("Notes", notes),
    ]


# --------------------------------------------------------------------------- public API

def runs_table_markdown(runs) -> str:
    """The main table (one row per run, every test score and the validation TSS) as Markdown.

    Parameters
    ----------
    runs : DataFrame (or anything ``pandas.DataFrame`` accepts) with one row per run; see
        :func:`build_report` for the columns. Missing columns and NaN show as "–".
    """
    return _md_table(_main_table(_ranked(_normalise(runs))))


def build_report(runs, *, figures: Iterable[tuple[str | PathLike[str], str]] | Mapping = (),
                 meta: Mapping[str, object] | None = None, out_dir: str | PathLike[str],
                 comparisons: pd.DataFrame | None = None,
                 companion: tuple[str, pd.DataFrame] | None = None) -> ReportPaths:
    """Write ``report.md`` and a self-contained ``report.html`` comparing runs and baselines.

    Parameters
    ----------
    runs : one row per run. Columns used (any may be missing; missing values show as "–"):
        ``run_id``, ``name``, ``architecture``, ``kind`` ("model" or "baseline"), ``status``
        ("FINISHED", "FAILED", ...), ``config`` (short description), ``val_<m>`` and
        ``test_<m>`` for m in tss, hss2, precision, recall, f1, accuracy, roc_auc, pr_auc,
        brier, bss; ``threshold``, ``threshold_metric`` ("tss", "hss2", or "" for a fixed
        threshold), ``calibrated`` and ``split_leaky`` (booleans, or their strings as MLflow
        returns them), ``class_weighted`` (optional boolean; when absent every uncalibrated
        run is warned about), ``n_train``, ``n_val``, ``n_test``, ``pcc`` and ``pcc_125``
        (fractions; values above 1 are read as percentages). Optional verification columns:
        ``reweighting`` and ``calibration`` (text), ``test_<m>_ci_low``/``_ci_high``,
        ``ci_level``, ``ci_resampling``; ``test_brier_uncalibrated``, ``test_bss_uncalibrated``;
        ``ref_test_optimal_tss`` and ``ref_test_optimal_threshold``; for rotated runs
        ``n_folds``, ``test_<m>_sd``, ``test_tss_fold<k>`` and ``pooled_test_<m>`` with intervals.
    figures : ``(path, caption)`` pairs, or a mapping path -> caption, of image files (PNG).
        Linked relatively from the Markdown; embedded as base64 in the HTML.
    meta : shown at the top in order, e.g. experiment, data source, data content hash, date;
        the key ``title`` becomes the page title.
    out_dir : folder to write into (created if needed).
    comparisons : paired comparisons with the best baseline, one row per model: ``name``,
        ``baseline``, and for m in tss, hss2, pr_auc ``<m>_difference``, ``<m>_low``,
        ``<m>_high``, ``<m>_p_first_better``; ``error`` (text) when not comparable
        (see :func:`flareseq.experiments.report.compare_with_best_baseline`).
    companion : ``(name, runs)`` of a companion experiment shown beside this one (the report
        of ``study`` sets ``study-fixed`` beside it).

    Returns
    -------
    ReportPaths with the paths of the two files.
    """
    df = _normalise(runs)
    meta = dict(meta or {})
    title = str(meta.pop("title", None) or "flareseq report")
    figure_list = _figure_list(figures)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = _document(df, comparisons, companion)
    paths = ReportPaths(out_dir / "report.md", out_dir / "report.html")
    paths.markdown.write_text(_render_markdown(title, meta, sections, figure_list, out_dir), encoding="utf-8")
    paths.html.write_text(_render_html(title, meta, sections, figure_list), encoding="utf-8")
    summary = {"title": title, **{str(k): _fmt(v) for k, v in meta.items()}, **_headline(df, comparisons)}
    (out_dir / HEADLINE_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return paths
