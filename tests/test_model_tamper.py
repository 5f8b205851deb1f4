"""Damaged or tampered model folders give flareseq's one-paragraph error, never a traceback
from the file's parser (issue 16 item 6); nothing is ever unpickled."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flareseq.cli import main
from flareseq.data.synthetic import synthetic_dataset
from flareseq.errors import FlareseqError
from flareseq.training.estimator import FlareClassifier
from flareseq.training.forecaster import Forecaster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    data = synthetic_dataset(120, seed=3)
    folders = {}
    for name, params in (("lstm", {"hidden_size": 4}), ("logistic-last", None)):
        clf = FlareClassifier(name, params, epochs=1, threshold_metric="", early_stopping=False,
                              progress=False).fit(data)
        forecaster = Forecaster(clf, feature_names=data.feature_names, n_timesteps=60, name=name)
        folders[name] = forecaster.save(tmp_path_factory.mktemp(name) / "model")
    return folders, data


def _copy(saved_folder, tmp_path):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(saved_folder, target)
    return target


def _flip(path, at=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("tamper, match", [
    (lambda f: f.joinpath("classifier/weights.safetensors").write_bytes(
        f.joinpath("classifier/weights.safetensors").read_bytes()[:100]), r"weights.safetensors: expected the weights"),
    (lambda f: _flip(f / "classifier/weights.safetensors", at=3), r"weights.safetensors: expected the weights"),
    (lambda f: f.joinpath("classifier/config.json").write_text("{not json"), r"config.json: expected the FlareClassifier.s JSON"),
    (lambda f: f.joinpath("classifier/config.json").write_text(
        json.dumps({**json.loads(f.joinpath("classifier/config.json").read_text()), "n_features": "many"})),
     r"config.json: the saved configuration is damaged or was edited"),
    (lambda f: f.joinpath("classifier/config.json").write_text(
        json.dumps({**json.loads(f.joinpath("classifier/config.json").read_text()), "preparation": None})),
     r"config.json: the saved configuration is damaged or was edited"),
    (lambda f: f.joinpath("forecaster.json").write_text("[1, 2]"), r"forecaster.json: expected format"),
])
def test_tampered_network_folders_are_clear_errors(saved, tmp_path, tamper, match):
    folder = _copy(saved[0]["lstm"], tmp_path)
    tamper(folder)
    with pytest.raises(FlareseqError, match=match):
        Forecaster.load(folder)


def test_tampered_baseline_arrays_are_a_clear_error(saved, tmp_path):
    folder = _copy(saved[0]["logistic-last"], tmp_path)
    (folder / "classifier" / "arrays.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(FlareseqError, match=r"arrays.npz: expected the baseline's arrays"):
        Forecaster.load(folder)


def test_an_untouched_folder_loads_and_forecasts_as_saved(saved):
    folders, data = saved
    for folder in folders.values():
        p = Forecaster.load(folder).predict_proba(data)
        assert p.shape == (120,) and np.isfinite(p).all()


def test_the_cli_prints_one_paragraph_and_exits_2(saved, tmp_path, capsys):
    folders, _ = saved
    folder = _copy(folders["lstm"], tmp_path)
    _flip(folder / "classifier" / "weights.safetensors", at=3)
    data = tmp_path / "x.jsonl"
    from flareseq.data.synthetic import write_synthetic_kaggle

    write_synthetic_kaggle(data, 3, seed=1)
    assert main(["predict", str(folder), "--data", str(data), "--out", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flareseq predict: error: ") and "Traceback" not in err and err.count("\n") == 1
