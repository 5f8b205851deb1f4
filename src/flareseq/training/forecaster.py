"""A trained run as one object that turns raw samples into flare probabilities.

A :class:`Forecaster` holds what a forecast needs besides the estimator: the feature names
and length it was trained on, the missing-value treatment fitted on its training data, the
sample layout, and, when the run calibrated its probabilities, the calibrator fitted on its
validation data with the threshold chosen on the calibrated probabilities. It is what
``flareseq predict``, ``flareseq evaluate`` and the MLflow pyfunc model use, so all three
forecast the same way. Saved as a folder of JSON, safetensors
and npz files: loading never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.dataset import FlareDataset
from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation.calibration import Calibrator, calibrator_from_dict
from flareseq.prep.missing import MissingValues
from flareseq.training.baselines import load_baseline

FORMAT = "flareseq-forecaster"
VERSION = 2  # 2 added the optional calibrator; version 1 folders load unchanged




@dataclass
class Forecaster:
    """A fitted estimator with the input checks and missing-value treatment of its run."""

    estimator: object
    missing: MissingValues
    feature_names: tuple[str, ...]
    n_timesteps: int
    layout: str = "sequence"
    kind: str = "model"
    name: str = ""
    calibrator: Calibrator | None = None
    calibrated_threshold: float | None = None

    @property
    def threshold(self) -> float:
        """The decision threshold, on the scale :meth:`predict_proba` returns (calibrated
        probabilities when the run calibrated)."""
        if self.calibrator is not None:
            if self.calibrated_threshold is None:
                raise FlareseqError("a calibrated forecaster needs calibrated_threshold, the threshold on the "
                                    "calibrated probabilities.")
            return float(self.calibrated_threshold)
        return float(self.estimator.threshold_)

    def prepare(self, dataset: FlareDataset) -> np.ndarray:
        """``dataset``'s values as the estimator expects them (features by name, no NaN)."""
        missing = [n for n in self.feature_names if n not in dataset.feature_names]
        if missing:
            raise FlareseqError(
                f"the data lacks feature(s) {missing} that the model was trained on; "
                f"it has {list(dataset.feature_names)}."
            )
        if dataset.n_timesteps != self.n_timesteps:
            raise FlareseqError(
                f"the model was trained on sequences of {self.n_timesteps} steps; the data has {dataset.n_timesteps}."
            )
        if tuple(dataset.feature_names) != self.feature_names:
            dataset = dataset.select_features(list(self.feature_names))
        return self.missing.transform(dataset.X)

    def predict_proba(self, dataset: FlareDataset) -> np.ndarray:
        """Probability of a flare ``(n,)`` for each sample of ``dataset`` (calibrated when the
        run calibrated)."""
        p = self.predict_proba_uncalibrated(dataset)
        return p if self.calibrator is None else self.calibrator.transform(p)

    def predict_proba_uncalibrated(self, dataset: FlareDataset) -> np.ndarray:
        """The model's own probabilities, before any calibration."""
        X = self.prepare(dataset)
        if self.layout == "study-rows":
            # A row model forecasts every step; a sample's forecast is the mean over its rows.
            n, t, f = X.shape
            rows = self.estimator.predict_proba(X.reshape(n * t, 1, f))[:, 1]
            return rows.reshape(n, t).mean(axis=1)
        if self.layout == "study-windows":
            raise ConfigError(
                "a model trained on the study's windows over flattened rows forecasts windows, not samples; "
                "train with prep.layout = 'sequence' to forecast samples."
            )
        return self.estimator.predict_proba(X)[:, 1]

    def predict(self, dataset: FlareDataset) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and 0/1 forecasts at the run's threshold."""
        p = self.predict_proba(dataset)
        return p, (p >= self.threshold).astype(np.int8)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | PathLike[str]) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.estimator.save(folder / "estimator")
        state = {
            "format": FORMAT, "version": VERSION, "kind": self.kind, "name": self.name,
            "estimator": "baseline" if self.kind == "baseline" else "classifier",
            "feature_names": list(self.feature_names), "n_timesteps": self.n_timesteps,
            "layout": self.layout, "missing": self.missing.to_dict(), "threshold": self.threshold,
            "calibration": None if self.calibrator is None else self.calibrator.to_dict(),
        }
        (folder / "forecaster.json").write_text(json.dumps(state, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | PathLike[str], *, device: str = "cpu") -> Forecaster:
        folder = Path(path)
        state_path = folder / "forecaster.json"
        if not state_path.is_file():
            raise FlareseqError(f"{folder} is not a saved flareseq model: {state_path.name} is missing.")
        state = json.loads(state_path.read_text())
        if state.get("format") != FORMAT or state.get("version") not in (1, VERSION):
            raise FlareseqError(
                f"{state_path}: expected format {FORMAT!r} version 1 to {VERSION}, found "
                f"{state.get('format')!r} version {state.get('version')!r}; a newer flareseq wrote it?"
            )
        if state["estimator"] == "baseline":
            estimator = load_baseline(folder / "estimator")
        else:
            from flareseq.training.estimator import FlareClassifier

            estimator = FlareClassifier.load(folder / "estimator", device=device)
            estimator.progress = False
        calibration = state.get("calibration")
        calibrator = None if calibration is None else calibrator_from_dict(calibration, where=str(state_path))
        return cls(estimator=estimator, missing=MissingValues.from_dict(state["missing"]),
                   feature_names=tuple(state["feature_names"]), n_timesteps=int(state["n_timesteps"]),
                   layout=state["layout"], kind=state["kind"], name=state.get("name", ""), calibrator=calibrator,
                   calibrated_threshold=None if calibrator is None else float(state["threshold"]))
