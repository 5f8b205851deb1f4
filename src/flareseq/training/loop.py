"""The training loop: batches, optimiser, class weights, losses, early stopping, history.

Models come from :mod:`flareseq.models` (pure modules); :class:`~flareseq.training.estimator.FlareClassifier`
wraps this module behind the scikit-learn contract. Arrays stay in NumPy memory (they may be
memory-mapped); each batch is gathered there and copied to the device, so datasets larger
than GPU memory train too.

Keras equivalences (the study trained with Keras):

* RMSprop: Keras ``rho=0.9`` is torch ``alpha=0.9`` (torch's default is 0.99); Keras
  ``epsilon=1e-7`` is torch ``eps=1e-7`` (torch's default 1e-8). Both add epsilon *outside*
  the square root, ``w -= lr * g / (sqrt(v) + eps)`` (keras/src/optimizers/rmsprop.py and
  torch.optim.RMSprop), so the numbers map one to one. Momentum 0, not centred.
* Class weights: Keras multiplies each sample's loss by its class's weight and divides the
  sum by the batch size (not by the sum of weights); :func:`weighted_loss` does the same.
* ``steps_per_epoch`` / ``validation_steps``: the study's generators drew random batches;
  here each training step draws ``batch_size`` random samples (with replacement), and the
  validation steps use one random subset of ``validation_steps * batch_size`` samples drawn
  once, so epochs are compared on the same data.
* Training metrics of an epoch are those of the batches seen during it (dropout active),
  as Keras reports them; validation metrics are computed in eval mode.

Three answers to class imbalance, usable alone or together:

* **Class weights** (``class_weights``): each sample's loss times its class's weight;
  ``"balanced"`` gives ``n / (2 n_c)`` (inverse frequency, as scikit-learn).
* **Focal loss** (``loss="focal"``, Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t``;
  ``gamma`` (``focal_gamma``, 2 by default) shrinks the loss of samples already classified
  well, which are mostly the abundant quiet ones; ``focal_alpha`` weighs the flare class by
  alpha and the quiet class by 1 - alpha (``None``: no such factor). With ``gamma = 0`` and
  no alpha it is exactly binary cross-entropy. Validation loss (for early stopping) stays
  plain binary cross-entropy, so epochs are compared on one scale whatever the loss.
* **Balanced sampling** (``sampling="balanced"``): every training batch holds
  ``batch_size // 2`` flare samples and the rest quiet ones, each class drawn in turn from
  its own reshuffled order (the minority class is repeated, every sample of each class is
  used before any repeats). An epoch keeps its usual number of steps (``steps_per_epoch``,
  or ``ceil(n / batch_size)``), so budgets compare with ``"shuffle"``. The training metrics
  of an epoch are then those of balanced batches.

Class weights and balanced sampling both train the model as if flares were common: its
probabilities are too high for the real event rate. Thresholds chosen on validation TSS
absorb this, but the Brier skill score pays for it.

Weight decay (``weight_decay``): Adam and RMSprop add it to the gradient (classic L2: the
decay passes through the adaptive scaling), AdamW decays the weights directly, decoupled
from the gradient (Loshchilov & Hutter 2019); torch's implementations, checked in
tests/test_training.py. AdamW with ``weight_decay=0`` uses torch's default 0.01 (AdamW
without decay is Adam).

Model hook: a model that defines ``fit_features(X)`` (MiniRocket) has it called once with the
training data before the first step, to fit what is learned without gradients.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from flareseq.errors import ConfigError, FlareseqError
from flareseq.evaluation import metrics

OPTIMIZERS = ("rmsprop", "adam", "adamw")
LOSSES = ("bce", "focal")
SAMPLINGS = ("shuffle", "balanced")
_HISTORY_METRICS = ("loss", "accuracy", "recall", "precision", "tss", "hss2")


@dataclass(frozen=True)
class TrainSettings:
    """Everything the loop needs besides the model and data (see FlareClassifier for meanings)."""

    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    class_weights: tuple[float, float] = (1.0, 1.0)
    loss: str = "bce"
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    sampling: str = "shuffle"
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    early_stopping: bool = False
    patience: int = 5
    monitor: str = "val_loss"
    clip_grad_norm: float | None = None
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}.")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {list(SAMPLINGS)}, got {self.sampling!r}.")
        if self.focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be >= 0, got {self.focal_gamma!r}.")
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("steps_per_epoch", "validation_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | np.integer) or value < 1):
                raise ConfigError(f"{name} must be None or a positive integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}.")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError(f"clip_grad_norm must be None or positive, got {self.clip_grad_norm!r}.")
        if self.focal_alpha is not None and not 0 < self.focal_alpha < 1:
            raise ConfigError(f"focal_alpha must be None or in (0, 1), got {self.focal_alpha!r}.")
        monitored = self.monitor.removeprefix("val_")
        if monitored not in _HISTORY_METRICS:
            raise ConfigError(
                f"monitor must be one of {[p + m for p in ('', 'val_') for m in _HISTORY_METRICS]}, "
                f"got {self.monitor!r}."
            )


def resolve_class_weights(class_weight, y: np.ndarray) -> tuple[float, float]:
    """``None`` -> (1, 1); ``{0: w0, 1: w1}`` as given; ``"balanced"`` -> n / (2 n_c) as in
    scikit-learn, so that both classes weigh the same in total."""
    if class_weight is None:
        return (1.0, 1.0)
    if class_weight == "balanced":
        n_pos = int(np.count_nonzero(y == 1))
        n_neg = len(y) - n_pos
        if not n_pos or not n_neg:
            raise FlareseqError(f"class_weight='balanced' needs both classes; y has {n_pos} positives, {n_neg} negatives.")
        return (len(y) / (2.0 * n_neg), len(y) / (2.0 * n_pos))
    if isinstance(class_weight, dict):
        keys = {int(k) for k in class_weight}
        if keys != {0, 1}:
            raise ConfigError(f"class_weight needs exactly the keys 0 and 1, got {sorted(class_weight)}.")
        w = {int(k): float(v) for k, v in class_weight.items()}
        if min(w.values()) < 0:
            raise ConfigError(f"class weights must not be negative, got {class_weight}.")
        return (w[0], w[1])
    raise ConfigError(f"class_weight must be None, 'balanced' or {{0: w0, 1: w1}}, got {class_weight!r}.")


def make_optimizer(name: str, parameters, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """RMSprop with Keras's defaults, Adam (Keras's epsilon) or AdamW."""
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=0.9, eps=1e-7, momentum=0.0,
                                   centered=False, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-7, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, eps=1e-7, weight_decay=weight_decay or 0.01)
    raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}.")


def weighted_loss(
    logits: torch.Tensor, targets: torch.Tensor, sample_weights: torch.Tensor | None = None, *,
    loss: str = "bce", focal_gamma: float = 2.0, focal_alpha: float | None = None,
) -> torch.Tensor:
    """Mean over the batch of per-sample (weighted) binary cross-entropy or focal loss.

    Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"):
    ``FL = -alpha_t (1 - p_t)^gamma log(p_t)``, where ``p_t`` is the probability given to the
    true class; ``gamma`` down-weights easy, well-classified samples (mostly the abundant
    quiet ones). ``focal_alpha=None`` leaves class balancing to the class weights.
    """
    per_sample = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if loss == "focal":
        p = torch.sigmoid(logits)
        p_true = torch.where(targets > 0.5, p, 1 - p)
        per_sample = per_sample * (1 - p_true).pow(focal_gamma)
        if focal_alpha is not None:
            per_sample = per_sample * torch.where(targets > 0.5, focal_alpha, 1 - focal_alpha)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    return per_sample.sum() / max(len(per_sample), 1)


@contextlib.contextmanager
def flush_denormals():
    """Treat subnormal floats as zero (x86 FTZ/DAZ) while flareseq trains or predicts.

    Arithmetic on subnormals is slow on x86 (microcode assists), and values below 1e-38
    carry no information for these models. One measurement here suggested a large effect on
    a 25-unit LSTM (3.7k vs 59k samples/s in inference), but it was taken on a busy machine
    and did not reproduce cleanly; flushing is kept because it cannot hurt. It applies to
    the calling thread. torch's default (off) is restored after.
    """
    global _flush_depth
    if _flush_depth == 0:
        torch.set_flush_denormal(True)
    _flush_depth += 1
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0:
            torch.set_flush_denormal(False)


_flush_depth = 0  # nesting (validation inside training); the flag is restored by the outermost


def _to_device(X: np.ndarray, index: np.ndarray | slice, device: torch.device) -> torch.Tensor:
    batch = np.ascontiguousarray(X[index], dtype=np.float32)
    tensor = torch.from_numpy(batch)
    return tensor.to(device, non_blocking=True) if device.type != "cpu" else tensor


@torch.inference_mode()
def predict_logits(
    model: nn.Module, X: np.ndarray, *, batch_size: int = 1024, device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Logits ``(n,)`` of ``model`` on ``X`` ``(n, T, F)``, in eval mode, in batches."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = np.empty(len(X), dtype=np.float32)
    try:
        with flush_denormals():
            starts = range(0, len(X), batch_size)
            for start in tqdm(starts, desc="predict", leave=False, disable=None if progress else True):
                stop = min(start + batch_size, len(X))
                out[start:stop] = model(_to_device(X, slice(start, stop), device)).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _epoch_scores(y: np.ndarray, prob: np.ndarray, loss: float) -> dict[str, float]:
    s = metrics.all_scores(y, prob, threshold=0.5)
    return {"loss": loss, **{k: s[k] for k in _HISTORY_METRICS[1:]}}


@dataclass
class TrainResult:
    """What :func:`train_model` learned besides the weights."""

    history: dict[str, list[float]]
    best_epoch: int | None  # 0-based epoch whose weights were restored (early stopping)
    stopped_early: bool


class _Cycler:
    """Indices of one class, handed out in a random order reshuffled each time it runs out."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator) -> None:
        self.indices, self.rng = indices, rng
        self.order, self.position = rng.permutation(indices), 0

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(self.indices), 0
            chunk = self.order[self.position : self.position + k]
            self.position += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return np.concatenate(out)


