import numpy as np
import pytest

from flareseq.errors import NotFittedError
from flareseq.prep.scaling import Scaler


def test_scaler_uses_training_statistics_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    train = (rng.normal(5, 3, size=(50, 10, 3))).astype(np.float32)
    train[0, 0, 0] = np.nan
    test = (rng.normal(5, 3, size=(20, 10, 3))).astype(np.float32)
    scaler = Scaler().fit(train, ["a", "b", "c"])
    scaled = scaler.transform(train)
    assert np.isnan(scaled[0, 0, 0])
    assert np.allclose(np.nanmean(scaled, axis=(0, 1)), 0, atol=1e-5)
    assert np.allclose(np.nanstd(scaled, axis=(0, 1)), 1, atol=1e-4)
    scaler.save(tmp_path / "s.json")
    again = Scaler.load(tmp_path / "s.json")
    np.testing.assert_array_equal(again.transform(test), scaler.transform(test))


def test_signed_log_on_named_features_only():
    X = np.array([[[1e20, -2.0], [-1e20, 3.0]]], dtype=np.float32)
    scaler = Scaler(signed_log=["a"], with_std=False).fit(X, ["a", "b"])
    assert scaler.log_mask_.tolist() == [True, False]
    assert np.allclose(scaler.transform(X)[0, :, 1], [-2.5, 2.5])


def test_constant_feature_maps_to_zero_and_unfitted_raises():
    with pytest.raises(NotFittedError):
        Scaler().transform(np.zeros((1, 1, 1), np.float32))
    out = Scaler().fit_transform(np.ones((3, 2, 1), np.float32))
    assert np.all(out == 0)
