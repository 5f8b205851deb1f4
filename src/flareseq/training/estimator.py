"""``FlareClassifier``: a registered sequence model behind the scikit-learn contract.

``__init__`` only stores its arguments; ``fit`` validates, scales (a scaler fitted on the
training data only), builds the model from :data:`flareseq.models.MODELS`, trains it with
:func:`flareseq.training.loop.train_model` and, when asked, chooses the decision threshold on the
validation data. Learned state ends in ``_``. ``save``/``load`` keep weights (safetensors),
configuration, scaler and threshold together in one folder and never unpickle anything.
"""

from __future__ import annotations

import contextlib
import json
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from flareseq.data.dataset import FlareDataset
from flareseq.errors import ConfigError, FlareseqError, NotFittedError
from flareseq.evaluation import metrics
from flareseq.models import get_model_spec
from flareseq.prep.scaling import Scaler
from flareseq.training.loop import (
    TrainSettings,
    predict_logits,
    resolve_class_weights,
    train_model,
)

SAVE_FORMAT = "flareseq-classifier"
SAVE_VERSION = 1


def check_X(X, *, name: str = "X", n_features: int | None = None, feature_names=None) -> np.ndarray:
    """``X`` as a float32 array ``(n, T, F)`` without NaN or infinity, or a clear error."""
    if isinstance(X, FlareDataset):
        X = X.X
    X = np.asarray(X)
    if X.ndim != 3:
        hint = " Reshape a single sample with X[None]." if X.ndim == 2 else ""
        raise FlareseqError(
            f"{name} must be 3-dimensional (n_samples, n_timesteps, n_features), got shape {X.shape}.{hint}"
        )
    if not np.issubdtype(X.dtype, np.number):
        raise FlareseqError(f"{name} must be numeric, got dtype {X.dtype}.")
    X = X.astype(np.float32, copy=False)
    if n_features is not None and X.shape[2] != n_features:
        raise FlareseqError(
            f"{name} has {X.shape[2]} features, but the model was fitted on {n_features}; "
            "pass the same features in the same order as in fit."
        )
    # In chunks: a full boolean mask of a 1.2 GB array would cost another 300 MB.
    n_bad_values = n_bad_samples = 0
    first = None
    for start in range(0, len(X), 8192):
        bad = ~np.isfinite(X[start : start + 8192])
        if bad.any():
            n_bad_values += int(bad.sum())
            n_bad_samples += int(bad.any(axis=(1, 2)).sum())
            if first is None:
                s, t, f = np.argwhere(bad)[0]
                first = (start + s, t, f)
    if first is not None:
        s, t, f = first
        feature = feature_names[f] if feature_names is not None else f"#{f}"
        raise FlareseqError(
            f"{name} holds {n_bad_values} NaN or infinite value(s) in {n_bad_samples} "
            f"sample(s), the first at sample {s}, step {t}, feature {feature} (found {X[s, t, f]}); "
            "expected finite values: the estimator does not impute. Handle missing values first "
            "(flareseq.prep.missing.MissingValues) or drop those samples: keep = ~np.isnan(X).any(axis=(1, 2))."
        )
    return X


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
    if isinstance(X, FlareDataset):
        return X.X, X.y if y is None else y, X.feature_names
    return X, y, None


