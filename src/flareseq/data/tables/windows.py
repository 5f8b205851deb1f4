"""Per-region keyword tables (CSV or Parquet) into labelled windows.

Each table row is one region at one time (a SHARP/SMARP export, the SMARP files of Sun et
al. 2022). Rows are grouped by region, ordered by time, and each window is the last N steps
ending at a labelled row, the label being that row's. Everything is vectorised over the
whole table (no per-region Python loop): 127k SMARP rows window in well under a second.

Time steps are placed on the region's cadence grid: a step between two rows is
``round(dt / cadence)`` cadences long when it is within the tolerance of a whole number,
otherwise the cadence is broken ("irregular") and no window spans it. A window is kept when
it has at most ``max_missing_steps`` missing steps (filled by linear interpolation between
the region's neighbouring rows) and, with ``nan_policy="drop"``, no NaN feature. Every
candidate window is either built or counted under the reason it was dropped.
"""

from __future__ import annotations

import glob
import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from flareseq.data.dataset import FlareDataset
from flareseq.data.limits import clip, shorten
from flareseq.data.tables.by_class import count_by_class, describe_by_class
from flareseq.data.tables.spec import TableSpec
from flareseq.errors import ConfigError, DataFormatError

__all__ = ["TableSpec", "TableWindows", "WindowReport", "build_table_windows", "read_table_windows"]

log = logging.getLogger(__name__)

DROP_REASONS = ("too_short", "irregular", "gap", "nan", "stride")
_TRUE = {"true", "1", "1.0", "yes", "t", "y"}
_FALSE = {"false", "0", "0.0", "no", "f", "n"}
_EMPTY = {"", "nan", "none", "na", "<na>", "null"}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
_CHUNK = 65_536  # windows gathered per step; bounds the temporary index arrays

PathsArg = str | PathLike[str] | Sequence[str | PathLike[str]] | Mapping[str | PathLike[str], int]


@dataclass(frozen=True)
class WindowReport:
    """What became of every row and candidate window of a table read.

    ``n_candidates == n_windows + sum(dropped.values())`` always holds: a candidate is a row
    that may end a window (a labelled row, or any row without labels).
    """

    n_files: int
    n_rows: int
    n_regions: int
    n_unlabelled_rows: int
    n_candidates: int
    n_windows: int
    n_positive: int
    dropped: dict[str, int] = field(default_factory=dict)
    n_interpolated_windows: int = 0
    n_interpolated_steps: int = 0
    # Per class (labelled tables only): :func:`flareseq.data.tables.by_class.count_by_class`.
    by_class: dict | None = None

    def to_dict(self) -> dict[str, object]:
        return {**{k: v for k, v in self.__dict__.items() if k != "dropped"}, "dropped": dict(self.dropped)}

    def summary(self) -> str:
        """Two lines for a log or a terminal."""
        drops = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in self.dropped.items() if n) or "none"
        return (
            f"{self.n_rows} rows of {self.n_regions} regions in {self.n_files} file(s); "
            f"{self.n_candidates} candidate window ends ({self.n_unlabelled_rows} unlabelled rows cannot end one)\n"
            f"{self.n_windows} windows built ({self.n_positive} positive, {self.n_interpolated_windows} with "
            f"{self.n_interpolated_steps} interpolated steps); dropped: {drops}"
        ) + ("" if self.by_class is None else "\n" + describe_by_class(self.by_class))


@dataclass(frozen=True, eq=False)
class TableWindows:
    """The windows of a table read and the report that accounts for them."""

    dataset: FlareDataset
    report: WindowReport


