"""``flareseq models``: the table and the JSON list."""

from __future__ import annotations

import json

from flareseq.cli import main


def test_models_json_lists_unique_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    counts = {r["name"]: r["n_parameters"] for r in rows}
    assert list(counts)[:6] == ["lstm", "stacked-lstm", "embed-lstm", "tied-stacked-lstm", "embed-stacked-lstm",
                                "embed-tied-stacked-lstm"]
    assert counts["lstm"] == 7_457 and counts["stacked-lstm"] == 15_777
    assert {r["name"]: r["tied"] for r in rows}["tied-stacked-lstm"] is True
    assert rows[0]["defaults"]["recurrent_dropout"] == 0.2


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "stacked-lstm" in out and "15,777" in out