class ThresholdedClassifierMixin:
    """Shared by the estimator and the baselines: threshold choice, predict, score.

    Subclasses set ``threshold``/``threshold_metric`` in ``__init__`` and implement
    ``predict_proba``; ``_choose_threshold`` is called at the end of ``fit``.
    """

    def _choose_threshold(self, X_val, y_val) -> float:
        if self.threshold_metric is None:
            if not 0.0 <= self.threshold <= 1.0:
                raise ConfigError(f"threshold must be in [0, 1], got {self.threshold!r}.")
            return float(self.threshold)
        if X_val is None or y_val is None:
            raise ConfigError(
                f"threshold_metric={self.threshold_metric!r} chooses the threshold on validation data: "
                "pass X_val and y_val to fit (never the test data), or set threshold_metric=None."
            )
        return metrics.choose_threshold(y_val, self.predict_proba(X_val)[:, 1], self.threshold_metric)

    def predict(self, X) -> np.ndarray:
        """0/1 forecasts: 1 where the event probability is at least ``threshold_``."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(np.int8)

    def score(self, X, y) -> float:
        """True skill statistic of :meth:`predict` (the field's primary score)."""
        X, y, _ = _split_dataset(X, y)
        y = check_y(y, len(X))
        return metrics.true_skill_statistic(y, self.predict(X))

    def scores(self, X, y, *, climatology: float | None = None) -> dict[str, float]:
        """Every score of :func:`flareseq.evaluation.metrics.all_scores`; BSS against the training event
        rate unless ``climatology`` is given."""
        X, y, _ = _split_dataset(X, y)
        y = check_y(y, len(X))
        clim = self.base_rate_ if climatology is None else climatology
        return metrics.all_scores(y, self.predict_proba(X)[:, 1], threshold=self.threshold_, climatology=clim)


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


def _make_scaler(scaler) -> Scaler | None:
    if scaler is None:
        return None
    if scaler == "zscore":
        return Scaler()
    if scaler == "signed-log":
        return Scaler(signed_log=True)
    if isinstance(scaler, dict):
        try:
            return Scaler(**scaler)
        except TypeError:
            raise ConfigError(f"scaler options must be Scaler's (signed_log, with_std), got {sorted(scaler)}.") from None
    raise ConfigError(f"scaler must be None, 'zscore', 'signed-log' or a dict of Scaler options, got {scaler!r}.")


@contextlib.contextmanager
def _torch_threads(n_threads: int | None):
    if n_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _json_class_weight(class_weight):
    # JSON keys are strings; the class weights' keys are classes 0 and 1.
    if isinstance(class_weight, dict):
        return {int(k): float(v) for k, v in class_weight.items()}
    return class_weight


class FlareClassifier(ThresholdedClassifierMixin, BaseEstimator):
    """A sequence model from the registry, trained and used like a scikit-learn classifier.

    Parameters
    ----------
    model : registry name (``flareseq models`` lists them), e.g. ``"lstm"``.
    model_params : the model's parameters (e.g. ``{"hidden_size": 64}``); ``None`` for the
        study's defaults.
    optimizer : ``"rmsprop"`` (Keras defaults, as the study), ``"adam"`` or ``"adamw"``.
    learning_rate, weight_decay : optimiser settings; weight decay is classic L2 (added to
        the gradient) for RMSprop and Adam, decoupled for AdamW.
    epochs, batch_size : full passes over the training data and batch size.
    class_weight : ``None``, ``{0: 1, 1: 5}`` (the study's), or ``"balanced"`` (inverse class
        frequency, ``n / (2 n_c)``).
    loss : ``"bce"`` (binary cross-entropy) or ``"focal"`` (Lin et al. 2017,
        ``-alpha_t (1 - p_t)^gamma log p_t``): ``focal_gamma`` (>= 0; 0 gives cross-entropy)
        down-weights well-classified samples; ``focal_alpha`` in (0, 1) weighs flares by
        alpha and quiet samples by 1 - alpha (``None``: no such factor; combine with
        ``class_weight`` or not, as you choose).
    sampling : ``"shuffle"`` (every sample once per epoch, in random order) or
        ``"balanced"`` (every batch half flares, half quiet samples, each class cycled
        through in random order; same number of steps per epoch). See
        :mod:`flareseq.training.loop` for how the three imbalance options differ.
    steps_per_epoch, validation_steps : the study's mode: random batches per epoch instead of
        full passes (see :mod:`flareseq.training.loop`).
    early_stopping, patience, monitor : stop after ``patience`` epochs without improvement of
        ``monitor`` (``"val_loss"``, ``"val_tss"``, ...) and restore the best weights.
    clip_grad_norm : clip the gradients' global norm to this value (``None``: no clipping).
    threshold : decision threshold of :meth:`predict` when ``threshold_metric`` is ``None``.
    threshold_metric : ``"tss"`` or ``"hss2"``: choose the threshold maximising it on
        ``X_val`` (never on test data).
    scaler : ``"zscore"`` (fitted on the training data), ``"signed-log"`` (signed log, then
        z-score), a dict of :class:`~flareseq.prep.scaling.Scaler` options, or ``None`` (data
        already scaled).
    n_threads : torch CPU threads during fit/predict (``None``: leave torch's setting).
    device : ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``.
    random_state : seed of weights, dropout masks and batch order; the same seed gives the
        same model on CPU.
    progress : show a progress bar per epoch (only on a terminal).

    Attributes
    ----------
    model_ : the trained ``torch.nn.Module``.
    scaler_ : the fitted :class:`~flareseq.prep.scaling.Scaler`, or ``None``.
    threshold_ : decision threshold used by :meth:`predict`.
    history_ : per-epoch ``loss, accuracy, recall, precision, tss, hss2`` (and ``val_*``).
    best_epoch_ : epoch (0-based) whose weights were kept by early stopping, else ``None``.
    base_rate_ : event rate of the training labels (the climatology of BSS).
    n_features_in_, n_timesteps_in_, feature_names_in_ : shape of the training data.
    """

    def __init__(
        self, model: str = "lstm", model_params: dict | None = None, *, optimizer: str = "rmsprop",
        learning_rate: float = 1e-3, weight_decay: float = 0.0, epochs: int = 10, batch_size: int = 128,
        class_weight=None, loss: str = "bce", focal_gamma: float = 2.0, focal_alpha: float | None = None,
        sampling: str = "shuffle", steps_per_epoch: int | None = None, validation_steps: int | None = None,
        early_stopping: bool = False, patience: int = 5, monitor: str = "val_loss", clip_grad_norm: float | None = None, threshold: float = 0.5,
        threshold_metric: str | None = None, scaler="zscore", n_threads: int | None = None, device: str = "auto",
        random_state: int = 0, progress: bool = True,
    ) -> None:
        self.model = model
        self.model_params = model_params
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.class_weight = class_weight
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.sampling = sampling
        self.steps_per_epoch = steps_per_epoch
        self.validation_steps = validation_steps
        self.early_stopping = early_stopping
        self.patience = patience
        self.monitor = monitor
        self.clip_grad_norm = clip_grad_norm
        self.threshold = threshold
        self.threshold_metric = threshold_metric
        self.scaler = scaler
        self.n_threads = n_threads
        self.device = device
        self.random_state = random_state
        self.progress = progress

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X, y=None, *, X_val=None, y_val=None) -> FlareClassifier:
        """Train on ``X (n, T, F)`` and ``y (n,)`` (or a labelled :class:`FlareDataset`).

        ``X_val``/``y_val`` feed the validation history, early stopping and the threshold
        choice; they are scaled with the scaler fitted on ``X``.
        """
        X, y, names = _split_dataset(X, y)
        X = check_X(X, feature_names=names)
        y = check_y(y, len(X))
        has_val = X_val is not None or y_val is not None
        if has_val:
            X_val, y_val, _ = _split_dataset(X_val, y_val)
            X_val = check_X(X_val, name="X_val", n_features=X.shape[2], feature_names=names)
            y_val = check_y(y_val, len(X_val), name="y_val")
        spec = get_model_spec(self.model)
        settings = TrainSettings(
            optimizer=self.optimizer, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            epochs=self.epochs, batch_size=self.batch_size, class_weights=resolve_class_weights(self.class_weight, y),
            loss=self.loss, focal_gamma=self.focal_gamma, focal_alpha=self.focal_alpha, sampling=self.sampling,
            steps_per_epoch=self.steps_per_epoch, validation_steps=self.validation_steps,
            early_stopping=self.early_stopping, patience=self.patience, monitor=self.monitor,
            clip_grad_norm=self.clip_grad_norm,
        )
        if self.threshold_metric is not None and not has_val:
            self._choose_threshold(None, None)  # raises the explanatory error before training
        device = _resolve_device(self.device)
        scaler = _make_scaler(self.scaler)
        if scaler is not None:
            X = scaler.fit_transform(X, names)
            if has_val:
                X_val = scaler.transform(X_val)
        with _torch_threads(self.n_threads), torch.random.fork_rng(devices=[] if device.type == "cpu" else None):
            torch.manual_seed(self.random_state)
            net = spec.build(X.shape[2], self.model_params).to(device)
            result = train_model(net, X, y, X_val, y_val, settings=settings, random_state=self.random_state,
                                 device=device, progress=self.progress)
        self.model_ = net.eval()
        self.scaler_ = scaler
        self.device_ = device
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_features_in_ = X.shape[2]
        self.n_timesteps_in_ = X.shape[1]
        self.feature_names_in_ = names
        self.base_rate_ = float(y.mean())
        self.classes_ = np.array([0, 1])
        # The threshold is chosen on (already scaled) validation data, so bypass scaling.
        self.threshold_ = self._choose_threshold(X_val, y_val) if self.threshold_metric is None else (
            metrics.choose_threshold(y_val, self._probabilities(X_val), self.threshold_metric)
        )
        return self

    # -- prediction ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first.")

    def _probabilities(self, X_scaled: np.ndarray) -> np.ndarray:
        with _torch_threads(self.n_threads):
            logits = predict_logits(self.model_, X_scaled, device=self.device_, progress=self.progress)
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities ``(n, 2)``: column 0 no flare, column 1 flare."""
        self._check_fitted()
        X, _, _ = _split_dataset(X, None)
        X = check_X(X, n_features=self.n_features_in_, feature_names=self.feature_names_in_)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        p = self._probabilities(X)
        return np.column_stack([1.0 - p, p])

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | PathLike[str]) -> Path:
        """Write ``config.json`` and ``weights.safetensors`` into the folder ``path``."""
        self._check_fitted()
        from safetensors.torch import save_model

        from flareseq import __version__

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        params["class_weight"] = _json_class_weight(params["class_weight"])
        config: dict[str, Any] = {
            "format": SAVE_FORMAT, "version": SAVE_VERSION, "flareseq_version": __version__,
            "params": params,
            "model": {"name": self.model, "params": self.model_params or {}, "n_features": self.n_features_in_},
            "threshold": self.threshold_, "scaler": None if self.scaler_ is None else self.scaler_.to_dict(),
            "n_timesteps": self.n_timesteps_in_,
            "feature_names": None if self.feature_names_in_ is None else list(self.feature_names_in_),
            "base_rate": self.base_rate_, "best_epoch": self.best_epoch_, "history": self.history_,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        # save_model stores a tied tensor once and load_model restores the sharing.
        save_model(self.model_.cpu(), str(folder / "weights.safetensors"))
        self.model_.to(self.device_)
        return folder

    @classmethod
    def load(cls, path: str | PathLike[str], *, device: str = "auto") -> FlareClassifier:
        """A fitted classifier from a folder written by :meth:`save`."""
        from safetensors.torch import load_model

        folder = Path(path)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise FlareseqError(f"{folder} is not a saved FlareClassifier: {config_path.name} is missing.")
        config = json.loads(config_path.read_text())
        if config.get("format") != SAVE_FORMAT or config.get("version") != SAVE_VERSION:
            raise FlareseqError(
                f"{config_path}: expected format {SAVE_FORMAT!r} version {SAVE_VERSION}, found "
                f"{config.get('format')!r} version {config.get('version')!r}."
            )
        params = dict(config["params"])
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = {int(k): v for k, v in params["class_weight"].items()}
        params["device"] = device
        estimator = cls(**params)
        spec = get_model_spec(config["model"]["name"])
        net = spec.build(config["model"]["n_features"], config["model"]["params"])
        load_model(net, str(folder / "weights.safetensors"), strict=True)
        estimator.device_ = _resolve_device(device)
        estimator.model_ = net.to(estimator.device_).eval()
        estimator.scaler_ = None if config["scaler"] is None else Scaler.from_dict(config["scaler"])
        estimator.threshold_ = float(config["threshold"])
        estimator.history_ = config["history"]
        estimator.best_epoch_ = config["best_epoch"]
        estimator.n_features_in_ = config["model"]["n_features"]
        estimator.n_timesteps_in_ = config["n_timesteps"]
        names = config["feature_names"]
        estimator.feature_names_in_ = None if names is None else tuple(names)
        estimator.base_rate_ = float(config["base_rate"])
        estimator.classes_ = np.array([0, 1])
        return estimator
