"""The vectorised windowing agrees with a plain per-region loop on random tables (Hypothesis).

The reference below walks back from each candidate row one step at a time, which is easy to
check by reading; the reader does the same with cumulative sums and searchsorted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flareseq.data.tables.windows import DROP_REASONS, TableSpec, build_table_windows

CADENCE = 10.0  # minutes
T0 = pd.Timestamp("2002-05-01")


def reference_windows(frame: pd.DataFrame, spec: TableSpec):
    """{id: (X, y, n_missing)} and drop counts, one region and one window at a time."""
    N, k = spec.window, spec.max_missing_steps
    kept, dropped = {}, dict.fromkeys(DROP_REASONS, 0)
    for region, rows in frame.groupby("harp", sort=True):
        rows = rows.sort_values("time").reset_index(drop=True)
        minutes = (pd.to_datetime(rows["time"]) - T0).dt.total_seconds().to_numpy() / 60
        values = rows[["a", "b"]].to_numpy(dtype=float)
        region_kept = []
        for i in range(len(rows)):
            if pd.isna(rows["label"].iat[i]):
                continue
            offsets = {0: i}  # slots back from the end -> row
            reason, p, j = None, 0, i
            while p < N - 1:
                if j == 0:
                    reason = "too_short"
                    break
                steps = (minutes[j] - minutes[j - 1]) / CADENCE
                m = round(steps)
                if m < 1 or abs(steps - m) * CADENCE > spec.tolerance_minutes:
                    reason = "irregular"
                    break
                if m - 1 > k:
                    reason = "gap"
                    break
                p += m
                j -= 1
                offsets[p] = j
            n_missing = N - sum(1 for q in offsets if q <= N - 1)
            if reason is None and n_missing > k:
                reason = "gap"
            if reason is None:
                X = np.empty((N, 2))
                used = set()
                for q in range(N):
                    if q in offsets:
                        X[N - 1 - q] = values[offsets[q]]
                        used.add(offsets[q])
                    else:
                        later = max(o for o in offsets if o < q)
                        earlier = min(o for o in offsets if o > q)
                        w = (earlier - q) / (earlier - later)  # weight of the later row
                        X[N - 1 - q] = w * values[offsets[later]] + (1 - w) * values[offsets[earlier]]
                        used.update((offsets[later], offsets[earlier]))
                if spec.nan_policy == "drop" and np.isnan(values[sorted(used)]).any():
                    reason = "nan"
            if reason is not None:
                dropped[reason] += 1
                continue
            end = pd.Timestamp(rows["time"].iat[i]).strftime("%Y-%m-%dT%H:%M:%S")
            region_kept.append((f"{region}@{end}", (X, int(rows["label"].iat[i]), n_missing)))
        for rank, (key, value) in enumerate(region_kept):
            if rank % spec.stride:
                dropped["stride"] += 1
            else:
                kept[key] = value
    return kept, dropped


@st.composite
def tables(draw):
    rows = []
    for region in range(draw(st.integers(1, 3))):
        t = draw(st.integers(0, 5)) * CADENCE
        for _ in range(draw(st.integers(1, 14))):
            rows.append({
                "harp": 100 + region, "time": (T0 + pd.Timedelta(minutes=t)).isoformat(sep=" "),
                "a": draw(st.one_of(st.floats(-1e3, 1e3, width=32), st.just(np.nan))) if draw(st.booleans()) else 1.0,
                "b": draw(st.floats(0, 1e6, width=32)),
                "label": draw(st.sampled_from([0, 1, 1, 0, None])),
            })
            # Mostly one cadence; sometimes a gap of 2-4 steps, an off-grid step or jitter.
            t += CADENCE * draw(st.sampled_from([1, 1, 1, 1, 2, 3, 4, 1.5, 1.05]))
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frame=tables(),
    window=st.integers(1, 5),
    k=st.integers(0, 3),
    stride=st.integers(1, 3),
    nan_policy=st.sampled_from(["drop", "keep"]),
)
def test_vectorised_windows_match_the_reference(tmp_path_factory, frame, window, k, stride, nan_policy):
    spec = TableSpec(region_columns=["harp"], time_column="time", features=["a", "b"], label_column="label",
                     cadence_minutes=CADENCE, window=window, max_missing_steps=min(k, window - 1), stride=stride,
                     nan_policy=nan_policy)
    path = tmp_path_factory.mktemp("ref") / "t.csv"
    frame.to_csv(path, index=False)
    result = build_table_windows(path, spec, progress=False)
    expected, dropped = reference_windows(frame, spec)
    data = result.dataset
    assert list(data.ids) == list(expected)  # same windows, in region then time order
    assert result.report.dropped == dropped
    for i, key in enumerate(data.ids):
        X, y, n_missing = expected[key]
        np.testing.assert_allclose(data.X[i], X.astype(np.float32), rtol=1e-5, atol=1e-3, equal_nan=True)
        assert data.y[i] == y and data.meta["n_interpolated"].iat[i] == n_missing