def read_table_windows(paths: PathsArg, spec: TableSpec, *, progress: bool = True) -> FlareDataset:
    """Read keyword tables into a :class:`FlareDataset` of windows.

    Parameters
    ----------
    paths : one file, several (glob patterns allowed), or a mapping ``{file: fold}`` giving
        each file's fold explicitly (otherwise ``spec.fold_pattern``/``spec.fold_column``).
    spec : the reading options, see :class:`TableSpec`.
    progress : show progress bars (on a terminal only).

    Returns
    -------
    FlareDataset
        ``X`` ``(n_windows, spec.window, len(spec.features))``; ``ids`` like
        ``"TARP:4780@2000-12-05T19:12:00"`` (region key @ window end); ``meta`` with
        ``region``, ``start``, ``end``, ``source`` (file of the last row), ``fold``,
        ``n_interpolated`` and, with ``spec.noaa_column``, ``noaa``. The counts of built
        and dropped windows are logged; :func:`build_table_windows` returns them.
    """
    return build_table_windows(paths, spec, progress=progress).dataset


def build_table_windows(paths: PathsArg, spec: TableSpec, *, progress: bool = True) -> TableWindows:
    """As :func:`read_table_windows`, also returning the :class:`WindowReport`."""
    if not isinstance(spec, TableSpec):
        raise ConfigError(f"spec must be a TableSpec, got {type(spec).__name__}; build one with TableSpec.from_dict(...).")
    files = resolve_paths(paths, spec)
    rows = _read_rows(files, spec, progress=progress)
    windows = _window_rows(rows, spec, n_files=len(files), progress=progress)
    if spec.catalogue is not None:
        from flareseq.data.tables.catalogue import label_from_catalogue

        dataset = label_from_catalogue(windows.dataset, spec.catalogue, min_class=spec.min_class,
                                       horizon_hours=spec.horizon_hours, match_on=spec.catalogue_match)
        # The catalogue labels the built windows only: the class of a dropped row end is unknown.
        report = WindowReport(**{**windows.report.__dict__, "n_positive": dataset.n_positive, "by_class": None})
        windows = TableWindows(dataset, report)
    log.info("%s", windows.report.summary())
    return windows


# -- files ---------------------------------------------------------------------------------
def resolve_paths(paths: PathsArg, spec: TableSpec) -> list[tuple[Path, int | None]]:
    """The files to read, each with its fold (or ``None``), globs expanded, in a stable order."""
    if isinstance(paths, (str, PathLike)):
        paths = [paths]
    explicit = isinstance(paths, Mapping)
    if explicit and spec.fold_column is not None:
        raise ConfigError("folds given both as a {file: fold} mapping and as spec.fold_column; use one.")
    out: list[tuple[Path, int | None]] = []
    for item in paths:
        fold = paths[item] if explicit else None
        if explicit and (not isinstance(fold, int) or isinstance(fold, bool)):
            raise ConfigError(f"the fold of {str(item)!r} must be an integer, got {fold!r}.")
        text = str(item)
        matches = sorted(glob.glob(text)) if any(ch in text for ch in "*?[") else [text]
        if not matches:
            raise ConfigError(f"no file matches {text!r}.")
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise ConfigError(f"table file {match!r} does not exist.")
            out.append((path, fold if explicit else _fold_from_name(path, spec)))
    if not out:
        raise ConfigError("no table files given.")
    return out


def _fold_from_name(path: Path, spec: TableSpec) -> int | None:
    if spec.fold_pattern is None or spec.fold_column is not None:
        return None
    match = re.search(spec.fold_pattern, path.name)
    return int(match.group(1)) if match else None


def _read_rows(files: list[tuple[Path, int | None]], spec: TableSpec, *, progress: bool) -> pd.DataFrame:
    frames = []
    bar = tqdm(files, desc="reading tables", unit="file", disable=None if progress else True, leave=False)
    for file_index, (path, fold) in enumerate(bar):
        frame = _read_file(path, spec, progress=progress)
        frame["_file"] = file_index
        if spec.fold_column is None:
            frame["_fold"] = pd.array([fold] * len(frame), dtype="Int64")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.attrs["files"] = [path for path, _ in files]
    return frame


