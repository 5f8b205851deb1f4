"""How a model is trained: the one list of training settings and their one set of defaults.

:class:`TrainingSettings` is used as it is by the run configuration (its ``[training]``
table, so ``--set training.epochs=5``), by :class:`~flareseq.training.estimator.FlareClassifier`
(whose keyword arguments are these fields, with these defaults) and by the training loop.
Every "off" value is written the way a TOML file can write it (``0``, ``""``, ``{}``), and
means the same everywhere; nothing translates it.

This module imports nothing heavy: the command line validates ``--set`` keys with it before
torch is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from flareseq.errors import ConfigError

OPTIMIZERS = ("rmsprop", "rmsprop-torch", "adam", "adamw")
LOSSES = ("bce", "focal")
BATCHINGS = ("shuffle", "balanced", "full-pass", "sampled", "blocks")
THRESHOLD_METRICS = ("tss", "hss2")
CALIBRATIONS = ("platt", "isotonic")
HISTORY_METRICS = ("loss", "accuracy", "recall", "precision", "tss", "hss2")


@dataclass(frozen=True)
class TrainingSettings:
    """Optimiser, batches, loss, stopping, decision threshold and calibration of one model.

    Attributes
    ----------
    optimizer : ``"rmsprop"`` (Keras's RMSprop, as the study: ``rho`` 0.9, epsilon 1e-7
        inside the square root), ``"rmsprop-torch"`` (torch's RMSprop: epsilon outside),
        ``"adam"`` or ``"adamw"``.
    learning_rate : the step size.
    weight_decay : L2 added to the gradient for RMSprop and Adam, decoupled for AdamW
        (0: none, for every optimizer).
    epochs : passes over the training data (at most, with early stopping).
    batch_size : samples per batch (``"full-pass"``: ignored, see ``batching``).
    batching : how an epoch's batches are drawn.
        ``"shuffle"``: every sample once per epoch, in a new random order, in batches of
        ``batch_size`` (``steps_per_epoch`` must be 0).
        ``"balanced"``: every batch half flares, half quiet samples, each class cycled
        through in random order; ``steps_per_epoch`` batches (0: ``ceil(n / batch_size)``).
        ``"full-pass"``: Keras ``fit`` on arrays with ``steps_per_epoch = S`` and no batch
        size (the study's array-fed runs): the shuffled training set split into ``S``
        batches of ``ceil(n / S)``, one full pass per epoch (``S = 0``: batches of
        ``batch_size``, as ``"shuffle"``).
        ``"sampled"``: ``steps_per_epoch`` batches of ``batch_size`` samples drawn at random
        with replacement (the study's generator-fed runs).
        ``"blocks"``: every sample once per epoch, shuffled by blocks: blocks of 4,096
        consecutive samples in a new random order, eight at a time, the samples of those
        eight shuffled together into batches; reads a cache on disk a few long runs at
        a time (``data.memory_budget_mb``), in the same seeded order wherever the data lies.
    steps_per_epoch : batches per epoch for ``"full-pass"``, ``"sampled"`` and ``"balanced"``
        (0: ``ceil(n / batch_size)``).
    validation_steps : with ``"sampled"``, each epoch validates on ``validation_steps``
        batches of ``batch_size`` taken in order from the validation set, continuing where
        the previous epoch stopped (the study's validation generator). 0, and every other
        batching, validate on the whole validation set (as TensorFlow does with arrays: it
        splits them into ``validation_steps`` batches that cover all of them).
    class_weight : ``{}`` (none), ``{0 = 1, 1 = 5}`` (the study's), or ``"balanced"``
        (``n / (2 n_c)``, as scikit-learn).
    loss : ``"bce"`` (binary cross-entropy) or ``"focal"`` (Lin et al. 2017).
    focal_gamma : the focal loss's focusing exponent (>= 0; 0 is cross-entropy).
    focal_alpha : the flare class's weight in the focal loss, in (0, 1) (0: no such factor).
    early_stopping, patience, monitor : stop after ``patience`` epochs without improvement of
        ``monitor`` (``"val_loss"``, ``"val_tss"``, ...) and restore the best epoch's weights.
    clip_grad_norm : clip the gradients' global norm (0: no clipping).
    threshold : the decision threshold when ``threshold_metric`` is ``""``.
    threshold_metric : ``"tss"`` or ``"hss2"``: the threshold maximising it on the
        validation data (never on test data); ``""``: use ``threshold``.
    calibration : ``"platt"`` or ``"isotonic"``: a calibrator fitted on the validation data
        maps the model's probabilities to observed frequencies (the threshold is then chosen
        on the calibrated ones); ``""``: none.
    random_state : seed of weights, dropout masks and batch order.
    n_threads : torch CPU threads while fitting and predicting (0: leave torch's setting).
    device : ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    """

    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 20
    batch_size: int = 128
    batching: str = "shuffle"
    steps_per_epoch: int = 0
    validation_steps: int = 0
    class_weight: Mapping[str, float] | str = field(default_factory=dict)
    loss: str = "bce"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.0
    early_stopping: bool = True
    patience: int = 5
    monitor: str = "val_loss"
    clip_grad_norm: float = 0.0
    threshold: float = 0.5
    threshold_metric: str = "tss"
    calibration: str = ""
    random_state: int = 0
    n_threads: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("loss", self.loss, LOSSES)
        _one_of("batching", self.batching, BATCHINGS)
        _one_of("threshold_metric", self.threshold_metric, ("", *THRESHOLD_METRICS))
        _one_of("calibration", self.calibration, ("", *CALIBRATIONS))
        for name in ("epochs", "batch_size", "patience"):
            _integer(name, getattr(self, name), minimum=1)
        for name in ("steps_per_epoch", "validation_steps", "n_threads", "random_state"):
            _integer(name, getattr(self, name), minimum=0)
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}.")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0 (0: none), got {self.weight_decay!r}.")
        if self.focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be >= 0, got {self.focal_gamma!r}.")
        if not (self.focal_alpha == 0 or 0 < self.focal_alpha < 1):
            raise ConfigError(f"focal_alpha must be 0 (none) or in (0, 1), got {self.focal_alpha!r}.")
        if self.clip_grad_norm < 0:
            raise ConfigError(f"clip_grad_norm must be >= 0 (0: no clipping), got {self.clip_grad_norm!r}.")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold!r}.")
        if self.monitor.removeprefix("val_") not in HISTORY_METRICS:
            raise ConfigError(f"monitor must be one of {[p + m for p in ('', 'val_') for m in HISTORY_METRICS]}, "
                              f"got {self.monitor!r}.")
        if self.batching in ("shuffle", "blocks") and self.steps_per_epoch:
            raise ConfigError("steps_per_epoch applies to batching 'full-pass', 'sampled' or 'balanced'; with "
                              f"{self.batching!r} an epoch is one pass in batches of batch_size. Set training.batching.")
        check_class_weight(self.class_weight)

    @property
    def needs_validation(self) -> list[str]:
        """The settings that need validation data, by name (empty when none does)."""
        needs = []
        if self.threshold_metric:
            needs.append(f"threshold_metric={self.threshold_metric!r}")
        if self.calibration:
            needs.append(f"calibration={self.calibration!r}")
        if self.early_stopping and self.monitor.startswith("val_"):
            needs.append(f"early_stopping on {self.monitor!r}")
        return needs

    def replace(self, **changes: Any) -> TrainingSettings:
        return dataclasses.replace(self, **changes)


def check_class_weight(class_weight: Any) -> None:
    """``{}``, ``"balanced"`` or a table of the classes 0 and 1 to non-negative weights."""
    if class_weight == "balanced" or (isinstance(class_weight, Mapping) and not class_weight):
        return
    if isinstance(class_weight, Mapping):
        try:
            keys = {int(k) for k in class_weight}
            values = [float(v) for v in class_weight.values()]
        except (TypeError, ValueError):
            keys, values = set(), []
        if keys == {0, 1} and min(values) >= 0:
            return
    raise ConfigError(f"class_weight must be {{}} (none), 'balanced' or a table {{0 = w0, 1 = w1}} of non-negative "
                      f"weights, got {class_weight!r}.")


def _one_of(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}.")


def _integer(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        kind = "a positive integer" if minimum else "an integer >= 0"
        raise ConfigError(f"{name} must be {kind}, got {value!r}.")


DEFAULTS = TrainingSettings()
"""The defaults, once: the estimator's keyword defaults are read from here."""

SETTING_NAMES = tuple(f.name for f in dataclasses.fields(TrainingSettings))


__all__ = ["TrainingSettings", "DEFAULTS", "SETTING_NAMES", "OPTIMIZERS", "LOSSES", "BATCHINGS", "THRESHOLD_METRICS",
           "CALIBRATIONS", "HISTORY_METRICS", "check_class_weight"]
