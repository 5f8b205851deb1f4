"""Does weight tying help? Tied LSTMs against untied ones at equal width and at equal size.

    python benchmarks/tying.py                      # both data sets, ~1 h on a shared 2-core machine
    python benchmarks/tying.py --only smarp         # the SMARP rotation only
    python benchmarks/tying.py --only synthetic --synthetic-seeds 1
    python benchmarks/tying.py --quick              # seconds: checks the machinery, not skill

The study ("Staring into the Sun", SPEC section 2) built three tied models and never compared
them with untied ones. Each comparison here changes one thing, tying, in three families:

- ``layers``: ``tied-stacked-lstm`` (LSTM layer 2 shares layer 1's kernels, keeps its bias);
- ``all``: ``embed-tied-stacked-lstm`` (tied layers and a decoder tied to the embedding);
- ``decoder``: ``embed-lstm`` (only the decoder tied to the embedding).

Each tied model (width W, 25 by default: the study's) meets two untied ones: its twin
(``tie_weights = false``) at the same width, which has more parameters, and an untied one
narrowed to the unique-parameter count of the tied model (the width whose count is
closest, :func:`equal_parameter_width`); the latter is left out where it is the twin's width.
On data with fewer features than W (SMARP's 4), a Dense(W, relu) embedding widens the input
of the ``layers`` family (``tied-stacked-lstm`` with ``embedding_size``), since tying
forces the LSTM to its input's width; the study's own width-F tied model is kept as a
reference row.

Data and protocol:

- **SMARP** (``../shared/data/smarp``, 16 steps x 4 parameters, label: an M/X flare within
  24 h; the ``flares`` and ``FLARE_INDEX`` columns are never inputs): the settings of
  experiments/smarp.toml, five-fold rotation over the region-disjoint fold files
  (:func:`flareseq.experiments.rotation.cross_validate`): each fold tests once, validation
  (early stopping, threshold chosen on validation TSS) carved from the training regions.
  TSS and PR-AUC: mean +- sd over the five test folds. Paired difference: tied - untied on
  the pooled out-of-fold forecasts, bootstrap resampling active regions
  (:func:`flareseq.evaluation.verification.compare_predictions`).
- **Synthetic** Kaggle-layout data (:func:`flareseq.data.synthetic.synthetic_dataset`, 60
  steps x 25 parameters) with the study's settings as experiments/study-fixed.toml fixes them:
  samples of folds 1/2/3 at 0.3/0.1/0.05, RMSprop, its three zipped configurations
  (steps per epoch as full passes 100/300/500, epochs 10/20/30, class weights 5/1/2), fixed
  threshold 0.5; one change: the whole test fold is scored (``prep.test_fraction = 1``),
  since 5 % of it holds ~20 flares. Training is untouched by that. TSS and PR-AUC: mean +- sd
  over the runs (3 configurations x ``--synthetic-seeds``); paired difference on all runs'
  forecasts pooled (each run's test samples once), resampling regions.

The paired difference's interval covers the test samples' variability, not the training's:
a second seed of the same model (``--seed-control``, on by default) shows how far two runs
of one model differ by chance alone.

The last line is ``RESULT {json}`` (every figure, the CPU, its vector flags, load averages).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMARP_CONFIG = REPO / "experiments" / "smarp.toml"
STUDY_CONFIG = REPO / "experiments" / "study-fixed.toml"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "smarp"
FAMILIES = {  # family -> its tied registry model
    "layers": "tied-stacked-lstm",
    "all": "embed-tied-stacked-lstm",
    "decoder": "embed-lstm",
}


# -- the arms -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One model of the comparison: a registry model with its parameters."""

    name: str  # unique run name, e.g. "layers-tied"
    family: str
    role: str  # "tied", "untied, equal width", "untied, equal parameters", "tied, width F", "seed control"
    model: str
    params: dict = field(default_factory=dict)
    width: int = 0
    n_parameters: int = 0
    seed_offset: int = 0

    @property
    def tied(self) -> bool:
        return self.role.startswith("tied")


