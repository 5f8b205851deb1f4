"""The options of the keyword-table reader, validated once, serialisable to a config.

A :class:`TableSpec` is what a ``[data]`` section of an experiment config with
``format = "table"`` holds (less ``format`` and ``paths``)::

    [data]
    format = "table"
    paths = ["../shared/data/smarp/smarp_*.csv"]
    region_columns = ["prefix", "arpnum"]
    time_column = "t_end"
    features = ["AREA", "USFLUX", "MEANGBZ", "R_VALUE"]
    label_column = "label"
    window = 16
    cadence_minutes = 96
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from flareseq.data.leakage import DEFAULT_LEAKY_FEATURES, check_features
from flareseq.errors import ConfigError

NAN_POLICIES = ("drop", "keep")
CATALOGUE_MATCHES = ("region", "noaa")
# The last run of digits right before the file's extension(s): smarp_3.csv -> 3,
# part2.parquet -> 2; a name without one (train.csv) has no fold.
DEFAULT_FOLD_PATTERN = r"(\d+)(?:\.[A-Za-z]\w*)+$"
_OPTIONAL_TEXT = ("label_column", "fold_column", "fold_pattern", "noaa_column", "catalogue", "time_format", "delimiter")


@dataclass(frozen=True)
class TableSpec:
    """How to cut a table of per-region keyword rows into labelled windows.

    Parameters
    ----------
    region_columns : the column(s) that identify an active region, e.g. ``("prefix",
        "arpnum")``; joined with ``:`` into the region key (``"TARP:4780"``).
    time_column : the time of each row (ISO 8601 text unless ``time_format`` says otherwise).
    features : the feature columns, explicitly (never "all columns": tables carry label
        sources, see :mod:`flareseq.data.leakage`).
    cadence_minutes : the expected time between consecutive rows of a region.
    label_column : the label (True/False/1/0; empty = unlabelled) at each row; a window takes
        the label of its last row and ends only at labelled rows. ``None`` with no
        ``catalogue``: unlabelled windows ending at every row.
    window : N, the number of time steps per window.
    cadence_tolerance_minutes : how far a step may deviate from a whole number of cadences;
        default a tenth of the cadence. Must be below half the cadence.
    max_missing_steps : k; 0 drops windows with any gap, k > 0 keeps windows with at most k
        missing steps, filled by linear interpolation in time within the region.
    stride : keep every ``stride``-th valid window of each region, from its first.
    nan_policy : ``"drop"`` windows whose features hold NaN, or ``"keep"`` them (NaN in X).
    fold_column : a column holding each row's fold or partition number.
    fold_pattern : a regular expression whose first group, searched in each file name, is
        the fold of that file's rows (``smarp_3.csv -> 3``); ``None`` for no fold.
    noaa_column : a column of NOAA region numbers (possibly ``;``-joined lists), kept as
        ``meta["noaa"]`` for catalogue labelling.
    catalogue : a GOES flare list to label windows from instead of ``label_column``.
    min_class, horizon_hours : the catalogue rule: a flare of class >= ``min_class`` starting
        within ``horizon_hours`` after the window end.
    catalogue_match : which key is looked up in the catalogue, ``"region"`` or ``"noaa"``.
    leaky_features : columns refused as features because they are label sources.
    allow_leaky_features : accept them anyway, with a warning (leakage studies only).
    time_format : a ``strptime`` format for ``time_column`` when it is not ISO 8601.
    delimiter : the CSV field separator; default ``,`` (``\\t`` for ``.tsv`` files).
    """

    region_columns: tuple[str, ...]
    time_column: str
    features: tuple[str, ...]
    cadence_minutes: float
    label_column: str | None = None
    window: int = 16
    cadence_tolerance_minutes: float | None = None
    max_missing_steps: int = 0
    stride: int = 1
    nan_policy: str = "drop"
    fold_column: str | None = None
    fold_pattern: str | None = DEFAULT_FOLD_PATTERN
    noaa_column: str | None = None
    catalogue: str | None = None
    min_class: str = "M"
    horizon_hours: float = 24.0
    catalogue_match: str = "region"
    leaky_features: tuple[str, ...] = field(default=DEFAULT_LEAKY_FEATURES)
    allow_leaky_features: bool = False
    time_format: str | None = None
    delimiter: str | None = None

    def __post_init__(self) -> None:
        # TOML has no null: an empty string stands for "none" in the optional text options.
        for name in _OPTIONAL_TEXT:
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        for name in ("region_columns", "features", "leaky_features"):
            value = getattr(self, name)
            if isinstance(value, str) and name == "region_columns":
                value = (value,)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"TableSpec.{name} must be a list of column names, got {value!r}.")
            object.__setattr__(self, name, tuple(value))
        if not self.region_columns:
            raise ConfigError("TableSpec.region_columns is empty: name the column(s) identifying a region.")
        if not self.features:
            raise ConfigError("TableSpec.features is empty: name the feature columns explicitly.")
        if len(set(self.features)) != len(self.features):
            raise ConfigError(f"TableSpec.features names a column twice: {list(self.features)}.")
        _positive_int(self.window, "window", minimum=1)
        _positive_int(self.stride, "stride", minimum=1)
        _positive_int(self.max_missing_steps, "max_missing_steps", minimum=0)
        if self.max_missing_steps >= self.window:
            raise ConfigError(
                f"TableSpec.max_missing_steps={self.max_missing_steps} must be below window={self.window}: "
                "a window needs observed steps to interpolate between."
            )
        if not _is_number(self.cadence_minutes) or self.cadence_minutes <= 0:
            raise ConfigError(f"TableSpec.cadence_minutes must be a positive number, got {self.cadence_minutes!r}.")
        tol = self.tolerance_minutes
        if not _is_number(tol) or not 0 <= tol < self.cadence_minutes / 2:
            raise ConfigError(
                f"TableSpec.cadence_tolerance_minutes must be >= 0 and below half the cadence "
                f"({self.cadence_minutes / 2:g} min), got {tol!r}."
            )
        if self.nan_policy not in NAN_POLICIES:
            raise ConfigError(f"TableSpec.nan_policy must be one of {list(NAN_POLICIES)}, got {self.nan_policy!r}.")
        if self.catalogue_match not in CATALOGUE_MATCHES:
            raise ConfigError(
                f"TableSpec.catalogue_match must be one of {list(CATALOGUE_MATCHES)}, got {self.catalogue_match!r}."
            )
        if self.catalogue is not None and self.label_column is not None:
            raise ConfigError(
                "TableSpec has both label_column and catalogue: labels come from one of them; remove the other."
            )
        if self.catalogue_match == "noaa" and self.noaa_column is None:
            raise ConfigError("TableSpec.catalogue_match='noaa' needs noaa_column (the table's NOAA number column).")
        if self.fold_pattern is not None:
            try:
                compiled = re.compile(self.fold_pattern)
            except re.error as exc:
                raise ConfigError(
                    f"TableSpec.fold_pattern {self.fold_pattern!r} is not a regular expression: {exc}.") from None
            if compiled.groups < 1:
                raise ConfigError(
                    f"TableSpec.fold_pattern {self.fold_pattern!r} needs a group capturing the fold number, e.g. r'_(\\d+)\\.csv$'."
                )
        if self.catalogue is not None:
            from flareseq.data.tables.catalogue import goes_class_flux

            goes_class_flux(self.min_class)
            if not _is_number(self.horizon_hours) or self.horizon_hours <= 0:
                raise ConfigError(f"TableSpec.horizon_hours must be a positive number, got {self.horizon_hours!r}.")
        roles = [*self.region_columns, self.time_column]
        clash = [f for f in self.features if f in roles]
        if clash:
            raise ConfigError(f"TableSpec.features {clash} are also region or time columns; features are measurements.")
        # The leak guard runs here, so a leaky spec fails before any file is read.
        check_features(
            self.features, leaky_features=self.leaky_features, label_column=self.label_column,
            allow_leaky_features=self.allow_leaky_features, where="TableSpec.features",
        )

    @property
    def tolerance_minutes(self) -> float:
        """The cadence tolerance in effect (a tenth of the cadence unless given)."""
        if self.cadence_tolerance_minutes is None:
            return self.cadence_minutes / 10
        return self.cadence_tolerance_minutes

    @property
    def columns(self) -> tuple[str, ...]:
        """Every table column the reader needs, each once."""
        wanted = [*self.region_columns, self.time_column, *self.features, self.label_column,
                  self.fold_column, self.noaa_column]
        return tuple(dict.fromkeys(c for c in wanted if c is not None))

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> TableSpec:
        """A spec from a config mapping; an unknown key is an error listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"unknown table option(s) {unknown}; valid options are {valid}.")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in options]
        if missing:
            raise ConfigError(f"table options {missing} are required (valid options are {valid}).")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values (lists for tuples), e.g. for ``config.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def load_table_spec(path: str | PathLike[str]) -> tuple[list[str], TableSpec]:
    """The input paths and the :class:`TableSpec` of a TOML file.

    The options are the file's ``[data]`` section if it has one, else its top level; a
    ``paths`` list (relative paths are taken from the file's folder) and ``format = "table"``
    may sit beside them.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"table spec file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from None
    options = dict(document.get("data", document))
    fmt = options.pop("format", "table")
    if fmt != "table":
        raise ConfigError(f"{path}: format is {fmt!r}; a table spec has format = \"table\" (or none).")
    paths = options.pop("paths", [])
    if isinstance(paths, str):
        paths = [paths]
    paths = [p if Path(p).is_absolute() else str(path.parent / p) for p in paths]
    if isinstance(options.get("catalogue"), str) and not Path(options["catalogue"]).is_absolute():
        options["catalogue"] = str(path.parent / options["catalogue"])
    try:
        return paths, TableSpec.from_dict(options)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value: object, name: str, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"TableSpec.{name} must be an integer >= {minimum}, got {value!r}.")
