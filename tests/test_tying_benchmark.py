"""benchmarks/tying.py: the arms it compares, and a quick run end to end on small data.

Skill is not asserted (one epoch on a few hundred windows); the test checks the plan (which
models, widths and parameter counts meet), that every row and paired difference is printed
and recorded, and that the leakage columns of the tables are not inputs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flareseq.models import build_model, count_unique_parameters

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("tying_benchmark", REPO / "benchmarks" / "tying.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tying = _load_benchmark()


def write_smarp_like_tables(folder: Path, n_regions: int = 6, n_rows: int = 30) -> Path:
    """Five region-disjoint fold files with SMARP's columns; two regions per fold flare
    (label True on their last rows) after their flux grows."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for fold in range(5):
        frames = []
        for r in range(n_regions):
            flaring = r < 2
            t_end = pd.Timestamp("2001-01-01") + pd.Timedelta(days=7 * r + fold) \
                + pd.to_timedelta(96 * np.arange(n_rows), unit="min")
            growth = np.linspace(0, 1, n_rows) * (1.5 if flaring else 0.1)
            area = 300 * np.exp(growth + 0.1 * rng.standard_normal(n_rows))
            label = np.zeros(n_rows, dtype=bool)
            label[-6:] = flaring
            frames.append(pd.DataFrame({
                "prefix": "TARP", "arpnum": 1000 * fold + r,
                "t_start": (t_end - pd.Timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"),
                "t_end": t_end.strftime("%Y-%m-%d %H:%M:%S"), "label": label,
                "flares": np.where(label, "M1.2", ""), "FLARE_INDEX": np.where(label, 12.0, 0.0),
                "AREA": area, "USFLUX": area * 3e18, "MEANGBZ": 50 + 10 * rng.standard_normal(n_rows),
                "R_VALUE": np.clip(growth * 3 + 0.3 * rng.standard_normal(n_rows), 0, None),
            }))
        pd.concat(frames).to_csv(folder / f"smarp_{fold}.csv", index=False)
    return folder


def test_equal_parameter_width_is_the_closest_count():
    tied = count_unique_parameters(build_model("tied-stacked-lstm", 4, {"embedding_size": 25}))
    width = tying.equal_parameter_width("tied-stacked-lstm", 4, tied, {"tie_weights": False}, "embedding_size")
    gaps = {w: abs(count_unique_parameters(build_model("tied-stacked-lstm", 4, {"embedding_size": w,
                                                                               "tie_weights": False})) - tied)
            for w in range(10, 26)}
    assert width == min(gaps, key=gaps.get) == 18


def test_plan_on_four_features_widens_with_an_embedding():
    arms = {a.name: a for a in tying.plan_arms(4, 25)}
    assert arms["layers-tied"].params == {"embedding_size": 25}
    assert (arms["layers-tied"].n_parameters, arms["layers-untied-width"].n_parameters) == (5_351, 10_351)
    assert arms["layers-untied-size"].width == 18
    assert abs(arms["layers-untied-size"].n_parameters - 5_351) / 5_351 < 0.03
    # The study's own tied stack on 4 features stays as a reference: width 4, 165 parameters.
    assert (arms["layers-tied-width-f"].width, arms["layers-tied-width-f"].n_parameters) == (4, 165)
    assert arms["layers-untied-width-seed"].seed_offset == 1
    # Untying only the decoder adds 100 parameters on 4 features: no separate equal-size arm.
    assert "decoder-untied-size" not in arms
    for arm in arms.values():
        assert count_unique_parameters(build_model(arm.model, 4, arm.params)) == arm.n_parameters
        reference = tying.reference_of(arm, list(arms.values()))
        assert (reference is None) == (arm.role == "tied")


def test_plan_on_25_features_is_the_study_architecture():
    arms = {a.name: a for a in tying.plan_arms(25, 25, seed_control=False)}
    assert arms["layers-tied"].params == {} and arms["layers-tied"].n_parameters == 5_226
    assert arms["layers-untied-size"].params == {"hidden_size": 17, "tie_weights": False}
    assert "layers-tied-width-f" not in arms and "layers-untied-width-seed" not in arms
    assert arms["all-tied"].n_parameters == 5_901


def test_quick_run_prints_every_row_and_a_result(tmp_path, capsys):
    data = write_smarp_like_tables(tmp_path / "smarp")
    code = tying.main(["--quick", "--data", str(data), "--synthetic-samples", "600", "--families", "layers", "all"])
    assert code == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1].removeprefix("RESULT "))
    assert result["quick"] is True and result["cpu"] and result["wall_seconds"] > 0
    assert result["smarp"]["features"] == ["AREA", "USFLUX", "MEANGBZ", "R_VALUE"]  # no flares, no FLARE_INDEX
    for part, n_features in (("smarp", 4), ("synthetic", 25)):
        rows = result[part]["rows"]
        planned = tying.plan_arms(n_features, 4, families=("layers", "all"))
        assert [r["name"] for r in rows] == [a.name for a in planned]
        for row in rows:
            assert -1.0 <= row["tss"] <= 1.0 and 0.0 <= row["pr_auc"] <= 1.0
            if row["role"] != "tied":
                paired = row["paired"]["tss"]
                assert paired["low"] <= paired["difference"] <= paired["high"]
                assert 0.0 <= paired["p_first_better"] <= 1.0
        untied = [r["name"] for r in rows if r["role"].startswith("untied")]
        assert sorted(result[part]["verdicts"]) == sorted(untied)
    assert result["synthetic"]["configurations"] == ["c1", "c2", "c3"]
    assert all(r["n_runs"] == 3 for r in result["synthetic"]["rows"])
    assert all(r["n_runs"] == 2 for r in result["smarp"]["rows"])  # --quick rotates over 2 fold groups
    assert "untied, equal parameters" in out and "seed control" in out