class BatchSampler:
    """Training batches of one run: ``"shuffle"`` or ``"balanced"`` (module docstring).

    ``epoch()`` yields the index arrays of one epoch; the balanced cyclers carry over from
    epoch to epoch, so each class is used in full before any sample repeats.
    """

    def __init__(self, y: np.ndarray, settings: TrainSettings, rng: np.random.Generator) -> None:
        self.n, self.settings, self.rng = len(y), settings, rng
        self.cyclers: tuple[_Cycler, _Cycler] | None = None
        if settings.sampling == "balanced":
            positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
            if not len(positives) or not len(negatives):
                raise FlareseqError(
                    f"sampling='balanced' needs both classes in the training data; found {len(positives)} "
                    f"positive(s) and {len(negatives)} negative(s). Use sampling='shuffle'."
                )
            self.cyclers = (_Cycler(positives, rng), _Cycler(negatives, rng))

    def n_steps(self) -> int:
        return self.settings.steps_per_epoch or math.ceil(self.n / self.settings.batch_size)

    def epoch(self) -> Iterator[np.ndarray]:
        size = self.settings.batch_size
        if self.cyclers is not None:
            n_pos = size // 2
            for _ in range(self.n_steps()):
                batch = np.concatenate([self.cyclers[0].take(n_pos), self.cyclers[1].take(size - n_pos)])
                yield np.sort(batch)
            return
        if self.settings.steps_per_epoch is not None:
            for _ in range(self.settings.steps_per_epoch):
                yield self.rng.integers(0, self.n, size=size)
            return
        order = self.rng.permutation(self.n)
        for start in range(0, self.n, size):
            # Sorted indices gather faster from (possibly memory-mapped) arrays.
            yield np.sort(order[start : start + size])


