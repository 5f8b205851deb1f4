"""The training loop: batches, optimiser, class weights, losses, early stopping, history.

Models come from :mod:`flareseq.models` (pure modules); :class:`~flareseq.training.estimator.FlareClassifier`
wraps this module behind the scikit-learn contract, and every setting comes from one
:class:`~flareseq.training.settings.TrainingSettings`. Arrays stay in NumPy memory (they may
be memory-mapped); each batch is gathered there and copied to the device, so datasets larger
than GPU memory train too.

How the study's Keras runs map here (its notebook, cells [54]-[75]):

* RMSprop: Keras's update, epsilon inside the square root (:mod:`flareseq.training.optim`).
* Class weights: Keras multiplies each sample's loss by its class's weight and divides the
  sum by the batch size (not by the sum of weights); :func:`weighted_loss` does the same.
* ``fit(arrays, steps_per_epoch=S)`` without a batch size: TensorFlow splits the (shuffled)
  training arrays into ``S`` batches, so an epoch is one full pass: ``batching="full-pass"``;
  its validation on arrays covers the whole validation set.
* ``fit(generator, steps_per_epoch=S, validation_steps=V)``: ``S`` batches of 128 windows
  drawn at random with replacement (``batching="sampled"``), and ``V`` batches taken in order
  from the validation generator, which carries on where the previous epoch stopped.
* Training metrics of an epoch are those of the batches seen during it (dropout active),
  as Keras reports them; validation metrics are computed in eval mode.

Three answers to class imbalance, usable alone or together:

* **Class weights** (``class_weight``): each sample's loss times its class's weight;
  ``"balanced"`` gives ``n / (2 n_c)`` (inverse frequency, as scikit-learn).
* **Focal loss** (``loss="focal"``, Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t``;
  ``gamma`` (``focal_gamma``) shrinks the loss of samples already classified well, which are
  mostly the abundant quiet ones; ``focal_alpha`` weighs the flare class by alpha and the
  quiet class by 1 - alpha (0: no such factor). With ``gamma = 0`` and no alpha it is exactly
  binary cross-entropy. Validation loss (for early stopping) stays plain binary
  cross-entropy, so epochs are compared on one scale whatever the loss.
* **Balanced batches** (``batching="balanced"``): every training batch holds
  ``batch_size // 2`` flare samples and the rest quiet ones, each class drawn in turn from
  its own reshuffled order (every sample of each class is used before any repeats). An
  epoch keeps the usual number of steps (``steps_per_epoch``, or ``ceil(n / batch_size)``).

Class weights and balanced batches both train the model as if flares were common: its
probabilities are too high for the real event rate. Thresholds chosen on validation TSS
absorb this, but the Brier skill score pays for it (calibrate: ``calibration``).

Model hooks: a model that defines ``fit_features(X)`` (MiniRocket) has it called once with the
training data before the first step, to fit what is learned without gradients; one that
defines ``warm_start(X, y)`` (wide-deep-lstm) has it called next, with the training labels.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
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
from flareseq.training.optim import make_optimizer
from flareseq.training.settings import HISTORY_METRICS, TrainingSettings


def resolve_class_weights(class_weight, y: np.ndarray) -> tuple[float, float]:
    """``{}`` -> (1, 1); ``{0: w0, 1: w1}`` as given; ``"balanced"`` -> n / (2 n_c) as in
    scikit-learn, so that both classes weigh the same in total."""
    if class_weight == "balanced":
        n_pos = int(np.count_nonzero(y == 1))
        n_neg = len(y) - n_pos
        if not n_pos or not n_neg:
            raise FlareseqError(f"class_weight='balanced' needs both classes; y has {n_pos} positives, {n_neg} negatives.")
        return (len(y) / (2.0 * n_neg), len(y) / (2.0 * n_pos))
    if not class_weight:
        return (1.0, 1.0)
    weights = {int(k): float(v) for k, v in dict(class_weight).items()}
    return (weights[0], weights[1])


def weighted_loss(
    logits: torch.Tensor, targets: torch.Tensor, sample_weights: torch.Tensor | None = None, *,
    loss: str = "bce", focal_gamma: float = 2.0, focal_alpha: float = 0.0,
) -> torch.Tensor:
    """Mean over the batch of per-sample (weighted) binary cross-entropy or focal loss.

    Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"):
    ``FL = -alpha_t (1 - p_t)^gamma log(p_t)``, where ``p_t`` is the probability given to the
    true class; ``gamma`` down-weights easy, well-classified samples (mostly the abundant
    quiet ones). ``focal_alpha=0`` leaves class balancing to the class weights.
    """
    per_sample = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if loss == "focal":
        p = torch.sigmoid(logits)
        p_true = torch.where(targets > 0.5, p, 1 - p)
        per_sample = per_sample * (1 - p_true).pow(focal_gamma)
        if focal_alpha:
            per_sample = per_sample * torch.where(targets > 0.5, focal_alpha, 1 - focal_alpha)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    return per_sample.sum() / max(len(per_sample), 1)


@contextlib.contextmanager
def flush_denormals():
    """Treat subnormal floats as zero (x86 FTZ/DAZ) while flareseq trains or predicts.

    Arithmetic on subnormals is slow on x86 (microcode assists), and values below 1e-38
    carry no information for these models. It applies to the calling thread; torch's default
    (off) is restored after.
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
    return {"loss": loss, **{k: s[k] for k in HISTORY_METRICS[1:]}}


