"""``FlareClassifier``: any registered model or baseline behind the scikit-learn contract.

``__init__`` only stores its arguments: the model's name and parameters, the scaler, and the
fields of :class:`~flareseq.training.settings.TrainingSettings` with the same names and
defaults. ``fit`` is the one place where a model is made ready to forecast:

1. it fits a :class:`~flareseq.prep.preparation.Preparation` (feature order, missing
   values, scaling) on the training data only;
2. it trains the network (:func:`flareseq.training.loop.train_model`) or the baseline core;
3. on the validation data it fits the calibrator (``calibration``) and then chooses the
   decision threshold on the calibrated probabilities (``threshold_metric``), or keeps the
   fixed ``threshold``.

Learned state ends in ``_``. ``save``/``load`` keep weights (safetensors) or baseline arrays
(``.npz``), the configuration, the preparation, the calibrator and the threshold together in
one folder, and never unpickle anything.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from os import PathLike
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator

from flareseq.data.dataset import FlareDataset
from flareseq.errors import ConfigError, FlareseqError, NotFittedError
from flareseq.evaluation import metrics
from flareseq.evaluation.calibration import calibrator_from_dict, fit_calibrator
from flareseq.models import get_model_spec
from flareseq.prep.preparation import Preparation, check_values
from flareseq.training.artifacts import read_versioned_json
from flareseq.training.baselines import BASELINES, Baseline, make_baseline_core
from flareseq.training.loop import predict_logits, train_model
from flareseq.training.settings import DEFAULTS, SETTING_NAMES, TrainingSettings

SAVE_FORMAT = "flareseq-classifier"
SAVE_VERSION = 2  # 2: one folder for models and baselines, with the preparation and calibrator


def check_y(y, n: int, *, name: str = "y") -> np.ndarray:
    """``y`` as an int8 array of 0/1 of length ``n``, or a clear error."""
    if y is None:
        raise FlareseqError(f"{name} is required: labels 0/1 of shape ({n},).")
    y = np.asarray(y)
    if y.shape != (n,):
        raise FlareseqError(f"{name} must have shape ({n},) to match X, got {y.shape}.")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise FlareseqError(
            f"{name} must hold only 0 and 1, found {np.unique(y[bad])[:5].tolist()} at {int(bad.sum())} "
            "position(s); drop unlabelled samples (-1) first, e.g. with FlareDataset.labelled()."
        )
    return y.astype(np.int8)


def _split_dataset(X, y):
    """``(values, labels)`` of a dataset (its own labels unless ``y`` is given) or of arrays."""
    if isinstance(X, FlareDataset):
        return X, X.y if y is None else y
    return X, y


def _n_samples(X) -> int:
    return X.n_samples if isinstance(X, FlareDataset) else len(check_values(X))


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'.")
    return resolved


@contextlib.contextmanager
def _torch_threads(n_threads: int):
    if not n_threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FlareClassifier(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type stubs
    """A model from the registry (or a baseline), trained and used like a scikit-learn classifier.

    Parameters
    ----------
    model : a registry name (``flareseq models`` lists them, e.g. ``"lstm"``) or a baseline
        (``"climatology"``, ``"logistic-last"``, ``"logistic-summary"``, ``"gboost-last"``,
        ``"gboost-summary"``).
    model_params : the model's parameters (e.g. ``{"hidden_size": 64}``; a baseline's, e.g.
        ``{"C": 0.1}``); ``None`` for the defaults.
    scaler : ``"zscore"``, ``"signed-log"`` or ``"none"`` (see
        :class:`~flareseq.prep.preparation.Preparation`).
    optimizer, learning_rate, ..., device : the fields of
        :class:`~flareseq.training.settings.TrainingSettings`, with its defaults (the same
        names as the ``[training]`` keys of a run configuration). Baselines use
        ``threshold``, ``threshold_metric``, ``calibration`` and ``random_state`` of them.
    progress : report training progress (bars on a terminal, one line per epoch elsewhere).

    Attributes
    ----------
    model_ : the trained ``torch.nn.Module``, or the baseline core.
    preparation_ : the fitted :class:`~flareseq.prep.preparation.Preparation`.
    calibrator_ : the calibrator fitted on validation data, or ``None``.
    threshold_ : decision threshold of :meth:`predict` (on calibrated probabilities when
        calibrated).
    history_ : per-epoch ``loss, accuracy, recall, precision, tss, hss2`` (and ``val_*``);
        empty for a baseline.
    best_epoch_ : epoch (0-based) whose weights were kept by early stopping, else ``None``.
    batches_ : what training did per epoch: ``batch_size``, ``batches_per_epoch`` and
        ``validation_samples_per_epoch`` (empty for a baseline).
    base_rate_ : event rate of the training labels (the climatology of BSS).
    n_features_in_, n_timesteps_in_, feature_names_in_ : shape of the training data.
    """

    model_: torch.nn.Module | Baseline

    def __init__(
        self, model: str = "lstm", model_params: dict | None = None, *, scaler: str = "zscore",
        optimizer: str = DEFAULTS.optimizer, learning_rate: float = DEFAULTS.learning_rate,
        weight_decay: float = DEFAULTS.weight_decay, epochs: int = DEFAULTS.epochs,
        batch_size: int = DEFAULTS.batch_size, batching: str = DEFAULTS.batching,
        steps_per_epoch: int = DEFAULTS.steps_per_epoch, validation_steps: int = DEFAULTS.validation_steps,
        class_weight=DEFAULTS.class_weight, loss: str = DEFAULTS.loss, focal_gamma: float = DEFAULTS.focal_gamma,
        focal_alpha: float = DEFAULTS.focal_alpha, early_stopping: bool = DEFAULTS.early_stopping,
        patience: int = DEFAULTS.patience, monitor: str = DEFAULTS.monitor,
        clip_grad_norm: float = DEFAULTS.clip_grad_norm, threshold: float = DEFAULTS.threshold,
        threshold_metric: str = DEFAULTS.threshold_metric, calibration: str = DEFAULTS.calibration,
        random_state: int = DEFAULTS.random_state, n_threads: int = DEFAULTS.n_threads,
        device: str = DEFAULTS.device, progress: bool = True,
    ) -> None:
        self.model = model
        self.model_params = model_params
        self.scaler = scaler
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.batching = batching
        self.steps_per_epoch = steps_per_epoch
        self.validation_steps = validation_steps
        self.class_weight = class_weight
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.early_stopping = early_stopping
        self.patience = patience
        self.monitor = monitor
        self.clip_grad_norm = clip_grad_norm
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.calibration = calibration
        self.random_state = random_state
        self.n_threads = n_threads
        self.device = device
        self.progress = progress

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_settings(cls, model: str, model_params: dict | None = None, *, scaler: str = "zscore",
                      settings: TrainingSettings = DEFAULTS, progress: bool = True) -> FlareClassifier:
        """The classifier of a run configuration's model, scaler and training settings."""
        values = {name: getattr(settings, name) for name in SETTING_NAMES}
        return cls(model, dict(model_params) or None if model_params is not None else None, scaler=scaler,
                   progress=progress, **values)

    def settings(self) -> TrainingSettings:
        """The training settings of this classifier (validated)."""
        return TrainingSettings(**{name: getattr(self, name) for name in SETTING_NAMES})

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINES

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X, y=None, *, X_val=None, y_val=None) -> FlareClassifier:
        """Train on ``X (n, T, F)`` and ``y (n,)``, or a labelled :class:`FlareDataset`.

        ``X_val``/``y_val`` (arrays or a labelled dataset; never the test data) feed early
        stopping, the calibrator and the threshold choice. NaN marks a missing value.
        """
        settings = self.settings()
        X, y = _split_dataset(X, y)
        y = check_y(y, _n_samples(X))
        has_val = X_val is not None
        if has_val:
            X_val, y_val = _split_dataset(X_val, y_val)
            y_val = check_y(y_val, _n_samples(X_val), name="y_val")
        needs = [n for n in settings.needs_validation if not (self.is_baseline and n.startswith("early"))]
        if needs and not has_val:
            raise ConfigError(
                f"{', '.join(needs)} need validation data: pass X_val and y_val to fit (never the test data), "
                "or turn them off (threshold_metric='', calibration='', early_stopping=False)."
            )
        preparation = Preparation(self.scaler)
        Xp = preparation.fit_transform(X)
        Xv = preparation.transform(X_val, name="X_val") if has_val else None
        return self._fit_prepared(settings, preparation, Xp, y, Xv, y_val)

    def fit_prepared(self, preparation: Preparation, X, y, *, X_val=None, y_val=None) -> FlareClassifier:
        """Train on inputs already prepared by ``preparation`` (fitted on these training
        samples): float32 ``(n, T, F)`` without NaN, as ``preparation.transform`` gives them,
        in memory or read by index from disk (a :class:`~flareseq.data.cache.CachedArray`).

        This is :meth:`fit` without its preparation step: on the same samples, settings and
        seed it trains the same model. The preparation is saved with the model, so
        :meth:`predict_proba` on raw data repeats it.
        """
        settings = self.settings()
        if preparation.scaler != self.scaler or not hasattr(preparation, "feature_names_"):
            raise ConfigError(f"fit_prepared needs a Preparation fitted with this classifier's scaler "
                              f"{self.scaler!r}; got one with {preparation.scaler!r}"
                              + ("" if hasattr(preparation, "feature_names_") else ", not fitted") + ".")
        y = check_y(y, len(X))
        if tuple(X.shape[1:]) != (preparation.n_timesteps_, len(preparation.feature_names_)):
            raise FlareseqError(f"X has shape {tuple(X.shape)}, but the preparation was fitted on "
                                f"({preparation.n_timesteps_}, {len(preparation.feature_names_)}) per sample.")
        if X_val is not None:
            y_val = check_y(y_val, len(X_val), name="y_val")
        elif settings.needs_validation and not self.is_baseline:
            raise ConfigError(f"{', '.join(settings.needs_validation)} need validation data: pass X_val and y_val.")
        return self._fit_prepared(settings, preparation, X, y, X_val, y_val)

    def _fit_prepared(self, settings: TrainingSettings, preparation: Preparation, Xp, y, Xv, y_val) -> FlareClassifier:
        device = _resolve_device(self.device)
        with _torch_threads(self.n_threads):
            if self.is_baseline:
                Xp, Xv = np.asarray(Xp), None if Xv is None else np.asarray(Xv)  # baselines take whole arrays
                core = make_baseline_core(self.model, self.model_params, random_state=self.random_state)
                started = time.perf_counter()
                if self.progress:
                    print(f"{self.model}: fitting on {len(Xp)} samples", file=sys.stderr, flush=True)
                self.model_ = core.fit(Xp, y, Xv, y_val)
                if self.progress:
                    print(f"{self.model}: fitted in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
                self.history_, self.best_epoch_ = {}, None
                self.batches_ = {}
            else:
                spec = get_model_spec(self.model)
                with torch.random.fork_rng(devices=[] if device.type == "cpu" else None):
                    torch.manual_seed(self.random_state)
                    net = spec.build(Xp.shape[2], self.model_params).to(device)
                    result = train_model(net, Xp, y, Xv, y_val, settings=settings, device=device,
                                         progress=self.progress, label=f"{self.model} ")
                self.model_ = net.eval()
                self.history_, self.best_epoch_ = result.history, result.best_epoch
                self.batches_ = {"batch_size": result.batch_size, "batches_per_epoch": result.batches_per_epoch,
                                 "validation_samples_per_epoch": result.validation_size}
        self.device_ = device
        self.preparation_ = preparation
        self.n_features_in_ = Xp.shape[2]
        self.n_timesteps_in_ = Xp.shape[1]
        self.feature_names_in_ = preparation.feature_names_
        self.base_rate_ = float(y.mean())
        self.classes_ = np.array([0, 1])
        self._choose_decision(settings, Xv, y_val)
        return self

    def _choose_decision(self, settings: TrainingSettings, Xv, y_val) -> None:
        """Calibrate, then choose the threshold: both on validation data only."""
        self.calibrator_ = None
        if Xv is None:
            self.threshold_ = float(settings.threshold)
            return
        p_val = self._positive(Xv)
        if settings.calibration:
            self.calibrator_ = fit_calibrator(settings.calibration, y_val, p_val)
            p_val = self.calibrator_.transform(p_val)
        self.threshold_ = (metrics.choose_threshold(y_val, p_val, settings.threshold_metric)
                           if settings.threshold_metric else float(settings.threshold))

    # -- prediction ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first.")

    def _positive(self, X_prepared: np.ndarray) -> np.ndarray:
        """The model's own (uncalibrated) event probabilities of prepared inputs."""
        if self.is_baseline:
            return np.clip(cast(Baseline, self.model_).predict_positive(np.asarray(X_prepared)), 0.0, 1.0)
        with _torch_threads(self.n_threads):
            logits = predict_logits(cast(torch.nn.Module, self.model_), X_prepared, device=self.device_)
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def predict_proba_uncalibrated(self, X) -> np.ndarray:
        """The model's own event probabilities ``(n,)``, before any calibration."""
        self._check_fitted()
        X, _ = _split_dataset(X, None)
        return self._positive(self.preparation_.transform(X))

    def predict_proba_prepared(self, X_prepared) -> np.ndarray:
        """:meth:`predict_proba` of inputs already prepared by ``preparation_`` (e.g. a
        :class:`~flareseq.data.cache.CachedArray`), read batch by batch."""
        self._check_fitted()
        p = self._positive(X_prepared)
        if self.calibrator_ is not None:
            p = self.calibrator_.transform(p)
        return np.column_stack([1.0 - p, p])

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n, 2)``: column 0 no flare, column 1 flare (calibrated when the
        classifier was calibrated). NaN in ``X`` is filled as in training."""
        p = self.predict_proba_uncalibrated(X)
        if self.calibrator_ is not None:
            p = self.calibrator_.transform(p)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """0/1 forecasts: 1 where the event probability is at least ``threshold_``."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(np.int8)

    def score(self, X, y=None) -> float:
        """True skill statistic of :meth:`predict` (the field's primary score)."""
        X, y = _split_dataset(X, y)
        y = check_y(y, _n_samples(X))
        return metrics.true_skill_statistic(y, self.predict(X))

    def scores(self, X, y=None, *, climatology: float | None = None) -> dict[str, float]:
        """Every score of :func:`flareseq.evaluation.metrics.all_scores` on ``X`` (a labelled
        dataset, or arrays with ``y``); BSS against the training event rate unless
        ``climatology`` is given."""
        X, y = _split_dataset(X, y)
        y = check_y(y, _n_samples(X))
        clim = self.base_rate_ if climatology is None else climatology
        return metrics.all_scores(y, self.predict_proba(X)[:, 1], threshold=self.threshold_, climatology=clim)

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | PathLike[str]) -> Path:
        """Write ``config.json`` and ``weights.safetensors`` (or ``arrays.npz`` for a baseline)
        into the folder ``path``."""
        self._check_fitted()
        from flareseq import __version__

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        params["class_weight"] = _json_class_weight(params["class_weight"])
        config: dict[str, Any] = {
            "format": SAVE_FORMAT, "version": SAVE_VERSION, "flareseq_version": __version__,
            "params": params, "n_features": self.n_features_in_, "n_timesteps": self.n_timesteps_in_,
            "preparation": self.preparation_.to_dict(), "threshold": self.threshold_,
            "calibration": None if self.calibrator_ is None else self.calibrator_.to_dict(),
            "base_rate": self.base_rate_, "best_epoch": self.best_epoch_, "history": self.history_,
            "batches": self.batches_,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        if self.is_baseline:
            arrays: dict[str, Any] = cast(Baseline, self.model_).state()
            np.savez(folder / "arrays.npz", **arrays)
        else:
            from safetensors.torch import save_model

            net = cast(torch.nn.Module, self.model_)
            # save_model stores a tied tensor once and load_model restores the sharing.
            save_model(net.cpu(), str(folder / "weights.safetensors"))
            net.to(self.device_)
        return folder

    @classmethod
    def load(cls, path: str | PathLike[str], *, device: str = "auto") -> FlareClassifier:
        """A fitted classifier from a folder written by :meth:`save`.

        Only JSON, ``.npz`` arrays (``allow_pickle=False``) and safetensors are read; a
        folder that is damaged or was tampered with is a :class:`FlareseqError` naming the
        file, never a traceback from the file's parser.
        """
        folder = Path(path)
        config = read_versioned_json(folder / "config.json", what="FlareClassifier", form=SAVE_FORMAT,
                                     version=SAVE_VERSION)
        config_path = folder / "config.json"
        try:
            return cls._from_config(folder, config, device)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise FlareseqError(f"{config_path}: the saved configuration is damaged or was edited "
                                f"({type(exc).__name__}: {exc}); save or download the model again.") from None

    @classmethod
    def _from_config(cls, folder: Path, config: dict, device: str) -> FlareClassifier:
        params = dict(config["params"])
        params["class_weight"] = _class_weight_from_json(params["class_weight"])
        params["device"] = device
        estimator = cls(**params)
        estimator.settings()  # validates what was read
        if estimator.is_baseline:
            core = make_baseline_core(estimator.model, estimator.model_params, random_state=estimator.random_state)
            arrays = _read_arrays(folder / "arrays.npz")
            core.load_state(arrays)
            estimator.model_ = core
            estimator.device_ = torch.device("cpu")
        else:
            from safetensors import SafetensorError
            from safetensors.torch import load_model

            spec = get_model_spec(estimator.model)
            net = spec.build(int(config["n_features"]), estimator.model_params)
            weights = folder / "weights.safetensors"
            try:
                load_model(net, str(weights), strict=True)
            except (SafetensorError, RuntimeError, OSError) as exc:
                raise FlareseqError(f"{weights}: expected the weights of {estimator.model} with "
                                    f"{config['n_features']} features, could not load them ({exc}). The model "
                                    "folder is damaged; save or download it again.") from None
            estimator.device_ = _resolve_device(device)
            estimator.model_ = net.to(estimator.device_).eval()
        estimator.preparation_ = Preparation.from_dict(config["preparation"])
        calibration = config["calibration"]
        estimator.calibrator_ = None if calibration is None else calibrator_from_dict(
            calibration, where=str(folder / "config.json"))
        estimator.threshold_ = float(config["threshold"])
        estimator.history_ = config["history"]
        estimator.best_epoch_ = config["best_epoch"]
        estimator.batches_ = dict(config.get("batches", {}))
        estimator.n_features_in_ = int(config["n_features"])
        estimator.n_timesteps_in_ = int(config["n_timesteps"])
        estimator.feature_names_in_ = estimator.preparation_.feature_names_
        estimator.base_rate_ = float(config["base_rate"])
        estimator.classes_ = np.array([0, 1])
        return estimator


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FlareseqError(f"{path}: expected the baseline's arrays, could not read them ({exc}). The model "
                            "folder is damaged; save or download it again.") from None


def _json_class_weight(class_weight):
    # JSON keys are strings: the classes 0 and 1 are written as "0", "1" and read back as ints
    if isinstance(class_weight, dict):
        return {str(k): float(v) for k, v in class_weight.items()}
    return class_weight


def _class_weight_from_json(class_weight):
    if isinstance(class_weight, dict):
        return {int(k): float(v) for k, v in class_weight.items()}
    return class_weight


def make_baseline(name: str, **params) -> FlareClassifier:
    """A baseline as an unfitted classifier (``params``: the baseline's own, e.g. ``C``)."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {list(BASELINES)}.")
    return FlareClassifier(name, params or None, progress=False)


__all__ = ["FlareClassifier", "check_y", "make_baseline", "SAVE_FORMAT", "SAVE_VERSION"]
