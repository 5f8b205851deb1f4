"""What an ingest did (the store's manifest, skipped records, speed), for both engines."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from flareseq.data.kaggle_fast import SCANNER_NOTE
from flareseq.data.skips import SkipLog


@dataclass
class IngestReport:
    """What an ingest did: the store's manifest, the skipped records and the speed
    (``input_bytes`` counts the bytes parsed: decompressed bytes for a compressed input)."""

    path: Path
    manifest: dict
    skips: SkipLog
    seconds: float
    input_bytes: int
    workers: int
    fast_chunks: int = 0
    strict_chunks: int = 0
    sources: list = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        c = self.manifest["counts"]
        lines = [
            f"store {self.path}: {c['n_samples']} samples ({c['n_positive']} positive, {c['n_negative']} negative, "
            f"{c['n_unlabelled']} unlabelled), {c['n_missing_values']} missing values",
            f"read {self.input_bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({self.mb_per_s:.0f} MB/s, "
            f"{self.workers} worker(s))",
            f"content hash {self.manifest['content_hash']}",
        ]
        for s in self.manifest["sources"]:
            lines.append(f"  {s['path']}: {s['n_read']} read, {s['n_skipped']} skipped of {s['n_records']} records")
        lines.append(self.skips.summary())
        if SCANNER_NOTE and self.fast_chunks + self.strict_chunks:
            lines.append(f"note: {SCANNER_NOTE}")
        if len(self.skips):
            lines.append(f"skipped records listed in {self.path / 'skipped.tsv'}")
        return "\n".join(lines)


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))

