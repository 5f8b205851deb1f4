"""The study's own sample layouts, kept for reproduction only.

"Staring into the Sun" flattened each 60 x 25 sample into 60 rows that all carried the
sample's label, then either trained on single rows (sequence length 1) or cut windows over
the flattened rows with the Keras-book generator (``lookback=600`` rows, ``step=6``,
``delay=300``), so a window mixes up to 11 samples and its target is the label of a row 300
rows later -- usually another sample's. Both are flaws (SPEC section 2): flareseq's default is
one sequence per sample. These functions rebuild the flawed layouts so the study's figures can
be reproduced and compared, and they say so in their names.
"""

from __future__ import annotations

import numpy as np

from flareseq.data.dataset import FlareDataset, empty_meta
from flareseq.errors import ConfigError

LAYOUTS = ("sequence", "study-rows", "study-windows")


def to_study_rows(dataset: FlareDataset, *, drop_missing_rows: bool = False) -> FlareDataset:
    """Every time step a sample of length 1 that carries its sample's label.

    ``drop_missing_rows`` drops the rows with any missing value, as the study's ``dropna``
    on its flattened table did (notebook cell [41]).
    """
    n, t, f = dataset.X.shape
    rows = dataset.X.reshape(n * t, 1, f)
    meta = dataset.meta.loc[dataset.meta.index.repeat(t)].reset_index(drop=True)
    out = FlareDataset(
        X=rows,
        y=None if dataset.y is None else np.repeat(dataset.y, t),
        ids=np.array([f"{i}#{step}" for i in dataset.ids for step in range(t)]),
        feature_names=dataset.feature_names,
        meta=meta,
    )
    return out.subset(~np.isnan(rows).any(axis=(1, 2))) if drop_missing_rows else out


def to_study_windows(
    dataset: FlareDataset,
    *,
    lookback: int = 600,
    step: int = 6,
    delay: int = 300,
    n_windows: int | None = None,
    random_state: int = 0,
    drop_missing_rows: bool = False,
    label_as_input: bool = False,
) -> FlareDataset:
    """Windows over the flattened rows as the study's generator cut them (notebook cell [30]).

    Window ``k`` ends at a flattened row ``i`` (drawn at random, as the shuffled generator
    drew them): its input is ``rows[i - lookback : i : step]`` and its target the label of
    row ``i + delay``. ``n_windows`` defaults to the number of samples, so the layout holds as
    many sequences as the proper one. ``drop_missing_rows`` first drops the rows with a
    missing value (the study's ``dropna``, cell [41]). ``label_as_input`` appends each row's
    label as a last input column named ``label``, as the study's generator-fed models had it
    (its ``train2`` arrays carried ``classNum`` beside the 25 parameters, cell [42]): a leak.
    """
    if lookback <= 0 or step <= 0 or delay < 0 or lookback % step:
        raise ConfigError(
            f"study windows need lookback > 0, step > 0 dividing it, delay >= 0; "
            f"got lookback={lookback}, step={step}, delay={delay}."
        )
    if dataset.y is None:
        raise ConfigError("study windows take their targets from labels; this dataset has none.")
    n, t, f = dataset.X.shape
    rows = dataset.X.reshape(n * t, f)
    row_labels = np.repeat(dataset.y, t)
    if drop_missing_rows:
        keep = ~np.isnan(rows).any(axis=1)
        rows, row_labels = rows[keep], row_labels[keep]
    feature_names = tuple(dataset.feature_names)
    if label_as_input:
        rows = np.column_stack([rows, row_labels.astype(rows.dtype)])
        feature_names += ("label",)
    first, last = lookback, len(rows) - delay - 1
    if last < first:
        raise ConfigError(
            f"too few rows ({len(rows)}) for study windows of lookback {lookback} and delay {delay}."
        )
    rng = np.random.default_rng(random_state)
    ends = np.sort(rng.integers(first, last + 1, size=n_windows or n))
    offsets = np.arange(-lookback, 0, step)
    X = rows[ends[:, None] + offsets[None, :]]  # (n_windows, lookback // step, F)
    return FlareDataset(
        X=np.ascontiguousarray(X, dtype=np.float32),
        y=row_labels[ends + delay].astype(np.int8),
        ids=np.array([f"row{e}" for e in ends]),
        feature_names=feature_names,
        meta=empty_meta(len(ends)),
    )


def apply_layout(dataset: FlareDataset, layout: str, **window_options) -> FlareDataset:
    """The dataset in ``layout``: ``"sequence"`` (unchanged), ``"study-rows"``, ``"study-windows"``."""
    if layout == "sequence":
        return dataset
    if layout == "study-rows":
        return to_study_rows(dataset)
    if layout == "study-windows":
        return to_study_windows(dataset, **window_options)
    raise ConfigError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}.")
