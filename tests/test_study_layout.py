import numpy as np
import pytest

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.errors import ConfigError
from flareseq.prep.layout import apply_layout, to_study_rows, to_study_windows


def make(n=30, t=60, f=2):
    X = np.arange(n * t * f, dtype=np.float32).reshape(n, t, f)
    return FlareDataset(X=X, y=(np.arange(n) % 3 == 0).astype(np.int8), ids=np.arange(n).astype(str),
                        feature_names=("a", "b"), meta=empty_meta(n))


def test_rows_carry_their_sample_label():
    ds = make()
    rows = to_study_rows(ds)
    assert rows.X.shape == (30 * 60, 1, 2)
    np.testing.assert_array_equal(rows.X[61, 0], ds.X[1, 1])
    assert rows.y[0] == 1 and rows.y[60] == 0 and rows.y[180] == 1 and rows.y[179] == 0


def test_windows_cross_sample_boundaries_like_the_study():
    ds = make()
    win = to_study_windows(ds, n_windows=50, random_state=3)
    assert win.X.shape == (50, 100, 2)
    flat = ds.X.reshape(-1, 2)
    end = int(win.ids[0][3:])
    np.testing.assert_array_equal(win.X[0], flat[end - 600:end:6])
    # The target is the label of the row 300 rows after the window end: another sample's.
    assert win.y[0] == ds.y[(end + 300) // 60]


def test_layout_errors():
    with pytest.raises(ConfigError, match="unknown layout"):
        apply_layout(make(), "rows")
    with pytest.raises(ConfigError, match="too few rows"):
        to_study_windows(make(n=5))