def train_model(
    model: nn.Module, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
    *, settings: TrainSettings, random_state: int = 0, device: torch.device | str = "cpu", progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place on ``(X, y)``; validate on ``(X_val, y_val)`` after each epoch.

    The caller seeds torch (weights, dropout masks); ``random_state`` drives the batch order.
    Returns the per-epoch history (``loss, accuracy, recall, precision, tss, hss2`` and the
    same with ``val_``), plus ``samples`` (training samples seen), ``seconds`` and
    ``data_seconds`` (time spent gathering and copying batches: the loader's share).
    """
    device = torch.device(device)
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    if settings.early_stopping and settings.monitor.startswith("val_") and not has_val:
        raise ConfigError(
            f"early stopping on {settings.monitor!r} needs validation data: pass X_val and y_val to fit, "
            "or monitor a training metric (e.g. monitor='loss')."
        )
    rng = np.random.default_rng(random_state)
    if has_val and settings.validation_steps is not None:
        size = min(len(X_val), settings.validation_steps * settings.batch_size)
        pick = np.sort(rng.choice(len(X_val), size=size, replace=False))
        X_val, y_val = X_val[pick], y_val[pick]
    sampler = BatchSampler(y, settings, rng)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.learning_rate, settings.weight_decay)
    history: dict[str, list[float]] = {}
    y_float = y.astype(np.float32)
    with flush_denormals():
        fit_features = getattr(model, "fit_features", None)
        if callable(fit_features):
            # What the model learns without gradients (MiniRocket's biases), from training data only.
            fit_features(X)
        stopped_early, best_epoch, best_state = _run_epochs(
            model, X, y, y_float, X_val, y_val, has_val, settings, optimizer, sampler, device, progress, history)
    if settings.early_stopping and best_state is not None:
        # Keep the best epoch's weights, not the last (Keras: restore_best_weights=True).
        model.load_state_dict(best_state)
    return TrainResult(history=history, best_epoch=best_epoch, stopped_early=stopped_early)


def _run_epochs(model, X, y, y_float, X_val, y_val, has_val, settings, optimizer, sampler, device, progress, history):
    w0, w1 = settings.class_weights
    minimise = settings.monitor.removeprefix("val_") == "loss"
    best_value, best_epoch, best_state, waited = math.inf, None, None, 0
    stopped_early = False
    for epoch in range(settings.epochs):
        model.train()
        t_epoch = time.perf_counter()
        data_seconds = 0.0
        loss_sum, n_seen = 0.0, 0
        seen_y, seen_logits = [], []
        bar = tqdm(total=sampler.n_steps(), desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False,
                   disable=None if progress else True)
        for index in sampler.epoch():
            t_data = time.perf_counter()
            xb = _to_device(X, index, device)
            yb = torch.from_numpy(y_float[index]).to(device)
            data_seconds += time.perf_counter() - t_data
            logits = model(xb)
            weights = None if (w0, w1) == (1.0, 1.0) else torch.where(yb > 0.5, w1, w0)
            loss = weighted_loss(logits, yb, weights, loss=settings.loss, focal_gamma=settings.focal_gamma,
                                 focal_alpha=settings.focal_alpha)
            if not torch.isfinite(loss):
                raise FlareseqError(
                    f"the training loss became {loss.item()} in epoch {epoch + 1}; lower learning_rate "
                    f"(now {settings.learning_rate}) or set clip_grad_norm (e.g. 1.0)."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
            optimizer.step()
            loss_sum += loss.item() * len(index)
            n_seen += len(index)
            seen_y.append(y[index])
            seen_logits.append(logits.detach().cpu().numpy())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", refresh=False)
        bar.close()
        row = _epoch_scores(np.concatenate(seen_y), _sigmoid(np.concatenate(seen_logits)), loss_sum / n_seen)
        if has_val:
            t_data = time.perf_counter()
            val_logits = predict_logits(model, X_val, batch_size=settings.eval_batch_size, device=device)
            val_loss = F.binary_cross_entropy_with_logits(
                torch.from_numpy(val_logits), torch.from_numpy(y_val.astype(np.float32))).item()
            row.update({f"val_{k}": v for k, v in _epoch_scores(y_val, _sigmoid(val_logits), val_loss).items()})
        row["samples"] = n_seen
        row["seconds"] = time.perf_counter() - t_epoch
        row["data_seconds"] = data_seconds
        for key, value in row.items():
            history.setdefault(key, []).append(float(value))
        if settings.early_stopping:
            value = row[settings.monitor]
            score = value if minimise else -value
            if math.isfinite(score) and score < best_value:
                best_value, best_epoch, waited = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if waited >= settings.patience:
                    stopped_early = True
                    break
    return stopped_early, best_epoch, best_state