@dataclass
class TrainResult:
    """What :func:`train_model` learned besides the weights."""

    history: dict[str, list[float]]
    best_epoch: int | None  # 0-based epoch whose weights were restored (early stopping)
    stopped_early: bool
    batch_size: int = 0  # samples per training batch (a full pass: ceil(n / steps_per_epoch))
    batches_per_epoch: int = 0
    validation_size: int = 0  # validation samples scored per epoch


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
    """The training batches of one run, as ``settings.batching`` says (see
    :class:`~flareseq.training.settings.TrainingSettings`).

    ``epoch()`` yields the index arrays of one epoch; the balanced cyclers carry over from
    epoch to epoch, so each class is used in full before any sample repeats.
    """

    def __init__(self, y: np.ndarray, settings: TrainingSettings, rng: np.random.Generator) -> None:
        self.n, self.settings, self.rng = len(y), settings, rng
        self.cyclers: tuple[_Cycler, _Cycler] | None = None
        if settings.batching == "balanced":
            positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
            if not len(positives) or not len(negatives):
                raise FlareseqError(
                    f"batching='balanced' needs both classes in the training data; found {len(positives)} "
                    f"positive(s) and {len(negatives)} negative(s). Use batching='shuffle'."
                )
            self.cyclers = (_Cycler(positives, rng), _Cycler(negatives, rng))

    def n_steps(self) -> int:
        if self.settings.batching == "full-pass":
            return math.ceil(self.n / self.batch_size())
        return self.settings.steps_per_epoch or math.ceil(self.n / self.settings.batch_size)

    def batch_size(self) -> int:
        """Samples per batch; a full pass splits the training set into ``steps_per_epoch``
        batches of ``ceil(n / steps_per_epoch)`` (TensorFlow's split of arrays)."""
        if self.settings.batching == "full-pass" and self.settings.steps_per_epoch:
            return max(1, math.ceil(self.n / self.settings.steps_per_epoch))
        return self.settings.batch_size

    def epoch(self) -> Iterator[np.ndarray]:
        size = self.batch_size()
        batching = self.settings.batching
        if self.cyclers is not None:
            n_pos = size // 2
            for _ in range(self.n_steps()):
                batch = np.concatenate([self.cyclers[0].take(n_pos), self.cyclers[1].take(size - n_pos)])
                yield np.sort(batch)
            return
        if batching == "sampled":
            for _ in range(self.n_steps()):
                yield self.rng.integers(0, self.n, size=size)
            return
        if batching == "blocks":
            yield from self._block_batches(size)
            return
        order = self.rng.permutation(self.n)  # "shuffle" and "full-pass": one pass in a new order
        for start in range(0, self.n, size):
            # Sorted indices gather faster from (possibly memory-mapped) arrays.
            yield np.sort(order[start : start + size])


    def _block_batches(self, size: int) -> Iterator[np.ndarray]:
        """One pass in a seeded order that reads the data a few regions at a time: blocks of
        ``SHUFFLE_BLOCK`` consecutive samples in a new random order, taken ``SHUFFLE_WINDOW``
        at a time, and the samples of each window shuffled together into batches. The order
        depends on the seed and ``n`` only (never on the number of readers or the machine)."""
        n_blocks = -(-self.n // SHUFFLE_BLOCK)
        blocks = self.rng.permutation(n_blocks)
        carry = np.empty(0, dtype=np.int64)  # a window's last, short batch joins the next window
        for first in range(0, n_blocks, SHUFFLE_WINDOW):
            window = [np.arange(b * SHUFFLE_BLOCK, min((b + 1) * SHUFFLE_BLOCK, self.n))
                      for b in blocks[first : first + SHUFFLE_WINDOW]]
            order = np.concatenate([carry, self.rng.permutation(np.concatenate(window))])
            whole = len(order) - len(order) % size
            for start in range(0, whole, size):
                yield np.sort(order[start : start + size])
            carry = order[whole:]
        if len(carry):
            yield np.sort(carry)


# batching "blocks": 4,096 consecutive samples a block (24 MB at (60, 25) float32), 8 blocks a
# window: each window's ~200 MB is read in a few long runs, not one page per sample
SHUFFLE_BLOCK = 4096
SHUFFLE_WINDOW = 8


class ValidationCursor:
    """The validation samples of each epoch: all of them, or (``batching="sampled"`` with
    ``validation_steps``) the next ``validation_steps * batch_size`` in order, wrapping
    around at the end, as the study's validation generator carried on from epoch to epoch."""

    def __init__(self, n: int, settings: TrainingSettings) -> None:
        self.n, self.position = n, 0
        limited = settings.batching == "sampled" and settings.validation_steps
        self.size = min(n, settings.validation_steps * settings.batch_size) if limited else n

    def next(self) -> np.ndarray | slice:
        if self.size >= self.n:
            return slice(None)
        index = (self.position + np.arange(self.size)) % self.n
        self.position = int((self.position + self.size) % self.n)
        return index


class EpochLog:
    """Progress of training: tqdm bars on a terminal; elsewhere (a log file, a pipe, CI) one
    line per epoch with the elapsed time and an estimate of the time left."""

    def __init__(self, settings: TrainingSettings, n_steps: int, progress: bool, label: str = "") -> None:
        self.epochs, self.n_steps, self.label = settings.epochs, n_steps, label
        self.bars = bool(progress) and sys.stderr.isatty()
        self.lines = bool(progress) and not self.bars
        self.started = time.perf_counter()
        self.bar = None

    def start(self, epoch: int) -> None:
        if self.bars:
            self.bar = tqdm(total=self.n_steps, desc=f"{self.label}epoch {epoch + 1}/{self.epochs}", leave=False)

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def end(self, epoch: int, row: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.lines:
            elapsed = time.perf_counter() - self.started
            left = elapsed / (epoch + 1) * (self.epochs - epoch - 1)
            scores = f"loss {row['loss']:.4f}" + (f", val_loss {row['val_loss']:.4f}, val_tss {row['val_tss']:.3f}"
                                                  if "val_loss" in row else "")
            print(f"{self.label}epoch {epoch + 1}/{self.epochs}: {scores} ({elapsed:.0f} s elapsed, at most "
                  f"{left:.0f} s left)", file=sys.stderr, flush=True)


def train_model(
    model: nn.Module, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
    *, settings: TrainingSettings, device: torch.device | str = "cpu", progress: bool = True, label: str = "",
) -> TrainResult:
    """Train ``model`` in place on ``(X, y)``; validate on ``(X_val, y_val)`` after each epoch.

    The caller seeds torch (weights, dropout masks); ``settings.random_state`` drives the
    batch order. Returns the per-epoch history (``loss, accuracy, recall, precision, tss,
    hss2`` and the same with ``val_``), plus ``samples`` (training samples seen), ``seconds``
    and ``data_seconds`` (time spent gathering and copying batches: the loader's share).
    """
    device = torch.device(device)
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    if settings.early_stopping and settings.monitor.startswith("val_") and not has_val:
        raise ConfigError(
            f"early stopping on {settings.monitor!r} needs validation data: pass X_val and y_val to fit, "
            "or monitor a training metric (e.g. monitor='loss'), or set early_stopping=False."
        )
    rng = np.random.default_rng(settings.random_state)
    sampler = BatchSampler(y, settings, rng)
    cursor = ValidationCursor(len(X_val), settings) if has_val else None
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.learning_rate, settings.weight_decay)
    history: dict[str, list[float]] = {}
    log = EpochLog(settings, sampler.n_steps(), progress, label)
    with flush_denormals():
        fit_features = getattr(model, "fit_features", None)
        if callable(fit_features):
            # What the model learns without gradients (MiniRocket's biases), from training data only.
            fit_features(X)
        warm_start = getattr(model, "warm_start", None)
        if callable(warm_start):
            # A starting point fitted to the training labels (wide-deep-lstm's logistic part).
            warm_start(X, y)
        stopped_early, best_epoch, best_state = _run_epochs(
            model, X, y, X_val, y_val, cursor, settings, optimizer, sampler, device, log, history)
    if settings.early_stopping and best_state is not None:
        # Keep the best epoch's weights, not the last (Keras: restore_best_weights=True).
        model.load_state_dict(best_state)
    return TrainResult(history=history, best_epoch=best_epoch, stopped_early=stopped_early,
                       batch_size=sampler.batch_size(), batches_per_epoch=sampler.n_steps(),
                       validation_size=cursor.size if cursor is not None else 0)


def _run_epochs(model, X, y, X_val, y_val, cursor, settings, optimizer, sampler, device, log, history):
    w0, w1 = resolve_class_weights(settings.class_weight, y)
    y_float = y.astype(np.float32)
    minimise = settings.monitor.removeprefix("val_") == "loss"
    best_value, best_epoch, best_state, waited = math.inf, None, None, 0
    stopped_early = False
    for epoch in range(settings.epochs):
        model.train()
        t_epoch = time.perf_counter()
        data_seconds = 0.0
        loss_sum, n_seen = 0.0, 0
        seen_y, seen_logits = [], []
        log.start(epoch)
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
            if settings.clip_grad_norm:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
            optimizer.step()
            loss_sum += loss.item() * len(index)
            n_seen += len(index)
            seen_y.append(y[index])
            seen_logits.append(logits.detach().cpu().numpy())
            log.step(loss_sum / n_seen)
        row = _epoch_scores(np.concatenate(seen_y), _sigmoid(np.concatenate(seen_logits)), loss_sum / n_seen)
        if cursor is not None:
            pick = cursor.next()
            # all of it: read batch by batch where it lies (it may be a cache on disk)
            xv = X_val if isinstance(pick, slice) else X_val[pick]
            yv = y_val[pick]
            val_logits = predict_logits(model, xv, device=device)
            val_loss = F.binary_cross_entropy_with_logits(
                torch.from_numpy(val_logits), torch.from_numpy(yv.astype(np.float32))).item()
            row.update({f"val_{k}": v for k, v in _epoch_scores(yv, _sigmoid(val_logits), val_loss).items()})
        row["samples"] = n_seen
        row["seconds"] = time.perf_counter() - t_epoch
        row["data_seconds"] = data_seconds
        for key, value in row.items():
            history.setdefault(key, []).append(float(value))
        log.end(epoch, row)
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


__all__ = ["TrainResult", "BatchSampler", "ValidationCursor", "train_model", "predict_logits", "weighted_loss",
           "resolve_class_weights", "flush_denormals"]
