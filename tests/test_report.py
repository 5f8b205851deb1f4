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


def table_rows(markdown: str, *, header: bool = False) -> list[list[str]]:
    """Rows (below the header, or with it) of the first Markdown table, split on unescaped
    pipes; non-breaking spaces read as spaces."""
    lines = markdown.replace(report.NBSP, " ").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first:first + 1] + lines[first + 2:]:  # the header, then past the |---| rule
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows if header else rows[1:]


def table_dicts(markdown: str) -> list[dict[str, str]]:
    """The first Markdown table's rows as header -> cell (italic marks of baselines removed)."""
    header, *rows = table_rows(markdown, header=True)
    return [{h: c.strip("*") for h, c in zip(header, row)} for row in rows]


def section(text: str, heading: str) -> str:
    return text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_main_table_has_one_row_per_run_ranked_by_validation_with_marks(runs):
    markdown = runs_table_markdown(runs)
    rows = table_dicts(markdown)
    assert len(rows) == len(runs)
    header = markdown.splitlines()[0]
    for column in ("test TSS", "HSS2", "BSS", "precision", "recall", "F1", "accuracy", "ROC-AUC", "PR-AUC",
                   "Brier", "val TSS", "threshold", "architecture"):
        assert f"| {column} |" in header
    # Ranked by validation TSS (0.70, 0.65, 0.60, 0.40), never by test TSS; unfinished runs last.
    assert [r["run"] for r in rows] == ["steady", "logreg (baseline)", "lucky", "stacked-a", "tied-broken (FAILED)"]
    by_name = {r["run"]: r for r in rows}
    assert by_name["steady"]["threshold"] == "0.31 (val TSS)"
    assert by_name["lucky"]["threshold"] == "0.50 (fixed)"
    assert table_rows(markdown)[1][0] == "*logreg (baseline)*"  # baseline rows are italic in Markdown
    failed = rows[4]
    assert {v for k, v in failed.items() if k not in ("run", "architecture")} == {"–"}


def test_missing_columns_and_nan_render_as_dash():
    markdown = runs_table_markdown(pd.DataFrame({"name": ["a", "b"], "test_tss": [0.4, np.nan]}))
    rows = table_dicts(markdown)
    assert len(rows) == 2
    assert rows[0]["test TSS"] == "0.400"
    assert rows[1]["test TSS"] == "–" and rows[1]["Brier"] == "–"


def test_best_is_chosen_on_validation_not_test(runs, tmp_path):
    paths = build_report(runs, out_dir=tmp_path, meta={})
    text = paths.markdown.read_text(encoding="utf-8")
    summary = section(text, "Summary")
    assert "Best model by validation TSS: steady (validation 0.700), test TSS 0.550" in summary
    assert "best baseline: logreg (validation 0.650), test TSS 0.620" in summary
    assert "ΔTSS -0.070 (not compared paired" in summary
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
    header, *rows = table_rows(runs_table_markdown(runs), header=True)
    assert all(len(r) == len(header) for r in rows)  # the pipe in the name did not add a column
    assert rows[0][0] == r"\<script>alert('x')\</script> \| a\*b"


def test_empty_runs_still_produce_a_report(tmp_path):
    paths = build_report(pd.DataFrame(), out_dir=tmp_path / "new", meta={"experiment": "none"})
    text = paths.markdown.read_text(encoding="utf-8")
    assert "0 runs" in text and "there is no best model" in text
    assert paths.html.is_file()
    assert paths == report.ReportPaths(tmp_path / "new" / "report.md", tmp_path / "new" / "report.html")



def test_an_experiment_whose_every_run_failed_still_gets_its_report(tmp_path):
    # MLflow has no val_tss column when no run logged one (here: the data file was missing)
    failed = pd.DataFrame({"run_id": ["a", "b"], "name": ["wide-deep-lstm", "baseline-climatology"],
                           "architecture": ["wide-deep-lstm", "climatology"], "kind": ["model", "baseline"],
                           "status": ["FAILED", "FAILED"], "error": ["ConfigError: no file matches", "same"]})
    paths = build_report(failed, out_dir=tmp_path / "failed", meta={"experiment": "smarp"})
    text = paths.markdown.read_text(encoding="utf-8")
    assert "there is no best model" in text and "| wide-deep-lstm (FAILED) |" in text and "## Failed runs" in text

# --------------------------------------------------------------------------- verification sections

