"""Figures for training, verification and run comparison.

Every function takes data and an optional Axes (or Figure) to draw on, and returns it, so that
callers can overlay several runs on one Axes or lay panels out themselves.

Figures are built as :class:`matplotlib.figure.Figure` objects directly rather than through
``pyplot``: that needs no display (headless by construction, with no ``matplotlib.use`` call
that would switch a notebook's backend) and leaves no figure registered in pyplot's global
state, so a long experiment grid does not leak memory. matplotlib is imported inside the
functions so that ``import flareseq`` stays cheap.

The curves (ROC, TSS against threshold, reliability) are computed here with numpy, so this
module depends on no other part of flareseq.

Legibility at the size a figure is shown: the HTML report shows a figure at its size in
inches (96 CSS pixels per inch, :mod:`flareseq.reporting.render`), so a label of 8 points
reads as 8 points on the page. Figures are therefore at most :data:`MAX_WIDTH_INCHES` wide
(the report's column), no text is smaller than 8 points, and legends sit outside the data.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flareseq.evaluation import curves
from flareseq.reporting import selection

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_class_counts",
    "plot_reliability",
    "plot_roc",
    "plot_run_comparison",
    "plot_threshold_curve",
    "plot_threshold_curves_by_fold",
    "plot_training_curves",
    "save_figure",
]

# The study's implied TSS on its own test sample (SPEC section 2), drawn as orientation only.
STUDY_TSS_RANGE = (0.59, 0.67)
BASELINE_COLOR = "0.6"
BASELINE_HATCH = "//"
_CHANCE_GID = "flareseq-chance-line"
MAX_WIDTH_INCHES = 12.0  # the report's column (75em at 16 px, less padding) is 12.2 in at 96 px per inch
LABEL_POINTS = 8  # the smallest text drawn: numbers on bars, legends
# Legends beside the panel: bars and curves reach any height up to 1, so inside they would hide some.
_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": LABEL_POINTS, "borderaxespad": 0.0}
# Baseline curves are dashed, so that they stand apart from the models in any colour.
_BASELINE_LINE = {"linestyle": "--", "linewidth": 1.3}
# The reliability diagram's counts panel, by the Axes it belongs to (so overlays find it).
_COUNTS_PANELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _new_axes(figsize: tuple[float, float] = (5.0, 4.0)) -> Axes:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _binary_inputs(y_true, p, *, name: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """Validate labels in {0, 1} and probabilities in [0, 1] of the same length."""
    y = np.asarray(y_true)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"y_true and {name} must be 1-D of the same length, got shapes {y.shape} and {p.shape}.")
    if y.size == 0:
        raise ValueError("y_true is empty; there is nothing to plot.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must hold only 0 and 1, found {np.unique(y)[:5].tolist()}.")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1] without NaN.")
    return y.astype(bool), p


def roc_points(y_true, p) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates at every distinct score, and the area under them (from
    :func:`flareseq.evaluation.curves.counts_by_threshold`, as every curve in flareseq).

    Returns ``(fpr, tpr, auc)``; with only one class present the curve is undefined and all
    three are NaN-filled rather than raising, as the verification scores do.
    """
    y, p = _binary_inputs(y_true, p)
    counts = curves.counts_by_threshold(y, p)
    if counts.n_pos == 0 or counts.n_neg == 0:
        return np.array([np.nan]), np.array([np.nan]), float("nan")
    # One point per distinct score: tied scores move the curve diagonally, not in steps.
    tpr = np.r_[0.0, counts.tp / counts.n_pos]
    fpr = np.r_[0.0, counts.fp / counts.n_neg]
    return fpr, tpr, float(curves.roc_area(counts))


