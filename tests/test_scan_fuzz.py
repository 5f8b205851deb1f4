"""Differential fuzzing of the compiled Kaggle scanner (src/flareseq/_scan.c) against the
strict Python parser, on generated, mutated and random bytes.

The property: whatever the bytes, the scanner either declines, or it accepts and gives
bit for bit what the strict parser reads (every line a sample, no line refused, same ids,
labels, folds and float32 values, NaN and the sign of zero included). It never crashes,
never reads or writes outside its buffers (``make sanitize`` runs this file under
AddressSanitizer and UndefinedBehaviorSanitizer), and says on which line it declined.

About 20 s in the suite; ``python benchmarks/fuzz_scan.py --cases N`` runs the same
properties longer. Cases per test: ``FLARESEQ_FUZZ_EXAMPLES`` (default below).
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flareseq.data import kaggle_fast
from flareseq.data.kaggle import _parse_chunk_strict
from flareseq.data.schema import KAGGLE_PARAMETERS

EXAMPLES = int(os.environ.get("FLARESEQ_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- what the parsers say ----------------------------------------------------------------


def check_chunk(data: bytes, n_timesteps: int) -> bool:
    """Assert the differential property on ``data``; True when the scanner accepted it."""
    # The scanner reads a buffer of exactly len(data) bytes (a bytes object has a spare NUL
    # after its end), so that AddressSanitizer sees a read even one byte past the end.
    exact = memoryview(np.frombuffer(data, np.uint8).copy()) if data else data
    scanned = kaggle_fast.scan_chunk(exact, n_timesteps)
    reason = kaggle_fast.scan_decline_reason(exact, n_timesteps)
    n_lines = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    if scanned is None:
        assert reason is not None, "declined without a reason"
        line, why = reason
        assert 1 <= line <= max(n_lines, 1) and isinstance(why, str) and why
        return False
    assert reason is None
    strict = _parse_chunk_strict(data, path="fuzz", on_error="skip", n_timesteps=n_timesteps, n_lines=n_lines)
    assert not strict.skipped, f"the scanner accepted what the strict parser refuses: {strict.skipped[0]}"
    assert strict.n_blank == 0 and strict.n_samples == n_lines == len(scanned.ids)
    assert np.array_equal(scanned.X.view(np.uint32), strict.X.view(np.uint32)), "values differ (bits)"
    assert scanned.ids.tolist() == strict.ids.tolist()
    labels = scanned.labels if scanned.labels is not None else np.full(len(scanned.ids), -1, np.int8)
    assert np.array_equal(labels, strict.labels)
    if scanned.folds is None:
        assert not strict.fold_known.any()
    else:
        assert strict.fold_known.all() and np.array_equal(scanned.folds, strict.folds)
    return True


# -- generated lines -----------------------------------------------------------------------

DIGITS = "0123456789"
SPECIAL_NUMBERS = [
    "NaN", "null", "0", "-0", "0.0", "-0.0", "-0e0", "1e-400", "-1e-400", "1e-46", "-1.4e-45", "1e-45",
    "3.4028234663852886e38", "3.4028235677973366e38", "3.4028236e38", "1e39", "1e308", "1e309", "4.9e-324",
    "1.0000000596046448", "1.000000059604644775390625", "16777217", "9007199254740993",
    "18446744073709551615", "18446744073709551616", "123456789012345678901234567890", "0.1", "1E+2", "2.5E-3",
]


@st.composite
def decimal_tokens(draw, max_exponent: int = 400) -> str:
    """A JSON number in any spelling: sign, many digits, fraction, exponent."""
    sign = draw(st.sampled_from(["", "-"]))
    whole = draw(st.one_of(st.just("0"), st.text(DIGITS[1:], min_size=1, max_size=1).flatmap(
        lambda first: st.text(DIGITS, max_size=24).map(lambda rest: first + rest))))
    fraction = draw(st.one_of(st.just(""), st.text(DIGITS, min_size=1, max_size=30).map(lambda f: "." + f)))
    exponent = draw(st.one_of(st.just(""), st.tuples(st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
                                                      st.integers(0, max_exponent)).map(lambda e: f"{e[0]}{e[1]}{e[2]}")))
    return sign + whole + fraction + exponent


# numbers within float32's range (mostly: 24 digits and e+14 can still pass it), and any
plain_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-3e38, max_value=3e38).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["NaN", "null", "-0", "-0.0", "1e-400", "-1e-46", "0.1", "16777217", "1.0000000596046448"]),
    decimal_tokens(max_exponent=14),
)
any_numbers = st.one_of(
    plain_numbers,
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: format(x, ".17g")),
    st.sampled_from(SPECIAL_NUMBERS),
    decimal_tokens(),
)


@st.composite
def kaggle_lines(draw, n_timesteps: int, header_keys: tuple[str, ...], numbers) -> str:
    """One line of the Kaggle layout, keys in any order and spacing, numbers from ``numbers``."""
    colon = draw(st.sampled_from([": ", ":", " :\t", ":\r "]))
    comma = draw(st.sampled_from([", ", ",", " ,  "]))
    params = list(KAGGLE_PARAMETERS)
    if draw(st.booleans()):
        params = draw(st.permutations(params))
    steps = [str(t) for t in range(n_timesteps)]
    if draw(st.booleans()):
        steps = draw(st.permutations(steps))
    series = []
    for p in params:
        pairs = comma.join(f'"{t}"{colon}{draw(numbers)}' for t in steps)
        series.append(f'"{p}"{colon}{{{pairs}}}')
    sample_id = draw(st.one_of(st.integers(-(10**18) + 1, 10**18 - 1).map(str), st.integers(0, 99).map(str),
                               st.integers(0, 99).map(str), st.integers(-9, 9).map(str),
                               st.just('"7"')))  # a string id: the scanner declines
    members = {
        "id": f'"id"{colon}{sample_id}',
        "classNum": f'"classNum"{colon}{draw(st.sampled_from(["0", "1"]))}',
        "fold": f'"fold"{colon}{draw(st.integers(-5, 2**40))}',
        "values": f'"values"{colon}{{{comma.join(series)}}}',
    }
    order = draw(st.permutations([*header_keys, "values"]))
    return "{" + comma.join(members[k] for k in order) + "}"


@st.composite
def kaggle_chunks(draw, n_timesteps: int) -> bytes:
    """1-3 lines sharing their top-level keys (as real files do), CRLF or LF; numbers in
    float32's range in most chunks (so that the scanner accepts them), any in the rest."""
    header = tuple(k for k in ("id", "classNum", "fold") if k == "id" or draw(st.booleans()))
    numbers = draw(st.sampled_from([plain_numbers, plain_numbers, any_numbers]))
    lines = draw(st.lists(kaggle_lines(n_timesteps, header, numbers), min_size=1, max_size=3))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    last = draw(st.sampled_from([end, ""]))
    return (end.join(lines) + last).encode()