def _read_file(path: Path, spec: TableSpec, *, progress: bool = False) -> pd.DataFrame:
    """One table file's rows; anything pandas or Arrow cannot read is a one-paragraph
    :class:`DataFormatError` naming the file (never their own exception)."""
    import pyarrow as pa

    try:
        return _read_file_unchecked(path, spec, progress=progress)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, EOFError, zlib.error, OSError,
            pa.ArrowException, RecursionError) as exc:
        detail = shorten(f"{type(exc).__name__}: {exc}", 160)
        if isinstance(exc, (OSError, EOFError, zlib.error)) and not isinstance(exc, UnicodeDecodeError):
            expected = "a readable (and, if compressed, complete) table file"
        else:
            expected = "a UTF-8 table with one header line and one row per line"
        raise DataFormatError(path, expected=expected, found=detail,
                              hint="Check the file (and TableSpec.delimiter).") from None


def _read_file_unchecked(path: Path, spec: TableSpec, *, progress: bool = False) -> pd.DataFrame:
    is_parquet = path.suffix.lower() in {".parquet", ".pq"}
    if is_parquet:
        import pyarrow.parquet as pq

        header = list(pq.read_schema(path).names)
    else:
        sep = spec.delimiter or ("\t" if ".tsv" in [x.lower() for x in path.suffixes] else ",")
        try:
            header = list(pd.read_csv(path, sep=sep, nrows=0).columns)
        except pd.errors.EmptyDataError:
            raise DataFormatError(path, line=1, expected="a header line naming the columns",
                                  found="an empty file") from None
    for column in spec.columns:
        if column not in header:
            close = get_close_matches(column, header, n=1)
            raise DataFormatError(
                path, line=None if is_parquet else 1, field=column,
                expected=f"a column named {column!r}", found=f"the columns {clip(header, 200)}",
                hint=f"Did you mean {close[0]!r}? " if close else "Name the right column in the table spec.",
            )
    if is_parquet:
        frame = pd.read_parquet(path, columns=list(spec.columns))
        frame["_line"] = np.arange(len(frame), dtype=np.int64)  # 0-based row, not a line
    else:
        # Blank lines are kept (as empty rows) so that row i is on line i + 2: errors then
        # point at the real line. Multi-line quoted fields would shift this; tables have none.
        # Read through a byte-counting wrapper so a large file shows its progress.
        compression = _COMPRESSION.get(path.suffix.lower())
        with path.open("rb") as raw, tqdm.wrapattr(raw, "read", total=path.stat().st_size, desc=f"reading {path.name}",
                                                  unit="B", unit_scale=True, unit_divisor=1024,
                                                  disable=None if progress else True, leave=False) as handle:
            frame = pd.read_csv(handle, sep=sep, usecols=list(spec.columns), skip_blank_lines=False,
                                low_memory=False, compression=compression)
        frame["_line"] = np.arange(2, len(frame) + 2, dtype=np.int64)
    if frame.empty:
        raise DataFormatError(path, expected="at least one row", found="a header without rows")
    frame.attrs["line_kind"] = "row" if is_parquet else "line"
    return frame


# -- columns -------------------------------------------------------------------------------
def _where(rows: pd.DataFrame, i: int) -> tuple[Path, int | None, str]:
    """File, line and a 'row N' note for row ``i`` of the concatenated rows."""
    path = rows.attrs["files"][int(rows["_file"].iat[i])]
    number = int(rows["_line"].iat[i])
    if path.suffix.lower() in {".parquet", ".pq"}:
        return path, None, f" (row {number})"
    return path, number, ""


def _fail(rows: pd.DataFrame, bad: np.ndarray, field: str, expected: str, hint: str | None = None) -> None:
    i = int(bad[0])
    path, line, note = _where(rows, i)
    more = f" ({bad.size} such rows)" if bad.size > 1 else ""
    raise DataFormatError(path, line=line, field=field, expected=expected,
                          found=f"{clip(rows[field].iat[i])}{note}{more}", hint=hint)


