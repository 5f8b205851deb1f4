"""The training loop: optimiser mapping, losses, class weights, study mode, early stopping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flareseq.errors import ConfigError, FlareseqError
from flareseq.models import build_model
from flareseq.training.loop import (
    predict_logits,
    resolve_class_weights,
    train_model,
    weighted_loss,
)
from flareseq.training.optim import make_optimizer
from flareseq.training.settings import TrainingSettings


def TrainSettings(**changes):  # noqa: N802 - the loop's settings with the tests' usual "no validation needed"
    return TrainingSettings(**{"early_stopping": False, "threshold_metric": "", **changes})

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"hidden_size": 4, "dropout": 0.0, "recurrent_dropout": 0.0}


def _data(n=64, seed=0, T=6, F=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = (X[:, -1, 0] > 0.5).astype(np.int8)
    return X, y


def _model(seed=0, **params):
    torch.manual_seed(seed)
    return build_model("lstm", 3, {**TINY, **params})


def test_torch_rmsprop_variant_keeps_torch_rule():
    """"rmsprop-torch": torch's update, w -= lr g / (sqrt(v) + eps) (Keras's is in test_settings)."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3e-4], dtype=torch.float64))
    optimizer = make_optimizer("rmsprop-torch", [w], 1e-3)
    group = optimizer.param_groups[0]
    assert (group["alpha"], group["eps"], group["momentum"], group["centered"]) == (0.9, 1e-7, 0.0, False)
    expected, v = w.detach().clone(), torch.zeros(3, dtype=torch.float64)
    for step in range(3):
        g = torch.tensor([0.5, -1e-5, 2.0], dtype=torch.float64) * (step + 1)
        w.grad = g.clone()
        optimizer.step()
        v = 0.9 * v + 0.1 * g * g
        expected -= 1e-3 * g / (v.sqrt() + 1e-7)
    torch.testing.assert_close(w.detach(), expected)


def test_class_weights_scale_each_sample_and_divide_by_batch_size():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.1])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    weights = torch.where(targets > 0.5, 5.0, 1.0)
    per_sample = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(weighted_loss(logits, targets, weights), (per_sample * weights).sum() / 4)


def test_focal_loss():
    logits = torch.tensor([3.0, -3.0, 0.2, -0.1])
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0])
    bce = weighted_loss(logits, targets)
    torch.testing.assert_close(weighted_loss(logits, targets, loss="focal", focal_gamma=0.0), bce)
    focal = weighted_loss(logits, targets, loss="focal", focal_gamma=2.0)
    assert focal < bce
    p_true = torch.sigmoid(torch.tensor(3.0))
    easy = weighted_loss(logits[:1], targets[:1], loss="focal", focal_gamma=2.0)
    torch.testing.assert_close(easy, -(1 - p_true) ** 2 * torch.log(p_true))


@pytest.mark.parametrize(
    "class_weight, expected",
    [({}, (1.0, 1.0)), ({0: 1, 1: 5}, (1.0, 5.0)), ({"0": 1, "1": 2}, (1.0, 2.0)), ("balanced", (4 / 6, 4 / 2))],
)
def test_resolve_class_weights(class_weight, expected):
    assert resolve_class_weights(class_weight, np.array([0, 0, 0, 1])) == pytest.approx(expected)


def test_class_weight_errors():
    with pytest.raises(ConfigError, match="class_weight must be"):
        TrainSettings(class_weight={1: 5})
    with pytest.raises(FlareseqError, match="needs both classes"):
        resolve_class_weights("balanced", np.zeros(3))


def test_history_has_every_metric_for_train_and_validation():
    X, y = _data()
    result = train_model(_model(), X, y, X[:20], y[:20], settings=TrainSettings(epochs=2, batch_size=16), progress=False)
    for key in ("loss", "accuracy", "recall", "precision", "tss", "hss2"):
        assert len(result.history[key]) == 2
        assert len(result.history[f"val_{key}"]) == 2
    assert result.history["samples"] == [64, 64]
    assert all(0 <= s <= t for s, t in zip(result.history["data_seconds"], result.history["seconds"]))


def test_study_mode_draws_steps_per_epoch_random_batches():
    X, y = _data(n=100)
    settings = TrainSettings(epochs=2, batch_size=4, batching="sampled", steps_per_epoch=3, validation_steps=2)
    result = train_model(_model(), X, y, X, y, settings=settings, progress=False)
    assert result.history["samples"] == [12, 12]


