"""Experiment files: a base configuration and a grid of runs over it.

An experiment file is a run configuration (``[data]``, ``[prep]``, ``[model]``,
``[training]``, ``[tracking]``) plus a ``[grid]`` table. Keys directly under ``[grid]``
are crossed (every combination); keys under ``[grid.zip]`` are zipped (the i-th run takes
the i-th value of each, as the study ran its three training configurations)::

    name = "study"
    [training]
    threshold_metric = ""
    [grid]
    "model.name" = ["lstm", "stacked-lstm"]
    [grid.zip]
    "training.epochs" = [10, 20, 30]
    "training.class_weight" = [{0 = 1, 1 = 5}, {0 = 1, 1 = 1}, {0 = 1, 1 = 2}]

gives 2 x 3 = 6 runs, named ``lstm-c1`` ... ``stacked-lstm-c3``: ``cK`` is the K-th zipped
configuration.

Runs that differ in several keys at once are *cases*: ``[[grid.cases]]`` tables, each a set
of ``"section.key" = value`` overrides with an optional ``name``, crossed with the other axes
like any axis. A case's keys win over the zipped values (a case can say "no class weights"
where the zipped configurations have them)::

    [[grid.cases]]
    name = "lstm"                 # the study's cell [54]
    "model.name" = "lstm"
    "training.batching" = "full-pass"
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any

from flareseq.errors import ConfigError
from flareseq.experiments.config import RunConfig, load_toml


@dataclass(frozen=True)
class Experiment:
    """A named list of runs, each a complete :class:`RunConfig` with a unique ``name``."""

    name: str
    runs: tuple[RunConfig, ...]
    source: str = ""


def load_experiment(path: str | PathLike[str], overrides: Iterable[str] = ()) -> Experiment:
    """Read an experiment file; ``overrides`` (``section.key=value``) apply to every run,
    after the grid's own values."""
    values = load_toml(path)
    return expand_grid(values, overrides=overrides, where=str(path), default_name=Path(path).stem)


def expand_grid(
    values: Mapping[str, Any],
    *,
    overrides: Iterable[str] = (),
    where: str = "experiment",
    default_name: str = "experiment",
) -> Experiment:
    values = dict(values)
    grid = dict(values.pop("grid", {}))
    zipped = dict(grid.pop("zip", {}))
    cases = _cases(grid.pop("cases", None), where)
    base = RunConfig.from_dict(values, where=where)
    overrides = list(overrides)
    name = base.name or default_name

    for key, options in {**grid, **zipped}.items():
        if not isinstance(options, list) or not options:
            raise ConfigError(f"{where}: grid key {key!r} must be a non-empty list, got {options!r}.")
    lengths = {key: len(options) for key, options in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"{where}: the lists under [grid.zip] must have equal lengths, got {lengths}.")

    crossed = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
    n_zip = next(iter(lengths.values()), 0)
    zip_rows = [{key: zipped[key][i] for key in zipped} for i in range(n_zip)] or [{}]

    runs = []
    for case_name, case in cases:
        for cross in crossed:
            for index, row in enumerate(zip_rows, start=1):
                # A case's keys win over the zipped values; the user's overrides come last:
                # `--set training.epochs=2` holds for every run.
                config = base.with_overrides({**cross, **row, **case}).with_overrides(overrides)
                label = "-".join([case_name] * bool(case_name) + [_short(v) for v in cross.values()]) or name
                run_name = f"{label}-c{index}" if zipped else label
                runs.append(replace(config, name=run_name))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: the grid gives duplicate run names {names}.")
    return Experiment(name=name, runs=tuple(runs), source=where)


def _cases(cases: Any, where: str) -> list[tuple[str, dict]]:
    """``[(name, overrides)]`` of ``[[grid.cases]]``; one unnamed empty case when there are none."""
    if cases is None:
        return [("", {})]
    if not isinstance(cases, list) or not cases or not all(isinstance(c, Mapping) for c in cases):
        raise ConfigError(f"{where}: grid.cases must be a non-empty list of tables of overrides, got {cases!r}.")
    out = []
    for i, case in enumerate(cases, start=1):
        case = dict(case)
        name = case.pop("name", f"case{i}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: grid case {i} has name {name!r}; expected a non-empty string.")
        out.append((name, case))
    return out


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    if isinstance(value, Mapping):
        return "+".join(f"{k}{v}" for k, v in value.items())
    return str(value)
