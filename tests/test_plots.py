"""Tests of the figures: what each one draws (axes, lines, labels, bars) and the curves behind them."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from flareseq.reporting import plots


@pytest.fixture(scope="module")
def forecasts():
    """Small imbalanced validation and test sets with informative but noisy probabilities."""
    rng = np.random.default_rng(0)

    def draw(n):
        y = (rng.random(n) < 0.2).astype(int)
        p = np.clip(0.2 + 0.5 * (y - 0.2) + rng.normal(0, 0.15, n), 0, 1)
        return y, p

    return draw(400), draw(300)


@pytest.fixture
def runs_table():
    return pd.DataFrame({
        "name": ["basic_1", "basic_2", "stacked_1", "climatology", "logreg"],
        "architecture": ["basic", "basic", "stacked", "climatology", "logreg"],
        "kind": ["model", "model", "model", "baseline", "baseline"],
        "tss": [0.50, 0.90, 0.55, 0.0, 0.70],  # basic_2 is best on test, basic_1 on validation
        "hss2": [0.30, 0.40, np.nan, 0.0, 0.45],
        "accuracy": [0.80, 0.85, 0.90, 0.84, 0.88],
        "val_tss": [0.60, 0.50, 0.40, 0.0, 0.70],
    })


def test_import_does_not_load_matplotlib_or_pyplot():
    # plots imports matplotlib inside functions; pyplot must never be needed.
    import subprocess

    code = "import flareseq.reporting.plots, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_training_curves_four_panels_train_and_validation():
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.6, 0.55, 0.6], "accuracy": [0.7, 0.8, 0.85],
               "recall": [0.2, 0.4, 0.5], "val_recall": [0.3, 0.35, 0.3]}
    fig = plots.plot_training_curves(history, title="basic")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["Loss", "Accuracy", "Recall", "TSS"]
    loss_lines = axes[0].get_lines()
    assert [line.get_label() for line in loss_lines] == ["training", "validation"]
    np.testing.assert_array_equal(loss_lines[1].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(loss_lines[1].get_ydata(), [0.6, 0.55, 0.6])
    assert [line.get_label() for line in axes[1].get_lines()] == ["training"]
    # No TSS recorded: the panel says so instead of being silently blank.
    assert not axes[3].get_lines()
    assert "not recorded" in [t.get_text() for t in axes[3].texts]
    assert axes[3].get_xlabel() == "epoch"
    assert fig.get_suptitle() == "basic"


def test_class_counts_bars_carry_the_numbers():
    ax = plots.plot_class_counts({"train": (19347, 3738), "validation": (900, 100)})
    assert len(ax.patches) == 4
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == [100, 900, 3738, 19347]
    texts = {t.get_text() for t in ax.texts}
    assert {"19,347", "3,738", "900", "100"} <= texts
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].startswith("train") and "16.2 % positive" in ticks[0]
    assert "10.0 % positive" in ticks[1]


def test_roc_points_match_a_hand_computed_curve_with_ties():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.4, 0.8, 0.2, 0.9])
    fpr, tpr, auc = plots.roc_points(y, p)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1, 1])
    # Pairs ranked right: 8 of 9, plus the tie (0.4, 0.4) counted as half.
    assert auc == pytest.approx(8.5 / 9)


def test_roc_overlays_runs_with_auc_and_one_chance_line(forecasts):
    (y, p), (yt, pt) = forecasts
    ax = plots.plot_roc(y, p, label="val")
    plots.plot_roc(yt, pt, ax=ax, label="test")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("chance") == 1
    assert len(labels) == 3
    assert labels[0].startswith("val (AUC = 0.") and labels[2].startswith("test (AUC = 0.")
    # The legend lists the runs, then the reference diagonal.
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [labels[0], labels[2], "chance"]


def test_roc_with_one_class_says_undefined_instead_of_crashing():
    ax = plots.plot_roc(np.zeros(5, int), np.linspace(0, 1, 5), label="m")
    assert "AUC undefined" in ax.get_lines()[0].get_label()


def test_reliability_bins_and_counts_per_point():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.55])
    mean_p, observed, n = plots.reliability_bins(y, p, n_bins=2)
    np.testing.assert_allclose(mean_p, [0.35 / 3, (0.55 + 0.95 + 1.0) / 3])
    np.testing.assert_allclose(observed, [1 / 3, 2 / 3])
    np.testing.assert_array_equal(n, [3, 3])
    ax = plots.plot_reliability(y, p, n_bins=2, label="run")
    plots.plot_reliability(y, p, n_bins=2, ax=ax, label="again", baseline=True)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["run", "perfectly calibrated", "again"]
    assert ax.get_lines()[2].get_linestyle() == "--"  # a baseline is dashed
    np.testing.assert_allclose(ax.get_lines()[1].get_xydata(), [[0, 0], [1, 1]])
    # The counts are a panel of their own below (one line per run), not numbers piled on the points.
    assert len(ax.texts) == 0
    counts = plots.reliability_counts_axes(ax)
    assert counts is not ax and counts.get_yscale() == "log" and len(ax.figure.axes) == 2
    assert [list(line.get_ydata()) for line in counts.get_lines()] == [[3, 3], [3, 3]]


def test_reliability_on_an_axes_of_ones_own_gets_a_counts_panel():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plots.plot_reliability(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.7, 0.2]), ax=ax, n_bins=2)
    assert len(ax.figure.axes) == 2
    assert list(plots.reliability_counts_axes(ax).get_lines()[0].get_ydata()) == [2, 2]


def _outside(legend, ax) -> bool:
    """True when the legend's box does not overlap the Axes' data area (on the drawn figure)."""
    renderer = ax.figure.canvas.get_renderer()
    box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    return box.x0 >= area.x1 or box.x1 <= area.x0 or box.y0 >= area.y1 or box.y1 <= area.y0


def test_legends_sit_outside_the_data(forecasts):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    (y, p), (yt, pt) = forecasts
    for ax in (plots.plot_roc(y, p, label="m"), plots.plot_reliability(y, p, label="m"),
               plots.plot_threshold_curve(y, p, yt, pt, chosen=0.3), plots.plot_class_counts({"train": (9, 1)})):
        FigureCanvasAgg(ax.figure).draw()
        assert _outside(ax.get_legend(), ax), ax.get_title()


def test_figures_fit_the_report_column_and_bar_labels_are_at_least_8_points(runs_table):
    many = pd.concat([runs_table] * 4, ignore_index=True).assign(name=[f"run-{i}" for i in range(20)])
    for table in (runs_table, many):
        ax = plots.plot_run_comparison(table, pcc=0.74)
        assert ax.figure.get_figwidth() <= plots.MAX_WIDTH_INCHES
        sizes = [t.get_fontsize() for a in ax.figure.axes for t in a.texts]
        assert sizes and min(sizes) >= 8


@pytest.mark.parametrize(("y", "p", "match"), [
    ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
    ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
    ([0, 1], [0.1, np.nan], "without NaN"),
    ([0, 1, 1], [0.1, 0.2], "same length"),
    ([], [], "empty"),
])
def test_bad_forecasts_are_refused_with_the_reason(y, p, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_reliability(np.asarray(y), np.asarray(p))


def test_threshold_curve_marks_the_validation_choice_and_labels_test_as_reference(forecasts):
    (y, p), (yt, pt) = forecasts
    ax = plots.plot_threshold_curve(y, p, yt, pt, chosen=0.3)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert "validation" in lines
    assert lines["test (reference only)"].get_linestyle() == "--"
    assert "chosen on validation: 0.30" in lines
    np.testing.assert_allclose(lines["chosen on validation: 0.30"].get_xdata(), [0.3, 0.3])
    # At threshold 0 every sample is called a flare: recall 1, false alarm rate 1, TSS 0.
    assert lines["validation"].get_ydata()[0] == pytest.approx(0.0)


def test_threshold_curve_marks_the_test_optimum_as_a_reference_not_a_score(forecasts):
    (y, p), (yt, pt) = forecasts
    ax = plots.plot_threshold_curve(y, p, yt, pt, chosen=0.3)
    marker = next(line for line in ax.get_lines() if line.get_label().startswith("test-optimal"))
    test_curve = next(line for line in ax.get_lines() if line.get_label() == "test (reference only)")
    best = np.nanmax(test_curve.get_ydata())
    assert marker.get_label() == f"test-optimal TSS {best:.2f} (reference, not a score)"
    assert marker.get_ydata()[0] == pytest.approx(best)


def test_threshold_curves_by_fold_one_panel_per_fold_with_its_own_choice(forecasts):
    (y, p), (yt, pt) = forecasts
    val = [pd.DataFrame({"y": y, "probability": p, "threshold": t}) for t in (0.3, 0.4)]
    test = [pd.DataFrame({"y": yt, "probability": pt, "threshold": t}) for t in (0.3, 0.4)]
    fig = plots.plot_threshold_curves_by_fold(val, test)
    assert [ax.get_title() for ax in fig.axes] == ["fold 1", "fold 2"]
    labels = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
    assert "chosen on validation: 0.30" in labels[0] and "chosen on validation: 0.40" in labels[1]
    with pytest.raises(ValueError, match="one validation and one test frame per fold"):
        plots.plot_threshold_curves_by_fold(val, test[:1])


def test_threshold_curve_without_choice_marks_the_validation_maximum(forecasts):
    (y, p), _ = forecasts
    ax = plots.plot_threshold_curve(y, p)
    curve, marker = ax.get_lines()[0], ax.get_lines()[1]
    best = curve.get_xdata()[np.nanargmax(curve.get_ydata())]
    assert marker.get_label() == f"best on validation: {best:.2f}"
    assert not any("test" in line.get_label() for line in ax.get_lines())


def test_tss_curve_is_recall_minus_false_alarm_rate():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    tss = plots.tss_curve(y, p, np.array([0.5, 0.3]))
    np.testing.assert_allclose(tss, [0.5 - 1 / 3, 1.0 - 1 / 3])


def test_run_comparison_bars_baselines_hatched_and_pcc_panel(runs_table):
    ax = plots.plot_run_comparison(runs_table, pcc=0.738)
    bars = ax.patches[:10]  # one TSS and one HSS2 bar per run, drawn before the study band
    np.testing.assert_allclose([b.get_height() for b in bars[:5]], runs_table["tss"])
    hatched = [b.get_hatch() for b in bars]
    assert hatched[3:5] == ["//", "//"] and hatched[8:10] == ["//", "//"]
    assert hatched[:3] == [None, None, None]
    assert "–" in [t.get_text() for t in ax.texts]  # the missing HSS2 is shown as missing, not 0
    fig = ax.figure
    assert len(fig.axes) == 2
    accuracy_ax = fig.axes[1]
    # The panels share the x axis, so the run names are written under the lower one.
    assert [t.get_text() for t in accuracy_ax.get_xticklabels()] == runs_table["name"].tolist()
    line_labels = [line.get_label() for line in accuracy_ax.get_lines()]
    assert line_labels == ["PCC = 73.80 %", "1.25 × PCC = 92.25 %"]
    assert accuracy_ax.get_lines()[1].get_ydata()[0] == pytest.approx(0.9225)
    baseline_legend = [t.get_text() for leg in ax.findobj(matplotlib.legend.Legend) for t in leg.get_texts()]
    assert "baseline" in baseline_legend


def test_run_comparison_best_per_architecture_uses_validation_not_test(runs_table):
    ax = plots.plot_run_comparison(runs_table, best_per_architecture=True, study_tss=None)
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["basic_1", "stacked_1", "climatology", "logreg"]
    assert len(ax.figure.axes) == 1  # no pcc: no accuracy panel


def test_run_comparison_on_given_axes_appends_accuracy_panel(runs_table):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    out = plots.plot_run_comparison(runs_table, pcc=0.75, ax=ax,
                                    reference_lines={"Liu et al. 2019 LSTM": 0.61})
    assert out is ax
    assert len(ax.figure.axes) == 2
    assert "Liu et al. 2019 LSTM: 0.61" in [line.get_label() for line in ax.get_lines()]


@pytest.mark.parametrize(("kwargs", "drop", "match"), [
    ({}, ["hss2"], "missing columns"),
    ({"pcc": 73.8}, [], "fraction"),
    ({"best_per_architecture": True}, ["val_tss"], "validation"),
])
def test_run_comparison_errors(runs_table, kwargs, drop, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_run_comparison(runs_table.drop(columns=drop), **kwargs)


def test_save_figure_writes_png_and_closes_pyplot_figures(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plots.plot_class_counts({"train": (3, 1)}, ax=ax)
    path = plots.save_figure(ax, tmp_path / "deep" / "counts.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()


def test_run_comparison_legend_keys_the_scores_in_the_models_colours_when_a_baseline_comes_first(runs_table):
    from matplotlib.colors import to_rgba

    first_baseline = runs_table.sort_values("kind")  # "baseline" rows first
    ax = plots.plot_run_comparison(first_baseline, pcc=0.74)
    keys = {h.get_label(): h for h in ax.get_legend().legend_handles}
    assert keys["TSS"].get_facecolor() == to_rgba("C0") and keys["HSS2"].get_facecolor() == to_rgba("C1")
    assert keys["baseline"].get_hatch() == plots.BASELINE_HATCH
