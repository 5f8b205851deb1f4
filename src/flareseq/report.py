"""The experiment report: one Markdown file and one self-contained HTML page.

Both are rendered from the same small document model (paragraphs, warnings and tables), so
they cannot drift apart. The HTML page embeds its figures as base64 data URIs and its style
inline: it is one file that can be mailed or archived and opens offline, with no request to
any server. The Markdown links its figures relatively, for reading in a repository.

The "best" run is always chosen by *validation* TSS and then shown with its test scores:
choosing on the test scores would report the luckiest run, not the best one.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import pandas as pd

__all__ = ["ReportPaths", "build_report", "runs_table_markdown", "STUDY_REPORTED"]

MISSING = "–"
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
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


class ReportPaths(NamedTuple):
    """Where :func:`build_report` wrote the report."""

    markdown: Path
    html: Path


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # per row: "", "baseline" or "failed"


@dataclass
class _Paragraph:
    text: str
    warning: bool = False


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
    for column in ("pcc", "pcc_125"):
        df[column] = df[column].where(~(df[column] > 1), df[column] / 100)  # a percentage, made a fraction
    df["pcc_125"] = df["pcc_125"].fillna(1.25 * df["pcc"])
    for column in ("calibrated", "split_leaky", "class_weighted"):
        df[column] = [_truthy(v) for v in df[column]] if column in df else None
    return df


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _percent(value) -> str:
    return MISSING if value is None or math.isnan(value) else f"{100 * value:.2f} %"


def _range(values: pd.Series, percent: bool = False) -> str:
    values = values.dropna()
    if values.empty:
        return MISSING
    show = _percent if percent else _fmt
    low, high = values.min(), values.max()
    return show(low) if low == high else f"{show(low)}–{show(high)}"


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "FINISHED"]


def _best_by_validation(df: pd.DataFrame) -> pd.Series | None:
    candidates = _finished(df).dropna(subset=["val_tss"])
    return None if candidates.empty else candidates.loc[candidates["val_tss"].idxmax()]


# --------------------------------------------------------------------------- sections

def _threshold_text(row: pd.Series) -> str:
    if math.isnan(row["threshold"]):
        return MISSING
    metric = str(row["threshold_metric"] or "").strip()
    return f"{row['threshold']:.2f} ({f'val {metric.upper()}' if metric else 'fixed'})"


def _main_table(df: pd.DataFrame) -> _Table:
    table = _Table(["run", "architecture", "kind", "threshold", *MAIN_COLUMNS])
    for _, row in df.iterrows():
        failed = row["status"] != "FINISHED"
        name = f"{row['name']} ({row['status']})" if failed else str(row["name"])
        cells = [name, str(row["architecture"]) or MISSING, row["kind"], _threshold_text(row)]
        table.rows.append(cells + [_fmt(row[column]) for column in MAIN_COLUMNS.values()])
        table.classes.append("failed" if failed else "baseline" if row["kind"] == "baseline" else "")
    return table


def _summary(df: pd.DataFrame, n_warnings: int) -> list[_Paragraph]:
    n_failed = int((df["status"] != "FINISHED").sum())
    n_baselines = int((df["kind"] == "baseline").sum())
    lines = [_Paragraph(f"{len(df)} runs: {len(df) - n_baselines} models, {n_baselines} baselines, "
                        f"{n_failed} not finished.")]
    best = _best_by_validation(df[df["kind"] == "model"])
    baseline = _best_by_validation(df[df["kind"] == "baseline"])
    if best is None:
        lines.append(_Paragraph("No finished model run has a validation TSS; there is no best model.", warning=True))
    else:
        lines.append(_Paragraph(
            f"Best model by validation TSS: {best['name']} ({best['architecture'] or MISSING}), validation TSS "
            f"{_fmt(best['val_tss'])}, test TSS {_fmt(best['test_tss'])}, test HSS2 {_fmt(best['test_hss2'])}."))
    if baseline is not None:
        text = (f"Best baseline by validation TSS: {baseline['name']}, validation TSS {_fmt(baseline['val_tss'])}, "
                f"test TSS {_fmt(baseline['test_tss'])}.")
        if best is not None and not math.isnan(best["test_tss"]) and not math.isnan(baseline["test_tss"]):
            beats = "beats" if best["test_tss"] > baseline["test_tss"] else "does not beat"
            text += f" The best model {beats} it on test TSS ({best['test_tss'] - baseline['test_tss']:+.3f})."
        lines.append(_Paragraph(text))
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
    table = _Table(["architecture", "run", "kind", "config", "val TSS", "test TSS", "test HSS2", "test recall",
                    "test accuracy"])
    candidates = _finished(df).dropna(subset=["val_tss"])
    for architecture, group in candidates.groupby("architecture", sort=False):
        row = group.loc[group["val_tss"].idxmax()]
        table.rows.append([str(architecture) or MISSING, str(row["name"]), row["kind"], str(row["config"]) or MISSING,
                           *(_fmt(row[c]) for c in ("val_tss", "test_tss", "test_hss2", "test_recall",
                                                    "test_accuracy"))])
        table.classes.append("baseline" if row["kind"] == "baseline" else "")
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
        ["1.25 × PCC (test)", _percent(study["pcc_125"]), _range(models["pcc_125"], True), of_best("pcc_125", True)],
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


def _notes(df: pd.DataFrame) -> list[_Paragraph]:
    notes = []
    weighted = df["class_weighted"].map(lambda v: v is not False)  # unknown weighting: assume it may be
    uncalibrated = df[(df["calibrated"].map(lambda v: v is False)) & weighted & (df["status"] == "FINISHED")]
    if not uncalibrated.empty:
        notes.append(_Paragraph(
            f"Warning: uncalibrated probabilities in {len(uncalibrated)} run(s) ({', '.join(uncalibrated['name'])}): "
            f"{CALIBRATION_WARNING}. Use them to rank and threshold; their Brier score and BSS judge inflated "
            f"probabilities.", warning=True))
    leaky = df[df["split_leaky"].map(lambda v: v is True)]
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
        table.rows.append([str(row["name"]), str(row["architecture"]) or MISSING, row["status"],
                           str(row["config"]) or MISSING])
        table.classes.append("failed")
    return table


def _document(df: pd.DataFrame) -> list[tuple[str, list]]:
    notes = _notes(df)
    failed = _failed_table(df)
    return [
        ("Summary", _summary(df, sum(n.warning for n in notes))),
        ("Runs", [_main_table(df), *_sample_sizes(df),
                  _Paragraph("Test scores at each run's threshold; baseline rows are marked; val TSS is the "
                             "validation score runs are ranked by.")]),
        *([("Failed runs", [failed])] if failed else []),
        ("Best run per architecture (by validation TSS)", [_best_per_architecture(df)]),
        ("Compared with the study", _study_comparison(df)),
        ("Notes", notes),
    ]


# --------------------------------------------------------------------------- rendering

def _md_cell(text: str) -> str:
    # Escaped so a run name or config cannot break the table or turn into markup or raw HTML.
    for char in "\\|*<":
        text = text.replace(char, "\\" + char)
    return text.replace("\n", " ")


def _md_table(table: _Table) -> str:
    if not table.rows:
        return "_(none)_"
    lines = ["| " + " | ".join(_md_cell(h) for h in table.header) + " |", "|" + "---|" * len(table.header)]
    for cells, css in zip(table.rows, table.classes):
        cells = [_md_cell(c) for c in cells]
        if css == "baseline":  # italic row, so baselines stand apart in plain text too
            cells = [f"*{c}*" if c and c != MISSING else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _text(value: str) -> str:
    """Escape for an HTML text node; attribute values use ``html.escape`` with quotes."""
    return html.escape(value, quote=False)


def _html_table(table: _Table) -> str:
    if not table.rows:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{_text(h)}</th>" for h in table.header)
    rows = []
    for cells, css in zip(table.rows, table.classes):
        opening = f'<tr class="{css}">' if css else "<tr>"
        rows.append(opening + "".join(f"<td>{_text(c)}</td>" for c in cells) + "</tr>\n")
    body = "".join(rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _figure_list(figures) -> list[tuple[Path, str]]:
    items = figures.items() if isinstance(figures, Mapping) else figures
    return [(Path(path), str(caption)) for path, caption in items]


def _render_markdown(title: str, meta: Mapping, sections, figures, out_dir: Path) -> str:
    parts = [f"# {title}", ""]
    parts += [f"- {_md_cell(str(key))}: {_md_cell(_fmt(value))}" for key, value in meta.items()]
    for heading, blocks in sections:
        parts += ["", f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, _Table):
                parts += [_md_table(block), ""]
            else:
                text = _md_cell(block.text)
                parts += [f"> **{text}**" if block.warning else text, ""]
    if figures:
        parts += ["", "## Figures", ""]
        for path, caption in figures:
            link = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
            link = f"<{link}>" if " " in link else link
            parts += [f"![{_md_cell(caption)}]({link})", "", f"*{_md_cell(caption)}*", ""]
    return "\n".join(parts).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #eef; }
tr.baseline { background: #f0f0f0; font-style: italic; }
tr.baseline td:first-child::after { content: " (baseline)"; color: #777; }
tr.failed { color: #a00; }
.warning { background: #fff4e0; border-left: 4px solid #e69500; padding: 0.4em 0.8em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { color: #555; }
"""


