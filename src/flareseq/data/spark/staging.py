"""Reading back what Spark wrote: Parquet parts, in an order the driver chooses.

Spark's tasks write their rows as Parquet parts, one per task, in task order; which rows a
task holds depends on how Spark split the input, not on store order. The driver decides
store order from a few small columns and then streams the rows in that order with one
forward cursor per part: when a part holds a contiguous stretch of store order (a byte
range of a Kaggle file), it is read once, front to back; when parts interleave (SWAN-SF
files, spread over tasks by size), each cursor still only moves forward, so every part is
read once and memory holds one record batch per open part.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

READ_BATCH_ROWS = 512


class StagedParts:
    """The Parquet parts Spark wrote into ``directory`` (``part-*.parquet``, in name order)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.files = sorted(self.directory.glob("part-*.parquet"))

    def read_columns(self, columns: Sequence[str]):
        """Small columns of every row, with ``_part`` and ``_row`` (where each row lives)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for k, file in enumerate(self.files):
            table = pq.read_table(file, columns=list(columns))
            n = table.num_rows
            table = table.append_column("_part", pa.array(np.full(n, k, np.int32)))
            tables.append(table.append_column("_row", pa.array(np.arange(n, dtype=np.int64))))
        if not tables:
            return None
        return pa.concat_tables(tables)

    def iter_rows(self, parts: np.ndarray, rows: np.ndarray, columns: Sequence[str],
                  batch_size: int = 4096) -> Iterator:
        """Arrow tables of ``columns`` for the rows ``(parts[i], rows[i])``, in that order, at
        most ``batch_size`` rows each."""
        import pyarrow as pa

        parts = np.asarray(parts, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        remaining = np.bincount(parts, minlength=len(self.files)) if parts.size else np.zeros(0, np.int64)
        cursors: dict[int, _Cursor] = {}
        for start in range(0, parts.size, batch_size):
            p, r = parts[start:start + batch_size], rows[start:start + batch_size]
            # runs of consecutive rows of one part become one slice
            cuts = np.flatnonzero((np.diff(p) != 0) | (np.diff(r) != 1)) + 1
            bounds = np.concatenate([[0], cuts, [p.size]])
            pieces = []
            for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                part = int(p[a])
                cursor = cursors.get(part)
                if cursor is None:
                    cursor = cursors[part] = _Cursor(self.files[part], columns)
                pieces.extend(cursor.take(int(r[a]), b - a))
                remaining[part] -= b - a
                if remaining[part] == 0:
                    del cursors[part]  # done with this part: free its batch
            yield pa.Table.from_batches(pieces)


class _Cursor:
    """Forward reader of one part: ``take(row, n)`` returns rows ``row .. row+n-1``."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, list(columns)
        self._restart()

    def _restart(self) -> None:
        import pyarrow.parquet as pq

        self._batches = pq.ParquetFile(self.path).iter_batches(batch_size=READ_BATCH_ROWS, columns=self.columns)
        self._batch = None
        self._start = self._end = 0  # rows [start, end) are in the current batch

    def take(self, row: int, n: int) -> list:
        if row < self._start:  # backwards (only if a part's rows are not in store order): read it again
            self._restart()
        out = []
        while n > 0:
            while row >= self._end:
                try:
                    batch = next(self._batches)
                except StopIteration:
                    raise IndexError(f"{self.path}: row {row} asked for, but the part has {self._end} rows") from None
                self._batch, self._start, self._end = batch, self._end, self._end + batch.num_rows
            k = min(n, self._end - row)
            out.append(self._batch.slice(row - self._start, k))
            row += k
            n -= k
        return out
