"""Early checks of what ``train`` and ``experiments`` were asked to run, with "did you mean".

A typo (``--set training.epochz=2``, ``model.name=lstmm``, an unknown key in a TOML file)
must be reported in well under a second, before torch, MLflow or the data are loaded, and
with the closest valid names rather than a list of all fifty-odd keys.
:mod:`flareseq.experiments.config` stays the authority: these checks only run first and
word the error; what they let through is validated there again.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from flareseq.cli import did_you_mean
from flareseq.errors import ConfigError


@lru_cache(maxsize=1)
def _key_space() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(leaf keys, sections, free tables): the configuration's keys; sections such as
    ``training``; and the keys whose values are tables of free keys (``model.params``,
    ``training.class_weight``, ``data.split``, ``data.table``), under which any sub-key goes."""
    from flareseq.experiments.config import RunConfig, valid_keys

    leaves = frozenset(valid_keys())
    sections = frozenset(key.rsplit(".", 1)[0] for key in leaves if "." in key)
    defaults = RunConfig().to_dict()
    free = set()
    for key in leaves:
        value: Any = defaults
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping):
            free.add(key)
    return leaves, sections, frozenset(free)


def unknown_key_message(key: str, where: str) -> str | None:
    """None when ``key`` (``section.key``, or deeper under a free table) is a configuration
    key; else the error's text with the closest valid keys."""
    leaves, sections, free = _key_space()
    if key in leaves or any(key.startswith(table + ".") for table in free):
        return None
    if key in sections:
        example = sorted(k for k in leaves if k.startswith(key + "."))[0]
        return f"{where}: {key!r} is a section, not a key; give one of its keys, e.g. {example!r}."
    close = _closest_keys(key, leaves, sections)
    if close:
        hint = " Did you mean " + " or ".join(repr(k) for k in close) + "?"
    else:
        section = key.split(".")[0]
        listing = sorted(k for k in leaves if k.startswith(section + "."))
        hint = (f" The keys of [{section}] are: {', '.join(listing)}." if listing else
                f" The sections are {', '.join(sorted(sections))}; the top-level keys "
                f"{', '.join(sorted(k for k in leaves if '.' not in k))}.")
    return f"{where}: unknown configuration key {key!r}.{hint}"


def _closest_keys(key: str, leaves: frozenset[str], sections: frozenset[str]) -> list[str]:
    """The valid keys closest to ``key``: a misspelt name within its section, a misspelt
    section, a name given without its section, then any key close as a whole."""
    section, _, name = key.rpartition(".")
    if section in sections:
        names = {k.rpartition(".")[2]: k for k in leaves if k.rpartition(".")[0] == section}
        return [names[n] for n in difflib.get_close_matches(name, names, n=2)]
    for fixed in difflib.get_close_matches(section, sections, n=1) if section else []:
        if f"{fixed}.{name}" in leaves:
            return [f"{fixed}.{name}"]
    by_name: dict[str, list[str]] = {}
    for k in leaves:
        by_name.setdefault(k.rpartition(".")[2], []).append(k)
    if not section:
        found = [k for n in difflib.get_close_matches(name, by_name, n=2) for k in by_name[n]]
        if found:
            return found[:3]
    return difflib.get_close_matches(key, leaves, n=2)


def check_overrides(overrides: Iterable[str]) -> None:
    """Every ``--set section.key=value`` names a configuration key."""
    from flareseq.experiments.config import parse_override

    for text in overrides:
        key, _ = parse_override(text)
        message = unknown_key_message(key, f"--set {text}")
        if message:
            raise ConfigError(message)


def check_file_keys(values: Mapping[str, Any], where: str) -> None:
    """Every key of a run or experiment file (as parsed from TOML) is a configuration key;
    the dotted keys under ``[grid]``, ``[grid.zip]`` and ``[[grid.cases]]`` (less a case's
    ``name``) too. Anything of another shape is left to the configuration's own checks."""
    grid = dict(values.get("grid", {})) if isinstance(values.get("grid"), Mapping) else {}
    zipped = grid.pop("zip", {})
    cases = grid.pop("cases", [])
    keys = list(_flatten({k: v for k, v in values.items() if k != "grid"}))
    keys += [str(k) for k in grid] + [str(k) for k in (zipped if isinstance(zipped, Mapping) else {})]
    for case in cases if isinstance(cases, list) else []:
        keys += [str(k) for k in (case if isinstance(case, Mapping) else {}) if k != "name"]
    for key in keys:
        message = unknown_key_message(key, where)
        if message:
            raise ConfigError(message)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    leaves, _, free = _key_space()
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key not in leaves and key not in free:
            yield from _flatten(value, key + ".")
        else:
            yield key


def check_model_names(runs: Iterable) -> None:
    """Every run's ``model.name`` and ``baselines`` are registered (imports the registries,
    so torch: call it after the checks above, before any data is read)."""
    from flareseq.models import MODELS
    from flareseq.training.baselines import BASELINES

    known = [*MODELS, *BASELINES]
    for run in runs:
        for key, name in [("model.name", run.model.name), *(("baselines", b) for b in run.baselines)]:
            if name not in known:
                raise ConfigError(
                    f"{key}: unknown model {name!r}.{did_you_mean(name, known)} The architectures are "
                    f"{', '.join(MODELS)} (`flareseq models` describes them); the baselines are "
                    f"{', '.join(BASELINES)}.")
