"""The imbalance options and regularisation of training: balanced batches, focal loss, weight
decay (classic for Adam/RMSprop, decoupled for AdamW), the fit_features hook, the config keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flareseq.errors import ConfigError, FlareseqError
from flareseq.training.estimator import FlareClassifier
from flareseq.training.loop import BatchSampler, train_model, weighted_loss
from flareseq.training.optim import make_optimizer
from flareseq.training.settings import TrainingSettings


def TrainSettings(**changes):  # noqa: N802 - the loop's settings without validation-based choices
    return TrainingSettings(**{"early_stopping": False, "threshold_metric": "", **changes})

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _labels(n=200, n_pos=20):
    y = np.zeros(n, dtype=np.int8)
    y[np.random.default_rng(0).choice(n, n_pos, replace=False)] = 1
    return y


# -- balanced sampling ----------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [16, 15])
def test_balanced_batches_hold_half_flares(batch_size):
    y = _labels()
    sampler = BatchSampler(y, TrainSettings(batch_size=batch_size, batching="balanced"), np.random.default_rng(1))
    batches = list(sampler.epoch())
    assert len(batches) == sampler.n_steps() == int(np.ceil(200 / batch_size))  # the usual number of steps
    for index in batches:
        assert len(index) == batch_size
        assert int(y[index].sum()) == batch_size // 2
    shuffled = BatchSampler(y, TrainSettings(batch_size=batch_size), np.random.default_rng(1))
    share = np.mean([y[i].mean() for i in shuffled.epoch()])
    assert share == pytest.approx(0.1, abs=0.03)  # what "shuffle" gives: the base rate


def test_balanced_sampling_uses_every_sample_of_a_class_before_repeating():
    y = _labels(n=100, n_pos=10)
    sampler = BatchSampler(y, TrainSettings(batch_size=10, batching="balanced"), np.random.default_rng(2))
    drawn = np.concatenate([np.concatenate(list(sampler.epoch())) for _ in range(3)])  # 30 batches
    negatives = drawn[y[drawn] == 0]
    positives = drawn[y[drawn] == 1]
    assert sorted(negatives[:90]) == sorted(np.flatnonzero(y == 0))  # 90 negatives: each once
    for cycle in range(15):  # 150 positive draws: the 10 positives, reshuffled, 15 times over
        assert sorted(positives[10 * cycle : 10 * cycle + 10]) == sorted(np.flatnonzero(y == 1))


def test_balanced_sampling_in_study_mode_and_its_errors():
    y = _labels()
    sampler = BatchSampler(y, TrainSettings(batch_size=8, steps_per_epoch=3, batching="balanced"),
                           np.random.default_rng(0))
    assert [int(y[i].sum()) for i in sampler.epoch()] == [4, 4, 4]
    with pytest.raises(FlareseqError, match=r"batching='balanced' needs both classes.*found 0 positive"):
        BatchSampler(np.zeros(10, dtype=np.int8), TrainSettings(batching="balanced"), np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"batching must be one of \['shuffle', 'balanced', 'full-pass', 'sampled', 'blocks'\], got 'smote'"):
        TrainSettings(batching="smote")


def test_balanced_sampling_trains_through_the_estimator_and_is_saved(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 5, 3)).astype(np.float32)
    y = (X[:, -1, 0] > 1.0).astype(np.int8)  # ~16 % flares
    clf = FlareClassifier("lstm", {"hidden_size": 4}, batching="balanced", epochs=2, batch_size=16,
                          progress=False, threshold_metric="", early_stopping=False).fit(X, y)
    assert clf.history_["samples"] == [80, 80]
    # Training metrics are those of the balanced batches: their recall is measured on half flares.
    assert np.isfinite(clf.history_["recall"]).all()
    clf.save(tmp_path / "m")
    assert FlareClassifier.load(tmp_path / "m", device="cpu").batching == "balanced"


# -- focal loss -----------------------------------------------------------------------------
def test_focal_loss_with_gamma_zero_is_weighted_cross_entropy():
    logits = torch.tensor([2.0, -1.5, 0.3, -0.2, 4.0])
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    weights = torch.where(targets > 0.5, 5.0, 1.0)
    torch.testing.assert_close(weighted_loss(logits, targets, weights, loss="focal", focal_gamma=0.0),
                               weighted_loss(logits, targets, weights))
    # alpha weighs flares by alpha and quiet samples by 1 - alpha: class weights (0.8, 0.2).
    alpha = torch.where(targets > 0.5, 0.2, 0.8)
    torch.testing.assert_close(
        weighted_loss(logits, targets, loss="focal", focal_gamma=0.0, focal_alpha=0.2),
        weighted_loss(logits, targets, alpha),
    )


def test_focal_loss_down_weights_easy_samples_most():
    targets = torch.tensor([1.0, 1.0])
    logits = torch.tensor([4.0, -1.0])  # an easy (well-classified) and a hard flare
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    focal = torch.stack([weighted_loss(logits[i : i + 1], targets[i : i + 1], loss="focal", focal_gamma=2.0)
                         for i in range(2)])
    ratio = focal / bce
    p_true = torch.sigmoid(logits)
    torch.testing.assert_close(ratio, (1 - p_true) ** 2)
    assert ratio[0] < 0.001 < 0.5 < ratio[1]


def test_focal_gamma_must_not_be_negative():
    with pytest.raises(ConfigError, match="focal_gamma must be >= 0"):
        TrainSettings(loss="focal", focal_gamma=-1.0)


# -- weight decay ---------------------------------------------------------------------------
def _step(name, weight_decay, grad, w0=(1.0, -2.0, 0.5)):
    w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    optimizer = make_optimizer(name, [w], 0.1, weight_decay)
    w.grad = grad.clone()
    optimizer.step()
    return w.detach()


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_weight_decay_is_classic_l2_for_adam_and_rmsprop(name):
    grad = torch.tensor([0.3, -0.1, 2.0], dtype=torch.float64)
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    # The decay is added to the gradient, then goes through the adaptive scaling.
    torch.testing.assert_close(_step(name, 0.5, grad), _step(name, 0.0, grad + 0.5 * w0))


def test_weight_decay_is_decoupled_for_adamw():
    grad = torch.tensor([0.3, -0.1, 2.0], dtype=torch.float64)
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    adam = _step("adam", 0.0, grad)
    # AdamW: w <- w (1 - lr wd), then the Adam step of the plain gradient.
    torch.testing.assert_close(_step("adamw", 0.5, grad), adam - 0.1 * 0.5 * w0)
    assert not torch.allclose(_step("adam", 0.5, grad), _step("adamw", 0.5, grad))


# -- the fit_features hook ------------------------------------------------------------------
class _Recorder(nn.Module):
    """A linear model that records fit_features calls and the weights at that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.calls = []

    def fit_features(self, X):
        self.calls.append((X.shape, self.linear.weight.detach().clone()))

    def forward(self, x):
        return self.linear(x[:, -1]).squeeze(1)


def test_fit_features_is_called_once_on_the_training_data_before_training():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4, 3)).astype(np.float32), np.array([0, 1, 1] * 10, dtype=np.int8)
    model = _Recorder()
    initial = model.linear.weight.detach().clone()
    train_model(model, X, y, X[:6], y[:6], settings=TrainSettings(epochs=3, batch_size=8), progress=False)
    assert len(model.calls) == 1
    shape, weights_then = model.calls[0]
    assert shape == (30, 4, 3)  # the training data, not the validation data
    assert torch.equal(weights_then, initial)  # before any step
    assert not torch.equal(model.linear.weight, initial)