def tss_curve(y_true, p, thresholds: np.ndarray) -> np.ndarray:
    """TSS of the forecast ``p >= t`` for each threshold ``t`` (NaN without both classes)."""
    y, p = _binary_inputs(y_true, p)
    counts = curves.counts_by_threshold(y, p)
    ascending = counts.thresholds[::-1]
    # distinct scores >= t; the counts at the lowest of them are those of ``p >= t``
    k = len(ascending) - np.searchsorted(ascending, np.asarray(thresholds, dtype=np.float64), side="left")
    tp = np.where(k > 0, counts.tp[np.maximum(k - 1, 0)], 0.0)
    fp = np.where(k > 0, counts.fp[np.maximum(k - 1, 0)], 0.0)
    return curves.true_skill_statistic(tp, fp, counts.n_pos - tp, counts.n_neg - fp)


def reliability_bins(y_true, p, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean forecast, observed frequency and count in equal-width probability bins.

    Empty bins are dropped, so the three arrays have one entry per non-empty bin.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}.")
    y, p = _binary_inputs(y_true, p)
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    filled = counts > 0
    mean_p = np.bincount(index, weights=p, minlength=n_bins)[filled] / counts[filled]
    observed = np.bincount(index, weights=y, minlength=n_bins)[filled] / counts[filled]
    return mean_p, observed, counts[filled]


def plot_training_curves(history: Mapping[str, Sequence[float]], *, fig: Figure | None = None,
                         title: str | None = None) -> Figure:
    """Loss, accuracy, recall and TSS per epoch, training against validation.

    Parameters
    ----------
    history : mapping of per-epoch lists, e.g. ``loss``, ``accuracy``, ``recall``, ``tss``
        and their ``val_`` counterparts. Any subset; a panel without data says so.
    fig : an empty Figure to draw the four panels on; a new one when omitted.
    title : optional figure title (e.g. the run name).

    Returns
    -------
    The Figure, with four Axes in a 2 x 2 grid.
    """
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8.0, 6.0), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    panels = (("loss", "Loss"), ("accuracy", "Accuracy"), ("recall", "Recall"), ("tss", "TSS"))
    for ax, (key, name) in zip(axes, panels):
        drawn = False
        for prefix, label, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = history.get(prefix + key)
            if values is None or len(values) == 0:
                continue
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, np.asarray(values, dtype=float), style, marker=".", label=label)
            drawn = True
        ax.set_title(name)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="0.5")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    # One legend for the four panels, above them: inside, it covered some of the curves.
    handles = next((ax.get_legend_handles_labels() for ax in axes if ax.get_lines()), ([], []))
    if handles[0]:
        fig.legend(*handles, loc="outside upper right", ncols=2, fontsize=LABEL_POINTS)
    if title:
        fig.suptitle(title)
    return fig


def plot_class_counts(counts: Mapping[str, tuple[int, int]], *, ax: Axes | None = None) -> Axes:
    """Grouped bars of negative and positive samples per split, with the numbers on the bars.

    Parameters
    ----------
    counts : split name -> ``(n_negative, n_positive)``, in the order to draw.
    ax : Axes to draw on; a new figure when omitted.
    """
    ax = ax if ax is not None else _new_axes((max(6.5, 1.6 * len(counts) + 2.5), 4.0))
    names = list(counts)
    n_neg = np.array([counts[s][0] for s in names], dtype=int)
    n_pos = np.array([counts[s][1] for s in names], dtype=int)
    x = np.arange(len(names))
    width = 0.38
    neg_bars = ax.bar(x - width / 2, n_neg, width, label="no flare (0)", color="C0")
    pos_bars = ax.bar(x + width / 2, n_pos, width, label="M/X flare (1)", color="C3")
    ax.bar_label(neg_bars, labels=[f"{n:,}" for n in n_neg], fontsize=LABEL_POINTS)
    ax.bar_label(pos_bars, labels=[f"{n:,}" for n in n_pos], fontsize=LABEL_POINTS)
    totals = n_neg + n_pos
    # The positive share is what the imbalance discussion turns on, so it goes under each split.
    shares = [f"{name}\n{100 * p / t:.1f} % positive" if t else name for name, p, t in zip(names, n_pos, totals)]
    ax.set_xticks(x, shares)
    ax.set_ylabel("samples")
    ax.set_title("Class counts per split")
    ax.margins(y=0.12)
    ax.legend(**_OUTSIDE)
    return ax


