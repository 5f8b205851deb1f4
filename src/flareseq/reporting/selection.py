"""Which runs a report shows as "best": chosen on validation TSS, never on a test score.

The one definition used by the run tables, the comparison figure and the paired comparison
with the best baseline.
"""

from __future__ import annotations

import pandas as pd


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that finished (``status`` ``FINISHED``), or all when there is no status column."""
    return runs[runs["status"] == "FINISHED"] if "status" in runs else runs


def ranked_by_validation(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with a validation TSS, highest first (ties keep the given order)."""
    if "val_tss" not in runs and finished(runs).empty:
        return runs.iloc[0:0]  # no run finished (every one failed): nothing to rank, nothing is best
    if "val_tss" not in runs:
        raise ValueError("choosing the best runs needs a 'val_tss' column (chosen on validation, not test); "
                         f"got columns {list(runs.columns)}.")
    candidates = finished(runs).dropna(subset=["val_tss"])
    return candidates.sort_values("val_tss", ascending=False, kind="stable")


def best_by_validation(runs: pd.DataFrame) -> pd.Series | None:
    """The finished run with the highest validation TSS, or ``None``."""
    ranked = ranked_by_validation(runs)
    return None if ranked.empty else ranked.iloc[0]


def best_per_architecture(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished run of each architecture with the highest validation TSS, in the order
    the runs were given."""
    chosen = ranked_by_validation(runs).drop_duplicates("architecture")
    return runs[runs.index.isin(chosen.index)]


def best_baseline(runs: pd.DataFrame) -> pd.Series | None:
    """The finished baseline with the highest validation TSS."""
    return best_by_validation(runs[runs["kind"] == "baseline"]) if "kind" in runs else None


__all__ = ["finished", "ranked_by_validation", "best_by_validation", "best_per_architecture", "best_baseline"]
