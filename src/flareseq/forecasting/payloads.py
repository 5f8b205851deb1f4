"""Request bodies of the forecast service, as :class:`FlareDataset`\\ s, or a clear refusal.

Three ways in, each checked against the served model's feature names and sequence length:

- arrays: ``{"feature_names": [...], "X": [[[...], ...], ...], "ids": [...]}``, ``X`` of
  shape ``(n_samples, n_timesteps, len(feature_names))`` with ``null`` for a missing value;
- Kaggle BigData Cup JSON lines, parsed by :func:`flareseq.data.kaggle.parse_kaggle_chunk`;
- SWAN-SF sample files, parsed by :func:`flareseq.data.swansf.parse_sample`.

The uploaded formats go through flareseq's own readers, so a line or file is accepted or
refused exactly as ``flareseq ingest`` would. Every refusal is a :class:`RequestError` naming
the field of the request at fault, what was expected and what was found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain
from pathlib import PurePosixPath

import numpy as np
import orjson
import pandas as pd

from flareseq.data.dataset import FlareDataset, concat_datasets, empty_meta
from flareseq.data.kaggle import KAGGLE_SUFFIXES, parse_kaggle_chunk
from flareseq.data.swansf import _to_dataset, parse_sample
from flareseq.errors import DataFormatError, FlareseqError

ARRAY_FIELDS = ("feature_names", "X", "ids")
# The largest |value| taken: orders of magnitude beyond any SHARP keyword (TOTPOT and TOTFZ
# reach ~1e25), and small enough that scaling and the model's float32 arithmetic stay finite.
VALUE_LIMIT = 1e30
_LIMIT_TEXT = f"a number with |x| <= {VALUE_LIMIT:g} (SHARP keywords stay far below)"
MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 255
_NUMBER_TYPES = frozenset([int, float, type(None)])  # bool is not int here: type(True) is bool


class RequestError(FlareseqError):
    """A request the service refuses.

    Parameters
    ----------
    message : one paragraph: what was expected, what was found.
    field : where in the request: ``"X[0][3]"``, ``"feature_names"``, ``"files[1]"``, ``"body"``.
    status : the HTTP status (422 unless the request is too large or not parseable).
    """

    def __init__(self, message: str, *, field: str | None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


# -- arrays ---------------------------------------------------------------------------------
def dataset_from_arrays(body: bytes, *, model_features: Sequence[str], n_timesteps: int,
                        max_samples: int) -> FlareDataset:
    """The samples of an arrays request body (JSON)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON ({exc}); expected an object "
                           '{"feature_names": [...], "X": [...]}.', field="body", status=400) from None
    if not isinstance(obj, dict):
        raise RequestError(f'expected a JSON object {{"feature_names": [...], "X": [...]}}, found {_kind(obj)}.',
                           field="body")
    unknown = [k for k in obj if k not in ARRAY_FIELDS]
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; the fields are 'feature_names', 'X' and 'ids' (optional).",
                           field=unknown[0])
    names = _feature_names(obj.get("feature_names"), model_features)
    X = _values(obj.get("X"), n_timesteps=n_timesteps, n_features=len(names), max_samples=max_samples)
    ids = _ids(obj.get("ids"), len(X))
    meta = empty_meta(len(X))
    meta["source"] = pd.array(["request"] * len(X), dtype="string")
    return FlareDataset(X=X, y=None, ids=ids, feature_names=tuple(names), meta=meta)


