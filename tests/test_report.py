"""Tests of the report: tables, selection on validation, warnings, escaping, self-contained HTML."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from flareseq.reporting import report
from flareseq.reporting.report import build_report, runs_table_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(name, architecture="basic_lstm", kind="model", val_tss=0.5, test_tss=0.5, **extra):
    row = {"run_id": f"id-{name}", "name": name, "architecture": architecture, "kind": kind, "status": "FINISHED",
           "config": "steps 100, epochs 10, cw 1:5", "val_tss": val_tss, "test_tss": test_tss,
           "threshold": 0.5, "threshold_metric": "", "calibrated": True, "split_leaky": False,
           "n_train": 1000, "n_val": 300, "n_test": 200, "pcc": 0.738, "pcc_125": 0.9225}
    for metric in report.METRICS:
        row.setdefault(f"test_{metric}", 0.25)
    row.update(extra)
    return row


@pytest.fixture
def runs():
    return pd.DataFrame([
        # "lucky" is best on test but not on validation; "steady" must be chosen.
        run("steady", val_tss=0.70, test_tss=0.55, test_accuracy=0.80, test_recall=0.6,
            threshold=0.31, threshold_metric="tss"),
        run("lucky", val_tss=0.60, test_tss=0.90, test_accuracy=0.95),
        run("stacked-a", architecture="stacked_lstm", val_tss=0.40, test_tss=0.45, test_accuracy=0.70),
        run("logreg", architecture="logistic", kind="baseline", val_tss=0.65, test_tss=0.62),
        {"run_id": "id-tied", "name": "tied-broken", "architecture": "tied_lstm", "kind": "model",
         "status": "FAILED", "config": "epochs 30"},
    ])


@pytest.fixture
def figures(tmp_path):
    from flareseq.reporting import plots

    paths = []
    for i, counts in enumerate([(10, 2), (5, 5)]):
        ax = plots.plot_class_counts({"train": counts})
        paths.append((plots.save_figure(ax, tmp_path / "figures" / f"fig{i}.png"), f"Figure {i}"))
    return paths


def table_rows(markdown: str) -> list[list[str]]:
    """Rows (below the header) of the first Markdown table, split on unescaped pipes."""
    lines = markdown.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first + 2:]:  # past the header and the |---| rule
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def section(text: str, heading: str) -> str:
    return text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_main_table_has_one_row_per_run_with_marks(runs):
    markdown = runs_table_markdown(runs)
    rows = table_rows(markdown)
    assert len(rows) == len(runs)
    header = markdown.splitlines()[0]
    for column in ("test TSS", "HSS2", "BSS", "precision", "recall", "F1", "accuracy", "ROC-AUC", "PR-AUC",
                   "Brier", "val TSS", "threshold"):
        assert f"| {column} |" in header
    by_name = {r[0].strip("*"): r for r in rows}
    assert by_name["steady"][3] == "0.31 (val TSS)"
    assert by_name["lucky"][3] == "0.50 (fixed)"
    assert rows[3][0] == "*logreg*" and rows[3][2] == "*baseline*"
    failed = rows[4]
    assert failed[0] == "tied-broken (FAILED)"
    assert set(failed[3:]) == {"–"}


def test_missing_columns_and_nan_render_as_dash():
    markdown = runs_table_markdown(pd.DataFrame({"name": ["a", "b"], "test_tss": [0.4, np.nan]}))
    rows = table_rows(markdown)
    assert len(rows) == 2
    assert rows[0][4] == "0.400"
    assert rows[1][4] == "–" and rows[1][-1] == "–"


def test_best_is_chosen_on_validation_not_test(runs, tmp_path):
    paths = build_report(runs, out_dir=tmp_path, meta={})
    text = paths.markdown.read_text(encoding="utf-8")
    summary = section(text, "Summary")
    assert "Best model by validation TSS: steady (basic_lstm), validation TSS 0.700, test TSS 0.550" in summary
    assert "Best baseline by validation TSS: logreg" in summary
    assert "does not beat it on test TSS (-0.070)" in summary
    best = {r[0].strip("*"): r[1].strip("*") for r in table_rows(section(text, "Best run per architecture"))}
    assert best == {"basic_lstm": "steady", "stacked_lstm": "stacked-a", "logistic": "logreg"}


def test_html_is_self_contained_with_embedded_figures(runs, figures, tmp_path):
    paths = build_report(runs, figures=figures, meta={"experiment": "study", "data source": "https://example.org"},
                         out_dir=tmp_path / "out")
    page = paths.html.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(figures)
    assert all(base64.b64decode(data)[:8] == PNG_SIGNATURE for data in images)
    # Nothing is fetched: every src is a data URI, no stylesheet links, scripts or hrefs.
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    assert "<link" not in page and "<script" not in page and "href=" not in page and "url(" not in page
    assert "<figcaption>Figure 1</figcaption>" in page
    assert '<tr class="baseline">' in page and '<tr class="failed">' in page


def test_markdown_links_figures_relatively(runs, figures, tmp_path):
    paths = build_report(runs, figures=dict(figures), out_dir=tmp_path)
    text = paths.markdown.read_text(encoding="utf-8")
    assert "![Figure 0](figures/fig0.png)" in text
    assert "![Figure 1](figures/fig1.png)" in text
    assert str(tmp_path) not in text


def test_missing_figure_is_reported_not_fatal(runs, tmp_path):
    paths = build_report(runs, figures=[(tmp_path / "nope.png", "gone")], out_dir=tmp_path)
    assert "Figure not found" in paths.html.read_text(encoding="utf-8")


@pytest.mark.parametrize(("flags", "expected"), [
    ({"calibrated": False}, True),  # weighting unknown: warn
    ({"calibrated": "False", "class_weighted": "True"}, True),  # strings, as MLflow returns tags
    ({"calibrated": False, "class_weighted": False}, False),
    ({"calibrated": True, "class_weighted": True}, False),
])
def test_uncalibrated_class_weighted_probabilities_are_warned(runs, tmp_path, flags, expected):
    for key, value in flags.items():
        runs[key] = value
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    notes = section(text, "Notes")
    assert (report.CALIBRATION_WARNING in notes) is expected
    assert ("warning(s) below" in section(text, "Summary")) is expected


def test_leaky_split_is_warned_and_threshold_note_always_present(runs, tmp_path):
    clean = section(build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8"), "Notes")
    assert "leaky split" not in clean
    assert "chosen on validation data only" in clean
    runs.loc[1, "split_leaky"] = True
    page = build_report(runs, out_dir=tmp_path).html.read_text(encoding="utf-8")
    assert '<p class="warning">Warning: leaky split in 1 run(s) (lucky)' in page


def test_study_comparison_and_pcc_counts(runs, tmp_path):
    runs["pcc"] = 73.8  # a percentage is read as one
    runs = runs.drop(columns="pcc_125")  # and 1.25 x PCC follows from PCC
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    study = section(text, "Compared with the study")
    rows = {r[0]: r for r in table_rows(study)}
    assert rows["accuracy"][1] == "0.75–0.89" and rows["recall"][1] == "0.55–0.96"
    assert rows["PCC (test)"][1:] == ["73.80 %", "73.80 %", "73.80 %"]
    assert rows["1.25 × PCC (test)"][1] == "92.25 %" and rows["1.25 × PCC (test)"][3] == "92.25 %"
    assert rows["accuracy"][2] == "0.700–0.950" and rows["accuracy"][3] == "0.800"
    # Model accuracies 0.80, 0.95, 0.70 against PCC 73.8 %: two above it, one above 92.25 %.
    assert "above PCC in 2 of 3 model runs" in study and "in 1 of 3" in study


def test_failed_runs_listed_with_status(runs, tmp_path):
    failed = table_rows(section(build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8"),
                                "Failed runs"))
    assert failed == [["tied-broken", "tied_lstm", "FAILED", "epochs 30"]]


def test_names_are_escaped_in_html_and_markdown(runs, tmp_path):
    runs.loc[0, "name"] = "<script>alert('x')</script> | a*b"
    paths = build_report(runs, out_dir=tmp_path, meta={"title": "R&D <report>"})
    page = paths.html.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert('x')&lt;/script&gt; | a*b" in page
    assert "<title>R&amp;D &lt;report&gt;</title>" in page
    rows = table_rows(runs_table_markdown(runs))
    assert all(len(r) == 15 for r in rows)  # the pipe in the name did not add a column
    assert rows[0][0] == r"\<script>alert('x')\</script> \| a\*b"


def test_empty_runs_still_produce_a_report(tmp_path):
    paths = build_report(pd.DataFrame(), out_dir=tmp_path / "new", meta={"experiment": "none"})
    text = paths.markdown.read_text(encoding="utf-8")
    assert "0 runs" in text and "there is no best model" in text
    assert paths.html.is_file()
    assert paths == report.ReportPaths(tmp_path / "new" / "report.md", tmp_path / "new" / "report.html")


# --------------------------------------------------------------------------- verification sections

def test_inflated_uncalibrated_probabilities_are_marked_where_they_are_shown(runs, tmp_path):
    runs["class_weighted"] = [True, False, True, "True", None]
    runs["calibrated"] = [False, False, True, "False", None]
    runs["reweighting"] = ["class weights 0: 1, 1: 5", "", "", "balanced class weights", ""]
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    rows = {r[0].strip("*"): r for r in table_rows(section(text, "Runs"))}
    bss, brier = 6, 13  # columns of BSS and Brier
    assert rows["steady"][bss].endswith(report.INFLATED_MARK) and rows["steady"][brier].endswith(report.INFLATED_MARK)
    assert report.INFLATED_MARK not in rows["lucky"][bss] + rows["stacked-a"][bss]  # unweighted, or calibrated
    assert rows["logreg"][bss].strip("*").endswith(report.INFLATED_MARK)
    notes = section(text, "Notes")
    assert "2 run(s) (steady: class weights 0: 1, 1: 5, logreg: balanced class weights)" in notes
    assert "training.calibration=platt" in section(text, "Calibration")


def test_rotation_table_shows_mean_sd_and_every_fold(runs, tmp_path):
    runs["n_folds"] = [3, None, None, 3, None]
    runs.loc[0, ["test_tss", "test_tss_sd", "test_tss_fold1", "test_tss_fold2", "test_tss_fold3"]] = [
        0.5, 0.1, 0.4, 0.5, 0.6]
    runs.loc[3, ["test_hss2", "test_hss2_sd"]] = [0.3, np.nan]
    rows = {r[0].strip("*"): r for r in table_rows(section(
        build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8"), "Rotation (K-fold)"))}
    assert set(rows) == {"steady", "logreg"}
    assert rows["steady"][2] == "3" and rows["steady"][3] == "0.500 ± 0.100"
    assert rows["steady"][8] == "0.40 / 0.50 / 0.60"
    assert rows["logreg"][4].strip("*") == "0.300"  # no spread known: the mean alone


def test_interval_table_uses_pooled_forecasts_for_rotations(runs, tmp_path):
    runs["test_tss_ci_low"], runs["test_tss_ci_high"] = 0.4, 0.7
    runs["ci_level"], runs["ci_resampling"] = 0.95, "57 regions"
    runs["n_folds"] = [None, 3, None, None, None]
    runs.loc[1, ["pooled_test_tss", "pooled_test_tss_ci_low", "pooled_test_tss_ci_high"]] = [0.6, 0.5, 0.66]
    text = section(build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8"), "Confidence intervals")
    rows = {r[0].strip("*"): r for r in table_rows(text)}
    assert rows["steady"][2] == "0.550 [0.400, 0.700]"
    assert rows["lucky (pooled folds)"][2] == "0.600 [0.500, 0.660]"
    assert "95 % bootstrap interval" in text and "whole regions (57 per test set)" in text


def test_paired_comparison_marks_what_the_test_set_can_tell(runs, tmp_path):
    comparisons = pd.DataFrame([
        {"name": "steady", "baseline": "logreg", "error": "", **{
            f"tss_{k}": v for k, v in zip(("difference", "low", "high", "p_first_better"), (0.1, 0.02, 0.18, 0.99))},
         **{f"hss2_{k}": v for k, v in zip(("difference", "low", "high", "p_first_better"), (0.05, -0.02, 0.1, 0.8))},
         **{f"pr_auc_{k}": v for k, v in zip(("difference", "low", "high", "p_first_better"), (-0.2, -0.3, -0.1, 0.0))}},
        {"name": "other", "baseline": "logreg", "error": "other and logreg were not tested on the same samples"},
    ])
    text = section(build_report(runs, out_dir=tmp_path, comparisons=comparisons).markdown.read_text(encoding="utf-8"),
                   "Paired comparison with the best baseline")
    rows = {r[0]: r for r in table_rows(text)}
    assert rows["steady"][2:4] == ["+0.100 [+0.020, +0.180]", "0.99"]
    assert rows["steady"][-1] == "TSS better; HSS2 no; PR-AUC worse"
    assert rows["other"][-1].startswith("not compared: other and logreg were not tested on the same samples")
    summary = section(build_report(runs, out_dir=tmp_path, comparisons=comparisons).markdown.read_text(
        encoding="utf-8"), "Summary")
    assert ("ΔTSS +0.100 [+0.020, +0.180], P(model better) 0.99; the difference is distinguishable from 0"
            in summary)


def test_test_optimal_tss_is_a_labelled_reference_never_the_score(runs, tmp_path):
    runs["ref_test_optimal_tss"], runs["ref_test_optimal_threshold"] = 0.987, 0.42
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    assert "0.987" not in section(text, "Runs") and "0.987" not in section(text, "Summary")
    threshold_section = section(text, "Threshold choice")
    header = threshold_section.split("\n|---")[0]
    assert "test TSS (the score)" in header and "test-optimal TSS (reference, not a score)" in header
    rows = {r[0].strip("*"): r for r in table_rows(threshold_section)}
    assert rows["steady"][2:7] == ["0.31 (val TSS)", "0.700", "0.550", "0.987", "0.42"]


def test_calibration_table_shows_brier_and_bss_before_and_after(runs, tmp_path):
    runs["calibrated"] = [True, False, False, False, None]
    runs["class_weighted"] = [True, False, False, False, None]
    runs["calibration"], runs["reweighting"] = ["platt", "", "", "", ""], ["balanced class weights", "", "", "", ""]
    runs.loc[0, ["test_brier_uncalibrated", "test_brier", "test_bss_uncalibrated", "test_bss"]] = [0.3, 0.1, -0.8, 0.2]
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    rows = table_rows(section(text, "Calibration"))
    assert rows == [["steady", "model", "platt", "balanced class weights", "0.300", "0.100", "-0.800", "0.200"]]
    assert report.CALIBRATION_WARNING not in section(text, "Notes")