def width_key(family: str, n_features: int, width: int) -> str:
    """The parameter that sets a family's LSTM width: the embedding's, except for the tied
    stack on data as wide as the LSTM (the study's model 4, no embedding)."""
    return "hidden_size" if family == "layers" and n_features == width else "embedding_size"


def count(model: str, n_features: int, params: dict) -> int:
    from flareseq.models import build_model, count_unique_parameters

    return count_unique_parameters(build_model(model, n_features, params))


def equal_parameter_width(model: str, n_features: int, target: int, params: dict, key: str,
                          max_width: int = 256) -> int:
    """The width (``params[key]``) whose unique-parameter count is closest to ``target``
    (the smaller width on a tie). Counts grow with the width, so the search stops once past."""
    best, best_gap = 1, math.inf
    for width in range(1, max_width + 1):
        gap = count(model, n_features, {**params, key: width}) - target
        if abs(gap) < best_gap:
            best, best_gap = width, abs(gap)
        if gap > 0:
            break
    return best


def plan_arms(n_features: int, width: int, *, seed_control: bool = True,
              families=tuple(FAMILIES)) -> list[Arm]:
    """The arms of every family for ``n_features`` inputs at tied width ``width``."""
    arms = []
    for family in families:
        model = FAMILIES[family]
        key = width_key(family, n_features, width)
        tied_params = {} if key == "hidden_size" else {key: width}
        tied_count = count(model, n_features, tied_params)
        twin = {**tied_params, "tie_weights": False}
        arms.append(Arm(f"{family}-tied", family, "tied", model, tied_params, width, tied_count))
        arms.append(Arm(f"{family}-untied-width", family, "untied, equal width", model, twin, width,
                        count(model, n_features, twin)))
        narrow = equal_parameter_width(model, n_features, tied_count, {"tie_weights": False}, key)
        if narrow != width:
            params = {key: narrow, "tie_weights": False}
            arms.append(Arm(f"{family}-untied-size", family, "untied, equal parameters", model, params, narrow,
                            count(model, n_features, params)))
        if family == "layers" and key == "embedding_size":
            # The study's tied stack on these data: as wide as the input, no embedding.
            arms.append(Arm(f"{family}-tied-width-f", family, "tied, width F", model, {}, n_features,
                            count(model, n_features, {})))
        if family == "layers" and seed_control:
            arms.append(Arm(f"{family}-untied-width-seed", family, "seed control", model, twin, width,
                            count(model, n_features, twin), seed_offset=1))
    return arms


def reference_of(arm: Arm, arms: list[Arm]) -> Arm | None:
    """What ``arm``'s paired difference is against: untied rows are compared with their
    family's tied model (tied - untied); the width-F tied model with the widened one
    (widened - width F); the seed control with the same model's first seed."""
    by_name = {a.name: a for a in arms}
    if arm.role.startswith("untied") or arm.role == "tied, width F":
        return by_name.get(f"{arm.family}-tied")
    if arm.role == "seed control":
        return by_name.get(f"{arm.family}-untied-width")
    return None


# -- running --------------------------------------------------------------------------------
def arm_config(base, arm: Arm, seed: int):
    return base.with_overrides({"model.name": arm.model, "model.params": dict(arm.params), "name": arm.name,
                                "training.random_state": seed + arm.seed_offset})