def _feature_names(names: object, model_features: Sequence[str]) -> list[str]:
    expected = f"a list of feature names, one per value of a time step, including all of {list(model_features)}"
    if names is None:
        raise RequestError(f"missing field 'feature_names'; expected {expected}.", field="feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RequestError(f"expected {expected}; found {_kind(names)}.", field="feature_names")
    if len(names) > max(4 * len(model_features), 100):
        raise RequestError(f"expected at most {max(4 * len(model_features), 100)} feature names, found {len(names)}.",
                           field="feature_names", status=413)
    seen = set()
    for name in names:
        if name in seen:
            raise RequestError(f"feature name {name[:60]!r} appears twice; each feature must be named once.",
                               field="feature_names")
        seen.add(name)
    missing = [n for n in model_features if n not in seen]
    if missing:
        raise RequestError(f"the model needs feature(s) {missing} that 'feature_names' lacks; give all of "
                           f"{list(model_features)} (others are ignored).", field="feature_names")
    return names


def _values(X: object, *, n_timesteps: int, n_features: int, max_samples: int) -> np.ndarray:
    shape = f"(n_samples, {n_timesteps}, {n_features}): n_samples lists of {n_timesteps} time steps of " \
            f"{n_features} values (one per feature name, null if missing)"
    if X is None:
        raise RequestError(f"missing field 'X'; expected the samples, shape {shape}.", field="X")
    if not isinstance(X, list) or not X:
        raise RequestError(f"expected the samples, shape {shape}; found {_kind(X)}.", field="X")
    if len(X) > max_samples:
        raise RequestError(f"at most {max_samples} samples per request, found {len(X)}; split the batch.",
                           field="X", status=413)
    for i, sample in enumerate(X):
        if not isinstance(sample, list) or len(sample) != n_timesteps:
            raise RequestError(f"expected {n_timesteps} time steps (the model's sequence length; X has shape "
                               f"{shape}), found {_kind(sample)}.", field=f"X[{i}]")
        if not all(type(row) is list and len(row) == n_features for row in sample):
            t, row = next((t, r) for t, r in enumerate(sample) if type(r) is not list or len(r) != n_features)
            raise RequestError(f"expected {n_features} values, one per name in 'feature_names' (X has shape "
                               f"{shape}), found {_kind(row)}.", field=f"X[{i}][{t}]")
    # One pass in C over every value; the slow search runs only to name a bad one.
    if not set(map(type, chain.from_iterable(chain.from_iterable(X)))) <= _NUMBER_TYPES:
        i, t, j, v = next((i, t, j, v) for i, s in enumerate(X) for t, r in enumerate(s) for j, v in enumerate(r)
                          if type(v) not in _NUMBER_TYPES)
        raise RequestError(f"expected a number or null (missing), found {_kind(v)}.", field=f"X[{i}][{t}][{j}]")
    try:
        values = np.array(X, dtype=np.float64)  # null -> NaN
    except OverflowError:  # an integer beyond float64: find it to name it
        i, t, j = next((i, t, j) for i, s in enumerate(X) for t, r in enumerate(s) for j, v in enumerate(r)
                       if isinstance(v, int) and abs(v) > VALUE_LIMIT)
        raise RequestError(f"expected {_LIMIT_TEXT}, found an integer of {len(str(abs(X[i][t][j])))} digits.",
                           field=f"X[{i}][{t}][{j}]") from None
    with np.errstate(invalid="ignore"):
        too_large = np.abs(values) > VALUE_LIMIT
    if too_large.any():
        i, t, j = np.argwhere(too_large)[0]
        raise RequestError(f"expected {_LIMIT_TEXT}, found {float(values[i, t, j])!r}.", field=f"X[{i}][{t}][{j}]")
    return values.astype(np.float32)


def check_magnitudes(dataset: FlareDataset, features: Sequence[str], *, field: str) -> FlareDataset:
    """``dataset`` if every value of the model's ``features`` is within :data:`VALUE_LIMIT`."""
    present = [f for f in features if f in dataset.feature_names]
    X = dataset.select_features(present).X if present else dataset.X[:, :, :0]
    with np.errstate(invalid="ignore"):
        too_large = np.abs(X) > VALUE_LIMIT
    if too_large.any():
        i, t, j = np.argwhere(too_large)[0]
        raise RequestError(f"sample {str(dataset.ids[i])[:80]!r}, feature {present[j]!r}, time step {t}: expected "
                           f"{_LIMIT_TEXT}, found {float(X[i, t, j]):.4g}.", field=field)
    return dataset


def _ids(ids: object, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n).astype(str)
    if not isinstance(ids, list) or len(ids) != n or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                             for v in ids):
        raise RequestError(f"expected a list of {n} sample ids (strings or integers, one per sample of X), "
                           f"found {_kind(ids)}.", field="ids")
    too_long = next((k for k, v in enumerate(ids) if len(str(v)) > MAX_ID_LENGTH), None)
    if too_long is not None:
        raise RequestError(f"expected an id of at most {MAX_ID_LENGTH} characters, found {len(str(ids[too_long]))}.",
                           field=f"ids[{too_long}]")
    return np.array([str(v) for v in ids], dtype=str)