def _html_figure(path: Path, caption: str) -> str:
    cap = _text(caption)
    alt = html.escape(caption, quote=True)
    if not path.is_file():
        return f'<p class="warning">Figure not found: {_text(str(path))} ({cap})</p>'
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:{mime};base64,{data}" alt="{alt}"><figcaption>{cap}</figcaption></figure>'


def _render_html(title: str, meta: Mapping, sections, figures) -> str:
    body = [f"<h1>{_text(title)}</h1>"]
    if meta:
        body.append('<dl class="meta">' + "".join(
            f"<dt>{_text(str(k))}</dt><dd>{_text(_fmt(v))}</dd>" for k, v in meta.items()) + "</dl>")
    for heading, blocks in sections:
        body.append(f"<h2>{_text(heading)}</h2>")
        for block in blocks:
            if isinstance(block, _Table):
                body.append(_html_table(block))
            else:
                css = ' class="warning"' if block.warning else ""
                body.append(f"<p{css}>{_text(block.text)}</p>")
    if figures:
        body.append("<h2>Figures</h2>")
        body += [_html_figure(path, caption) for path, caption in figures]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_text(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


# --------------------------------------------------------------------------- public API

def runs_table_markdown(runs) -> str:
    """The main table (one row per run, every test score and the validation TSS) as Markdown.

    Parameters
    ----------
    runs : DataFrame (or anything ``pandas.DataFrame`` accepts) with one row per run; see
        :func:`build_report` for the columns. Missing columns and NaN show as "–".
    """
    return _md_table(_main_table(_normalise(runs)))


def build_report(runs, *, figures: Iterable[tuple[str | PathLike[str], str]] | Mapping = (),
                 meta: Mapping[str, object] | None = None, out_dir: str | PathLike[str]) -> ReportPaths:
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
        (fractions; values above 1 are read as percentages).
    figures : ``(path, caption)`` pairs, or a mapping path -> caption, of image files (PNG).
        Linked relatively from the Markdown; embedded as base64 in the HTML.
    meta : shown at the top in order, e.g. experiment, data source, data content hash, date;
        the key ``title`` becomes the page title.
    out_dir : folder to write into (created if needed).

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
    sections = _document(df)
    paths = ReportPaths(out_dir / "report.md", out_dir / "report.html")
    paths.markdown.write_text(_render_markdown(title, meta, sections, figure_list, out_dir), encoding="utf-8")
    paths.html.write_text(_render_html(title, meta, sections, figure_list), encoding="utf-8")
    return paths