def run_smarp(args, arms: list[Arm], overrides: list[str], echo) -> tuple[dict, dict]:
    """Every arm over the same K-fold rotation: arm name -> (fold scores, pooled forecasts)."""
    from flareseq.experiments.grid import load_experiment
    from flareseq.experiments.rotation import cross_validate
    from flareseq.experiments.rundata import load_source

    base = list(load_experiment(SMARP_CONFIG, overrides=overrides).runs)[0]
    source = load_source(base.data, progress=False)
    facts = {"n_windows": source.dataset.n_samples, "n_windows_positive": source.dataset.n_positive,
             "n_features": source.dataset.n_features, "n_timesteps": source.dataset.n_timesteps,
             "features": list(source.dataset.feature_names), "cv": args.cv}
    echo(f"SMARP: {facts['n_windows']} windows ({facts['n_windows_positive']} positive) of "
         f"{facts['n_timesteps']} x {facts['features']}")
    runs = {}
    for arm in arms:
        started = time.process_time()
        result = cross_validate([arm_config(base, arm, args.seed)], args.cv, source=source, echo=echo)[arm.name]
        runs[arm.name] = {"fold_scores": result.fold_scores, "predictions": result.predictions,
                          "cpu_seconds": time.process_time() - started}
    return runs, facts


def run_synthetic(args, arms: list[Arm], overrides: list[str], echo) -> tuple[dict, dict]:
    """Every arm under each of the study's three configurations and each seed: arm name ->
    (run scores, pooled forecasts with ids made unique per run)."""
    import pandas as pd

    from flareseq.experiments.grid import load_experiment
    from flareseq.experiments.rundata import DataCache
    from flareseq.experiments.single import run_single

    configurations = [r for r in load_experiment(STUDY_CONFIG, overrides=overrides).runs if r.model.name == "lstm"]
    if args.quick:
        configurations = [c.with_overrides({"training.epochs": 1, "training.steps_per_epoch": 2})
                          for c in configurations]
    cache = DataCache()
    data = cache.get(configurations[0])
    facts = {"n_train": data.facts["n_train"], "n_train_positive": data.facts["n_train_positive"],
             "n_test": data.facts["n_test"], "n_test_positive": data.facts["n_test_positive"],
             "configurations": [c.name.removeprefix("lstm-") for c in configurations],
             "seeds": list(range(args.seed, args.seed + args.synthetic_seeds))}
    echo(f"synthetic: train {facts['n_train']} ({facts['n_train_positive']} positive), test {facts['n_test']} "
         f"({facts['n_test_positive']} positive); configurations {facts['configurations']}, seeds {facts['seeds']}")
    runs = {}
    for arm in arms:
        scores, frames, started = [], [], time.process_time()
        for configuration in configurations:
            tag = configuration.name.removeprefix("lstm-")
            for seed in facts["seeds"]:
                result = run_single(arm_config(configuration, arm, seed), cache=cache)
                scores.append({**result.scores, "configuration": tag, "seed": seed})
                frames.append(result.predictions.assign(id=f"{tag}-s{seed}:" + result.predictions["id"].astype(str)))
                echo(f"  {arm.name} {tag} seed {seed}: test TSS {result.scores['test_tss']:.3f}, "
                     f"PR-AUC {result.scores['test_pr_auc']:.3f} ({result.seconds:.1f} s)")
        runs[arm.name] = {"fold_scores": scores, "predictions": pd.concat(frames, ignore_index=True),
                          "cpu_seconds": time.process_time() - started}
    return runs, facts


