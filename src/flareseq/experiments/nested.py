"""Nested selection inside a rotation: every choice made on each outer fold's training folds only.

A rotation (:mod:`flareseq.experiments.rotation`) tests each fold once. Choosing "the best
model" (or the best settings) on the mean validation score over all folds, and then reporting
that model's test scores, uses validation regions that sit in *other* outer test folds: fold
j's regions validate the runs whose test fold is i, and the choice made with them is then
scored on fold j. That favours whatever was chosen. Nested selection makes the choice once per
outer fold, on that fold's own validation part, which is carved by region from its training
folds (the inner validation); the outer test fold is never looked at. The pooled out-of-fold
forecasts of "the best of a group" are then those of possibly different members per fold,
each chosen without its test fold.

The stacked ensemble (:func:`stack_folds`) is built the same way: per outer fold, fitted on
that fold's validation forecasts of its members (:mod:`flareseq.training.stacking`).

Functions here take fold-by-fold results (``fold_scores`` lists and prediction frames with a
``fold`` column, as :func:`flareseq.experiments.rotation.run_rotation` returns them) and
return the same kind of thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from flareseq.errors import ConfigError, LeakageError
from flareseq.evaluation import metrics
from flareseq.experiments.single import RunResult
from flareseq.training.stacking import LogitStack, cross_fitted_probabilities


@dataclass
class FoldPicks:
    """What a nested selection chose: one candidate per outer fold, with its fold's results."""

    name: str
    chosen: list[str]
    fold_scores: list[dict[str, float]]
    predictions: pd.DataFrame  # pooled test forecasts of the chosen members, ``fold`` and ``chosen`` columns
    validation_predictions: pd.DataFrame | None


def n_folds(results: Mapping[str, RunResult], names: Sequence[str]) -> int:
    """The folds every named result shares (all must have the same number)."""
    counts = {name: len(results[name].fold_scores) for name in names}
    if len(set(counts.values())) != 1 or not counts or next(iter(counts.values())) == 0:
        raise ConfigError(f"nested selection needs rotations over the same folds; got fold counts {counts}.")
    return next(iter(counts.values()))


def check_inner_outer_disjoint(result: RunResult) -> dict[int, int]:
    """Raise :class:`LeakageError` when any fold's validation (inner) regions include one of
    its test (outer) regions; returns the number of validation regions per fold."""
    if result.validation_predictions is None or "region" not in result.predictions.columns:
        raise ConfigError(f"{result.name}: checking inner against outer regions needs validation forecasts and "
                          "region ids.")
    out = {}
    for fold, test in result.predictions.groupby("fold"):
        validation = result.validation_predictions[result.validation_predictions["fold"] == fold]
        shared = set(validation["region"].dropna()) & set(test["region"].dropna())
        if shared:
            raise LeakageError(f"{result.name}, fold {fold}: {len(shared)} region(s) validate and test at once "
                               f"(e.g. {sorted(shared)[:3]}): a choice made on this validation part would have seen "
                               "the test fold.")
        out[int(fold)] = int(validation["region"].nunique())
    return out


def select_per_fold(results: Mapping[str, RunResult], candidates: Sequence[str], *, name: str,
                    metric: str = "val_tss") -> FoldPicks:
    """For each outer fold, the candidate with the highest inner-validation ``metric`` on that
    fold (ties: the first listed); NaN never wins. The test scores are not read."""
    candidates = list(candidates)
    missing = [c for c in candidates if c not in results]
    if missing:
        raise ConfigError(f"nested selection {name!r}: no results for {missing}; have {list(results)}.")
    k = n_folds(results, candidates)
    chosen, fold_scores, tests, validations = [], [], [], []
    for i in range(k):
        inner = {c: _score(results[c].fold_scores[i].get(metric)) for c in candidates}
        best = max(candidates, key=inner.__getitem__)  # max keeps the first of equals
        chosen.append(best)
        fold_scores.append(dict(results[best].fold_scores[i]))
        fold = i + 1
        tests.append(_fold_rows(results[best].predictions, fold).assign(chosen=best))
        if results[best].validation_predictions is not None:
            validations.append(_fold_rows(results[best].validation_predictions, fold).assign(chosen=best))
    return FoldPicks(name=name, chosen=chosen, fold_scores=fold_scores, predictions=pd.concat(tests, ignore_index=True),
                     validation_predictions=pd.concat(validations, ignore_index=True) if validations else None)


