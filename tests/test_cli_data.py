"""`flareseq synth`, `ingest` and `summary` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from flareseq.cli import main
from flareseq.data.summary import SUMMARY_KEYS


def test_synth_ingest_summary(tmp_path, capsys):
    data = tmp_path / "synthetic.jsonl"
    assert main(["synth", "--n-samples", "200", "--out", str(data), "--seed", "3", "--no-progress"]) == 0
    assert "wrote 200 synthetic samples" in capsys.readouterr().out
    assert main(["ingest", str(data), "--out", str(tmp_path / "store"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "200 samples" in out and "content hash sha256:" in out and "no records skipped" in out
    assert main(["summary", str(tmp_path / "store"), "--json", "--plot", str(tmp_path / "classes.png")]) == 0
    figures = json.loads(capsys.readouterr().out)  # exactly one JSON object, nothing else
    assert tuple(figures) == SUMMARY_KEYS and figures["n_samples"] == 200 and figures["n_features"] == 25
    assert (tmp_path / "classes.png").read_bytes()[:4] == b"\x89PNG"
    # the file and its store summarise alike
    assert main(["summary", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == figures


def test_summary_text_and_unlabelled(tmp_path, capsys):
    data = tmp_path / "test.jsonl"
    main(["synth", "--n-samples", "20", "--out", str(data), "--unlabelled", "--no-progress"])
    capsys.readouterr()
    assert main(["summary", str(data)]) == 0
    out = capsys.readouterr().out
    assert "n_unlabelled      20" in out and "n/a (no labels)" in out


def test_synth_swan_sf_files_ingest(tmp_path, capsys):
    folder = tmp_path / "swan"
    assert main(["synth", "--n-samples", "12", "--out", str(folder), "--format", "swan-sf"]) == 0
    assert len(list(folder.rglob("*.csv"))) == 12
    assert main(["ingest", str(folder), "--out", str(tmp_path / "store"), "--no-progress"]) == 0
    assert "12 samples" in capsys.readouterr().out


def test_errors_exit_2_without_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"id": 1, "classNum": 0, "values": {\n')
    result = subprocess.run([sys.executable, "-m", "flareseq", "ingest", str(bad), "--out", str(tmp_path / "s")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "broken.jsonl, line 1: expected one JSON object per line" in result.stderr
    assert result.stdout == ""
