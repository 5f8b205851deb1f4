"""The MLflow pyfunc model of a run ("models from code": MLflow stores this file, not a pickle).

``mlflow.pyfunc.load_model("runs:/<run_id>/model")`` gives a model whose ``predict`` takes
raw samples, a float array ``(n_samples, n_timesteps, n_features)`` in the run's feature
order (NaN allowed: filled as in training), and returns a DataFrame with ``probability``
(of an M/X flare within 24 h) and ``label`` (at the run's validation-chosen threshold).
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd


def requirements() -> list[str]:
    """What serving needs: flareseq itself (which pins torch and the rest)."""
    from flareseq import __version__

    return [f"flareseq=={__version__}"]


def signature(n_timesteps: int, n_features: int):
    """Raw samples in (float32, any number of them), probability and 0/1 label out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_timesteps, n_features))]),
        outputs=Schema([ColSpec("double", "probability"), ColSpec("integer", "label")]),
    )


class FlareseqPyfuncModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from flareseq.training.forecaster import Forecaster

        self.forecaster = Forecaster.load(context.artifacts["flareseq_model"])

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        from flareseq.data.dataset import FlareDataset, empty_meta

        X = np.asarray(model_input, dtype=np.float32)
        if X.ndim == 2:  # one sample
            X = X[None]
        n = X.shape[0]
        dataset = FlareDataset(X=X, y=None, ids=np.arange(n).astype(str),
                               feature_names=self.forecaster.feature_names, meta=empty_meta(n))
        probability, label = self.forecaster.predict(dataset)
        return pd.DataFrame({"probability": probability, "label": label})


mlflow.models.set_model(FlareseqPyfuncModel())
