"""FlareClassifier beyond the shared contract: scaling, determinism, study mode, devices, files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.errors import ConfigError, FlareseqError
from flareseq.training.estimator import FlareClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"hidden_size": 4, "dropout": 0.1, "recurrent_dropout": 0.1}


def _data(n=48, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, 5, 3)) * scale + 100.0).astype(np.float32)
    y = (X[:, -1, 1] > 100.0).astype(np.int8)
    return X, y


def _clf(**kwargs):
    return FlareClassifier("lstm", TINY, **{"epochs": 2, "batch_size": 16, "progress": False, "threshold_metric": "",
                                            "early_stopping": False, **kwargs})


def test_same_random_state_same_history_other_state_differs():
    X, y = _data()
    a = _clf(random_state=7).fit(X, y, X_val=X, y_val=y)
    b = _clf(random_state=7).fit(X, y, X_val=X, y_val=y)
    c = _clf(random_state=8).fit(X, y, X_val=X, y_val=y)
    assert a.history_["loss"] == b.history_["loss"]
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_fit_leaves_global_torch_state_alone():
    X, y = _data()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    _clf(n_threads=1).fit(X, y)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_preparation_is_fitted_on_training_data_only():
    X, y = _data()
    Xv, yv = _data(n=16, seed=1, scale=50.0)
    clf = _clf().fit(X, y, X_val=Xv, y_val=yv)
    np.testing.assert_allclose(clf.preparation_.scaler_.mean_, X.reshape(-1, 3).mean(axis=0), rtol=1e-5)
    assert _clf(scaler="none").fit(X, y).preparation_.scaler_ is None
    assert _clf(scaler="signed-log").fit(X, y).preparation_.scaler_.log_mask_.all()


def test_accepts_a_flare_dataset_and_takes_features_by_name():
    X, y = _data()
    names = ("USFLUX", "TOTPOT", "R_VALUE")
    ds = FlareDataset(X=X, y=y, ids=np.arange(len(X)).astype(str), feature_names=names, meta=empty_meta(len(X)))
    clf = _clf().fit(ds)
    assert clf.feature_names_in_ == names
    np.testing.assert_array_equal(clf.predict_proba(ds), clf.predict_proba(X))
    assert clf.scores(ds)["n"] == len(X)  # a labelled dataset carries its own labels
    reordered = ds.select_features(["R_VALUE", "USFLUX", "TOTPOT"])
    np.testing.assert_array_equal(clf.predict_proba(reordered), clf.predict_proba(ds))
    with pytest.raises(FlareseqError, match=r"lacks feature\(s\) \['TOTPOT'\]"):
        clf.predict_proba(ds.select_features(["USFLUX", "R_VALUE"]))
    bad = X.copy()
    bad[2, 3, 2] = np.inf
    with pytest.raises(FlareseqError, match="first at sample 2, step 3, feature R_VALUE"):
        clf.predict_proba(FlareDataset(X=bad, y=None, ids=ds.ids, feature_names=names, meta=empty_meta(len(X))))


def test_study_configuration_runs():
    X, y = _data()
    clf = _clf(class_weight={0: 1, 1: 5}, batching="sampled", steps_per_epoch=3, validation_steps=1, epochs=3)
    clf.fit(X, y, X_val=X, y_val=y)
    assert clf.history_["samples"] == [48, 48, 48]
    assert len(clf.history_["val_tss"]) == 3


def test_early_stopping_records_best_epoch():
    X, y = _data()
    clf = _clf(epochs=6, early_stopping=True, patience=1, monitor="val_tss", optimizer="adam").fit(X, y, X_val=X, y_val=y)
    assert clf.best_epoch_ == int(np.nanargmax(clf.history_["val_tss"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model": "gru"}, "unknown model 'gru'"),
        ({"scaler": "minmax"}, r"scaler must be one of \['zscore', 'signed-log', 'none'\]"),
        ({"device": "tpu"}, "device must be 'auto', 'cpu' or 'cuda"),
        ({"class_weight": "heavy"}, r"class_weight must be \{\} \(none\), 'balanced'"),
        ({"batching": "random"}, r"batching must be one of \['shuffle', 'balanced', 'full-pass', 'sampled', 'blocks'\]"),
        ({"threshold": 1.5}, r"threshold must be in \[0, 1\]"),
        ({"model_params": {"width": 3}}, r"no parameter\(s\) \['width'\]"),
    ],
)
def test_configuration_errors(kwargs, match):
    X, y = _data()
    params = {"model": "lstm", "model_params": TINY, "epochs": 1, "progress": False, "threshold_metric": "",
              "early_stopping": False, **kwargs}
    with pytest.raises(ConfigError, match=match):
        FlareClassifier(**params).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error():
    X, y = _data()
    with pytest.raises(ConfigError, match="CUDA is not available here"):
        _clf(device="cuda").fit(X, y)


def test_saved_folder_has_json_and_one_copy_of_each_tied_tensor(tmp_path):
    X, y = _data()
    clf = FlareClassifier("embed-tied-stacked-lstm", {"embedding_size": 4}, epochs=1, progress=False,
                          class_weight={0: 1, 1: 5}, threshold_metric="", early_stopping=False).fit(X, y)
    clf.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["params"]["model"], config["params"]["model_params"], config["n_features"]) == (
        "embed-tied-stacked-lstm", {"embedding_size": 4}, 3)
    assert config["params"]["class_weight"] == {"0": 1.0, "1": 5.0}
    with safe_open(tmp_path / "weights.safetensors", framework="pt") as f:
        keys = set(f.keys())
    assert len({"lstms.0.weight_ih", "lstms.1.weight_ih"} & keys) == 1
    loaded = FlareClassifier.load(tmp_path, device="cpu")
    assert loaded.class_weight == {0: 1.0, 1: 5.0}
    assert loaded.model_.lstms[1].weight_ih is loaded.model_.lstms[0].weight_ih


def test_load_refuses_other_folders(tmp_path):
    with pytest.raises(FlareseqError, match="is not a saved FlareClassifier: config.json is missing"):
        FlareClassifier.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FlareseqError, match="expected format 'flareseq-classifier' version 2"):
        FlareClassifier.load(tmp_path)


def test_history_is_a_table():
    X, y = _data()
    history = pd.DataFrame(_clf().fit(X, y, X_val=X, y_val=y).history_)
    assert len(history) == 2
    assert {"loss", "tss", "hss2", "val_loss", "val_recall"} <= set(history.columns)


def test_infinity_check_reports_position_across_chunks():
    from flareseq.prep.preparation import check_no_infinity

    X = np.zeros((9000, 2, 2), dtype=np.float32)
    X[8500, 1, 0] = -np.inf
    X[8999, 0, 1] = np.inf
    X[10, 0, 0] = np.nan  # a missing value, not an error
    with pytest.raises(FlareseqError, match=r"2 infinite value\(s\) in 2 sample\(s\), the first at sample 8500, step 1"):
        check_no_infinity(X, ("a", "b"))
