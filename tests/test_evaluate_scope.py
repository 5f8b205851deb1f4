"""`flareseq evaluate` on data the run has seen scores the run's own test split (issue 19)."""

from __future__ import annotations

import json

import mlflow
import pytest

from flareseq.cli import main
from flareseq.data.synthetic import write_synthetic_kaggle
from flareseq.experiments.tracking import resolve_tracking_uri

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    raw = write_synthetic_kaggle(root / "data.jsonl", 400, seed=4)
    assert main(["ingest", str(raw), "--out", str(root / "store"), "--no-progress"]) == 0
    assert main(["train", "--data", str(root / "store"), "--output-dir", str(root / "runs"), "--name", "small",
                 "--set", "training.epochs=1", "--set", "model.params={hidden_size=4}", "--set",
                 "verification.n_bootstrap=0", "--set", "tracking.plots=false", "--no-progress"]) == 0
    client = mlflow.MlflowClient(resolve_tracking_uri("", root / "runs"))
    (run,) = client.search_runs([client.get_experiment_by_name("flareseq").experiment_id])
    return root, run


def _evaluate(root, *extra, capsys):
    capsys.readouterr()
    assert main(["evaluate", "small", "--data", str(root / "store"), "--output-dir", str(root / "runs"), "--json",
                 *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_training_store_is_scored_on_the_runs_test_split(trained, capsys):
    root, run = trained
    scores = _evaluate(root, capsys=capsys)
    assert scores["n"] == int(run.data.metrics["n_test"]) < 400
    assert "the run's own test split" in scores["scope"] and "warning" not in scores
    assert scores["tss"] == pytest.approx(run.data.metrics["test_tss"], abs=1e-9)  # the run's own test score


def test_all_scores_everything_with_a_warning(trained, capsys):
    root, _ = trained
    scores = _evaluate(root, "--all", capsys=capsys)
    assert scores["n"] == 400 and "overstate its skill" in scores["warning"]


def test_unseen_data_is_scored_whole(trained, tmp_path, capsys):
    root, _ = trained
    other = write_synthetic_kaggle(tmp_path / "other.jsonl", 50, seed=99)
    capsys.readouterr()
    assert main(["evaluate", "small", "--data", str(other), "--output-dir", str(root / "runs")]) == 0
    out = capsys.readouterr().out
    assert "scored: all 50 labelled samples" in out and "none of them seen by the run" in out