def test_early_stopping_restores_the_best_weights():
    X, y = _data(n=64)
    Xv, yv = _data(n=32, seed=1)
    model = _model()
    settings = TrainSettings(epochs=30, batch_size=8, learning_rate=0.05, early_stopping=True, patience=2,
                             monitor="val_loss")
    result = train_model(model, X, y, Xv, yv, settings=settings, progress=False)
    losses = result.history["val_loss"]
    assert result.best_epoch == int(np.argmin(losses))
    assert result.stopped_early == (len(losses) < 30)
    logits = torch.from_numpy(predict_logits(model, Xv))
    restored = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(yv.astype(np.float32)))
    assert restored.item() == pytest.approx(losses[result.best_epoch], rel=1e-5)


def test_early_stopping_on_validation_metric_needs_validation_data():
    X, y = _data()
    with pytest.raises(ConfigError, match="needs validation data: pass X_val and y_val"):
        train_model(_model(), X, y, settings=TrainingSettings(early_stopping=True), progress=False)


def test_gradient_clipping_limits_the_update():
    X, y = _data()
    changes = []
    for clip in (None, 1e-10):
        model = _model()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        train_model(model, X, y, settings=TrainSettings(epochs=1, batch_size=64, clip_grad_norm=clip or 0.0), progress=False)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        changes.append((after - before).norm().item())
    assert changes[1] < 0.1 * changes[0]


def test_diverging_loss_is_reported():
    X, y = _data()
    X[0, 0, 0] = np.nan  # train_model trusts its input; a NaN loss must still stop it
    with pytest.raises(FlareseqError, match="training loss became nan in epoch 1; lower learning_rate"):
        train_model(_model(), X, y, settings=TrainSettings(epochs=1, batch_size=64), progress=False)


def test_predict_logits_restores_training_mode():
    model = _model().train()
    X, _ = _data(n=5)
    out = predict_logits(model, X, batch_size=2)
    assert out.shape == (5,) and np.isfinite(out).all() and model.training
    assert not math.isnan(float(out.sum()))


def test_denormals_flushed_inside_and_restored_after():
    from flareseq.training.loop import flush_denormals

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode")
    tiny = torch.tensor([1e-40])
    assert tiny.item() != 0.0
    with flush_denormals():
        with flush_denormals():
            pass  # leaving an inner block keeps the outer one's setting
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() != 0.0


# -- the study's run semantics (notebook cells [54]-[75]) -------------------------------------
def test_full_pass_splits_the_training_set_into_steps_per_epoch_batches():
    """Keras fit(arrays, steps_per_epoch=S) without a batch size: S batches, one full pass."""
    from flareseq.training.loop import BatchSampler

    y = np.zeros(1003, dtype=np.int8)
    sampler = BatchSampler(y, TrainSettings(batching="full-pass", steps_per_epoch=100), np.random.default_rng(0))
    batches = list(sampler.epoch())
    assert sampler.batch_size() == 11 and len(batches) == sampler.n_steps() <= 100  # ceil(1003 / 100)
    assert sorted(np.concatenate(batches)) == list(range(1003))  # every sample exactly once
    again = np.concatenate(list(sampler.epoch()))
    assert not np.array_equal(again, np.concatenate(batches))  # reshuffled each epoch


def test_sampled_batches_draw_with_replacement_and_validation_carries_on():
    from flareseq.training.loop import BatchSampler, ValidationCursor

    y = np.zeros(50, dtype=np.int8)
    settings = TrainSettings(batching="sampled", steps_per_epoch=40, batch_size=10, validation_steps=2)
    drawn = np.concatenate(list(BatchSampler(y, settings, np.random.default_rng(0)).epoch()))
    assert len(drawn) == 400 and len(np.unique(drawn)) == 50  # 400 draws of 50 samples: repeats
    cursor = ValidationCursor(45, settings)  # 2 batches of 10 per epoch, in order, wrapping at 45
    assert list(cursor.next()) == list(range(20))
    assert list(cursor.next()) == list(range(20, 40))
    assert list(cursor.next()) == [40, 41, 42, 43, 44, *range(15)]
    assert ValidationCursor(45, TrainSettings()).next() == slice(None)  # everything else: the whole set


def test_progress_without_a_terminal_is_one_line_per_epoch(capsys):
    X, y = _data()
    train_model(_model(), X, y, X[:20], y[:20], settings=TrainSettings(epochs=3, batch_size=16), progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "epoch" in line]
    assert len(lines) == 3 and lines[-1].startswith("epoch 3/3: loss ")
    assert "val_tss" in lines[0] and "s elapsed" in lines[0] and "s left" in lines[0]