def _legend_beside(ax: Axes) -> None:
    """The legend beside the panel, the runs first and the reference diagonal last."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(handles)), key=lambda i: handles[i].get_gid() == _CHANCE_GID)
    ax.legend([handles[i] for i in order], [labels[i] for i in order], **_OUTSIDE)


def _draw_chance_diagonal(ax: Axes, label: str) -> None:
    # Drawn once per Axes, so overlaying several runs does not stack duplicate diagonals.
    if not any(line.get_gid() == _CHANCE_GID for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], ":", color="0.5", label=label, gid=_CHANCE_GID)


def plot_roc(y_true, p, *, ax: Axes | None = None, label: str | None = None, baseline: bool = False) -> Axes:
    """ROC curve with its area in the legend; call again on the same Axes to overlay runs.

    The legend is beside the panel, never over the curves. ``baseline`` draws the curve
    dashed. With one class only the curve is undefined: nothing is drawn and the legend
    says so.
    """
    ax = ax if ax is not None else _new_axes((7.5, 4.2))
    fpr, tpr, auc = roc_points(y_true, p)
    name = label or "model"
    auc_text = "AUC undefined: one class only" if np.isnan(auc) else f"AUC = {auc:.3f}"
    ax.plot(fpr, tpr, label=f"{name} ({auc_text})", **(_BASELINE_LINE if baseline else {}))
    _draw_chance_diagonal(ax, "chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate (recall)",
           title="ROC curve")
    ax.set_aspect("equal")
    _legend_beside(ax)
    return ax


def plot_reliability(y_true, p, *, n_bins: int = 10, ax: Axes | None = None, label: str | None = None,
                     baseline: bool = False) -> Axes:
    """Reliability diagram: observed flare frequency against mean forecast per bin.

    The number of samples in each bin is drawn in a small panel below (log scale), because a
    bin of three samples should not be read like one of three thousand; numbers written
    beside the points would pile up where bins of several runs meet. Overlay runs by passing
    ``ax`` (the counts panel is found again, or appended below an Axes of your own).
    ``baseline`` draws the curve dashed. The legend is beside the panel.

    Returns the reliability Axes; its counts panel is :func:`reliability_counts_axes` (ax).
    """
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7.5, 5.6), layout="constrained")
        ax, counts_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3.2, 1))
        _COUNTS_PANELS[ax] = counts_ax
    counts_ax = reliability_counts_axes(ax)
    mean_p, observed, n = reliability_bins(y_true, p, n_bins)
    style = _BASELINE_LINE if baseline else {}
    (line,) = ax.plot(mean_p, observed, marker="o", markersize=4, label=label or "model", **style)
    counts_ax.plot(mean_p, n, marker="o", markersize=3, color=line.get_color(), **style)
    _draw_chance_diagonal(ax, "perfectly calibrated")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), ylabel="observed flare frequency", title=f"Reliability ({n_bins} bins)")
    ax.tick_params(labelbottom=False)
    _legend_beside(ax)
    counts_ax.set(yscale="log", xlim=(0, 1), xlabel="mean forecast probability", ylabel="samples\nper bin")
    counts_ax.grid(True, axis="y", which="major", color="0.9")
    counts_ax.margins(y=0.2)  # a point at the largest count is not cut by the frame
    return ax


def reliability_counts_axes(ax: Axes) -> Axes:
    """The samples-per-bin panel under the reliability Axes ``ax`` (appended when ``ax`` has
    none yet, e.g. an Axes the caller made)."""
    counts_ax = _COUNTS_PANELS.get(ax)
    if counts_ax is None:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        counts_ax = make_axes_locatable(ax).append_axes("bottom", size="30%", pad=0.15, sharex=ax)
        _COUNTS_PANELS[ax] = counts_ax
    return counts_ax


def plot_threshold_curve(y_val, p_val, y_test=None, p_test=None, *, chosen: float | None = None,
                         ax: Axes | None = None, n_thresholds: int = 201, title: str | None = None) -> Axes:
    """TSS against decision threshold on validation (and test, for reference only).

    Parameters
    ----------
    y_val, p_val : validation labels and probabilities; the threshold is chosen on these.
    y_test, p_test : optional test labels and probabilities, drawn dashed, with the test-optimal
        TSS marked and labelled as a reference. They are shown so a reader can see how well the
        validation choice carries over, never to choose on.
    chosen : the threshold the run used; when omitted, the validation TSS maximum is marked.
    ax : Axes to draw on; a new figure when omitted.
    n_thresholds : number of evenly spaced thresholds in [0, 1].
    title : the Axes title (default "TSS against threshold").
    """
    ax = ax if ax is not None else _new_axes((7.5, 3.8))
    thresholds = np.linspace(0.0, 1.0, n_thresholds)
    tss_val = tss_curve(y_val, p_val, thresholds)
    ax.plot(thresholds, tss_val, "-", color="C0", label="validation")
    if (y_test is None) != (p_test is None):
        raise ValueError("Give both y_test and p_test, or neither.")
    if y_test is not None:
        tss_test = tss_curve(y_test, p_test, thresholds)
        ax.plot(thresholds, tss_test, "--", color="C1", label="test (reference only)")
        if np.isfinite(tss_test).any():
            # What a threshold chosen on the test data itself would reach: a bound, not a score.
            k = int(np.nanargmax(tss_test))
            ax.plot([thresholds[k]], [tss_test[k]], "v", color="C1", linestyle="none",
                    label=f"test-optimal TSS {tss_test[k]:.2f} (reference, not a score)")
    if chosen is not None:
        ax.axvline(chosen, color="k", linewidth=1, label=f"chosen on validation: {chosen:.2f}")
    elif np.isfinite(tss_val).any():
        best = float(thresholds[np.nanargmax(tss_val)])
        ax.axvline(best, color="k", linewidth=1, label=f"best on validation: {best:.2f}")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set(xlim=(0, 1), xlabel="decision threshold", ylabel="TSS", title=title or "TSS against threshold")
    # Beside the panel: inside, it hid the test-optimal marker whenever that sat under it.
    ax.legend(**_OUTSIDE)
    return ax


def plot_threshold_curves_by_fold(validation: Sequence[pd.DataFrame], test: Sequence[pd.DataFrame], *,
                                  fig: Figure | None = None) -> Figure:
    """:func:`plot_threshold_curve` for each fold of a rotation, side by side.

    Parameters
    ----------
    validation, test : per fold, a frame with ``y``, ``probability`` and ``threshold`` (the
        fold's validation-chosen threshold), as a run's prediction files hold them.
    fig : an empty Figure to draw on; a new one when omitted.
    """
    if len(validation) != len(test) or not validation:
        raise ValueError(f"give one validation and one test frame per fold, got {len(validation)} and {len(test)}.")
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(min(MAX_WIDTH_INCHES, 3.4 * len(validation)), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(validation), sharey=True))
    for k, (ax, val, tst) in enumerate(zip(axes, validation, test), start=1):
        if val["y"].nunique() < 2:
            ax.text(0.5, 0.5, "one class in validation", ha="center", va="center", transform=ax.transAxes)
            continue
        both = tst["y"].nunique() == 2
        plot_threshold_curve(val["y"].to_numpy(), val["probability"].to_numpy(),
                             tst["y"].to_numpy() if both else None, tst["probability"].to_numpy() if both else None,
                             chosen=float(val["threshold"].iloc[0]), ax=ax, title=f"fold {k}")
        # Each panel's own labels (its chosen threshold and test optimum) go in one box below it.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=LABEL_POINTS, borderaxespad=0.0)
    return fig


def _bar_styles(is_baseline: np.ndarray, color: str) -> tuple[list[str], list[str | None]]:
    colors = [BASELINE_COLOR if b else color for b in is_baseline]
    hatches = [BASELINE_HATCH if b else None for b in is_baseline]
    return colors, hatches


def _draw_bars(ax: Axes, x: np.ndarray, heights: np.ndarray, width: float, color: str,
               is_baseline: np.ndarray, label: str, rotation: float = 0):
    """Bars with their numbers on top; returns the legend's key for them (in the models'
    colour: a legend drawn from the bars would copy the first bar, grey when it is a baseline)."""
    from matplotlib.patches import Patch

    colors, hatches = _bar_styles(is_baseline, color)
    bars = ax.bar(x, np.nan_to_num(heights, nan=0.0), width, color=colors, edgecolor="k", linewidth=0.5,
                  label="_nolegend_")
    for bar, hatch in zip(bars, hatches):
        bar.set_hatch(hatch)
    ax.bar_label(bars, labels=["–" if np.isnan(h) else f"{h:.2f}" for h in heights], fontsize=LABEL_POINTS,
                 rotation=rotation, padding=2)
    return Patch(facecolor=color, edgecolor="k", linewidth=0.5, label=label)


def plot_run_comparison(table: pd.DataFrame, *, pcc: float | None = None, ax: Axes | None = None,
                        accuracy_ax: Axes | None = None, best_per_architecture: bool = False,
                        study_tss: tuple[float, float] | None = STUDY_TSS_RANGE,
                        reference_lines: Mapping[str, float] | None = None) -> Axes:
    """Test TSS and HSS2 per run as grouped bars; baselines grey and hatched.

    Parameters
    ----------
    table : one row per run with columns ``name``, ``tss``, ``hss2`` and optionally
        ``architecture``, ``kind`` (``"model"`` or ``"baseline"``), ``accuracy``, ``val_tss``.
    pcc : the proportion chance criterion of the test split as a fraction (e.g. 0.738). With an
        ``accuracy`` column it adds an accuracy panel with PCC and 1.25 x PCC lines, the bar
        the study set for accuracy (PCC is an accuracy, so it is not drawn on the skill panel).
    ax : Axes for the skill panel; a new figure (with room for the accuracy panel) if omitted.
    accuracy_ax : Axes for the accuracy panel; when omitted and ``ax`` is given, one is
        appended below ``ax``.
    best_per_architecture : show only the run with the highest *validation* TSS per
        architecture (needs ``val_tss``).
    study_tss : the study's implied TSS range, shaded for orientation; None to omit.
    reference_lines : label -> TSS value of further horizontal lines (e.g. published figures).

    Returns
    -------
    The skill Axes (the accuracy panel, if drawn, is on the same figure).
    """
    missing = [c for c in ("name", "tss", "hss2") if c not in table]
    if missing:
        raise ValueError(f"table is missing columns {missing}; expected at least name, tss, hss2.")
    if pcc is not None and not 0 < pcc <= 1:
        raise ValueError(f"pcc must be a fraction in (0, 1], got {pcc!r}; divide a percentage by 100.")
    runs = selection.best_per_architecture(table) if best_per_architecture else table
    draw_accuracy = pcc is not None and "accuracy" in runs
    if ax is None:
        from matplotlib.figure import Figure

        width = min(MAX_WIDTH_INCHES, max(8.0, 0.8 * len(runs) + 4.5))
        fig = Figure(figsize=(width, 7.5 if draw_accuracy else 4.5), layout="constrained")
        if draw_accuracy:
            ax, accuracy_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        else:
            ax = fig.add_subplot()
    elif draw_accuracy and accuracy_ax is None:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        accuracy_ax = make_axes_locatable(ax).append_axes("bottom", size="70%", pad=0.9)

    kinds = runs["kind"] if "kind" in runs else np.full(len(runs), "model")
    is_baseline = np.asarray(kinds == "baseline", dtype=bool)
    x = np.arange(len(runs))
    width = 0.38
    # Upright 8-point numbers need about 0.3 in per bar; narrower bars get them turned.
    bar_inches = width * (ax.figure.get_figwidth() - 3.5) / max(len(runs), 1)
    rotation = 0 if bar_inches >= 0.3 else 90
    keys = [_draw_bars(ax, x - width / 2, runs["tss"].to_numpy(float), width, "C0", is_baseline, "TSS", rotation),
            _draw_bars(ax, x + width / 2, runs["hss2"].to_numpy(float), width, "C1", is_baseline, "HSS2", rotation)]
    ax.axhline(0.0, color="k", linewidth=0.8)
    if study_tss is not None:
        ax.axhspan(*study_tss, color="C2", alpha=0.15,
                   label=f"study, implied TSS\n{study_tss[0]:.2f}–{study_tss[1]:.2f} (its data)")
    for i, (text, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, linestyle=":", color=f"C{4 + i % 6}", label=f"{text}: {value:.2f}")
    keys += ax.get_legend_handles_labels()[0]  # the study's band, reference lines
    if is_baseline.any():
        from matplotlib.patches import Patch

        keys.append(Patch(facecolor=BASELINE_COLOR, hatch=BASELINE_HATCH, edgecolor="k", label="baseline"))
    ax.legend(handles=keys, **_OUTSIDE)
    scores = np.r_[runs["tss"].to_numpy(float), runs["hss2"].to_numpy(float), 0.0]
    high = np.nanmax(scores)
    ax.set_ylim(min(-0.1, np.nanmin(scores) - 0.1), max(1.05, high + (0.2 if rotation else 0.1)))
    ax.set_ylabel("test score")
    title = "Best run per architecture (by validation TSS)" if best_per_architecture else "Runs compared"
    ax.set_title(f"{title}: test TSS and HSS2")
    labels = runs["name"].astype(str).tolist()
    ax.set_xticks(x, labels, rotation=30, ha="right")

    if draw_accuracy:
        accuracy_key = _draw_bars(accuracy_ax, x, runs["accuracy"].to_numpy(float), 2 * width, "C4", is_baseline,
                                  "accuracy", rotation)
        accuracy_ax.axhline(pcc, color="C3", linestyle="--", label=f"PCC = {100 * pcc:.2f} %")
        accuracy_ax.axhline(1.25 * pcc, color="C3", linestyle="-", label=f"1.25 × PCC = {125 * pcc:.2f} %")
        accuracy_ax.set_ylim(0, max(1.0, 1.25 * pcc) + (0.2 if rotation else 0.08))
        accuracy_ax.set_ylabel("test accuracy")
        accuracy_ax.set_title("Accuracy against the proportion chance criterion")
        accuracy_ax.legend(handles=[*accuracy_ax.get_legend_handles_labels()[0], accuracy_key], **_OUTSIDE)
        accuracy_ax.set_xticks(x, labels, rotation=30, ha="right")
    return ax


def save_figure(fig: Figure | Axes, path: str | PathLike[str], *, dpi: int = 150) -> Path:
    """Write ``fig`` (or the figure of an Axes) as PNG and release it; returns the path.

    Parent folders are created. A figure made through pyplot is also closed there, so
    pyplot's registry does not grow over a long grid of runs.
    """
    if not hasattr(fig, "savefig"):  # an Axes: save the figure it belongs to
        fig = fig.figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    pyplot = sys.modules.get("matplotlib.pyplot")  # never imported: no figure of ours is registered
    if pyplot is not None:
        pyplot.close(fig)
    return path
