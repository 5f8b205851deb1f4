"""Kaggle JSON-lines reader: fast path == strict path, keys by name, inputs of every kind."""

from __future__ import annotations

import gzip
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flareseq.data.kaggle import parse_kaggle_chunk, parse_kaggle_line, read_kaggle
from flareseq.data.schema import KAGGLE_PARAMETERS, UNLABELLED
from flareseq.data.synthetic import synthetic_dataset, write_synthetic_kaggle


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("kaggle") / "synth.jsonl"
    write_synthetic_kaggle(path, 40, seed=5)
    return path


def test_fast_and_strict_paths_give_identical_arrays(synth_file):
    data = synth_file.read_bytes()
    fast = parse_kaggle_chunk(data, path="x")
    strict = parse_kaggle_chunk(data, path="x", fast=False)
    assert fast.fast and not strict.fast
    assert np.array_equal(fast.X, strict.X, equal_nan=True)
    assert list(fast.ids) == list(strict.ids) and list(fast.labels) == list(strict.labels)
    assert list(fast.folds) == list(strict.folds)
    assert np.isnan(fast.X).any()  # the file has bare NaN tokens and they were read as missing


def test_file_equals_the_in_memory_synthetic_dataset(synth_file):
    read = read_kaggle(synth_file)
    made = synthetic_dataset(40, seed=5)
    assert np.array_equal(read.X, made.X, equal_nan=True)
    assert list(read.ids) == list(made.ids) and np.array_equal(read.y, made.y)
    assert list(read.meta["fold"]) == list(made.meta["fold"])


def test_series_are_taken_by_key_not_by_position(synth_file):
    """Spark and other tools sort keys as strings ("0", "1", "10", ...): same values."""
    line = synth_file.read_bytes().split(b"\n")[0]
    obj = json.loads(line)
    shuffled = {k: (dict(sorted(v.items())) if isinstance(v, dict) else v) for k, v in obj.items()}
    shuffled["values"] = {p: dict(sorted(obj["values"][p].items())) for p in reversed(KAGGLE_PARAMETERS)}
    text = json.dumps(shuffled).encode()
    assert text != line
    a = parse_kaggle_line(line)
    b = parse_kaggle_line(text)
    assert np.array_equal(a.X, b.X, equal_nan=True)
    chunk = parse_kaggle_chunk(text + b"\n" + text.replace(b'"id": 1', b'"id": 99'), path="x")
    # (the compiled scanner takes keys in any order, the strict parser by name: same values)
    assert np.array_equal(chunk.X[0], a.X, equal_nan=True) and chunk.ids.tolist() == ["1", "99"]


def test_test_set_lines_without_label_are_unlabelled(tmp_path):
    path = write_synthetic_kaggle(tmp_path / "test.jsonl", 5, seed=1, labelled=False)
    assert b"classNum" not in path.read_bytes()
    chunk = parse_kaggle_chunk(path.read_bytes(), path="x")
    assert chunk.fast and (chunk.labels == UNLABELLED).all()
    dataset = read_kaggle(path)
    assert dataset.y is None and dataset.n_unlabelled == 5


@pytest.mark.parametrize("kind", ["gz", "zip", "json"])
def test_compressed_and_renamed_inputs(synth_file, tmp_path, kind):
    data = synth_file.read_bytes()
    if kind == "gz":
        target = tmp_path / "fold1Training.json.gz"
        target.write_bytes(gzip.compress(data))
    elif kind == "zip":
        target = tmp_path / "fold1Training.json.zip"
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr("fold1Training.json", data)
    else:
        target = tmp_path / "fold1Training.json"
        target.write_bytes(data)
    dataset = read_kaggle(target)
    assert dataset.n_samples == 40 and np.array_equal(dataset.X, read_kaggle(synth_file).X, equal_nan=True)


def test_streaming_batches_cover_the_file_in_order(synth_file):
    from flareseq.data.kaggle import iter_kaggle_batches

    batches = list(iter_kaggle_batches(synth_file, batch_size=7, chunk_bytes=300_000))
    assert [b.n_samples for b in batches][:5] == [7, 7, 7, 7, 7] or all(b.n_samples <= 7 for b in batches)
    ids = [i for b in batches for i in b.ids]
    assert ids == [str(i) for i in range(1, 41)]


finite = st.floats(min_value=-3e38, max_value=3e38, allow_nan=False, width=64)  # float32 range


@settings(max_examples=30, deadline=None)
@given(special=st.lists(st.one_of(finite, st.just(float("nan"))), min_size=1, max_size=40),
       sample_id=st.integers(0, 10**12), label=st.sampled_from([0, 1]))
def test_any_numbers_parse_alike_on_both_paths(special, sample_id, label):
    values = np.arange(1500) * 1.5 - 700.0  # ordinary values, with the generated ones spread over them
    values[np.linspace(0, 1499, len(special)).astype(int)] = special
    values = values.tolist()
    series = {p: {str(t): values[j * 60 + t] for t in range(60)} for j, p in enumerate(KAGGLE_PARAMETERS)}
    line = json.dumps({"id": sample_id, "classNum": label, "fold": 2, "values": series}).encode()
    expected = np.array(values, dtype=np.float64).reshape(25, 60).T.astype(np.float32)
    for fast in (True, False):
        chunk = parse_kaggle_chunk(line + b"\n" + line.replace(b'"fold": 2', b'"fold": 3'), path="x", fast=fast)
        assert chunk.fast == fast
        assert np.array_equal(chunk.X[0], expected, equal_nan=True)
        assert chunk.ids[0] == str(sample_id) and chunk.labels[0] == label and list(chunk.folds) == [2, 3]


def test_crlf_line_ends_and_blank_lines(synth_file, tmp_path):
    lines = synth_file.read_bytes().splitlines()
    crlf = tmp_path / "crlf.json"
    crlf.write_bytes(b"\r\n".join(lines) + b"\r\n")
    chunk = parse_kaggle_chunk(crlf.read_bytes(), path="x")
    assert chunk.fast and chunk.n_samples == 40
    assert np.array_equal(read_kaggle(crlf).X, read_kaggle(synth_file).X, equal_nan=True)
    gaps = tmp_path / "gaps.json"
    gaps.write_bytes(lines[0] + b"\n\n   \n" + b"\n".join(lines[1:]) + b"\n")
    chunk = parse_kaggle_chunk(gaps.read_bytes(), path="x")
    assert not chunk.fast and chunk.n_samples == 40 and chunk.n_blank == 2 and chunk.n_lines == 42
    assert list(chunk.lines[:2]) == [1, 4]  # line numbers count the blank lines


@pytest.mark.parametrize(("first_line", "words"), [
    (b"false", "a JSON object per line, found a bool"),
    (b'["id", "values"]', "a JSON object per line, found a list"),
    (b'{"id": 1, "values": 5}', "field 'values': expected an object of the 25 parameter series"),
    (b'{"id": 1, "values": {' + b", ".join(b'"%s": 5' % p.encode() for p in KAGGLE_PARAMETERS) + b"}}",
     "field 'TOTUSJH': expected an object of 60 time steps"),
])
def test_a_first_line_of_valid_json_but_no_sample_is_a_clear_error(first_line, words):
    # The fast path's layout comes from the first line; one that is no sample goes to the
    # strict parser (found by fuzzing the forecast service), never to a TypeError.
    chunk = parse_kaggle_chunk(first_line + b"\n", path="upload.jsonl")
    assert chunk.error is not None and chunk.error.line == 1
    assert words in str(chunk.error)
