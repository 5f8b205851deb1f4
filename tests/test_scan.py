"""The compiled Kaggle scanner: bit-identical to the strict parser, or it declines."""

from __future__ import annotations

import json
import math
import os
import random
import struct
import subprocess
import sys

import numpy as np
import pytest

from flareseq.data import kaggle_fast
from flareseq.data.ingest import ingest
from flareseq.data.kaggle import _parse_chunk_strict, parse_kaggle_chunk
from flareseq.data.schema import KAGGLE_PARAMETERS
from flareseq.data.store import read_manifest
from flareseq.data.synthetic import write_synthetic_kaggle
from flareseq.errors import DataFormatError

T = 4  # short series keep the hand-made lines readable


def _line(values=None, *, header='"id": 7, "classNum": 1, "fold": 2', steps=T) -> str:
    """One Kaggle line; ``values``: {(param, step): token} overrides the default numbers."""
    values = values or {}
    series = []
    for j, p in enumerate(KAGGLE_PARAMETERS):
        pairs = ", ".join(f'"{t}": {values.get((p, t), f"{j}.{t}5")}' for t in range(steps))
        series.append(f'"{p}": {{{pairs}}}')
    return "{" + header + ', "values": {' + ", ".join(series) + "}}"


def _strict(data: bytes, steps: int = T):
    return _parse_chunk_strict(data, path="x", on_error="raise", n_timesteps=steps,
                               n_lines=data.count(b"\n") + (0 if data.endswith(b"\n") else 1))


def _assert_same(scanned, strict):
    assert scanned is not None, "the scanner declined"
    assert np.array_equal(scanned.X.view(np.uint32), strict.X.view(np.uint32))  # bits: NaN, -0.0
    assert list(scanned.ids) == list(strict.ids)
    labels = scanned.labels if scanned.labels is not None else np.full(len(scanned.ids), -1, np.int8)
    assert np.array_equal(labels, strict.labels)
    if scanned.folds is None:
        assert not strict.fold_known.any()
    else:
        assert np.array_equal(scanned.folds, strict.folds) and strict.fold_known.all()


def test_synthetic_files_read_bit_identically(tmp_path):
    for labelled in (True, False):
        path = write_synthetic_kaggle(tmp_path / f"f{labelled}.jsonl", 40, seed=3, labelled=labelled)
        data = path.read_bytes()
        scanned = kaggle_fast.scan_chunk(data, 60)
        _assert_same(scanned, _strict(data, 60))
        assert np.isnan(scanned.X).any() and (scanned.labels is None) == (not labelled)


# Number spellings where a shortcut would go wrong: the sign of zero, float32 midpoints
# (decimal above the midpoint, but its double *is* the midpoint: round to even), more
# digits than 64 bits hold, exponents beyond the exact powers of ten, float32 subnormals.
NUMBERS = [
    "0", "-0", "0.0", "-0.0", "-0e0", "0e-5", "1", "-1", "123456789", "1e22", "1e-22", "1E+2", "2.5e-3",
    "1.0000000596046448", "1.000000059604644775390625", "1.0000000596046449", "16777217", "16777219",
    "9007199254740993", "18446744073709551615", "123456789012345678901234567890", "0.1", "0.30000000000000004",
    "3.4028234663852886e38", "1e-40", "-1.4e-45", "1e-50", "4.9e-324", "1.37149112942447e+23",
    "2843.5651904839297", "0.00000000000000000000000000012345", "1.00000000000000000000000000001", "NaN", "null",
]