def summarise(arms: list[Arm], runs: dict, n_boot: int) -> list[dict]:
    """One row per arm: mean and sd over runs of test TSS and PR-AUC, and the paired
    difference against its reference (:func:`reference_of`) on the pooled forecasts."""
    from flareseq.evaluation.verification import compare_predictions

    rows = []
    for arm in arms:
        folds = runs[arm.name]["fold_scores"]
        row = {"name": arm.name, "family": arm.family, "role": arm.role, "model": arm.model, "params": arm.params,
               "width": arm.width, "n_parameters": arm.n_parameters, "n_runs": len(folds),
               "cpu_seconds": runs[arm.name]["cpu_seconds"]}
        for metric in ("tss", "pr_auc", "hss2"):
            values = [s[f"test_{metric}"] for s in folds]
            row[metric] = statistics.fmean(values)
            row[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else math.nan
            row[f"{metric}_by_run"] = [round(v, 4) for v in values]
        if "configuration" in folds[0]:
            row["tss_by_configuration"] = {
                c: statistics.fmean(s["test_tss"] for s in folds if s["configuration"] == c)
                for c in dict.fromkeys(s["configuration"] for s in folds)}
        reference = reference_of(arm, arms)
        if reference is not None:
            first, second = reference, arm  # tied - untied; widened - width F; seed 1 - seed 2
            if arm.role == "seed control":
                first, second = arm, reference
            paired = compare_predictions(runs[first.name]["predictions"], runs[second.name]["predictions"],
                                         names=(first.name, second.name), n_boot=n_boot)
            row["paired_against"] = reference.name
            row["paired"] = {m: {"first": first.name, "second": second.name, "difference": r.difference,
                                 "low": r.low, "high": r.high, "p_first_better": r.p_first_better,
                                 "verdict": r.verdict()} for m, r in paired.items()}
        rows.append(row)
    return rows


def print_table(title: str, rows: list[dict], out=sys.stdout) -> None:
    print(f"\n{title}", file=out)
    print(f"{'model':<24} {'role':<24} {'width':>5} {'params':>7} {'TSS +- sd':>14} {'PR-AUC +- sd':>14} "
          f"{'paired TSS diff [95% int.]':>28} {'P(1st>2nd)':>10} {'PR-AUC diff [95% int.]':>25} {'CPU s':>6}",
          file=out)
    for r in rows:
        paired_tss = paired_pr = p = ""
        if "paired" in r:
            t, a = r["paired"]["tss"], r["paired"]["pr_auc"]
            paired_tss = f"{t['difference']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}]"
            paired_pr = f"{a['difference']:+.3f} [{a['low']:+.3f}, {a['high']:+.3f}]"
            p = f"{t['p_first_better']:.2f}"
        print(f"{r['model']:<24} {r['role']:<24} {r['width']:>5} {r['n_parameters']:>7,} "
              f"{r['tss']:>6.3f} +- {r['tss_sd']:.3f} {r['pr_auc']:>6.3f} +- {r['pr_auc_sd']:.3f} "
              f"{paired_tss:>28} {p:>10} {paired_pr:>25} {r['cpu_seconds']:>6.0f}", file=out)
    print("paired differences: tied - untied for untied rows (P = P(tied better)); widened - width F for the "
          "width-F row; second seed - first seed for the seed control.", file=out)


def verdicts(rows: list[dict]) -> dict[str, str]:
    """Per untied row: does tying help, hurt, or is the difference within the interval?"""
    out = {}
    for r in rows:
        if r["role"].startswith("untied") and "paired" in r:
            t = r["paired"]["tss"]
            out[r["name"]] = ("tied better" if t["low"] > 0 else "untied better" if t["high"] < 0
                              else "not distinguishable")
    return out


# -- machine --------------------------------------------------------------------------------
def cpu_description() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    return {"cpu": model.group(1).strip() if model else "unknown", "cpus": os.cpu_count(),
            "vector_flags": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")
                             if f in flags]}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


