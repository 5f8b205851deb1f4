"""The SMARP benchmark (benchmarks/smarp.py) and experiment file (experiments/smarp.toml).

The machinery runs on a small SMARP-like table written here (five fold files of the real
files' columns); the real-data test runs ``--quick`` on ../shared/data/smarp (skipped when
absent). Skill is not asserted on the small table, only that every part is there and
that "best" is chosen on validation scores.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flareseq.errors import LeakageError
from flareseq.experiments.grid import load_experiment
from flareseq.experiments.rundata import load_source
from flareseq.prep.splits import split_from_config

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "smarp.toml"
TABLE_SPEC = REPO / "experiments" / "smarp-table.toml"
SIX = ["lstm", "stacked-lstm", "embed-lstm", "tied-stacked-lstm", "embed-stacked-lstm", "embed-tied-stacked-lstm"]
MODELS = [*SIX, "wide-deep-lstm"]  # experiments/smarp.toml's grid
BASELINES = ["climatology", "logistic-last", "logistic-summary", "gboost-last", "gboost-summary"]
N_FOLDS, N_REGIONS, N_ROWS, N_FLARING, N_POSITIVE_ROWS = 5, 8, 40, 2, 8


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("smarp_benchmark", REPO / "benchmarks" / "smarp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smarp = _load_benchmark()


def write_smarp_like_tables(folder: Path, seed: int = 0) -> Path:
    """Five files ``smarp_<fold>.csv`` with the real files' columns: per fold ``N_REGIONS``
    regions of ``N_ROWS`` rows at 96-min cadence; ``N_FLARING`` of them flare (label True on
    their last ``N_POSITIVE_ROWS`` rows) and grow in flux and R_VALUE before they do."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for fold in range(N_FOLDS):
        rows = []
        for r in range(N_REGIONS):
            flaring = r < N_FLARING
            t_end = pd.Timestamp("2001-01-01") + pd.Timedelta(days=7 * r + fold) \
                + pd.to_timedelta(96 * np.arange(N_ROWS), unit="min")
            growth = np.linspace(0, 1, N_ROWS) * (1.5 if flaring else 0.1)
            area = 300 * np.exp(growth + 0.1 * rng.standard_normal(N_ROWS))
            label = np.zeros(N_ROWS, dtype=bool)
            if flaring:
                label[-N_POSITIVE_ROWS:] = True
            rows.append(pd.DataFrame({
                "prefix": "TARP", "arpnum": 1000 * fold + r,
                "t_start": (t_end - pd.Timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"),
                "t_end": t_end.strftime("%Y-%m-%d %H:%M:%S"), "label": label,
                "flares": np.where(label, "M1.2", ""), "FLARE_INDEX": np.where(label, 12.0, 0.0),
                "AREA": area, "USFLUX": area * 3e18, "MEANGBZ": 50 + 10 * rng.standard_normal(N_ROWS),
                "R_VALUE": np.clip(growth * 3 + 0.3 * rng.standard_normal(N_ROWS), 0, None),
            }))
        pd.concat(rows).to_csv(folder / f"smarp_{fold}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    return write_smarp_like_tables(tmp_path_factory.mktemp("smarp"))


def run_benchmark(*argv: str) -> tuple[str, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert smarp.main(list(argv)) == 0
    text = out.getvalue()
    last = text.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    return text, json.loads(last.removeprefix("RESULT "))


def test_quick_run_scores_every_model_and_baseline(tables):
    text, result = run_benchmark("--data", str(tables), "--quick", "--threads", "1")
    windows_per_region = N_ROWS - 16 + 1
    assert result["n_windows"] == N_FOLDS * N_REGIONS * windows_per_region
    assert result["n_windows_positive"] == N_FOLDS * N_FLARING * N_POSITIVE_ROWS
    assert result["n_test"] == N_REGIONS * windows_per_region  # fold 4, whole
    assert result["n_test_positive_regions"] == N_FLARING
    assert list(result["models"]) == BASELINES + MODELS
    for name in BASELINES + MODELS:
        assert name in text  # a table row each
        scores = result["models"][name]
        assert -1 <= scores["test_tss"] <= 1 and scores["test_precision"] is not None
    assert result["models"]["climatology"]["test_tss"] == 0
    assert result["best_model"] in MODELS and result["best_baseline"] in BASELINES
    for label in ("best_model", "best_baseline"):
        chosen = result["models"][result[label]]
        assert result[f"{label}_tss"] == chosen["test_tss"] and result[f"{label}_val_tss"] == chosen["val_tss"]
    assert isinstance(result["sequence_model_beats_baseline"], bool)


def test_best_is_chosen_on_validation_not_on_test():
    summary = {
        "a": {"kind": "lstm", "val_tss": 0.9, "test_tss": 0.1},
        "b": {"kind": "lstm", "val_tss": 0.5, "test_tss": 0.9},  # best on test: must not win
        "c": {"kind": "baseline", "val_tss": 0.2, "test_tss": 0.8},
        "d": {"kind": "baseline", "val_tss": 0.7, "test_tss": 0.3},
    }
    assert smarp.best_by_validation(summary, "lstm") == "a"
    assert smarp.best_by_validation(summary, "baseline") == "d"


def test_repeats_average_over_seeds_and_validation_folds_keep_the_test_fold(tables):
    _, result = run_benchmark("--data", str(tables), "--quick", "--threads", "1", "--models", "lstm",
                              "--no-baselines", "--validation-folds", "0", "2")
    assert [s["validation_folds"] for s in result["splits"]] == [[0], [2]]
    assert all(s["test_folds"] == [4] and "validation_share" not in s for s in result["splits"])
    assert len(result["models"]["lstm"]["test_tss_by_seed"]) == 2
    config = load_experiment(EXPERIMENT, overrides=[f"data.path={json.dumps(str(tables / 'smarp_*.csv'))}"]).runs[0]
    source = load_source(config.data)
    folds = source.dataset.meta["fold"].to_numpy()
    split = split_from_config(source.dataset, result["splits"][1])
    assert set(folds[split.validation]) == {2} and set(folds[split.test]) == {4}
    assert set(folds[split.train]) == {0, 1, 3}


def test_cv_rotates_every_fold_through_the_test_set_and_pairs_the_best_two(tables):
    text, result = run_benchmark("--data", str(tables), "--quick", "--threads", "1", "--models", "lstm",
                                 "--cv", str(N_FOLDS))
    assert result["cv"] == N_FOLDS and result["n_windows"] == N_FOLDS * N_REGIONS * (N_ROWS - 16 + 1)
    assert list(result["models"]) == BASELINES + ["lstm"]
    for scores in result["models"].values():
        assert len(scores["test_tss_by_fold"]) == N_FOLDS  # one score per test fold
        assert scores["test_tss_sd"] >= 0 and -1 <= scores["test_tss"] <= 1
    assert result["best_model"] == "lstm" and result["best_baseline"] in BASELINES
    assert set(result["paired"]) == {"tss", "hss2", "pr_auc"}
    for paired in result["paired"].values():
        assert paired["low"] <= paired["high"] and -2 <= paired["difference"] <= 2
        assert 0 <= paired["p_model_better"] <= 1
    assert "paired bootstrap by region, lstm - " in text
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        smarp.main(["--data", str(tables), "--cv", "5", "--validation-folds", "0"])


def test_the_experiment_file_is_the_benchmarks_protocol():
    runs = load_experiment(EXPERIMENT).runs
    assert [r.model.name for r in runs] == MODELS
    config = runs[0]
    assert config.data.format == "table" and config.data.path == "../shared/data/smarp/smarp_*.csv"
    assert list(config.data.table["features"]) == ["AREA", "USFLUX", "MEANGBZ", "R_VALUE"]
    assert config.data.table["window"] == 16 and config.data.table["cadence_minutes"] == 96
    assert config.data.split["test_folds"] == [4] and 0 < config.data.split["validation_share"] < 1
    assert config.training.threshold_metric == "tss" and list(config.baselines) == BASELINES
    # The table spec for `flareseq ingest --table-spec` holds the same table options.
    from flareseq.data.tables.spec import load_table_spec

    _, spec = load_table_spec(TABLE_SPEC)
    assert spec.to_dict() == {**spec.to_dict(), **dict(config.data.table)}


def test_the_experiment_runs_end_to_end_through_mlflow(tables, tmp_path):
    from flareseq.experiments.runner import run_experiment

    # The runner of `flareseq experiments experiments/smarp.toml --data ...`, with one model
    # and one baseline: six models through MLflow take too long for a unit test.
    experiment = load_experiment(EXPERIMENT, overrides=[
        f"data.path={json.dumps(str(tables / 'smarp_*.csv'))}", "training.epochs=1", 'baselines=["climatology"]',
        "tracking.log_model=false", f"tracking.output_dir={json.dumps(str(tmp_path))}", "training.n_threads=1",
    ])
    experiment = type(experiment)(name=experiment.name, runs=experiment.runs[:1], source=experiment.source)
    results = run_experiment(experiment, progress=False, echo=lambda line: None)
    assert [(r.name, r.status) for r in results] == [("baseline-climatology", "FINISHED"), ("lstm", "FINISHED")]
    assert results[1].scores["test_n"] == N_REGIONS * (N_ROWS - 15)  # all of fold 4


def test_the_leak_guard_refuses_flare_index_in_the_experiment(tables):
    config = load_experiment(EXPERIMENT).runs[0].with_overrides({
        "data.path": str(tables / "smarp_*.csv"), "data.table.features": ["AREA", "USFLUX", "FLARE_INDEX"]})
    with pytest.raises(LeakageError, match=r"\['FLARE_INDEX'\].*allow_leaky_features"):
        load_source(config.data)


@pytest.mark.realdata
def test_quick_run_on_the_real_smarp_files(shared_data):
    folder = shared_data / "smarp"
    if len(list(folder.glob("smarp_[0-9].csv"))) != 5:
        pytest.skip(f"expected smarp_0..4.csv in {folder}")
    _, result = run_benchmark("--data", str(folder), "--quick", "--threads", "1", "--models", "lstm")
    assert 70_000 <= result["n_windows"] <= 76_000  # ~73,000 gap-free 24 h windows
    assert result["n_test_positive_regions"] >= 5 and result["n_test_positive"] > 50
    assert result["models"]["climatology"]["test_tss"] == 0
    # The keywords carry real signal: the summary-statistics baseline is far above chance.
    assert result["models"]["logistic-summary"]["val_tss"] > 0.6
    assert result["models"]["logistic-summary"]["test_tss"] > 0.3


def test_settings_study_chooses_each_outer_folds_variant_on_its_inner_validation(tables):
    spec = importlib.util.spec_from_file_location("smarp_settings", REPO / "benchmarks" / "smarp_settings.py")
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert settings.main(["--data", str(tables), "--quick", "--threads", "1", "--variants", "first", "chosen",
                              "--cv", "5"]) == 0
    result = json.loads(out.getvalue().strip().splitlines()[-1].removeprefix("RESULT "))
    assert list(result["variants"]) == ["lstm[first]", "lstm[chosen]", "logistic-summary", "logistic-last",
                                        "lstm[nested]"]
    assert result["overrides"] == {"first": ["training.class_weight=balanced", "prep.scaler=signed-log"], "chosen": []}
    chosen = result["chosen"]["lstm[nested]"]
    assert len(chosen) == 5 and set(chosen) <= {"lstm[first]", "lstm[chosen]"}
    # Each outer fold's pick is the variant with the higher inner validation TSS on that fold, and
    # the nested row's test scores are the picks' (never a choice made on the test folds).
    variants = result["variants"]
    for k, pick in enumerate(chosen):
        assert variants["lstm[nested]"]["test_tss_by_fold"][k] == variants[pick]["test_tss_by_fold"][k]


def test_nested_rotation_table_and_result_line(tables):
    text, result = run_benchmark("--data", str(tables), "--quick", "--threads", "1", "--models", "lstm",
                                 "--cv", str(N_FOLDS), "--nested", "--beyond")
    for key in ("best_model", "best_model_tss", "best_baseline", "best_baseline_tss", "paired_tss_diff",
                "paired_tss_p", "paired_prauc_diff", "paired_prauc_p"):
        assert key in result, key
    rows = result["models"]
    stack = "stack(wide-deep-lstm+logistic-last)"
    assert list(rows) == BASELINES + ["lstm", "wide-deep-lstm", stack, "best-baseline", "best-study-model",
                                      "best-sequence-model"]
    assert set(result["chosen"]["best-baseline"]) <= set(BASELINES)
    assert set(result["chosen"]["best-sequence-model"]) <= {"lstm", "wide-deep-lstm", stack}
    assert all(len(c) == N_FOLDS for c in result["chosen"].values())
    assert result["best_model_tss"] == rows["best-sequence-model"]["test_tss"]
    assert 0 <= result["paired_tss_p"] <= 1 and 0 <= result["paired_prauc_p"] <= 1
    assert "training.calibration=platt" in result["overrides"]  # the table's BSS is after calibration
    assert "paired bootstrap by region, best-sequence-model vs best-baseline" in text