def test_inflated_uncalibrated_probabilities_are_marked_where_they_are_shown(runs, tmp_path):
    runs["class_weighted"] = [True, False, True, "True", None]
    runs["calibrated"] = [False, False, True, "False", None]
    runs["reweighting"] = ["class weights 0: 1, 1: 5", "", "", "balanced class weights", ""]
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    rows = {r["run"]: r for r in table_dicts(section(text, "Runs"))}
    assert rows["steady"]["BSS"].endswith(report.INFLATED_MARK) and rows["steady"]["Brier"].endswith(report.INFLATED_MARK)
    assert report.INFLATED_MARK not in rows["lucky"]["BSS"] + rows["stacked-a"]["BSS"]  # unweighted, or calibrated
    assert rows["logreg (baseline)"]["BSS"].endswith(report.INFLATED_MARK)
    # The mark is joined to its number by a non-breaking space: it never wraps onto a line of its own.
    assert f"0.250{report.NBSP}{report.INFLATED_MARK}" in text
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
    assert "ΔTSS +0.100 [+0.020, +0.180], P(model better) 0.99: the model is better" in summary


def test_test_optimal_tss_is_a_labelled_reference_never_the_score(runs, tmp_path):
    runs["ref_test_optimal_tss"], runs["ref_test_optimal_threshold"] = 0.987, 0.42
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    assert "0.987" not in section(text, "Runs") and "0.987" not in section(text, "Summary")
    threshold_section = section(text, "Threshold choice")
    header = threshold_section.split("\n|---")[0]
    assert "test TSS (the score)" in header and "test-optimal TSS (reference, not a score)" in header
    rows = {r["run"]: r for r in table_dicts(threshold_section)}
    assert list(rows["steady"].values())[1:] == ["0.31 (val TSS)", "0.700", "0.550", "0.987", "0.42"]


def test_calibration_table_shows_brier_and_bss_before_and_after(runs, tmp_path):
    runs["calibrated"] = [True, False, False, False, None]
    runs["class_weighted"] = [True, False, False, False, None]
    runs["calibration"], runs["reweighting"] = ["platt", "", "", "", ""], ["balanced class weights", "", "", "", ""]
    runs.loc[0, ["test_brier_uncalibrated", "test_brier", "test_bss_uncalibrated", "test_bss"]] = [0.3, 0.1, -0.8, 0.2]
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    rows = table_rows(section(text, "Calibration"))
    assert rows == [["steady", "model", "platt", "balanced class weights", "0.300", "0.100", "-0.800", "0.200"]]
    assert report.CALIBRATION_WARNING not in section(text, "Notes")


# --------------------------------------------------------------------------- grid settings, thresholds, headline

def study_like_runs() -> pd.DataFrame:
    """Two architectures x two zipped configurations (they differ in class weights and epochs),
    and a baseline that inherited the grid's settings but has no use for them (blanked)."""
    rows = []
    for architecture, scores in (("lstm", (0.30, 0.50)), ("tied-lstm", (0.40, 0.20))):
        for k, (weights, epochs, val) in enumerate(((("{0: 1, 1: 5}", "10", scores[0])),
                                                    ("{0: 1, 1: 1}", "20", scores[1])), start=1):
            rows.append(run(f"{architecture}-c{k}", architecture=architecture, val_tss=val,
                            **{"params.training.class_weight": weights, "params.training.epochs": epochs,
                               "params.training.batch_size": "128", "params.prep.missing": "drop"}))
    rows.append(run("baseline-gboost", architecture="gboost", kind="baseline", val_tss=0.45,
                    **{"params.training.class_weight": "", "params.training.epochs": "",
                       "params.training.batch_size": "", "params.prep.missing": "drop"}))
    return pd.DataFrame(rows)


def test_settings_that_vary_become_columns_and_baselines_show_none_of_them():
    markdown = runs_table_markdown(study_like_runs())
    header = table_rows(markdown, header=True)[0]
    assert "class_weight" in header and "epochs" in header
    assert "batch_size" not in header and "missing" not in header  # the same in every model run
    assert "architecture" not in header  # every name already says it
    rows = {r["run"]: r for r in table_dicts(markdown)}
    assert rows["lstm-c1"]["class_weight"] == "{0: 1, 1: 5}" and rows["lstm-c2"]["epochs"] == "20"
    assert rows["baseline-gboost"]["class_weight"] == "–" and rows["baseline-gboost"]["epochs"] == "–"
    assert [r["run"] for r in table_dicts(markdown)] == ["lstm-c2", "baseline-gboost", "tied-lstm-c1", "lstm-c1",
                                                         "tied-lstm-c2"]


