"""flareseq: solar flare forecasting from multivariate time series (MVTS).

The public entry points are re-exported here, imported on first use so that ``import
flareseq`` stays cheap (no pandas, pyarrow or torch): ingest worker processes import it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from flareseq.errors import FlareseqError, FlareseqWarning

__all__ = ["FlareClassifier", "FlareDataset", "FlareseqError", "FlareseqWarning", "concat_datasets",
           "load_dataset", "__version__"]

_LAZY = {
    "FlareDataset": ("data.dataset", "FlareDataset"),
    "concat_datasets": ("data.dataset", "concat_datasets"),
    "load_dataset": ("data", "load_dataset"),
    "FlareClassifier": ("training.estimator", "FlareClassifier"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module 'flareseq' has no attribute {name!r}")