def test_number_spellings_read_as_the_strict_parser_reads_them():
    tokens = NUMBERS * (1 + len(KAGGLE_PARAMETERS) * T // len(NUMBERS))
    values = {(p, t): tokens[j * T + t] for j, p in enumerate(KAGGLE_PARAMETERS) for t in range(T)}
    data = (_line(values) + "\n").encode()
    _assert_same(kaggle_fast.scan_chunk(data, T), _strict(data))


def test_random_numbers_in_every_spelling_read_bit_identically():
    rng = random.Random(5)
    lines = []
    for i in range(30):
        values = {}
        for p in KAGGLE_PARAMETERS:
            for t in range(T):
                x = rng.choice([rng.uniform(-1e4, 1e4), rng.lognormvariate(0, 30) * rng.choice([-1, 1]),
                                struct.unpack("<f", struct.pack("<I", rng.getrandbits(31)))[0],
                                (rng.getrandbits(24) + 0.5) * 2.0 ** rng.randint(-30, 30)])  # float32 midpoints
                if not math.isfinite(x) or abs(x) > 3e38:
                    x = 1.5
                values[(p, t)] = rng.choice([repr(x), f"{x:.9g}", f"{x:.17e}", f"{x:.25g}", f"{x:.3e}",
                                             str(int(x)) if abs(x) < 1e30 else repr(x)])
        lines.append(_line(values, header=f'"id": {i}, "classNum": {i % 2}, "fold": {i % 3}'))
    data = ("\n".join(lines) + "\n").encode()
    _assert_same(kaggle_fast.scan_chunk(data, T), _strict(data))


def test_keys_in_another_order_and_other_spacing_read_the_same():
    obj = json.loads(_line())
    # what Spark writes: time-step keys sorted as strings, parameters sorted, no spaces
    reordered = {"values": {p: dict(sorted(obj["values"][p].items())) for p in sorted(obj["values"])},
                 "fold": 2, "id": 7, "classNum": 1}
    data = (json.dumps(reordered, separators=(",", ":")) + "\r\n" + _line().replace(": ", ":\t ") + "\n").encode()
    _assert_same(kaggle_fast.scan_chunk(data, T), _strict(data))


# (what changes in the second of two lines, the reason the scanner gives)
DECLINED = [
    (lambda s: s.replace('"id": 7', '"id": "a7"'), "id that is not a plain integer"),
    (lambda s: s.replace('"id": 7', '"id": 7.0'), "id that is not a plain integer"),
    (lambda s: s.replace('"fold": 2', '"fold": 2, "extra": 1'), "another top-level key"),
    (lambda s: s.replace('"fold": 2', '"fold": 2, "id": 8'), "repeated top-level key"),
    (lambda s: s.replace('"classNum": 1', '"classNum": 1.0'), "classNum other than 0 or 1"),
    (lambda s: s.replace('"classNum": 1, ', ""), "top-level keys differ"),
    (lambda s: s.replace('"0": 0.05', '"0": +1'), "not a plain number"),
    (lambda s: s.replace('"0": 0.05', '"0": .5'), "not a plain number"),
    (lambda s: s.replace('"0": 0.05', '"0": 01'), "malformed series"),
    (lambda s: s.replace('"0": 0.05', '"0": Infinity'), "not a plain number"),
    (lambda s: s.replace('"0": 0.05', '"0": 1e999'), "not a plain number"),
    (lambda s: s.replace('"0": 0.05', '"0": 3.5e38'), "not a plain number"),  # beyond float32
    (lambda s: s.replace('"0": 0.05', '"0": "0.05"'), "not a plain number"),
    (lambda s: s.replace('"1": 0.15, ', ""), "another number of time steps"),
    (lambda s: s.replace('"1": 0.15', '"01": 0.15'), "unexpected time-step key"),
    (lambda s: s.replace('"1": 0.15', '"0": 0.15'), "repeated time-step key"),
    (lambda s: s.replace('"TOTBSQ"', '"TOTBSQ2"'), "unknown parameter"),
    (lambda s: s.replace('"TOTBSQ"', '"TOT\\u0042SQ"'), "malformed parameter key"),
    (lambda s: s + " x", "text after the object"),
    (lambda s: "", "blank line"),
    (lambda s: s.replace(", \"fold\"", ",\n\"fold\""), "malformed"),
]


def test_the_scanner_can_be_switched_off_by_environment():
    """FLARESEQ_KAGGLE_PARSER is read at import: a fresh interpreter sees it."""
    code = ("from flareseq.data import kaggle_fast as k; "
            "print(k._scan is None, bool(k.SCANNER_NOTE), k.scan_chunk(b'{}', 60))")
    for value, expected in (("strict", "True True None"), ("scanner", "False False None")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ,
                             "FLARESEQ_KAGGLE_PARSER": value}, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split()
    bad = subprocess.run([sys.executable, "-c", code], env={**os.environ,
                         "FLARESEQ_KAGGLE_PARSER": "arrow"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "FLARESEQ_KAGGLE_PARSER must be one of" in bad.stderr


@pytest.mark.parametrize("change, reason", DECLINED)
def test_unusual_lines_are_declined_and_left_to_the_strict_parser(change, reason):
    data = (_line() + "\n" + change(_line()) + "\n").encode()
    assert kaggle_fast.scan_chunk(data, T) is None
    line, why = kaggle_fast.scan_decline_reason(data, T)
    assert (line, reason in why) == (2, True), (line, why)
    # the chunk is still read, or refused with its line, by the Python paths
    try:
        chunk = parse_kaggle_chunk(data, path="x", n_timesteps=T)
    except DataFormatError:
        return
    assert not chunk.fast or chunk.error is None


def test_threaded_ingest_equals_the_python_paths(tmp_path, monkeypatch):
    """Scanning threads (a bad line in a middle chunk left to the strict parser) against the
    strict parser alone (the scanner switched off, as FLARESEQ_KAGGLE_PARSER=strict does):
    same store, same skipped line."""
    path = write_synthetic_kaggle(tmp_path / "f.jsonl", 60, seed=4)
    lines = path.read_bytes().splitlines()
    lines[33] = lines[33].replace(b'"5": ', b'"5": "x', 1)
    path.write_bytes(b"\n".join(lines) + b"\n")
    threaded = ingest(path, tmp_path / "threads", workers=2, chunk_bytes=150_000, on_error="skip", progress=False)
    assert threaded.fast_chunks >= 10 and 1 <= threaded.strict_chunks <= 2  # (+ an empty last range)
    from flareseq.data import ingest as ingest_module

    monkeypatch.setattr(kaggle_fast, "_scan", None)
    monkeypatch.setattr(ingest_module, "SCANNER_NOTE", "switched off (test)")
    python = ingest(path, tmp_path / "python", workers=1, chunk_bytes=150_000, on_error="skip", progress=False)
    assert python.fast_chunks == 0 and python.strict_chunks >= 10
    assert [r.line for r in threaded.skips.records] == [r.line for r in python.skips.records] == [34]
    assert read_manifest(tmp_path / "threads")["content_hash"] == read_manifest(tmp_path / "python")["content_hash"]