def _parse_times(rows: pd.DataFrame, spec: TableSpec) -> np.ndarray:
    raw = rows[spec.time_column]
    if pd.api.types.is_datetime64_any_dtype(raw):
        times = pd.to_datetime(raw, utc=True)
    else:
        times = pd.to_datetime(raw, format=spec.time_format or "ISO8601", errors="coerce", utc=True)
    bad = np.flatnonzero(times.isna().to_numpy())
    if bad.size:
        _fail(rows, bad, spec.time_column,
              f"a time in {'format ' + repr(spec.time_format) if spec.time_format else 'ISO 8601 (2000-12-05 19:12:00)'}",
              hint="Give TableSpec.time_format (a strptime format) if the times are written otherwise; "
                   "remove rows without a time.")
    return times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _parse_features(rows: pd.DataFrame, spec: TableSpec) -> np.ndarray:
    out = np.empty((len(rows), len(spec.features)), dtype=np.float64)
    for k, name in enumerate(spec.features):
        column = rows[name]
        values = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & ~_is_empty(column))
        if bad.size:
            _fail(rows, bad, name, "a number (or an empty field for a missing value)")
        out[:, k] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _is_empty(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.isna().to_numpy()
    text = column.astype("string").str.strip().str.lower()
    return (text.isna() | text.isin(_EMPTY)).to_numpy(dtype=bool)


def _parse_labels(rows: pd.DataFrame, column: str) -> np.ndarray:
    """int8 labels: 1, 0, or -1 where the field is empty."""
    raw = rows[column]
    if pd.api.types.is_bool_dtype(raw) and not raw.isna().any():
        return raw.to_numpy(dtype=np.int8)
    text = raw.astype("string").str.strip().str.lower()
    labels = np.full(len(raw), -1, dtype=np.int8)
    labels[text.isin(_TRUE).to_numpy(dtype=bool)] = 1
    labels[text.isin(_FALSE).to_numpy(dtype=bool)] = 0
    bad = np.flatnonzero((labels == -1) & ~_is_empty(raw))
    if bad.size:
        _fail(rows, bad, column, "a label True/False or 1/0 (or an empty field for no label)")
    return labels


def _region_keys(rows: pd.DataFrame, spec: TableSpec) -> tuple[np.ndarray, np.ndarray]:
    """Integer region codes (in sorted key order) and each code's key text ``"TARP:4780"``."""
    for name in spec.region_columns:
        bad = np.flatnonzero(_is_empty(rows[name]))
        if bad.size:
            _fail(rows, bad, name, "a region identifier", hint="Every row needs its region.")
    codes = rows.groupby(list(spec.region_columns), sort=True).ngroup().to_numpy(np.int64)
    _, first = np.unique(codes, return_index=True)
    parts = [[_key_text(v) for v in rows[name].to_numpy()[first]] for name in spec.region_columns]
    return codes, np.array([":".join(p) for p in zip(*parts)], dtype=object)


def _key_text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


# -- windows -------------------------------------------------------------------------------
def _window_rows(rows: pd.DataFrame, spec: TableSpec, *, n_files: int, progress: bool) -> TableWindows:
    codes, region_names = _region_keys(rows, spec)
    times = _parse_times(rows, spec)
    order = np.lexsort((times, codes))
    attrs = dict(rows.attrs)
    rows = rows.iloc[order].reset_index(drop=True)
    rows.attrs.update(attrs)
    codes, times = codes[order], times[order]
    values = _parse_features(rows, spec)
    labels = _parse_labels(rows, spec.label_column) if spec.label_column else None
    folds = _fold_column(rows, spec)
    _check_folds_per_region(codes, folds, region_names)
    n_rows, N, k = len(rows), spec.window, spec.max_missing_steps

    # Steps between consecutive rows, in whole cadences, and where the cadence breaks.
    cadence = int(round(spec.cadence_minutes * 60e9))
    tolerance = int(round(spec.tolerance_minutes * 60e9))
    new_region = np.r_[True, codes[1:] != codes[:-1]]
    delta = np.r_[0, np.diff(times)]
    duplicate = np.flatnonzero(~new_region & (delta == 0))
    if duplicate.size:
        i = int(duplicate[0])
        (p0, l0, n0), (p1, l1, _) = _where(rows, i - 1), _where(rows, i)
        raise DataFormatError(
            p1, line=l1, field=spec.time_column, expected="one row per region and time",
            found=f"region {region_names[codes[i]]} twice at {rows[spec.time_column].iat[i]!r}, also in "
                  f"{p0.name}{f' line {l0}' if l0 else n0} ({duplicate.size} duplicate rows in all)",
            hint="Remove the duplicates (e.g. drop_duplicates on the region and time columns).",
        )
    steps = np.rint(delta / cadence).astype(np.int64)
    regular = (steps >= 1) & (np.abs(delta - steps * cadence) <= tolerance)
    # Break kinds at segment starts: 1 region start, 2 irregular step, 3 gap longer than k.
    kind = np.zeros(n_rows, dtype=np.int8)
    kind[~new_region & ~regular] = 2
    kind[~new_region & regular & (steps - 1 > k)] = 3
    kind[new_region] = 1
    seg_start = kind > 0
    grid = np.cumsum(np.where(seg_start, 1, steps))  # strictly increasing slot number
    index = np.arange(n_rows)
    seg_first = np.maximum.accumulate(np.where(seg_start, index, 0))

    # Candidates: rows that may end a window.
    candidate = labels != -1 if labels is not None else np.ones(n_rows, dtype=bool)
    ends = np.flatnonzero(candidate)
    first_slot = grid[ends] - (N - 1)
    crosses = first_slot < grid[seg_first[ends]]
    first_row = np.searchsorted(grid, first_slot, side="left")
    missing = N - (ends - first_row + 1)
    # The first row used: the window's first row, or the one before it when the first slot
    # falls in a gap and is interpolated from both sides.
    used_from = np.where(grid[np.minimum(first_row, n_rows - 1)] == first_slot, first_row, first_row - 1)
    row_nan = np.isnan(values).any(axis=1)
    nan_before = np.r_[0, np.cumsum(row_nan)]
    has_nan = nan_before[ends + 1] - nan_before[np.clip(used_from, 0, n_rows)] > 0
    reason = np.full(len(ends), -1, dtype=np.int8)  # index into DROP_REASONS; -1 = kept
    start_kind = kind[seg_first[ends]]
    reason[~crosses & (missing > k)] = DROP_REASONS.index("gap")
    if spec.nan_policy == "drop":
        reason[(reason < 0) & ~crosses & has_nan] = DROP_REASONS.index("nan")
    reason[crosses & (start_kind == 1)] = DROP_REASONS.index("too_short")
    reason[crosses & (start_kind == 2)] = DROP_REASONS.index("irregular")
    reason[crosses & (start_kind == 3)] = DROP_REASONS.index("gap")
    # Stride: every stride-th kept window of a region, counted from the region's first.
    if spec.stride > 1:
        kept = np.flatnonzero(reason < 0)
        region_of = codes[ends[kept]]
        rank = np.arange(kept.size) - np.searchsorted(region_of, region_of, side="left")
        reason[kept[rank % spec.stride != 0]] = DROP_REASONS.index("stride")
    keep = reason < 0
    ends, first_slot, missing = ends[keep], first_slot[keep], missing[keep]

    X, start_ns = _gather(values, grid, times, ends, first_slot, N, k, progress=progress)
    dataset = _as_dataset(rows, spec, X, labels, folds, codes, region_names, times, ends, start_ns, missing)
    dropped = {name: int((reason == i).sum()) for i, name in enumerate(DROP_REASONS)}
    all_ends = np.flatnonzero(candidate)
    by_class = None if labels is None else count_by_class(labels[all_ends], reason, codes[all_ends], DROP_REASONS)
    report = WindowReport(
        n_files=n_files, n_rows=n_rows, n_regions=len(region_names),
        n_unlabelled_rows=int((~candidate).sum()), n_candidates=int(candidate.sum()),
        n_windows=len(ends), n_positive=dataset.n_positive, dropped=dropped,
        n_interpolated_windows=int((missing > 0).sum()), n_interpolated_steps=int(missing.sum()), by_class=by_class,
    )
    return TableWindows(dataset, report)


def _gather(values, grid, times, ends, first_slot, N, k, *, progress):
    """X ``(n, N, F)`` float32 and each window's start time, in chunks with a progress bar."""
    n, n_rows = len(ends), len(grid)
    X = np.empty((n, N, values.shape[1]), dtype=np.float32)
    start_ns = np.empty(n, dtype=np.int64)
    offsets = np.arange(N)
    with tqdm(total=n, desc="building windows", unit="window", disable=None if progress else True, leave=False) as bar:
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            if k == 0:
                # No gaps allowed: a window is N consecutive rows, a plain gather.
                left = (ends[lo:hi] - (N - 1))[:, None] + offsets
                X[lo:hi] = values[left]
                start_ns[lo:hi] = times[left[:, 0]]
            else:
                slots = first_slot[lo:hi, None] + offsets
                left = np.searchsorted(grid, slots, side="right") - 1
                right = np.minimum(left + 1, n_rows - 1)
                span = (grid[right] - grid[left]).astype(np.float64)
                weight = np.where(grid[left] == slots, 0.0, (slots - grid[left]) / np.where(span > 0, span, 1))
                w = weight[..., None]
                # An exact step is copied, not blended, so a NaN neighbour cannot leak into it.
                X[lo:hi] = np.where(w > 0, values[left] * (1 - w) + values[right] * w, values[left])
                t0 = times[left[:, 0]] + weight[:, 0] * (times[right[:, 0]] - times[left[:, 0]])
                start_ns[lo:hi] = np.rint(t0).astype(np.int64)
            bar.update(hi - lo)
    return X, start_ns


def _fold_column(rows: pd.DataFrame, spec: TableSpec) -> pd.arrays.IntegerArray:
    if spec.fold_column is None:
        return rows["_fold"].array
    column = rows[spec.fold_column]
    values = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero((values.isna().to_numpy() & ~_is_empty(column)) | (values.notna() & (values % 1 != 0)).to_numpy())
    if bad.size:
        _fail(rows, bad, spec.fold_column, "an integer fold or partition number")
    return values.astype("Int64").array


def _check_folds_per_region(codes: np.ndarray, folds, region_names: np.ndarray) -> None:
    """Warn when a region has rows in several folds: fold splits would then leak."""
    frame = pd.DataFrame({"code": codes, "fold": folds}).dropna()
    if frame.empty:
        return
    n_folds = frame.groupby("code")["fold"].nunique()
    several = n_folds[n_folds > 1]
    if len(several):
        import warnings

        from flareseq.errors import FlareseqWarning

        warnings.warn(
            f"{len(several)} region(s) have rows in more than one fold (e.g. "
            f"{[region_names[c] for c in several.index[:3]]}); splitting by fold would put one region on "
            "both sides. Split by region groups instead (flareseq.prep.splits.group_kfold).",
            FlareseqWarning, stacklevel=4,
        )


def _as_dataset(rows, spec, X, labels, folds, codes, region_names, times, ends, start_ns, missing) -> FlareDataset:
    end_ns = times[ends]
    region = region_names[codes[ends]]
    end_text = np.datetime_as_string(end_ns.astype("datetime64[ns]"), unit="s")
    ids = np.char.add(np.char.add(region.astype(str), "@"), end_text)
    files = rows.attrs["files"]
    meta = pd.DataFrame({
        "source": pd.Series(np.array([p.name for p in files], dtype=object)[rows["_file"].to_numpy()[ends]],
                            dtype="string"),
        "fold": pd.Series(folds[ends], dtype="Int64"),
        "region": pd.Series(region, dtype="string"),
        "start": pd.Series(start_ns.astype("datetime64[ns]")),
        "end": pd.Series(end_ns.astype("datetime64[ns]")),
        "goes_class": pd.Series([None] * len(ends), dtype="string"),
        "n_interpolated": missing.astype(np.int16),
    })
    if spec.noaa_column is not None:
        meta["noaa"] = pd.Series(rows[spec.noaa_column].to_numpy()[ends], dtype="string")
    return FlareDataset(
        X=X, y=None if labels is None else labels[ends].astype(np.int8), ids=ids,
        feature_names=tuple(spec.features), meta=meta,
    )
