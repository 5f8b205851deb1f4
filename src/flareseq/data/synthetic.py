"""Synthetic flare data in the Kaggle layout: seeded, fast, and learnable only from dynamics.

Each sample is drawn from a few latent per-sample quantities:

- ``activity`` (size and complexity of the region) sets the level of every parameter;
- ``nuisance`` shifts the level of the extensive (total) parameters independently of the
  label, so that a single snapshot cannot tell a large quiet region from a growing one;
- ``flux_growth`` and ``helicity_growth`` make unsigned flux and current helicity grow (or
  decay) over the 12 h window.

The label is ``activity + helicity growth + flux growth + noise`` thresholded so that ~16 %
of samples are positive (as in the study's folds). The growth terms are visible only in
how the series evolve, so a sequence model (or a slope feature) can beat a last-step
snapshot; the noise keeps even the generating rule at a TSS of about 0.75, not 1.

Magnitudes follow the real SWAN-SF samples: each parameter's median scale, sign
conventions (TOTFZ and EPSZ negative, TOTFX/TOTFY/MEANJZH/... of either sign), log-normal
spread across regions (heavy tails), AR(1) noise of the observed within-window size, rare
missing values and occasionally one entirely empty time step (a real quirk).

Samples are generated in fixed blocks of :data:`BLOCK_SIZE`, each from its own seeded
stream, so the first ``n`` samples are the same whatever the batch size or file size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset, concat_datasets, empty_meta
from flareseq.data.schema import CADENCE_MINUTES, KAGGLE_PARAMETERS, N_KAGGLE_TIMESTEPS
from flareseq.errors import ConfigError

BLOCK_SIZE = 1024
POSITIVE_RATE = 0.16
FOLD_SHARES = (76_773 / 196_260, 92_481 / 196_260, 27_006 / 196_260)  # the study's fold sizes
_EPOCH = pd.Timestamp("2010-05-01")

# name: (median |value|, kind, sign, spread across regions (ln), within-window noise (cv))
# kinds: "flux"/"helicity" grow with the sample's growth terms; "level" only follows activity.
_PARAMETERS = {
    "TOTUSJH": (1.75e3, "helicity", 1, 1.3, 0.03),
    "TOTBSQ": (2.2e10, "flux", 1, 1.2, 0.025),
    "TOTPOT": (2.9e23, "flux", 1, 1.4, 0.03),
    "TOTUSJZ": (3.7e13, "helicity", 1, 1.1, 0.03),
    "ABSNJZH": (2.2e2, "helicity", 1, 1.4, 0.10),
    "SAVNCPP": (7.1e12, "helicity", 1, 1.3, 0.15),
    "USFLUX": (2.5e22, "flux", 1, 1.0, 0.025),
    "TOTFZ": (4.9e24, "flux", -1, 1.2, 0.06),
    "MEANPOT": (6.4e3, "level", 1, 0.5, 0.04),
    "EPSZ": (0.31, "level", -1, 0.6, 0.05),
    "MEANSHR": (36.6, "level", 1, 0.15, 0.02),
    "SHRGT45": (29.2, "level", 1, 0.4, 0.03),
    "MEANGAM": (46.0, "level", 1, 0.12, 0.015),
    "MEANGBT": (107.0, "level", 1, 0.15, 0.025),
    "MEANGBZ": (113.0, "level", 1, 0.15, 0.025),
    "MEANGBH": (67.5, "level", 1, 0.2, 0.03),
    "MEANJZH": (6.9e-3, "helicity", 0, 0.7, 0.15),
    "TOTFY": (8.0e23, "flux", 0, 1.2, 0.12),
    "MEANJZD": (0.175, "level", 0, 1.0, 0.5),
    "MEANALP": (2.1e-2, "level", 0, 0.7, 0.15),
    "TOTFX": (1.4e24, "flux", 0, 1.2, 0.12),
    "EPSY": (4.2e-2, "level", 0, 0.8, 0.12),
    "EPSX": (0.108, "level", 0, 0.6, 0.12),
    "R_VALUE": (4.3, "rvalue", 1, 0.0, 0.02),
    "XR_MAX": (9.6e-7, "xray", 1, 0.8, 0.3),
}
assert tuple(_PARAMETERS) == KAGGLE_PARAMETERS

# Label rule weights (activity, helicity growth, flux growth, noise); the threshold is the
# 84th percentile of the score's normal distribution.
_WEIGHTS = np.array([0.8, 1.0, 0.6, 0.75])
_THRESHOLD = 0.9945 * float(np.sqrt((_WEIGHTS**2).sum()))
_GROWTH = {"flux": 0.12, "helicity": 0.25}  # ln change over the window per unit of growth
_MISSING_RATE = 1e-4
_EMPTY_STEP_RATE = 0.02


def _block(seed: int, block: int, n_timesteps: int, fold_shares) -> dict:
    """Samples ``block*BLOCK_SIZE ... +BLOCK_SIZE`` as float64 arrays and labels."""
    rng = np.random.default_rng([seed, block])
    B, T, F = BLOCK_SIZE, n_timesteps, len(KAGGLE_PARAMETERS)
    activity, nuisance, g_flux, g_hel, noise = rng.standard_normal((5, B))
    tau = np.linspace(0.0, 1.0, T)
    X = np.empty((B, T, F), dtype=np.float64)
    for j, (scale, kind, sign, spread, cv) in enumerate(_PARAMETERS.values()):
        # AR(1) noise in log space: smooth, as consecutive 12-minute SHARP values are
        e = rng.standard_normal((B, T))
        phi = 0.9
        for t in range(1, T):
            e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * e[:, t]
        level = spread * (0.8 * activity + 0.6 * nuisance) if kind in ("flux", "helicity") else spread * (
            0.6 * activity + 0.8 * rng.standard_normal(B))
        trend = 0.0
        if kind == "flux":
            trend = _GROWTH["flux"] * g_flux[:, None] * tau
        elif kind == "helicity":
            trend = _GROWTH["helicity"] * g_hel[:, None] * tau
        if kind == "rvalue":  # log of flux near polarity inversion lines: bounded, rises with activity
            values = np.clip(3.6 + 1.1 * activity[:, None] + 0.25 * g_hel[:, None] * tau + cv * 3 * e, 0.0, 6.0)
        elif kind == "xray":  # GOES background: log-normal with occasional bursts
            burst = (rng.random((B, T)) < 0.01) * rng.exponential(1.5, (B, T))
            values = scale * np.exp(0.4 * activity[:, None] + 0.5 * spread * rng.standard_normal(B)[:, None]
                                    + cv * e + burst)
        else:
            values = scale * np.exp(level[:, None] + trend + cv * e)
            if sign == -1:
                values = -values
            elif sign == 0:  # either sign, fixed per sample (the field's orientation)
                values *= np.where(rng.random(B) < 0.5, -1.0, 1.0)[:, None]
        X[:, :, j] = values
    score = _WEIGHTS @ np.stack([activity, g_hel, g_flux, noise])
    y = (score > _THRESHOLD).astype(np.int8)
    # missing values: scattered NaN, and now and then a time step with no SHARP data at all
    X[rng.random((B, T, F)) < _MISSING_RATE] = np.nan
    empty = np.flatnonzero(rng.random(B) < _EMPTY_STEP_RATE)
    X[empty, rng.integers(0, T, empty.size), : F - 1] = np.nan
    fold = 1 + np.searchsorted(np.cumsum(fold_shares) / np.sum(fold_shares), rng.random(B), side="right")
    fold = np.minimum(fold, len(fold_shares))
    goes = _goes_classes(rng, y)
    region = rng.integers(1, 7500, B)
    return {"X": X, "y": y, "fold": fold.astype(np.int64), "goes_class": goes, "region": region}


def _goes_classes(rng, y: np.ndarray) -> np.ndarray:
    n = y.size
    magnitude = np.round(rng.uniform(1.0, 9.9, n), 1)
    negative = rng.choice(np.array(["NF", "B", "C"]), size=n, p=[0.5, 0.2, 0.3])
    positive = np.where(rng.random(n) < 0.1, "X", "M")
    classes = np.where(y == 1, positive, negative)
    return np.array([c if c == "NF" else f"{c}{m}" for c, m in zip(classes, magnitude)], dtype=object)


def iter_synthetic_arrays(n_samples: int, *, seed: int = 0, n_timesteps: int = N_KAGGLE_TIMESTEPS,
                          fold_shares=FOLD_SHARES) -> Iterator[tuple[int, dict]]:
    """``(first sample index, block dict)`` for ``n_samples`` samples, in blocks (float64 X)."""
    if n_samples < 0:
        raise ConfigError(f"n_samples must be >= 0, got {n_samples}.")
    for block in range((n_samples + BLOCK_SIZE - 1) // BLOCK_SIZE):
        arrays = _block(seed, block, n_timesteps, fold_shares)
        keep = min(BLOCK_SIZE, n_samples - block * BLOCK_SIZE)
        yield block * BLOCK_SIZE, {k: v[:keep] for k, v in arrays.items()}


def _to_dataset(start: int, arrays: dict, n_timesteps: int) -> FlareDataset:
    n = len(arrays["y"])
    meta = empty_meta(n)
    meta["source"] = pd.array(["synthetic"] * n, dtype="string")
    meta["fold"] = pd.array(arrays["fold"], dtype="Int64")
    meta["region"] = pd.array([str(r) for r in arrays["region"]], dtype="string")
    starts = _EPOCH + pd.to_timedelta(np.arange(start, start + n) * 60, unit="min")
    meta["start"] = pd.DatetimeIndex(starts).astype("datetime64[ns]")
    meta["end"] = meta["start"] + pd.Timedelta(minutes=CADENCE_MINUTES * (n_timesteps - 1))
    meta["goes_class"] = pd.array(list(arrays["goes_class"]), dtype="string")
    return FlareDataset(X=arrays["X"].astype(np.float32), y=arrays["y"],
                        ids=np.array([str(i) for i in range(start + 1, start + n + 1)]),
                        feature_names=KAGGLE_PARAMETERS, meta=meta)


def synthetic_dataset(n_samples: int, *, seed: int = 0, n_timesteps: int = N_KAGGLE_TIMESTEPS,
                      fold_shares=FOLD_SHARES) -> FlareDataset:
    """``n_samples`` synthetic samples in memory, identical to reading a file written by
    :func:`write_synthetic_kaggle` with the same ``n_samples`` and ``seed``."""
    parts = [_to_dataset(start, arrays, n_timesteps)
             for start, arrays in iter_synthetic_arrays(n_samples, seed=seed, n_timesteps=n_timesteps,
                                                        fold_shares=fold_shares)]
    if not parts:
        return _to_dataset(0, {"X": np.empty((0, n_timesteps, len(KAGGLE_PARAMETERS))), "y": np.empty(0, np.int8),
                               "fold": np.empty(0, np.int64), "goes_class": np.empty(0, object),
                               "region": np.empty(0, np.int64)}, n_timesteps)
    return concat_datasets(parts)


def _line_template(n_timesteps: int, labelled: bool) -> tuple[str, str]:
    head = '{"id": %d, "classNum": %d, "fold": %d, "values": {' if labelled else '{"id": %d, "fold": %d, "values": {'
    series = ", ".join(f'"{t}": %r' for t in range(n_timesteps))
    body = ", ".join(f'"{p}": {{{series}}}' for p in KAGGLE_PARAMETERS) + "}}\n"
    return head, body


def write_synthetic_kaggle(path: str | PathLike[str], n_samples: int, *, seed: int = 0,
                           n_timesteps: int = N_KAGGLE_TIMESTEPS, labelled: bool = True,
                           fold_shares=FOLD_SHARES, progress: bool | None = None) -> Path:
    """Write ``n_samples`` samples as Kaggle JSON lines (bare ``NaN`` for missing values);
    without a label (``labelled=False``) the lines look like the Kaggle test set. Streams:
    memory does not grow with ``n_samples``. Written to a temporary name, then renamed."""
    from tqdm.auto import tqdm

    from flareseq.data.kaggle import _progress_disabled

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head, body = _line_template(n_timesteps, labelled)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="ascii") as out, tqdm(total=n_samples, unit=" samples", desc="synthesizing",
                                                           disable=_progress_disabled(progress), leave=False) as bar:
            for start, arrays in iter_synthetic_arrays(n_samples, seed=seed, n_timesteps=n_timesteps,
                                                       fold_shares=fold_shares):
                # (n, F, T) so that each line's values come in the template's order
                values = arrays["X"].transpose(0, 2, 1).reshape(len(arrays["y"]), -1)
                lines = []
                for i, (row, label, fold) in enumerate(zip(values.tolist(), arrays["y"].tolist(),
                                                           arrays["fold"].tolist())):
                    prefix = head % ((start + i + 1, label, fold) if labelled else (start + i + 1, fold))
                    lines.append(prefix + body % tuple(row))
                out.write("".join(lines).replace("nan", "NaN"))
                bar.update(len(lines))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_synthetic_swansf(directory: str | PathLike[str], n_samples: int, *, seed: int = 0,
                           n_timesteps: int = N_KAGGLE_TIMESTEPS) -> list[Path]:
    """Write the same samples as SWAN-SF files under ``directory/partition<fold>/``."""
    from flareseq.data.swansf import write_swansf

    return write_swansf(synthetic_dataset(n_samples, seed=seed, n_timesteps=n_timesteps), directory)
