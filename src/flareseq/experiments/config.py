"""One run's configuration: defaults, a TOML file, and ``section.key=value`` overrides.

A :class:`RunConfig` is frozen and serialisable: it is flattened to MLflow params and saved as
``config.json`` with every model, so a run can always be rebuilt from what it logged. An
unknown key anywhere is a :class:`~flareseq.errors.ConfigError` that lists the valid keys.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from os import PathLike
from typing import Any, get_type_hints

from flareseq.errors import ConfigError
from flareseq.training.settings import TrainingSettings

# The baselines every experiment runs unless it says otherwise: the strongest simple ones
# (logistic regression on the last step and on summaries) and their boosted twins.
DEFAULT_BASELINES = ("climatology", "logistic-last", "logistic-summary", "gboost-last", "gboost-summary")


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from and how they are split into train/validation/test.

    ``path`` is ``"synthetic"`` (generated in memory, seeded) or any input
    :func:`flareseq.load_dataset` reads: a store, a Kaggle JSON-lines file, a SWAN-SF folder.
    With ``format = "table"``, ``path`` is one or more keyword tables (glob patterns allowed)
    read with the options in ``table`` (:class:`flareseq.data.tables.spec.TableSpec`'s fields).
    ``features`` keeps only the named series (all when empty). ``split`` holds the options of
    :func:`flareseq.prep.splits.split_from_config`: ``method`` is ``"fold"`` (fold files, SWAN-SF
    partitions), ``"region"`` (group split by active region), ``"time"`` or ``"random"``
    (leaky; refused unless ``allow_leaky_split = true``), with that method's own keys.

    ``cv = K`` (K >= 2) rotates instead: every run becomes K runs, each fold the test set in
    turn (:func:`flareseq.experiments.rundata.rotation_splits`). ``cv_by`` says what a fold is:
    ``"fold"`` (the data's fold files or partitions; with more than K of them, K contiguous
    groups), ``"region"`` (K region groups, :func:`flareseq.prep.splits.group_kfold`) or
    ``"auto"`` (folds when the data has K or more, else region groups). Validation is carved
    from the training regions (``split.validation_share``, default 0.2; ``split.random_state``
    and ``split.stratify`` apply too), or is the next fold when the data has no regions.

    ``verify``: how a store is checked before a run uses it, and so what its logged content
    hash (``data.content_hash``) stands for: ``"parts"`` (every part's checksum as it is read)
    or ``"full"`` (every row decoded and the hash recomputed).

    ``memory_budget_mb``: the memory a run may take for its data. 0 (the default): no limit,
    the data is read whole into memory. Otherwise a store whose in-memory run would need more
    (about five times its float32 features: the store, its parts and their filled and scaled
    copies) is never read whole: :mod:`flareseq.experiments.cached_run` prepares it in one
    pass per part into a float32 cache beside the store, read by index, and trains from there
    (same samples, same order, same model), and ``load_source`` (``flareseq run``,
    ``flareseq experiments``) refuses it with that advice.
    """

    path: str = "synthetic"
    format: str = "auto"
    synthetic_samples: int = 6000
    synthetic_seed: int = 2019
    features: tuple[str, ...] = ()
    table: Mapping[str, Any] = field(default_factory=dict)
    split: Mapping[str, Any] = field(
        default_factory=lambda: {"method": "fold", "train_folds": [1], "validation_folds": [2], "test_folds": [3]}
    )
    cv: int = 0
    cv_by: str = "auto"
    verify: str = "parts"
    memory_budget_mb: int = 0


