"""flareseq: solar flare forecasting from multivariate time series (MVTS).

The public entry points are re-exported here; see the README for a tour.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .dataset import FlareDataset, concat_datasets
from .errors import FlareseqError, FlareseqWarning

__all__ = ["FlareDataset", "FlareseqError", "FlareseqWarning", "concat_datasets", "load_dataset", "__version__"]


def __getattr__(name: str):
    # Imported lazily so that `import flareseq` stays cheap (no pyarrow, no torch).
    if name == "load_dataset":
        from .data import load_dataset

        return load_dataset
    if name == "FlareClassifier":
        from .estimator import FlareClassifier

        return FlareClassifier
    raise AttributeError(f"module 'flareseq' has no attribute {name!r}")