def test_zipped_configurations_are_explained(tmp_path):
    text = build_report(study_like_runs(), out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    runs_section = section(text, "Runs").replace(report.NBSP, " ")
    assert "cK is zipped configuration K" in runs_section
    assert "c1 = class_weight {0: 1, 1: 5}, epochs 10; c2 = class_weight {0: 1, 1: 1}, epochs 20." in runs_section
    best = {r["architecture"]: r for r in table_dicts(section(text, "Best run per architecture"))}
    assert best["tied-lstm"]["class_weight"] == "{0: 1, 1: 5}"  # the settings, not a summary that omits them


def test_no_zipped_explanation_without_zipped_names(runs, tmp_path):
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    assert "zipped configuration" not in text


@pytest.mark.parametrize(("value", "text"), [(0.42, "0.42"), (0.5, "0.50"), (0.0031, "0.0031"), (0.054, "0.054"),
                                             (0.0, "0.00"), (np.nan, "–")])
def test_thresholds_keep_the_digits_that_matter(value, text):
    assert report.threshold_value(value) == text


def test_a_test_optimal_threshold_is_omitted_where_no_threshold_helps(runs, tmp_path):
    runs["ref_test_optimal_tss"] = [0.8, 0.7, 0.6, 0.0, np.nan]
    runs["ref_test_optimal_threshold"] = [0.004, 0.5, 0.6, 0.16, np.nan]
    text = build_report(runs, out_dir=tmp_path).markdown.read_text(encoding="utf-8")
    rows = {r["run"]: r for r in table_dicts(section(text, "Threshold choice"))}
    assert rows["steady"]["test-optimal threshold (reference)"] == "0.004"  # not a misleading 0.00
    assert rows["logreg"]["test-optimal threshold (reference)"] == "– (none helps)"
    assert "no threshold gives a positive test TSS" in section(text, "Threshold choice")


def test_headline_json_names_best_model_baseline_and_verdict(runs, tmp_path):
    comparisons = pd.DataFrame([{"name": "steady", "baseline": "logreg", "error": "", "level": 0.95,
                                 "tss_difference": -0.07, "tss_low": -0.2, "tss_high": 0.05,
                                 "tss_p_first_better": 0.2}])
    paths = build_report(runs, out_dir=tmp_path, meta={"experiment": "study"}, comparisons=comparisons)
    import json

    top = json.loads((paths.html.parent / report.HEADLINE_FILE).read_text(encoding="utf-8"))
    assert top["experiment"] == "study"
    assert top["best_model"]["name"] == "steady" and top["best_baseline"]["name"] == "logreg"
    assert top["paired"]["verdict"] == "indistinguishable" and top["paired"]["low"] == -0.2
    assert top["test_tss_difference"] == pytest.approx(-0.07)
    assert "cannot tell them apart" in top["text"]
    assert report.headline(runs)["paired"] is None  # without comparisons: no verdict invented


def test_index_page_gathers_the_headlines_with_relative_links(runs, tmp_path):
    from flareseq.reporting.index import write_reports_index

    comparisons = pd.DataFrame([{"name": "steady", "baseline": "logreg", "error": "", "level": 0.95,
                                 "tss_difference": 0.1, "tss_low": 0.02, "tss_high": 0.18,
                                 "tss_p_first_better": 0.99}])
    build_report(runs, out_dir=tmp_path / "reports" / "study", meta={"experiment": "study"}, comparisons=comparisons)
    build_report(runs.iloc[:0], out_dir=tmp_path / "reports" / "empty", meta={"experiment": "empty"})
    index = write_reports_index(tmp_path / "reports")
    page = index.read_text(encoding="utf-8")
    assert 'href="study/report.html"' in page and 'href="empty/report.html"' in page
    assert "steady: val 0.700, test 0.550" in page and "logreg: val 0.650, test 0.620" in page
    assert "+0.100 [+0.020, +0.180]" in page and 'class="verdict-better">model better' in page
    assert "there is no best model" in page
    assert (tmp_path / "reports" / "index.md").read_text(encoding="utf-8").count("](") == 2


def test_png_display_width_is_the_figures_physical_size(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from flareseq.reporting.plots import save_figure
    from flareseq.reporting.render import png_display_width

    fig = Figure(figsize=(5.0, 2.0))
    fig.add_subplot().plot([0, 1])
    path = save_figure(fig, tmp_path / "f.png", dpi=150)
    assert png_display_width(path.read_bytes()) == 480  # 5 in x 96 CSS px per inch
    assert png_display_width(b"not a png") is None
    page = build_report(pd.DataFrame(), figures=[(path, "five inches")], out_dir=tmp_path).html.read_text()
    assert 'width="480"' in page