@dataclass(frozen=True)
class PrepConfig:
    """Sampling, missing values, scaling and sample layout (all fitted on training data only).

    ``train_fraction`` etc. sample each split (the study: 0.3 / 0.1 / 0.05). ``missing`` is
    what the run does with missing values in its parts: ``"interpolate"`` (in time, then the
    training median), ``"drop"`` (samples with any missing value) or ``"drop-rows"`` (the
    study's ``dropna`` on the flattened table: time-step rows with a missing value; study
    layouts only). ``scaler`` is ``"zscore"``, ``"signed-log"`` or ``"none"``
    (:class:`flareseq.prep.preparation.Preparation`, fitted on the training part and saved with
    the model, which also fills missing values in new data). ``layout`` is ``"sequence"``
    (one sequence per sample, the default), or one of the study's flawed layouts kept for
    reproduction only: ``"study-rows"`` (every time step a sample of length 1, each carrying
    its sample's label) and ``"study-windows"`` (the study's generator: windows over the
    flattened rows, cut across sample boundaries, ``lookback``/``step``/``delay`` rows).
    ``label_as_input`` appends each row's label as an input of the study's windows, as its
    generator-fed models had it: a leak, refused unless the run sets ``allow_leaky = true``.
    """

    train_fraction: float = 1.0
    val_fraction: float = 1.0
    test_fraction: float = 1.0
    stratify: bool = False
    sample_seed: int = 0
    missing: str = "interpolate"
    scaler: str = "zscore"
    layout: str = "sequence"
    lookback: int = 600
    step: int = 6
    delay: int = 300
    label_as_input: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """The architecture (a ``MODELS`` or baseline registry name) and its keyword arguments."""

    name: str = "lstm"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerificationConfig:
    """Bootstrap intervals of every test score (:mod:`flareseq.evaluation.verification`): ``n_bootstrap``
    resamples (0: no intervals) of whole regions when the data has regions, of samples
    otherwise, at the run's fixed threshold; ``confidence_level`` of the percentile intervals;
    ``random_state`` seeds the resampling. Not part of a run's identity for resuming."""

    n_bootstrap: int = 1000
    confidence_level: float = 0.95
    random_state: int = 0


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs are recorded: any MLflow tracking URI (a local SQLite file by default).
    ``plots = false`` skips the per-run figures (about half a second each)."""

    uri: str = ""
    experiment: str = "flareseq"
    output_dir: str = "runs"
    log_model: bool = True
    plots: bool = True


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    prep: PrepConfig = field(default_factory=PrepConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    name: str = ""
    allow_leaky: bool = False

    # -- building ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "configuration") -> RunConfig:
        """Defaults updated by a nested mapping (as parsed from TOML)."""
        return _build(cls, values, where, prefix="")

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> RunConfig:
        return cls.from_dict(load_toml(path), where=str(path))

    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any]) -> RunConfig:
        """A copy with ``section.key=value`` overrides applied (values parsed as TOML)."""
        pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
        nested = self.to_dict()
        for key, value in pairs:
            _set_dotted(nested, key, value)
        return RunConfig.from_dict(nested, where="overrides")

    # -- serialising -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def flatten(self) -> dict[str, str]:
        """``section.key`` -> string value, as logged to MLflow params."""
        flat: dict[str, str] = {}
        _flatten(self.to_dict(), "", flat)
        return flat


# -- helpers ---------------------------------------------------------------------------


def load_toml(path: str | PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"training.epochs=5"`` -> ``("training.epochs", 5)``; a value that is not a TOML
    literal is taken as a string, so ``model.name=lstm`` needs no quotes."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.key=value.")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def valid_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(valid_keys(hints[f.name], f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _build(cls: type, values: Mapping[str, Any], where: str, prefix: str):
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'the configuration'} must be a table, got {values!r}.")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {[prefix + k for k in unknown]}. "
            f"Valid keys are: {', '.join(valid_keys(cls, prefix))}."
        )
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, where, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, kind, f"{prefix}{name}", where)
    return cls(**kwargs)


def _coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    text = str(kind)
    if text.startswith("tuple"):
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}.")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}.")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}.")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}.")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}.")
        return value
    accepts_str = "str" in text.split("|")[1:] or text.endswith("| str")
    if isinstance(value, Mapping):
        return dict(value)
    if accepts_str and isinstance(value, str):
        return value
    raise ConfigError(
        f"{where}: {key} must be a table{' or a string' if accepts_str else ''}, got {value!r}."
    )


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _set_dotted(nested: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = nested
    for part in parts[:-1]:
        if part not in node or not isinstance(node[part], dict):
            raise ConfigError(
                f"unknown configuration key {key!r}. Valid keys are: {', '.join(valid_keys())}."
            )
        node = node[part]
    if parts[-1] not in node and not (len(parts) >= 2 and parts[-2] in ("params", "class_weight", "table", "split")):
        raise ConfigError(f"unknown configuration key {key!r}. Valid keys are: {', '.join(valid_keys())}.")
    node[parts[-1]] = value


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}{k}.", out)
    else:
        out[prefix.rstrip(".")] = json.dumps(value) if not isinstance(value, str) else value




__all__ = [
    "DataConfig", "PrepConfig", "ModelConfig", "TrainingSettings", "TrackingConfig", "VerificationConfig", "RunConfig",
    "load_toml", "parse_override", "valid_keys", "replace",
]
