"""An index page of experiment reports, each with its headline.

Every report folder written by :func:`flareseq.reporting.report.build_report` holds
``headline.json``: the best model and the best baseline (both chosen by validation TSS),
their test TSS and the paired verdict. :func:`write_index` gathers these into one page (HTML
and Markdown) that says at a glance what each experiment found and links its report. Links
are relative, so the folder can be moved or archived and the page still opens offline.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

from flareseq.reporting.render import MISSING, PAGE_CSS, fmt, md_cell
from flareseq.reporting.report import HEADLINE_FILE

__all__ = ["INDEX_FILE", "read_headline", "write_index", "write_reports_index"]

INDEX_FILE = "index.html"
_VERDICTS = {"better": "model better", "worse": "baseline better", "indistinguishable": "cannot tell apart"}


def read_headline(report_dir: str | PathLike[str]) -> dict | None:
    """The headline a report folder holds, or None (an older report, or not a report)."""
    try:
        return json.loads((Path(report_dir) / HEADLINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _row(name: str, report_html: Path, out_dir: Path, headline: dict | None) -> dict[str, str]:
    link = Path(os.path.relpath(report_html.resolve(), out_dir.resolve())).as_posix()
    markdown = Path(os.path.relpath(report_html.with_suffix(".md").resolve(), out_dir.resolve())).as_posix()
    row = {"experiment": name, "html": link, "markdown": markdown, "model": MISSING, "baseline": MISSING,
           "difference": MISSING, "verdict": MISSING, "runs": MISSING, "text": ""}
    if not headline:
        row["text"] = "no headline (a report written before headlines were kept; write it again with flareseq report)"
        return row
    model, baseline, paired = headline.get("best_model"), headline.get("best_baseline"), headline.get("paired")
    if model:
        row["model"] = (f"{model['name']}: val {fmt(model.get('val_tss'))}, test {fmt(model.get('test_tss'))}")
    if baseline:
        row["baseline"] = (f"{baseline['name']}: val {fmt(baseline.get('val_tss'))}, "
                           f"test {fmt(baseline.get('test_tss'))}")
    if paired:
        row["difference"] = f"{paired['difference']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]"
        if abs(paired.get("level", 0.95) - 0.95) > 1e-9:  # the header says 95 %; another level is said here
            row["difference"] += f" ({100 * paired['level']:g} %)"
        row["verdict"] = _VERDICTS.get(paired["verdict"], paired["verdict"])
    elif headline.get("test_tss_difference") is not None:
        row["difference"] = f"{headline['test_tss_difference']:+.3f} (not paired)"
    unfinished = headline.get("n_unfinished") or 0
    row["runs"] = (f"{headline.get('n_models', 0)} models, {headline.get('n_baselines', 0)} baselines"
                   + (f", {unfinished} not finished" if unfinished else ""))
    row["text"] = headline.get("text", "")
    return row


_HEADER = {"experiment": "experiment", "model": "best model (by val TSS)", "baseline": "best baseline (by val TSS)",
           "difference": "ΔTSS on test [95 % CI]", "verdict": "paired verdict", "runs": "runs"}
_INDEX_CSS = """
td.verdict-better { color: #075; font-weight: bold; } td.verdict-worse { color: #a30; font-weight: bold; }
th, td { text-align: left; vertical-align: top; }
"""


def write_index(out_dir: str | PathLike[str], reports: Mapping[str, str | PathLike[str]], *, title: str = "flareseq",
                meta: Mapping[str, object] | None = None) -> Path:
    """Write ``index.html`` and ``index.md`` in ``out_dir``: one row per experiment with its
    headline (best model and best baseline by validation TSS, their test TSS, the paired
    ΔTSS and its verdict) and links to its report.

    Parameters
    ----------
    out_dir : folder of the index (links to the reports are relative to it).
    reports : experiment name -> its ``report.html`` (``headline.json`` is read beside it).
    title : the page's title.
    meta : shown under the title in order (e.g. the tracking store, how to browse it).

    Returns
    -------
    The path of ``index.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [_row(name, Path(path), out, read_headline(Path(path).parent)) for name, path in reports.items()]
    meta = dict(meta or {})
    intro = ("Each experiment's best model against its best baseline, both chosen on validation TSS and scored on "
             "the test part. ΔTSS = model minus baseline, with the interval of a paired bootstrap on the same test "
             "samples (whole regions resampled when the data has them): 'model better' or 'baseline better' when "
             "the interval excludes 0, 'cannot tell apart' when it does not.")

    cells = []
    for row in rows:
        verdict_class = next((f' class="verdict-{k}"' for k, v in _VERDICTS.items() if v == row["verdict"]), "")
        cells.append(
            "<tr>"
            f'<td><a href="{html.escape(row["html"], quote=True)}">{html.escape(row["experiment"])}</a><br>'
            f'<small>(<a href="{html.escape(row["markdown"], quote=True)}">Markdown</a>)</small></td>'
            + "".join(f"<td>{html.escape(row[k])}</td>" for k in ("model", "baseline", "difference"))
            + f"<td{verdict_class}>{html.escape(row['verdict'])}</td><td>{html.escape(row['runs'])}</td></tr>\n")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADER.values())
    meta_html = ('<dl class="meta">' + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                                              for k, v in meta.items()) + "</dl>") if meta else ""
    headlines = "".join(f"<li><strong>{html.escape(r['experiment'])}</strong>: {html.escape(r['text'])}</li>"
                        for r in rows if r["text"])
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{PAGE_CSS}{_INDEX_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{meta_html}\n"
            f"<p>{html.escape(intro)}</p>\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{''.join(cells)}</tbody>\n"
            f"</table>\n<h2>Headlines</h2>\n<ul>{headlines}</ul>\n</body>\n</html>\n")
    index = out / INDEX_FILE
    index.write_text(page, encoding="utf-8")

    lines = [f"# {title}", ""] + [f"- {md_cell(str(k))}: {md_cell(str(v))}" for k, v in meta.items()]
    lines += ["", intro, "", "| " + " | ".join(_HEADER.values()) + " |", "|" + "---|" * len(_HEADER)]
    for row in rows:
        lines.append("| " + " | ".join([f"[{md_cell(row['experiment'])}]({row['markdown']})",
                                         *(md_cell(row[k]) for k in ("model", "baseline", "difference", "verdict",
                                                                     "runs"))]) + " |")
    lines += ["", "## Headlines", ""] + [f"- **{md_cell(r['experiment'])}**: {md_cell(r['text'])}"
                                          for r in rows if r["text"]]
    index.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return index


def write_reports_index(reports_dir: str | PathLike[str], *, title: str = "flareseq reports",
                        meta: Mapping[str, object] | None = None) -> Path | None:
    """:func:`write_index` in ``reports_dir`` over every report folder in it (those holding
    ``report.html``), in name order; None when there is none."""
    folder = Path(reports_dir)
    reports = {p.parent.name: p for p in sorted(folder.glob("*/report.html"))}
    return write_index(folder, reports, title=title, meta=meta) if reports else None