def stack_folds(results: Mapping[str, RunResult], members: Sequence[str], *, name: str,
                random_state: int = 0) -> FoldPicks:
    """A stacked ensemble of ``members``, per outer fold: logistic regression on their logits
    fitted on that fold's validation forecasts, its threshold chosen on validation TSS of
    cross-fitted (out-of-sample, by region) validation forecasts; then the fold's test part
    forecast by the stack fitted on all of its validation part."""
    members = list(members)
    k = n_folds(results, members)
    fold_scores, tests, validations = [], [], []
    for i in range(k):
        fold = i + 1
        val = _aligned([results[m].validation_predictions for m in members], fold, members)
        test = _aligned([results[m].predictions for m in members], fold, members)
        columns = [f"p_{m}" for m in members]
        y_val, y_test = val["y"].to_numpy(int), test["y"].to_numpy(int)
        groups = val["region"].astype(str).to_numpy() if "region" in val else val["id"].astype(str).to_numpy()
        p_val = cross_fitted_probabilities(val[columns].to_numpy(), y_val, groups, random_state=random_state)
        threshold = metrics.choose_threshold(y_val, p_val, "tss")
        p_test = LogitStack().fit(val[columns].to_numpy(), y_val).predict_proba(test[columns].to_numpy())
        climatology = float(test["climatology"].iloc[0])
        scores = {f"val_{key}": v for key, v in metrics.all_scores(y_val, p_val, threshold=threshold,
                                                                   climatology=climatology).items()}
        scores.update({f"test_{key}": v for key, v in metrics.all_scores(y_test, p_test, threshold=threshold,
                                                                         climatology=climatology).items()})
        scores["threshold"] = threshold
        fold_scores.append(scores)
        keep = [c for c in ("id", "y", "region") if c in test]
        tests.append(test[keep].assign(probability=p_test, threshold=threshold, climatology=climatology, fold=fold))
        validations.append(val[keep].assign(probability=p_val, threshold=threshold, climatology=climatology,
                                            fold=fold))
    return FoldPicks(name=name, chosen=[name] * k, fold_scores=fold_scores,
                     predictions=pd.concat(tests, ignore_index=True),
                     validation_predictions=pd.concat(validations, ignore_index=True))


def _score(value) -> float:
    return -math.inf if value is None or math.isnan(value) else float(value)


def _fold_rows(frame: pd.DataFrame, fold: int) -> pd.DataFrame:
    return frame[frame["fold"] == fold].reset_index(drop=True)


def _aligned(frames: Sequence[pd.DataFrame | None], fold: int, members: Sequence[str]) -> pd.DataFrame:
    """One row per sample of ``fold`` with every member's probability as ``p_<member>``; the
    members must have forecast the same samples (same ids and labels)."""
    merged = None
    for member, frame in zip(members, frames):
        if frame is None:
            raise ConfigError(f"stacking needs {member}'s validation forecasts; its rotation kept none.")
        part = _fold_rows(frame, fold).rename(columns={"probability": f"p_{member}"})
        if merged is None:
            merged = part.drop(columns=[c for c in ("threshold", "probability_uncalibrated", "fold") if c in part])
            continue
        before = len(merged)
        merged = merged.merge(part[["id", "y", f"p_{member}"]], on=["id", "y"], how="inner")
        if len(merged) != before or len(merged) != len(part):
            raise ConfigError(f"stacking: {member} forecast other samples than {members[0]} in fold {fold} "
                              f"({len(part)} against {before}); the members must share the rotation.")
    assert merged is not None
    return merged.sort_values("id", kind="stable").reset_index(drop=True)


__all__ = ["FoldPicks", "check_inner_outer_disjoint", "n_folds", "select_per_fold", "stack_folds"]