# -- mutations -------------------------------------------------------------------------------

TOKENS = [b'"', b"{", b"}", b"[", b"]", b":", b",", b" ", b"\n", b"\r", b"\t", b"\x0c", b"-", b"+", b".", b"e",
          b"E", b"0", b"9", b"N", b"NaN", b"null", b"true", b"\\", b"\\u0030", b"\x00", b"\xff", b"\xc3\xa9",
          b"1e999", b"Infinity", b'"id": 1, ', b'"0": 1', b"\n\n", b"9" * 30]


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` with 1-4 byte-level edits: deletions, insertions of JSON tokens and odd
    bytes, random bytes, copied slices, truncation, and edits that keep the layout (a digit,
    sign or exponent next to a digit, spacing after a separator) so that some mutants are
    still accepted."""
    data = bytearray(data)
    layout_kept = draw(st.booleans())  # only edits that keep the layout, in half the cases
    kinds = ["digit", "space"] if layout_kept else ["delete", "insert", "replace", "copy", "truncate", "digit"]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        at = draw(st.integers(0, len(data)))
        if kind == "delete":
            del data[at:at + draw(st.integers(1, 4))]
        elif kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=3)))
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "copy" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[start:start + draw(st.integers(1, 40))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "digit":
            digits = [i for i in range(len(data)) if data[i:i + 1].isdigit()]
            if digits:
                i = digits[draw(st.integers(0, len(digits) - 1))] + draw(st.integers(0, 1))
                data[i:i] = draw(st.sampled_from([b"0", b"5", b"9", b"-", b".", b"e", b"e-", b"E+", b"00"]))
        elif kind == "space":
            separators = [i + 1 for i in range(len(data)) if data[i:i + 1] in (b",", b":")]
            if separators:
                i = separators[draw(st.integers(0, len(separators) - 1))]
                data[i:i] = draw(st.sampled_from([b" ", b"\t", b"\r", b"  "]))
    return bytes(data)


# -- the properties ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), n_timesteps=st.integers(1, 3))
def test_generated_lines_read_as_the_strict_parser_reads_them(data, n_timesteps):
    event("accepted" if check_chunk(data.draw(kaggle_chunks(n_timesteps)), n_timesteps) else "declined")


@FUZZ
@given(data=st.data(), n_timesteps=st.integers(1, 2))
def test_mutated_lines_are_declined_or_read_as_the_strict_parser_reads_them(data, n_timesteps):
    chunk = data.draw(kaggle_chunks(n_timesteps))
    event("accepted" if check_chunk(data.draw(mutated(chunk)), n_timesteps) else "declined")


@FUZZ
@given(blob=st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)),
       n_timesteps=st.integers(1, 3))
def test_random_bytes_are_declined_or_read_as_the_strict_parser_reads_them(blob, n_timesteps):
    event("accepted" if check_chunk(blob, n_timesteps) else "declined")


def test_plain_generated_chunks_are_accepted():
    """The generator really produces what the scanner takes (so the properties above test
    acceptance, not only declining): plain lines of the canonical spelling."""
    line = ('{"id": 3, "classNum": 1, "fold": 2, "values": {'
            + ", ".join(f'"{p}": {{"0": 1.5, "1": NaN}}' for p in KAGGLE_PARAMETERS) + "}}")
    assert check_chunk((line + "\n" + line.replace('"id": 3', '"id": 4')).encode(), 2)
