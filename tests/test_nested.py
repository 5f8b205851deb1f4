"""Nested selection in a rotation and the stacked ensemble (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flareseq.errors import LeakageError
from flareseq.experiments.config import RunConfig
from flareseq.experiments.nested import check_inner_outer_disjoint, select_per_fold, stack_folds
from flareseq.experiments.rotation import nested_cross_validate
from flareseq.experiments.rundata import load_source
from flareseq.experiments.single import RunResult
from flareseq.training.stacking import LogitStack, cross_fitted_probabilities, logits

SMALL = {
    "data": {"synthetic_samples": 400, "cv": 3},
    "training": {"epochs": 1, "batch_size": 64, "early_stopping": False},
    "verification": {"n_bootstrap": 50},
}


@pytest.fixture(scope="module")
def nested():
    base = RunConfig.from_dict(SMALL)
    configs = [base.with_overrides({"model.name": name, "model.params": params, "name": name})
               for name, params in (("climatology", {}), ("logistic-last", {}), ("logistic-summary", {}),
                                    ("wide-deep-lstm", {"hidden_size": 4}))]
    return nested_cross_validate(
        configs, 3, source=load_source(base.data),
        groups={"best-baseline": ["climatology", "logistic-last", "logistic-summary"],
                "best-model": ["wide-deep-lstm", "stack"]},
        stacks={"stack": ["wide-deep-lstm", "logistic-last"]})


def test_inner_validation_regions_are_disjoint_from_the_outer_test_regions(nested):
    for name in ("logistic-last", "wide-deep-lstm", "best-baseline", "best-model", "stack"):
        result = nested.results[name]
        for fold, test in result.predictions.groupby("fold"):
            validation = result.validation_predictions[result.validation_predictions["fold"] == fold]
            assert len(validation) and len(test)
            assert not set(validation["region"]) & set(test["region"]), (name, fold)
    assert all(n > 0 for n in nested.n_validation_regions["logistic-last"].values())


def test_each_fold_chooses_on_its_own_inner_validation_score(nested):
    for name, candidates in (("best-baseline", ["climatology", "logistic-last", "logistic-summary"]),
                             ("best-model", ["wide-deep-lstm", "stack"])):
        for i, chosen in enumerate(nested.chosen[name]):
            inner = {c: nested.results[c].fold_scores[i]["val_tss"] for c in candidates}
            assert chosen == max(inner, key=inner.get)
            # The pick's forecasts of fold i are the chosen run's, for exactly that fold's samples.
            fold = nested.results[name].predictions.query("fold == @i + 1")
            source = nested.results[chosen].predictions.query("fold == @i + 1")
            assert list(fold["id"]) == list(source["id"])
            np.testing.assert_array_equal(fold["probability"], source["probability"])
    assert "climatology" not in nested.chosen["best-baseline"]  # TSS 0 never wins against real skill


def _fake(name, val_tss, test_tss, n=4, folds=2):
    frames = [pd.DataFrame({"id": [f"{f}-{j}" for j in range(n)], "y": [0, 1] * (n // 2), "probability": 0.5,
                            "threshold": 0.5, "climatology": 0.5, "region": [f"r{f}{j}" for j in range(n)],
                            "fold": f + 1}) for f in range(folds)]
    val = [frame.assign(region=lambda d: "v" + d["region"]) for frame in frames]
    return RunResult(name=name, status="FINISHED", predictions=pd.concat(frames, ignore_index=True),
                     validation_predictions=pd.concat(val, ignore_index=True),
                     fold_scores=[{"val_tss": v, "test_tss": t} for v, t in zip(val_tss, test_tss)])


def test_a_test_score_never_decides():
    # "peeker" has by far the best test score on both folds but the lower validation score on fold 1.
    results = {"honest": _fake("honest", [0.8, 0.5], [0.1, 0.1]), "peeker": _fake("peeker", [0.7, 0.6], [0.9, 0.9])}
    picks = select_per_fold(results, ["honest", "peeker"], name="best")
    assert picks.chosen == ["honest", "peeker"]
    assert [s["test_tss"] for s in picks.fold_scores] == [0.1, 0.9]


def test_a_validation_region_in_the_test_fold_is_refused():
    leaky = _fake("leaky", [0.5, 0.5], [0.5, 0.5])
    leaky.validation_predictions.loc[0, "region"] = leaky.predictions.loc[0, "region"]
    with pytest.raises(LeakageError, match="fold 1: 1 region"):
        check_inner_outer_disjoint(leaky)


def test_the_stack_learns_the_weights_that_generated_the_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(1.5 * z[:, 0] + 0.5 * z[:, 1] - 1.0)))).astype(int)
    P = 1 / (1 + np.exp(-z))  # the members' probabilities; their logits are z
    stack = LogitStack(C=1e6).fit(P, y)
    np.testing.assert_allclose(stack.coef_, [1.5, 0.5], atol=0.15)
    assert stack.intercept_ == pytest.approx(-1.0, abs=0.15)
    np.testing.assert_allclose(logits(P), z, atol=1e-9)
    # Cross-fitted forecasts are out of sample but close to the in-sample ones on this much data.
    oof = cross_fitted_probabilities(P, y, np.arange(4000) % 50)
    assert np.abs(oof - stack.predict_proba(P)).max() < 0.1


def test_stack_of_two_members_beats_either_when_they_err_differently():
    rng = np.random.default_rng(1)

    def member_frames(n, fold):
        signal = rng.normal(size=(n, 2))
        y = (signal.sum(axis=1) + 0.3 * rng.normal(size=n) > 1.5).astype(int)
        frames = {}
        for k, name in enumerate(("a", "b")):
            # Each member sees one of the two signals only.
            frames[name] = pd.DataFrame({"id": [f"{fold}-{j}" for j in range(n)], "y": y,
                                         "probability": 1 / (1 + np.exp(-2 * signal[:, k])), "threshold": 0.5,
                                         "climatology": y.mean(), "region": [f"{fold}-{j // 10}" for j in range(n)],
                                         "fold": fold})
        return frames

    val, test = member_frames(2000, 1), member_frames(2000, 1)
    for part in test.values():
        part["id"] = "t" + part["id"]
        part["region"] = "t" + part["region"]
    results = {name: RunResult(name=name, status="FINISHED", predictions=test[name], validation_predictions=val[name],
                               fold_scores=[{"val_tss": 0.0}]) for name in ("a", "b")}
    stacked = stack_folds(results, ["a", "b"], name="a+b")
    from flareseq.evaluation.metrics import roc_auc

    y = test["a"]["y"].to_numpy()
    assert stacked.fold_scores[0]["test_roc_auc"] > max(roc_auc(y, test[m]["probability"].to_numpy()) for m in "ab") + 0.05
    assert stacked.fold_scores[0]["val_tss"] > 0.5 and len(stacked.predictions) == 2000
