"""Bookkeeping of records skipped under ``on_error="skip"``.

Nothing is dropped silently: every skipped record keeps the file, line (or file name),
field and reason of the error that skipped it, the counts go into the store's manifest
and the list into ``skipped.tsv`` beside the store.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from flareseq.errors import ConfigError, DataFormatError

ON_ERROR_CHOICES = ("raise", "skip")


def check_on_error(on_error: str) -> str:
    """Validate an ``on_error`` option; returns it unchanged."""
    if on_error not in ON_ERROR_CHOICES:
        raise ConfigError(f"on_error must be one of {list(ON_ERROR_CHOICES)}, got {on_error!r}.")
    return on_error


@dataclass(frozen=True)
class SkippedRecord:
    """One input record that was not read, and why."""

    path: str
    line: int | None
    field: str | None
    reason: str

    @classmethod
    def from_error(cls, error: DataFormatError) -> SkippedRecord:
        return cls(error.path, error.line, error.field, f"expected {error.expected}, found {error.found}")


class SkipLog:
    """Skipped records of one read or ingest, in input order."""

    COLUMNS = ("file", "line", "field", "reason")

    def __init__(self) -> None:
        self.records: list[SkippedRecord] = []

    def add(self, record: SkippedRecord) -> None:
        self.records.append(record)

    def extend(self, records: Iterable[SkippedRecord]) -> None:
        self.records.extend(records)

    def __len__(self) -> int:
        return len(self.records)

    def counts_by_file(self) -> dict[str, int]:
        return dict(Counter(r.path for r in self.records))

    def counts_by_field(self) -> dict[str, int]:
        return dict(Counter(r.field or "" for r in self.records))

    def write_tsv(self, path: str | PathLike[str]) -> Path:
        """Write the list as tab-separated ``file, line, field, reason`` with a header row."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(self.COLUMNS)
            for r in self.records:
                writer.writerow((r.path, "" if r.line is None else r.line, r.field or "", r.reason))
        return path

    @classmethod
    def read_tsv(cls, path: str | PathLike[str]) -> SkipLog:
        log = cls()
        with Path(path).open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                log.add(SkippedRecord(row["file"], int(row["line"]) if row["line"] else None,
                                      row["field"] or None, row["reason"]))
        return log

    def summary(self, limit: int = 5) -> str:
        """A few lines for a terminal: the count and the first records."""
        if not self.records:
            return "no records skipped"
        lines = [f"{len(self.records)} record(s) skipped:"]
        for r in self.records[:limit]:
            where = r.path if r.line is None else f"{r.path}:{r.line}"
            lines.append(f"  {where} [{r.field or '-'}] {r.reason}")
        if len(self.records) > limit:
            lines.append(f"  ... and {len(self.records) - limit} more")
        return "\n".join(lines)