# -- uploaded formats -------------------------------------------------------------------------
def dataset_from_kaggle_lines(data: bytes, *, source: str, field: str, model_features: Sequence[str],
                              n_timesteps: int, max_samples: int) -> FlareDataset:
    """The samples of Kaggle BigData Cup JSON lines (one sample per line)."""
    n_lines = sum(1 for line in data.split(b"\n") if line.strip())
    if n_lines == 0:
        raise RequestError(f"{source}: expected Kaggle BigData Cup JSON lines (one sample per line), found no line.",
                           field=field)
    if n_lines > max_samples:
        raise RequestError(f"{source}: at most {max_samples} samples per request, found {n_lines} lines; "
                           "split the file.", field=field, status=413)
    chunk = parse_kaggle_chunk(data, path=source, on_error="raise", n_timesteps=n_timesteps)
    if chunk.error is not None:
        raise RequestError(_without_hint(chunk.error), field=field)
    return check_magnitudes(chunk.to_dataset(source), model_features, field=field)


def dataset_from_swansf_file(data: bytes, *, file_name: str, field: str, model_features: Sequence[str],
                             n_timesteps: int) -> FlareDataset:
    """The sample of one SWAN-SF file (its name carries the region and window)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{file_name}: expected UTF-8 text, found undecodable bytes ({exc.reason}).",
                           field=field) from None
    try:
        sample = parse_sample(text, path=file_name, name=file_name, n_timesteps=n_timesteps)
    except DataFormatError as exc:
        raise RequestError(_without_hint(exc), field=field) from None
    return check_magnitudes(_to_dataset([sample], "upload", n_timesteps), model_features, field=field)


def dataset_from_files(files: Sequence[tuple[str, bytes]], *, model_features: Sequence[str], n_timesteps: int,
                       max_samples: int) -> FlareDataset:
    """The samples of uploaded files: SWAN-SF ``.csv`` files (one sample each) and Kaggle
    JSON-lines files (``.json``, ``.jsonl``, ``.ndjson``), in the order given."""
    if not files:
        raise RequestError("expected at least one file (SWAN-SF .csv, Kaggle .json/.jsonl).", field="files")
    parts = []
    n_samples = 0
    for k, (raw_name, data) in enumerate(files):
        field = f"files[{k}]"
        name = upload_name(raw_name, field=field)
        suffix = PurePosixPath(name).suffix.lower()
        if suffix == ".csv":
            part = dataset_from_swansf_file(data, file_name=name, field=field, model_features=model_features,
                                            n_timesteps=n_timesteps)
        elif suffix in KAGGLE_SUFFIXES:
            part = dataset_from_kaggle_lines(data, source=name, field=field, model_features=model_features,
                                             n_timesteps=n_timesteps, max_samples=max_samples - n_samples)
        else:
            raise RequestError(f"{name}: expected a SWAN-SF sample (.csv) or Kaggle BigData Cup JSON lines "
                               f"({', '.join(KAGGLE_SUFFIXES)}), found a {suffix or 'name without suffix'}.",
                               field=field, status=415)
        n_samples += part.n_samples
        if n_samples > max_samples:
            raise RequestError(f"at most {max_samples} samples per request, found more in {k + 1} files; "
                               "upload fewer files at once.", field=field, status=413)
        # side series differ between formats; forecasts use the features only
        parts.append(FlareDataset(X=part.X, y=part.y, ids=part.ids, feature_names=part.feature_names,
                                  meta=part.meta))
    return parts[0] if len(parts) == 1 else concat_datasets(parts)


def upload_name(raw_name: str | None, *, field: str) -> str:
    """An uploaded file's own name, without any folder a client put in front (never used as
    a path: only to read the SWAN-SF label and window and to name the file in messages)."""
    name = re.split(r"[\\/]", raw_name or "")[-1]
    if not name or len(name) > MAX_NAME_LENGTH:
        raise RequestError(f"expected a file name of 1 to {MAX_NAME_LENGTH} characters, found {len(name)}.",
                           field=field)
    return name


# -- helpers ----------------------------------------------------------------------------------
def _without_hint(error: DataFormatError) -> str:
    """A reader's message without its command-line hint (``--on-error skip`` means nothing here)."""
    return str(DataFormatError(error.path, line=error.line, field=error.field, expected=error.expected,
                               found=error.found))


def _kind(value: object) -> str:
    """What a JSON value is, briefly, for an error message."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
