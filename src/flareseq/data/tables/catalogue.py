"""Labels from a GOES flare list: "a flare of class >= C within H hours after the window".

This is how SWAN-SF and the SMARP tables were labelled: a window of region R ending at time
t is positive when the catalogue holds a flare of R whose start time s satisfies
``t < s <= t + H`` and whose GOES class is at least ``min_class``. The interval is open at
the window end on purpose: a flare already under way when the last magnetogram was taken is
a nowcast, not a forecast. It is closed at ``t + H`` so that "within 24 hours" includes a
flare starting exactly 24 hours later.

GOES classes are compared by peak flux (A = 1e-8 W/m^2, B = 1e-7, C = 1e-6, M = 1e-5,
X = 1e-4, times the magnitude), so ``C9.9 < M1.0 == C10``, and X-class magnitudes above 10
(``X28``) are fine.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from flareseq.data.dataset import FlareDataset
from flareseq.data.schema import UNLABELLED
from flareseq.errors import ConfigError, DataFormatError, FlareseqWarning

log = logging.getLogger(__name__)

# Peak flux of magnitude 1.0 of each class, in units of 1e-8 W/m^2 (exact small integers, so
# that C10 and M1.0 compare equal without floating-point luck).
_CLASS_UNITS = {"A": 1.0, "B": 10.0, "C": 100.0, "M": 1000.0, "X": 10000.0}
_CLASS_RE = re.compile(r"^\s*([ABCMX])\s*(\d+(?:\.\d*)?|\.\d+)?\s*$", re.IGNORECASE)
# Relative slack in flux comparisons: far below any magnitude step of 0.01.
_FLUX_RTOL = 1e-9
NO_FLARE = "NF"

# Column names common GOES lists use (HEK, SWPC, sunpy's GOES event list), lower case.
START_ALIASES = ("start", "start_time", "starttime", "event_starttime", "tstart", "begin", "begin_time")
CLASS_ALIASES = ("goes_class", "class", "fl_goescls", "xray_class", "goes", "flare_class")
REGION_ALIASES = ("noaa", "noaa_ar", "ar_noaanum", "noaa_active_region", "noaa_number", "region", "ar", "harpnum")


def goes_class_flux(value: str, *, magnitude_required: bool = False) -> float:
    """Peak flux in W/m^2 of a GOES class string such as ``"M1.5"``.

    Parameters
    ----------
    value : the class: a letter A, B, C, M or X (any case) and a positive magnitude.
    magnitude_required : refuse a bare letter; otherwise ``"M"`` means ``"M1.0"``.

    Raises
    ------
    ConfigError
        When ``value`` is not a GOES class.
    """
    units = _class_units(value, magnitude_required=magnitude_required)
    if units is None:
        raise ConfigError(
            f"{value!r} is not a GOES class: expected a letter A, B, C, M or X and a positive "
            'magnitude, such as "C9.9", "M1.0" or "X2"' + ("." if magnitude_required else ' (or a bare letter, "M").')
        )
    return units * 1e-8


def flux_to_goes_class(flux: float) -> str:
    """The GOES class string of a peak flux in W/m^2 (``1.5e-5 -> "M1.5"``)."""
    units = flux / 1e-8
    letter = "A"
    for candidate, size in _CLASS_UNITS.items():
        if units >= size * (1 - _FLUX_RTOL):
            letter = candidate
    magnitude = units / _CLASS_UNITS[letter]
    text = f"{magnitude:.1f}" if abs(round(magnitude, 1) - magnitude) < 1e-6 else f"{magnitude:.2f}"
    return f"{letter}{text}"


def _class_units(value: object, *, magnitude_required: bool) -> float | None:
    if not isinstance(value, str):
        return None
    match = _CLASS_RE.match(value)
    if not match or (magnitude_required and match.group(2) is None):
        return None
    magnitude = 1.0 if match.group(2) is None else float(match.group(2))
    if magnitude <= 0:
        return None
    return _CLASS_UNITS[match.group(1).upper()] * magnitude


def normalise_region(value: object) -> str | None:
    """A region key as text: ``11158``, ``11158.0`` and ``"011158"`` all become ``"11158"``;
    ``None``, NaN, empty text and NOAA number 0 (SWPC's "no region") become ``None``."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    if not text or text.lower() in {"nan", "none", "<na>"}:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if number.is_integer():
        return None if number == 0 else str(int(number))
    return text


@dataclass(frozen=True, eq=False)
class FlareCatalogue:
    """A flare list reduced to what labelling needs, sorted by region and start time.

    Attributes
    ----------
    start : datetime64[ns] start times.
    goes_class : the class strings as given.
    flux : peak flux in W/m^2 from the class.
    region : normalised region keys (see :func:`normalise_region`).
    source : where the list came from (file name or ``"<DataFrame>"``).
    n_unattributed : flares without a region (skipped: they cannot label a region's window).
    """

    start: np.ndarray
    goes_class: np.ndarray
    flux: np.ndarray
    region: np.ndarray
    source: str
    n_unattributed: int = 0

    def __len__(self) -> int:
        return len(self.start)


def read_catalogue(
    source: str | PathLike[str] | pd.DataFrame | FlareCatalogue,
    *,
    start_column: str | None = None,
    class_column: str | None = None,
    region_column: str | None = None,
) -> FlareCatalogue:
    """Read a flare list (CSV, TSV or Parquet file, or a DataFrame).

    Columns are found by name (case-insensitive) among common spellings (``start_time``,
    ``event_starttime``; ``goes_class``, ``fl_goescls``; ``noaa_ar``, ``ar_noaanum``...)
    unless named explicitly. Flares without a region are counted in ``n_unattributed`` and
    left out; a missing start time or a class that does not parse is an error naming the
    line.
    """
    if isinstance(source, FlareCatalogue):
        return source
    if isinstance(source, pd.DataFrame):
        frame, name, first_line = source.reset_index(drop=True), "<DataFrame>", 0
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"flare catalogue {str(path)!r} does not exist.")
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame, first_line = pd.read_parquet(path), None
        else:
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            frame, first_line = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False), 2
        name = str(path)
    start_col = _pick_column(frame, start_column, START_ALIASES, "start time", name)
    class_col = _pick_column(frame, class_column, CLASS_ALIASES, "GOES class", name)
    region_col = _pick_column(frame, region_column, REGION_ALIASES, "region (NOAA number)", name)

    def line_of(i: int) -> int | None:
        return None if first_line is None else int(i) + first_line

    raw_start = frame[start_col]
    start = pd.to_datetime(raw_start.replace("", None), errors="coerce", format="mixed", utc=True)
    bad = np.flatnonzero(start.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise DataFormatError(
            name, line=line_of(i), field=start_col, expected="a date and time such as 2011-02-15T01:44:00",
            found=f"{raw_start.iloc[i]!r} ({bad.size} such row(s))", hint="Fix or remove those rows.",
        )
    classes = frame[class_col].astype(object).to_numpy()
    units = np.array([_class_units(c, magnitude_required=True) or np.nan for c in classes])
    bad = np.flatnonzero(np.isnan(units))
    if bad.size:
        i = bad[0]
        raise DataFormatError(
            name, line=line_of(i), field=class_col,
            expected='a GOES class: letter A, B, C, M or X and a positive magnitude, such as "M1.5"',
            found=f"{classes[i]!r} ({bad.size} such row(s))", hint="Fix or remove those rows.",
        )
    region = np.array([normalise_region(v) for v in frame[region_col].to_numpy()], dtype=object)
    attributed = np.array([r is not None for r in region], dtype=bool)
    n_unattributed = int((~attributed).sum())
    if n_unattributed:
        log.info("%s: %d of %d flares have no region and cannot label any window", name, n_unattributed, len(frame))
    start_ns = start.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")[attributed]
    region = region[attributed]
    order = np.lexsort((start_ns, region.astype(str)))
    return FlareCatalogue(
        start=start_ns[order],
        goes_class=np.asarray(classes[attributed][order], dtype=object),
        flux=units[attributed][order] * 1e-8,
        region=region[order].astype(str),
        source=name,
        n_unattributed=n_unattributed,
    )


def _pick_column(frame: pd.DataFrame, given: str | None, aliases: Sequence[str], what: str, name: str) -> str:
    if given is not None:
        if given not in frame.columns:
            raise DataFormatError(
                name, field=given, expected=f"a {what} column named {given!r}", found=f"columns {list(frame.columns)}",
            )
        return given
    lower = {str(c).lower(): c for c in frame.columns}
    hits = [lower[a] for a in aliases if a in lower]
    if not hits:
        raise DataFormatError(
            name, field=what, expected=f"a {what} column (one of {list(aliases)})",
            found=f"columns {list(frame.columns)}", hint="Name it explicitly (read_catalogue(..., *_column=...)).",
        )
    return hits[0]


def _check_region_kinds(window_regions: list[str], catalogue_regions: list[str], source: str) -> None:
    """No window region is in the catalogue: fail when the two sides use different kinds of
    key (TARP/HARP keys against NOAA numbers), which would label every window negative;
    warn when there are many regions and still no match."""
    message = (
        f"no window region occurs in the catalogue {source}: windows have regions like "
        f"{window_regions[:3]}, the catalogue has {catalogue_regions[:3]}"
    )
    if {r.isdigit() for r in window_regions} != {r.isdigit() for r in catalogue_regions}:
        raise ConfigError(
            f"{message}. Label by the same kind of number on both sides (e.g. NOAA numbers: "
            "TableSpec(noaa_column=..., catalogue_match='noaa'), or label_from_catalogue(match_on='noaa'))."
        )
    if len(window_regions) >= 20:
        warnings.warn(f"{message}; every window is labelled negative.", FlareseqWarning, stacklevel=3)


@dataclass(frozen=True)
class CatalogueLabels:
    """Labels of windows from a catalogue, with the counts that explain them."""

    y: np.ndarray  # int8 (n,): 1, 0 or UNLABELLED
    goes_class: np.ndarray  # largest class after each window, "NF" when none, None when unlabelled
    n_positive: int
    n_negative: int
    n_no_region: int  # windows without a region key (unlabelled)
    n_beyond_catalogue: int  # windows whose horizon runs past the catalogue's end (unlabelled)
    n_regions_with_flares: int  # window regions that have at least one flare in the catalogue


def catalogue_labels(
    regions: Sequence[object],
    ends: np.ndarray | Sequence[object],
    catalogue: FlareCatalogue | pd.DataFrame | str | PathLike[str],
    *,
    min_class: str = "M",
    horizon_hours: float = 24.0,
    catalogue_end: object | None = None,
) -> CatalogueLabels:
    """Label windows ending at ``ends`` in ``regions`` from a flare catalogue.

    Parameters
    ----------
    regions : one region key per window; a key may list several regions separated by ``;``
        or ``,`` (SHARP's ``NOAA_ARS``), and then any of them counts.
    ends : window end times.
    catalogue : a :class:`FlareCatalogue` or anything :func:`read_catalogue` takes.
    min_class : the smallest class that makes a window positive (``"M"`` = M1.0).
    horizon_hours : H; a flare starting at s counts for a window ending at t when
        ``t < s <= t + H``.
    catalogue_end : when the catalogue's coverage ends; windows whose horizon runs past it
        are left unlabelled rather than guessed negative. ``None``: no limit.

    Raises
    ------
    ConfigError
        For a bad class or horizon, or when no window region occurs in the catalogue (the
        region keys of the windows and the catalogue do not match, e.g. TARP vs NOAA numbers).
    """
    catalogue = read_catalogue(catalogue)
    threshold = goes_class_flux(min_class)
    if not horizon_hours > 0:
        raise ConfigError(f"horizon_hours must be a positive number of hours, got {horizon_hours!r}.")
    ends_ns = pd.to_datetime(np.asarray(ends)).to_numpy(dtype="datetime64[ns]")
    n = len(ends_ns)
    if len(regions) != n:
        raise ConfigError(f"{len(regions)} region keys for {n} window ends.")
    horizon = np.timedelta64(int(round(horizon_hours * 3600e9)), "ns")

    # Explode multi-region keys into (window, region) pairs, then look up each pair's flares
    # as a contiguous run of the catalogue (sorted by region, then start). Keys are parsed
    # once per distinct key, not once per window.
    key_codes, keys = pd.factorize(pd.Series(list(regions), dtype=object), use_na_sentinel=True)
    by_key = np.argsort(key_codes, kind="stable")
    bounds = np.searchsorted(key_codes[by_key], np.arange(len(keys) + 1))
    pair_window, pair_region = [], []
    for u, key in enumerate(keys):
        for token in re.split(r"[;,]", key) if isinstance(key, str) else [key]:
            token = normalise_region(token)
            if token is not None:
                members = by_key[bounds[u]:bounds[u + 1]]
                pair_window.append(members)
                pair_region.extend([token] * len(members))
    pair_window = np.concatenate(pair_window) if pair_window else np.array([], dtype=np.int64)
    pair_window = pair_window.astype(np.int64)
    has_region = np.zeros(n, dtype=bool)
    has_region[pair_window] = True
    cat_regions, cat_first = np.unique(catalogue.region, return_index=True)
    code = pd.Index(cat_regions).get_indexer(pd.Index(pair_region, dtype=object)) if pair_region else np.array([], int)
    known = code >= 0
    matched_regions = {pair_region[k] for k in np.flatnonzero(known)}
    if pair_region and len(catalogue) and not matched_regions:
        _check_region_kinds(sorted(set(pair_region)), [str(r) for r in cat_regions], catalogue.source)
    # Composite sort key (region code, seconds) so one searchsorted finds every run.
    origin = min(catalogue.start.min(), ends_ns.min()) if len(catalogue) and n else np.datetime64(0, "ns")
    seconds = (catalogue.start - origin) // np.timedelta64(1, "s")
    span = int(seconds.max() + 1) if len(catalogue) else 1
    span += int((ends_ns.max() - origin + horizon) // np.timedelta64(1, "s")) + 2 if n else 0
    cat_code = np.repeat(np.arange(len(cat_regions)), np.diff(np.r_[cat_first, len(catalogue)]))
    cat_key = cat_code.astype(np.int64) * span + seconds
    pw, pc = pair_window[known], code[known].astype(np.int64)
    # Start times are compared at whole-second resolution: catalogues give seconds at best.
    end_s = (ends_ns[pw] - origin) // np.timedelta64(1, "s")
    lo = np.searchsorted(cat_key, pc * span + end_s, side="right")  # start > end
    hi = np.searchsorted(cat_key, pc * span + end_s + horizon // np.timedelta64(1, "s"), side="right")  # <= end + H
    nonempty = hi > lo
    max_flux = np.zeros(n)
    if nonempty.any():
        padded = np.r_[catalogue.flux, 0.0]
        bounds = np.column_stack([lo[nonempty], hi[nonempty]]).ravel()
        run_max = np.maximum.reduceat(padded, bounds)[::2]
        np.maximum.at(max_flux, pw[nonempty], run_max)

    y = (max_flux >= threshold * (1 - _FLUX_RTOL)).astype(np.int8)
    distinct, inverse = np.unique(max_flux, return_inverse=True)
    names = np.array([flux_to_goes_class(f) if f > 0 else NO_FLARE for f in distinct], dtype=object)
    goes_class = names[inverse]
    unlabelled = ~has_region
    n_beyond = 0
    if catalogue_end is not None:
        beyond = ends_ns + horizon > np.datetime64(pd.Timestamp(catalogue_end).tz_localize(None), "ns")
        n_beyond = int((beyond & has_region).sum())
        unlabelled |= beyond
    y[unlabelled] = UNLABELLED
    goes_class[unlabelled] = None
    return CatalogueLabels(
        y=y, goes_class=goes_class, n_positive=int((y == 1).sum()), n_negative=int((y == 0).sum()),
        n_no_region=int((~has_region).sum()), n_beyond_catalogue=n_beyond,
        n_regions_with_flares=len(matched_regions),
    )


def label_from_catalogue(
    dataset: FlareDataset,
    catalogue: FlareCatalogue | pd.DataFrame | str | PathLike[str],
    *,
    min_class: str = "M",
    horizon_hours: float = 24.0,
    match_on: str = "region",
    catalogue_end: object | None = None,
) -> FlareDataset:
    """The same windows labelled from a flare catalogue (see :func:`catalogue_labels`).

    ``match_on`` names the metadata column whose keys are looked up in the catalogue's region
    column: ``"region"`` (default) or ``"noaa"`` (filled by the table reader's
    ``noaa_column``). ``meta["goes_class"]`` becomes the largest class in each window's
    horizon (``"NF"`` when none).
    """
    if match_on not in dataset.meta.columns:
        raise ConfigError(
            f"match_on={match_on!r} is not a metadata column; the dataset has {list(dataset.meta.columns)}."
        )
    labels = catalogue_labels(
        dataset.meta[match_on].astype(object).to_numpy(), dataset.meta["end"].to_numpy(), catalogue,
        min_class=min_class, horizon_hours=horizon_hours, catalogue_end=catalogue_end,
    )
    log.info(
        "catalogue labels (>= %s within %g h): %d positive, %d negative, %d without region, %d beyond the catalogue",
        min_class, horizon_hours, labels.n_positive, labels.n_negative, labels.n_no_region, labels.n_beyond_catalogue,
    )
    meta = dataset.meta.copy()
    meta["goes_class"] = pd.Series(labels.goes_class, dtype="string")
    return replace(dataset, y=labels.y, meta=meta)
