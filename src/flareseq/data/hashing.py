"""The content hash of a store: a SHA-256 over ids, labels and features in store order.

Specified in ``docs/store.md`` ("Content hash"), so that every engine (Python, Spark)
computes the same value: per-sample digests of a canonical record, then one digest over
a header and the per-sample digests in order. The per-sample step makes the hash
independent of chunking and partitioning, and lets a distributed engine compute it in
parallel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from flareseq.data.schema import UNLABELLED

if TYPE_CHECKING:
    from flareseq.data.dataset import FlareDataset

CONTENT_HASH_PREFIX = b"flareseq-content-v1\n"
_CANONICAL_NAN = np.array([0x7FC00000], dtype="<u4").view("<f4")[0]


def sample_digests(ids: np.ndarray, labels: np.ndarray, X: np.ndarray) -> list[bytes]:
    """SHA-256 of each sample's canonical record: ``uint32 LE len(id) || id UTF-8 || int8
    label || X[i] as float32 LE (T, F) row-major`` with every NaN as ``0x7FC00000``."""
    X = np.ascontiguousarray(X, dtype="<f4")
    nan = np.isnan(X)
    if nan.any() and (X.view("<u4")[nan] != 0x7FC00000).any():  # copy only for odd NaN payloads
        X = np.where(nan, _CANONICAL_NAN, X).astype("<f4")
    label_bytes = np.asarray(labels, dtype=np.int8).tobytes()
    sha256 = hashlib.sha256
    out = []
    for i, sample_id in enumerate(ids.tolist()):
        raw = str(sample_id).encode("utf-8")
        h = sha256(len(raw).to_bytes(4, "little") + raw + label_bytes[i : i + 1])
        h.update(X[i])  # contiguous: hashed through the buffer protocol, no copy
        out.append(h.digest())
    return out


class ContentHasher:
    """``sha256(prefix || header || digest_1 || ... || digest_n)`` over samples in store order;
    the per-sample digests make it independent of how the samples were chunked or
    partitioned, so any engine can compute them in parallel."""

    def __init__(self, feature_names: Sequence[str], n_timesteps: int) -> None:
        header = json.dumps({"feature_names": list(feature_names), "n_timesteps": int(n_timesteps)},
                            separators=(",", ":")).encode()
        self._hash = hashlib.sha256(CONTENT_HASH_PREFIX + header + b"\n")

    def update(self, ids: np.ndarray, labels: np.ndarray, X: np.ndarray) -> None:
        for digest in sample_digests(ids, labels, X):
            self._hash.update(digest)

    def hexdigest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def content_hash(dataset: FlareDataset) -> str:
    """The content hash of a dataset, as a store of it records in its manifest."""
    hasher = ContentHasher(dataset.feature_names, dataset.n_timesteps)
    hasher.update(dataset.ids, _labels(dataset), dataset.X)
    return hasher.hexdigest()


def _labels(dataset: FlareDataset) -> np.ndarray:
    return dataset.y if dataset.y is not None else np.full(dataset.n_samples, UNLABELLED, np.int8)
