"""The vectorised fast path for Kaggle JSON lines: a whole chunk at C speed.

Generic JSON parsers build a Python object per number (~1,500 per line), which caps them at
~150 MB/s per core. Every well-formed line of a Kaggle file has the same *structure*, so a
chunk can instead be checked and converted in bulk:

1. Structure: deleting everything but the punctuation ``{}:,"`` and spaces leaves each
   line's *skeleton*; every line must have exactly the skeleton of the chunk's first line,
   which the strict parser has accepted and found canonical (parameters in the schema's
   order, time-step keys ``"0".."59"`` in order). One ``bytes.translate`` pass.
2. Content: deleting ``{}"`` and turning ``:`` into ``,`` makes each line one CSV row of
   fixed width (header keys and values, parameter names, step keys and values), which
   Arrow's multi-column CSV reader converts with correctly rounded float parsing
   (the same doubles as the strict parser).
3. Checks on the converted columns: parameter names and step keys equal the expected ones,
   labels are 0/1, and no NaN or infinity came from anything but a ``NaN``/``null`` token.

Any check that fails returns ``None``: the caller re-reads the chunk with the strict
parser, which finds and reports the bad line with its number. The fast path gives
bit-identical arrays, and accepts nothing the strict parser rejects except number
spellings that JSON forbids but every float parser reads alike (``+1``, ``.5``, ``1.``,
``01``); checking for them would cost a fifth of the speed, and no writer produces them.

Before all that, a compiled single-pass scanner (``flareseq._scan``, built from
``src/flareseq/_scan.c`` when flareseq is installed) takes the chunk when it can: it walks
the bytes once and writes float32 straight into the result, ~4x less CPU per MB than the
Arrow path. It accepts only strict JSON of the Kaggle layout and gives bit-identical
arrays; anything unusual makes it decline and the Arrow path (then the strict parser) runs.
Without the build (no C compiler at install time), or with the environment variable
``FLARESEQ_PURE_PYTHON`` set, :data:`SCANNER_NOTE` says so and the Arrow path does all the
work, about 4x slower per core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from flareseq.data.schema import KAGGLE_PARAMETERS

if os.environ.get("FLARESEQ_PURE_PYTHON"):  # to compare, or to rule the C code out when in doubt
    _scan = None
    SCANNER_NOTE = ("the compiled Kaggle scanner is switched off (FLARESEQ_PURE_PYTHON is set); the Arrow-based "
                    "path parses instead, about 4x slower per core.")
else:
    try:
        from flareseq import _scan
    except ImportError as _exc:  # built at install time; absent when no C compiler was there
        _scan = None
        SCANNER_NOTE = (f"the compiled Kaggle scanner flareseq._scan is not built ({_exc}); the Arrow-based path "
                        "parses instead, about 4x slower per core. Reinstall with a C compiler present "
                        "(pip install -e . with gcc or clang) to build it.")
    else:
        SCANNER_NOTE = ""

_PARAMETER_BYTES = tuple(p.encode() for p in KAGGLE_PARAMETERS)
_SCAN_LABEL, _SCAN_FOLD = 2, 4  # bits of the scanner's key mask

_SKELETON_KEEP = b'{}:,"\n '
_SKELETON_DELETE = bytes(c for c in range(256) if c not in _SKELETON_KEEP)
_CSV_TABLE = bytes.maketrans(b":", b",")
_CSV_DELETE = b'{}" \r'
_HEADER_KEYS = ("id", "classNum", "fold")


@dataclass(frozen=True)
class FastLayout:
    """Column layout of one canonical line, to check and convert lines like it."""

    skeleton: bytes  # the skeleton of one line, newline included
    header: tuple[str, ...]  # top-level keys before "values", in order
    id_is_int: bool
    n_timesteps: int
    column_names: tuple[str, ...]
    column_types: dict
    value_columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    name_columns: tuple[str, ...]


def make_layout(line: bytes, obj: dict, n_timesteps: int) -> FastLayout | None:
    """The layout of ``line`` (already parsed by the strict parser into ``obj``), or ``None``
    when the line is not canonical (keys reordered, other top-level keys, ...)."""
    if not isinstance(obj, dict):  # a scalar or list line: the strict parser says what is wrong
        return None
    keys = list(obj)
    if not keys or keys[-1] != "values" or any(k not in _HEADER_KEYS for k in keys[:-1]):
        return None
    values = obj["values"]
    if not isinstance(values, dict) or tuple(values) != KAGGLE_PARAMETERS:
        return None
    step_keys = [str(t) for t in range(n_timesteps)]
    if any(not isinstance(values[p], dict) or list(values[p]) != step_keys for p in KAGGLE_PARAMETERS):
        return None
    id_value = obj.get("id")
    if isinstance(id_value, bool) or not isinstance(id_value, (int, str)):
        return None
    if isinstance(id_value, str) and any(c in id_value for c in '{}:," \\\n'):
        return None  # would change the skeleton or the CSV row; the strict path handles it
    columns = _columns(tuple(keys[:-1]), isinstance(id_value, int), n_timesteps)
    return FastLayout(
        skeleton=line.rstrip(b"\r\n").translate(None, _SKELETON_DELETE) + b"\n",
        header=tuple(keys[:-1]),
        id_is_int=isinstance(id_value, int),
        n_timesteps=n_timesteps,
        **columns,
    )


@lru_cache(maxsize=16)
def _columns(header: tuple[str, ...], id_is_int: bool, n_timesteps: int) -> dict:
    """The CSV columns of a line layout (built once per layout: ~3,000 names, ~5 ms)."""
    import pyarrow as pa

    names: list[str] = []
    types: dict = {}
    values_cols: list[str] = []
    key_cols: list[str] = []
    name_cols: list[str] = []

    def column(kind: str, arrow_type) -> str:
        name = f"c{len(names)}_{kind}"
        names.append(name)
        types[name] = arrow_type
        return name

    for key in header:
        column("hkey", pa.binary())
        if key == "id":
            column("id", pa.int64() if id_is_int else pa.string())
        elif key == "classNum":
            column("label", pa.int8())
        else:
            column("fold", pa.int64())
    column("hvalues", pa.binary())
    for _ in KAGGLE_PARAMETERS:
        name_cols.append(column("name", pa.binary()))
        for _ in range(n_timesteps):
            key_cols.append(column("key", pa.uint8()))
            values_cols.append(column("value", pa.float64()))
    return dict(column_names=tuple(names), column_types=types, value_columns=tuple(values_cols),
                key_columns=tuple(key_cols), name_columns=tuple(name_cols))


@dataclass
class FastResult:
    ids: np.ndarray
    labels: np.ndarray | None  # int8, None when the layout has no classNum
    folds: np.ndarray | None  # int64, None when the layout has no fold
    X: np.ndarray  # float32 (n, T, F)


def parse_chunk_fast(data: bytes, layout: FastLayout, n_lines: int | None = None) -> FastResult | None:
    """Parse whole lines ``data`` if every line has ``layout`` (``n_lines``: the number of
    lines, when the caller has counted them); ``None`` means "use the strict parser"."""
    if _scan is not None:
        result = scan_chunk(data, layout.n_timesteps)
        if result is not None:
            return result
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not data.endswith(b"\n"):
        data += b"\n"
    # 1. structure (blank lines, stray quotes, missing braces and spaces inside numbers all
    # change the skeleton); the skeleton's length also gives the line count without a pass
    skeleton = data.translate(None, _SKELETON_DELETE)
    if n_lines is None:
        n_lines, rest = divmod(len(skeleton), len(layout.skeleton))
        if rest:
            return None
    if skeleton != layout.skeleton * n_lines:
        return None
    text = data.translate(_CSV_TABLE, _CSV_DELETE)
    # 2. content
    try:
        table = pcsv.read_csv(
            pa.py_buffer(text),
            read_options=pcsv.ReadOptions(column_names=list(layout.column_names), block_size=1 << 24,
                                          use_threads=False),
            parse_options=pcsv.ParseOptions(quote_char=False, double_quote=False, newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(
                column_types=layout.column_types, null_values=["NaN", "null"],
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != n_lines:
        return None
    # 3. checks on the converted columns
    expected_header = [k.encode() for k in layout.header] + [b"values"]
    hkeys = [c for c in layout.column_names if c.endswith(("_hkey", "_hvalues"))]
    for name, expected in zip(hkeys, expected_header):
        if not _column_all_equal(table.column(name), expected):
            return None
    for name, parameter in zip(layout.name_columns, KAGGLE_PARAMETERS):
        if not _column_all_equal(table.column(name), parameter.encode()):
            return None
    keys = np.column_stack([table.column(c).to_numpy() for c in layout.key_columns])
    expected_keys = np.tile(np.arange(layout.n_timesteps, dtype=np.uint8), len(KAGGLE_PARAMETERS))
    if not (keys == expected_keys).all():
        return None
    n_null = sum(table.column(c).null_count for c in layout.value_columns)
    X64 = np.empty((n_lines, len(layout.value_columns)), dtype=np.float64)
    for j, c in enumerate(layout.value_columns):
        X64[:, j] = table.column(c).to_numpy(zero_copy_only=False)
    n_nan = int(np.isnan(X64).sum())
    if n_nan != n_null or np.isinf(X64).any():
        return None  # 'nan'/'inf'/'1e999' tokens: let the strict parser judge them
    with np.errstate(over="ignore"):
        X = X64.astype(np.float32)
    if np.isinf(X).any():
        return None  # beyond float32: the strict parser reports where
    X = X.reshape(n_lines, len(KAGGLE_PARAMETERS), layout.n_timesteps)
    X = np.ascontiguousarray(X.transpose(0, 2, 1))
    columns = {c.split("_", 1)[1]: c for c in layout.column_names if c.endswith(("_id", "_label", "_fold"))}
    ids_col = table.column(columns["id"])
    if ids_col.null_count:
        return None
    ids = np.asarray(ids_col.to_numpy(zero_copy_only=False)).astype(str)
    labels = folds = None
    if "label" in columns:
        col = table.column(columns["label"])
        labels = col.to_numpy(zero_copy_only=False)
        if col.null_count or not np.isin(labels, (0, 1)).all():
            return None
        labels = labels.astype(np.int8)
    if "fold" in columns:
        col = table.column(columns["fold"])
        if col.null_count:
            return None
        folds = col.to_numpy().astype(np.int64)
    return FastResult(ids=ids, labels=labels, folds=folds, X=X)


def _column_all_equal(column, expected: bytes) -> bool:
    import pyarrow.compute as pc

    if column.null_count:
        return False
    return bool(pc.all(pc.equal(column, expected)).as_py())


def scan_chunk(data: bytes, n_timesteps: int) -> FastResult | None:
    """Parse whole lines ``data`` with the compiled scanner; ``None`` when it is not built or
    declines (see :func:`scan_decline_reason` for why)."""
    if _scan is None:
        return None
    n_max = _scan.count_lines(data)
    F = len(KAGGLE_PARAMETERS)
    X = np.empty((n_max, n_timesteps, F), np.float32)
    ids = np.empty(n_max, np.int64)
    labels = np.empty(n_max, np.int8)
    folds = np.empty(n_max, np.int64)
    n, mask, _, _ = _scan.scan_kaggle(data, _PARAMETER_BYTES, n_timesteps, X, ids, labels, folds)
    if n < 0:
        return None
    if n != n_max:  # cannot happen (a blank line declines); refuse rather than guess
        return None
    return FastResult(ids=ids.astype(str), labels=labels if mask & _SCAN_LABEL else None,
                      folds=folds if mask & _SCAN_FOLD else None, X=X)


def scan_decline_reason(data: bytes, n_timesteps: int) -> tuple[int, str] | None:
    """``(line, reason)`` when the compiled scanner declines ``data`` (``None`` when it takes
    it, or is not built): for tests and for finding out why a file runs slowly."""
    if _scan is None:
        return None
    n_max = _scan.count_lines(data)
    F = len(KAGGLE_PARAMETERS)
    buffers = (np.empty((n_max, n_timesteps, F), np.float32), np.empty(n_max, np.int64), np.empty(n_max, np.int8),
               np.empty(n_max, np.int64))
    n, _, line, reason = _scan.scan_kaggle(data, _PARAMETER_BYTES, n_timesteps, *buffers)
    return None if n >= 0 else (line, reason)
