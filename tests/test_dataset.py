import numpy as np
import pytest

from flareseq.data.dataset import FlareDataset, concat_datasets, empty_meta
from flareseq.errors import FlareseqError


def make(n=4, t=3, f=2, y=True):
    rng = np.random.default_rng(0)
    return FlareDataset(
        X=rng.normal(size=(n, t, f)).astype(np.float32),
        y=(np.arange(n) % 2).astype(np.int8) if y else None,
        ids=np.array([str(i) for i in range(n)]),
        feature_names=tuple(f"p{i}" for i in range(f)),
        meta=empty_meta(n),
    )


def test_sizes_and_subset():
    ds = make()
    assert (ds.n_samples, ds.n_timesteps, ds.n_features, ds.n_positive) == (4, 3, 2, 2)
    sub = ds.subset(np.array([True, False, False, True]))
    assert list(sub.ids) == ["0", "3"] and list(sub.y) == [0, 1] and len(sub.meta) == 2


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(X=np.zeros((2, 3), np.float32)), "3-dimensional"),
        (dict(X=np.zeros((4, 3, 2), np.float64)), "float32"),
        (dict(y=np.array([0, 1, 2, 0], np.int8)), "must hold 0, 1"),
        (dict(feature_names=("a",)), "1 feature names for 2"),
        (dict(ids=np.array(["a"])), "ids must have shape"),
    ],
)
def test_invalid_containers_are_refused(change, match):
    ds = make()
    fields = dict(X=ds.X, y=ds.y, ids=ds.ids, feature_names=ds.feature_names, meta=ds.meta)
    fields.update(change)
    with pytest.raises(FlareseqError, match=match):
        FlareDataset(**fields)


def test_concat_marks_unlabelled_samples():
    both = concat_datasets([make(), make(y=False)])
    assert both.n_samples == 8 and both.n_unlabelled == 4 and not both.is_labelled
    assert both.labelled().n_samples == 4


def test_select_features_orders_by_name():
    ds = make()
    sel = ds.select_features(["p1", "p0"])
    np.testing.assert_array_equal(sel.X[:, :, 0], ds.X[:, :, 1])
    with pytest.raises(FlareseqError, match="unknown feature"):
        ds.select_features(["nope"])
