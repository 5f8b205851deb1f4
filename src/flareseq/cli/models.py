"""``flareseq models [--json]``: the registered architectures and their unique parameter counts."""

from __future__ import annotations

import argparse
import json

from flareseq.cli import add_command

# The Kaggle/SHARP series count (len(flareseq.data.schema.KAGGLE_PARAMETERS), checked by
# tests/test_cli.py), written here so that parsing imports nothing of flareseq.data.
N_FEATURES = 25


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "models",
        help="list the model architectures",
        description=f"List the registered model architectures with their unique parameter counts "
        f"for {N_FEATURES} input features (a tied tensor counts once) and their defaults. Choose one with "
        "`flareseq train --set model.name=NAME`.",
        examples=["flareseq models", "flareseq models --json"],
    )
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {name, n_parameters, tied, description, defaults}")
    parser.set_defaults(func=_run)


def model_table(n_features: int = N_FEATURES) -> list[dict]:
    """One row per registered model: name, unique parameters, tied or not, description, defaults."""
    from flareseq.models import MODELS, count_unique_parameters

    return [
        {
            "name": name,
            "n_parameters": count_unique_parameters(spec.build(n_features)),
            "tied": spec.is_tied,
            "description": spec.description,
            "defaults": spec.defaults,
        }
        for name, spec in MODELS.items()
    ]


def _run(args: argparse.Namespace) -> int:
    rows = model_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'parameters':>10}  {'tied':<4}  description")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['n_parameters']:>10,}  {'yes' if r['tied'] else 'no':<4}  {r['description']}")
    print(f"(unique trainable parameters for {N_FEATURES} input features; `--json` adds the defaults)")
    return 0
