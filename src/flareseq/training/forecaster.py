"""A trained run as one object that turns raw samples into flare probabilities.

A :class:`Forecaster` is a fitted :class:`~flareseq.training.estimator.FlareClassifier`
(which holds the preparation, the calibrator and the threshold) plus what forecasting raw
samples needs besides: the run's sample layout (a model trained on the study's single rows
forecasts a sample as the mean over its rows), its name and kind. It is what ``flareseq
predict``, ``evaluate``, ``forecast``, ``serve`` and the MLflow pyfunc model use
(:func:`flareseq.experiments.run_models.load_forecaster`), so all of them forecast the same
way. Saved as a folder of JSON, safetensors and npz files: loading never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from flareseq.data.dataset import FlareDataset
from flareseq.errors import ConfigError, FlareseqError
from flareseq.training.artifacts import read_versioned_json
from flareseq.training.estimator import FlareClassifier

FORMAT = "flareseq-forecaster"
VERSION = 3  # 3: the classifier holds the preparation, the calibrator and the threshold


@dataclass
class Forecaster:
    """A fitted classifier and the layout of the samples it forecasts."""

    classifier: FlareClassifier
    feature_names: tuple[str, ...]
    n_timesteps: int
    layout: str = "sequence"
    kind: str = "model"
    name: str = ""

    @property
    def threshold(self) -> float:
        """The decision threshold, on the scale :meth:`predict_proba` returns."""
        return float(self.classifier.threshold_)

    @property
    def calibrator(self):
        return self.classifier.calibrator_

    @property
    def base_rate(self) -> float:
        """The training event rate (the climatology of the Brier skill score)."""
        return float(self.classifier.base_rate_)

    def _check(self, dataset: FlareDataset) -> None:
        absent = [n for n in self.feature_names if n not in dataset.feature_names]
        if absent:
            raise FlareseqError(f"the data lacks feature(s) {absent} that the model was trained on; it has "
                                f"{list(dataset.feature_names)}.")
        if dataset.n_timesteps != self.n_timesteps:
            raise FlareseqError(f"the model was trained on sequences of {self.n_timesteps} steps; the data has "
                                f"{dataset.n_timesteps}.")

    def predict_proba_uncalibrated(self, dataset: FlareDataset) -> np.ndarray:
        """The model's own probabilities ``(n,)``, before any calibration."""
        return self._per_sample(dataset, self.classifier.predict_proba_uncalibrated)

    def predict_proba(self, dataset: FlareDataset) -> np.ndarray:
        """Probability of a flare ``(n,)`` for each sample (calibrated when the run calibrated)."""
        return self._per_sample(dataset, lambda d: self.classifier.predict_proba(d)[:, 1])

    def _per_sample(self, dataset: FlareDataset, probabilities) -> np.ndarray:
        self._check(dataset)
        if self.layout == "study-rows":
            # A row model forecasts every step; a sample's forecast is the mean over its rows.
            from flareseq.prep.layout import to_study_rows

            n, t = dataset.n_samples, dataset.n_timesteps
            return probabilities(to_study_rows(dataset)).reshape(n, t).mean(axis=1)
        if self.layout == "study-windows":
            raise ConfigError(
                "a model trained on the study's windows over flattened rows forecasts windows, not samples; "
                "train with prep.layout = 'sequence' to forecast samples."
            )
        return probabilities(dataset)

    def predict(self, dataset: FlareDataset) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and 0/1 forecasts at the run's threshold."""
        p = self.predict_proba(dataset)
        return p, (p >= self.threshold).astype(np.int8)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | PathLike[str]) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.classifier.save(folder / "classifier")
        state = {"format": FORMAT, "version": VERSION, "kind": self.kind, "name": self.name,
                 "feature_names": list(self.feature_names), "n_timesteps": self.n_timesteps, "layout": self.layout,
                 "threshold": self.threshold}
        (folder / "forecaster.json").write_text(json.dumps(state, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | PathLike[str], *, device: str = "cpu") -> Forecaster:
        folder = Path(path)
        state_path = folder / "forecaster.json"
        state = read_versioned_json(state_path, what="flareseq model", form=FORMAT, version=VERSION)
        classifier = FlareClassifier.load(folder / "classifier", device=device)
        classifier.progress = False
        try:
            return cls(classifier=classifier, feature_names=tuple(state["feature_names"]),
                       n_timesteps=int(state["n_timesteps"]), layout=str(state["layout"]), kind=str(state["kind"]),
                       name=str(state.get("name", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FlareseqError(f"{state_path}: the saved forecaster is damaged or was edited ({exc}).") from None


__all__ = ["Forecaster", "FORMAT", "VERSION"]
