"""The compiled fast path for Kaggle JSON lines: a whole chunk at C speed.

Generic JSON parsers build a Python object per number (~1,500 per line): flareseq's strict
parser (orjson, then checks per field, :mod:`.kaggle`) parses ~200 MB per CPU-second. The
compiled scanner ``flareseq._scan`` (``src/flareseq/_scan.c``) walks a chunk's bytes once
and writes float32 straight into the result, ~1.5 GB per CPU-second (benchmarks/README.md).
It accepts only strict JSON of the Kaggle layout and gives bit-identical arrays; anything
unusual makes it *decline*, and the strict parser re-reads the chunk, finding and reporting
a bad line with its number (tests/test_scan.py, tests/test_scan_fuzz.py).

The environment variable ``FLARESEQ_KAGGLE_PARSER=strict`` switches the scanner off (to
compare, or to rule the C code out when in doubt); :data:`SCANNER_NOTE` then says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from flareseq import _scan as _compiled_scan
from flareseq.data.schema import KAGGLE_PARAMETERS
from flareseq.errors import ConfigError

PARSERS = ("scanner", "strict")
_PARSER = os.environ.get("FLARESEQ_KAGGLE_PARSER", "scanner").strip().lower() or "scanner"
if _PARSER not in PARSERS:
    raise ConfigError(f"FLARESEQ_KAGGLE_PARSER must be one of {list(PARSERS)}, got {_PARSER!r}.")

#: The compiled scanner, or None when FLARESEQ_KAGGLE_PARSER=strict switches it off.
_scan = _compiled_scan if _PARSER == "scanner" else None
#: Why the scanner is not used ("" when it is): shown in ingest reports.
SCANNER_NOTE = "" if _scan is not None else (
    "the compiled Kaggle scanner is switched off (FLARESEQ_KAGGLE_PARSER=strict): the strict parser reads every "
    "line, ~7x more CPU per MB.")

_PARAMETER_BYTES = tuple(p.encode() for p in KAGGLE_PARAMETERS)
_SCAN_LABEL, _SCAN_FOLD = 2, 4  # bits of the scanner's key mask


@dataclass
class FastResult:
    ids: np.ndarray
    labels: np.ndarray | None  # int8, None when the lines have no classNum
    folds: np.ndarray | None  # int64, None when the lines have no fold
    X: np.ndarray  # float32 (n, T, F)


def _buffers(n: int, n_timesteps: int) -> tuple[np.ndarray, ...]:
    return (np.empty((n, n_timesteps, len(KAGGLE_PARAMETERS)), np.float32), np.empty(n, np.int64),
            np.empty(n, np.int8), np.empty(n, np.int64))


def scan_chunk(data: bytes | memoryview, n_timesteps: int) -> FastResult | None:
    """Parse whole lines ``data`` with the compiled scanner; ``None`` when it is switched off
    or declines (see :func:`scan_decline_reason` for why)."""
    if _scan is None:
        return None
    n_max = _scan.count_lines(data)
    X, ids, labels, folds = _buffers(n_max, n_timesteps)
    n, mask, _, _ = _scan.scan_kaggle(data, _PARAMETER_BYTES, n_timesteps, X, ids, labels, folds)
    if n < 0:
        return None
    if n != n_max:  # cannot happen (a blank line declines); refuse rather than guess
        return None
    return FastResult(ids=ids.astype(str), labels=labels if mask & _SCAN_LABEL else None,
                      folds=folds if mask & _SCAN_FOLD else None, X=X)


def scan_decline_reason(data: bytes, n_timesteps: int) -> tuple[int, str] | None:
    """``(line, reason)`` when the compiled scanner declines ``data`` (``None`` when it takes
    it, or is switched off): for tests and for finding out why a file runs slowly."""
    if _scan is None:
        return None
    n, _, line, reason = _scan.scan_kaggle(data, _PARAMETER_BYTES, n_timesteps,
                                           *_buffers(_scan.count_lines(data), n_timesteps))
    return None if n >= 0 else (line, reason)