# -- main -----------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--only", choices=("smarp", "synthetic"), help="one data set (default: both)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of smarp_0.csv ... smarp_4.csv")
    parser.add_argument("--width", type=int, default=25, help="the tied models' width W (default 25, the study's)")
    parser.add_argument("--cv", type=int, default=5, help="folds of the SMARP rotation (default 5, the fold files)")
    parser.add_argument("--seed", type=int, default=0, help="model seed (validation carving stays the config's)")
    parser.add_argument("--synthetic-seeds", type=int, default=2, help="seeds per study configuration (default 2)")
    parser.add_argument("--synthetic-samples", type=int, default=20000,
                        help="synthetic samples before the study's sampling (default 20000, study-fixed.toml's)")
    parser.add_argument("--no-seed-control", dest="seed_control", action="store_false",
                        help="skip the second seed of the untied stack")
    parser.add_argument("--families", nargs="+", choices=tuple(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--n-boot", type=int, default=2000, help="paired bootstrap resamples (default 2000)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override both experiments' settings")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: width 4, 1 epoch, a fifth of the SMARP training windows, 2 folds")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()

    def echo(line):
        print(line, file=sys.stderr, flush=True)

    common = [f"training.n_threads={args.threads}", "tracking.plots=false", "tracking.log_model=false",
              "verification.n_bootstrap=0"]
    width = args.width
    if args.quick:
        width, args.n_boot, args.synthetic_seeds = min(width, 4), min(args.n_boot, 200), 1
        args.cv, args.synthetic_samples = min(args.cv, 2), min(args.synthetic_samples, 1000)
    result = {"quick": args.quick, "width": width, "threads": args.threads, "seed": args.seed, **cpu_description()}
    tables = []
    if args.only in (None, "smarp"):
        data = Path(args.data)
        overrides = [f"data.path={json.dumps(str(data / 'smarp_*.csv') if data.is_dir() else args.data)}", *common]
        if args.quick:
            overrides += ["training.epochs=1", "prep.train_fraction=0.2", "prep.stratify=true",
                          "training.early_stopping=false"]
        overrides += args.overrides
        arms = plan_arms(4, width, seed_control=args.seed_control, families=args.families)
        runs, facts = run_smarp(args, arms, overrides, echo)
        rows = summarise(arms, runs, args.n_boot)
        title = (f"SMARP ({facts['n_windows']} windows of {facts['n_timesteps']} x {facts['n_features']}): "
                 f"{args.cv}-fold rotation, experiments/smarp.toml settings; TSS/PR-AUC mean +- sd over folds; "
                 "paired bootstrap by region on pooled out-of-fold forecasts")
        tables.append((title, rows))
        result["smarp"] = {**facts, "rows": rows, "verdicts": verdicts(rows)}
    if args.only in (None, "synthetic"):
        overrides = [f"data.synthetic_samples={args.synthetic_samples}", "prep.test_fraction=1.0", *common,
                     *args.overrides]
        arms = plan_arms(25, width, seed_control=args.seed_control, families=args.families)
        runs, facts = run_synthetic(args, arms, overrides, echo)
        rows = summarise(arms, runs, args.n_boot)
        title = (f"synthetic Kaggle layout ({args.synthetic_samples} samples of 60 x 25), experiments/study-fixed.toml "
                 f"settings, whole test fold: train {facts['n_train']}, test {facts['n_test']} "
                 f"({facts['n_test_positive']} positive); TSS (threshold 0.5)/PR-AUC mean +- sd over "
                 f"{len(facts['configurations'])} configurations x {len(facts['seeds'])} seeds; paired bootstrap "
                 "by region on the runs' pooled forecasts")
        tables.append((title, rows))
        result["synthetic"] = {**facts, "rows": rows, "verdicts": verdicts(rows)}
    for title, rows in tables:
        print_table(title, rows)
    result.update({"load_before": list(load_before), "load_after": list(os.getloadavg()),
                   "wall_seconds": time.perf_counter() - started})
    print(f"\nwall {result['wall_seconds']:.0f} s; load average before {load_before[0]:.2f}, after "
          f"{result['load_after'][0]:.2f}; {result['cpu']} ({', '.join(result['vector_flags'])}), "
          f"{args.threads} thread(s)")
    print("RESULT " + json.dumps(_jsonable(result)))
    return 0


def run(argv=None) -> int:
    """:func:`main`, with flareseq's errors printed without a traceback."""
    from flareseq.errors import FlareseqError

    try:
        return main(argv)
    except FlareseqError as exc:
        print(f"tying.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
