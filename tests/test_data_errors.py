"""Every kind of bad input: a one-paragraph error naming file, line and field (raise), or a
counted, listed skip that keeps read + skipped == input (skip); the CLI exits 2 without a
traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from flareseq.cli import main
from flareseq.data import load_dataset
from flareseq.data.ingest import ingest
from flareseq.data.skips import SkipLog
from flareseq.data.swansf import write_swansf
from flareseq.data.synthetic import synthetic_dataset, write_synthetic_kaggle
from flareseq.errors import DataFormatError, FlareseqError, UnsupportedInputError


@pytest.fixture(scope="module")
def good_lines(tmp_path_factory):
    path = write_synthetic_kaggle(tmp_path_factory.mktemp("good") / "good.jsonl", 3, seed=2)
    return path.read_bytes().splitlines()


def _kaggle(mutate):
    """A 3-line Kaggle file whose line 2 (or more) is changed by ``mutate(objects) -> lines``."""
    def build(tmp_path, lines):
        objects = [json.loads(line) for line in lines]
        out = mutate(objects, lines)
        path = tmp_path / "fold1Training.json"
        path.write_bytes(b"\n".join(out) + b"\n")
        return path, 1
    return build


def _dump(objects):
    return [json.dumps(o).encode() for o in objects]


def _drop_parameter(objects, lines):
    del objects[1]["values"]["TOTPOT"]
    return _dump(objects)


def _short_series(objects, lines):
    del objects[1]["values"]["USFLUX"]["59"]
    return _dump(objects)


def _text_value(objects, lines):
    objects[1]["values"]["MEANGAM"]["3"] = "1.5x"
    return _dump(objects)


def _duplicate_id(objects, lines):
    objects[2]["id"] = objects[0]["id"]
    return _dump(objects)


def _bad_label(objects, lines):
    objects[1]["classNum"] = 2
    return _dump(objects)


def _huge_value(objects, lines):
    objects[1]["values"]["TOTPOT"]["7"] = 1e300
    return _dump(objects)


def _malformed(objects, lines):
    return [lines[0], lines[1][: len(lines[1]) // 2], lines[2]]


def _empty_file(tmp_path, lines):
    path = tmp_path / "fold2Training.json"
    path.write_bytes(b"")
    return path, 0


def _neither_format(tmp_path, lines):
    path = tmp_path / "notes.dat"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not flare data")
    return path, 0


def _swansf(mutate):
    def build(tmp_path, lines):
        folder = tmp_path / "partition1"
        write_swansf(synthetic_dataset(3, seed=4), tmp_path / "swan")
        files = sorted((tmp_path / "swan").rglob("*.csv"))
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        mutate(sorted(folder.iterdir()))
        return folder, 1
    return build


def _bad_name(files):
    files[1].rename(files[1].with_name("sample_0001.csv"))


def _swansf_text_cell(files):
    rows = files[1].read_text().splitlines()
    cells = rows[5].split("\t")
    cells[3] = "n/a?"
    rows[5] = "\t".join(cells)
    files[1].write_text("\n".join(rows) + "\n")


def _swansf_short(files):
    rows = files[1].read_text().splitlines()
    files[1].write_text("\n".join(rows[:40]) + "\n")


def _swansf_missing_column(files):
    rows = [r.split("\t") for r in files[1].read_text().splitlines()]
    drop = rows[0].index("R_VALUE")
    files[1].write_text("\n".join("\t".join(c for i, c in enumerate(r) if i != drop) for r in rows) + "\n")


# (name, builder, error type, pattern of the message, skippable)
CASES = [
    ("malformed line", _kaggle(_malformed), DataFormatError, r"fold1Training\.json, line 2: expected one JSON object per line.*found malformed JSON", True),
    ("missing parameter", _kaggle(_drop_parameter), DataFormatError, r"line 2: field 'TOTPOT': expected all 25 parameters.*found no 'TOTPOT'", True),
    ("series of the wrong length", _kaggle(_short_series), DataFormatError, r"line 2: field 'USFLUX': expected a series of 60 time steps, found 59", True),
    ("non-numeric value", _kaggle(_text_value), DataFormatError, r"line 2: field 'MEANGAM\[\"3\"\]': expected a number or NaN, found '1\.5x'", True),
    ("duplicate id", _kaggle(_duplicate_id), DataFormatError, r"line 3: field 'id': expected a unique sample id, found id '1' again \(first on line 1\)", True),
    ("label not 0/1", _kaggle(_bad_label), DataFormatError, r"line 2: field 'classNum': expected 0 or 1, found 2", True),
    ("value beyond float32", _kaggle(_huge_value), DataFormatError, r"line 2: field 'TOTPOT\[\"7\"\]': expected a finite number within the float32 range", True),
    ("empty file", _empty_file, DataFormatError, r"fold2Training\.json: expected at least one sample.*found an empty file", False),
    ("file of neither format", _neither_format, UnsupportedInputError, r"notes\.dat: expected a store directory.*found a file starting", False),
    ("SWAN-SF name that does not parse", _swansf(_bad_name), DataFormatError, r"sample_0001\.csv: field 'file name': expected a SWAN-SF sample name lab\[<class>\]", True),
    ("SWAN-SF non-numeric cell", _swansf(_swansf_text_cell), DataFormatError, r"\.csv, line 6: field 'TOTPOT': expected a number or an empty cell, found 'n/a\?'", True),
    ("SWAN-SF wrong number of rows", _swansf(_swansf_short), DataFormatError, r"\.csv: field 'rows': expected a series of 60 time steps \(rows\), found 39 rows", True),
    ("SWAN-SF missing column", _swansf(_swansf_missing_column), DataFormatError, r"\.csv, line 1: field 'R_VALUE': expected the 25 parameter columns", True),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name, build, error, match, skippable", CASES, ids=IDS)
def test_bad_input_raises_one_paragraph_naming_where(tmp_path, good_lines, name, build, error, match, skippable):
    path, _ = build(tmp_path, good_lines)
    with pytest.raises(error, match=match) as info:
        load_dataset(path)
    message = str(info.value)
    assert "\n" not in message and "expected" in message and "found" in message


@pytest.mark.parametrize("name, build, error, match, skippable", [c for c in CASES if c[4]], ids=[c[0] for c in CASES if c[4]])
def test_skip_goes_on_counts_and_lists(tmp_path, good_lines, name, build, error, match, skippable):
    path, _ = build(tmp_path, good_lines)
    skips = SkipLog()
    dataset = load_dataset(path, on_error="skip", skips=skips)
    assert len(skips) == 1 and dataset.n_samples == 2  # 3 records in: 2 read + 1 skipped
    report = ingest(path, tmp_path / "store", on_error="skip", workers=1, progress=False)
    manifest = report.manifest
    assert manifest["n_skipped"] == 1 and manifest["counts"]["n_samples"] == 2
    source = manifest["sources"][0]
    assert source["n_read"] + source["n_skipped"] == source["n_records"] == 3
    listed = SkipLog.read_tsv(tmp_path / "store" / "skipped.tsv").records
    assert len(listed) == 1 and listed[0] == skips.records[0]


@pytest.mark.parametrize("name, build, error, match, skippable", CASES, ids=IDS)
def test_cli_prints_the_error_without_traceback(tmp_path, good_lines, capsys, name, build, error, match, skippable):
    path, _ = build(tmp_path, good_lines)
    code = main(["ingest", str(path), "--out", str(tmp_path / "store"), "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("flareseq ingest: error:") and "Traceback" not in err
    assert not (tmp_path / "store").exists()  # nothing half-written is left behind
    assert not list(tmp_path.glob(".store.tmp-*"))


def test_every_error_is_a_flareseq_error():
    assert all(issubclass(c[2], FlareseqError) for c in CASES)
