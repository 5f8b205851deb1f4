"""One list of training settings, one set of defaults, the same names everywhere; Keras's RMSprop."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from flareseq.errors import ConfigError
from flareseq.experiments.config import RunConfig, valid_keys
from flareseq.experiments.single import build_classifier
from flareseq.training.estimator import FlareClassifier
from flareseq.training.optim import KerasRMSprop, make_optimizer
from flareseq.training.settings import DEFAULTS, SETTING_NAMES, TrainingSettings


def test_the_estimator_takes_every_setting_under_its_name_with_its_one_default():
    parameters = inspect.signature(FlareClassifier.__init__).parameters
    assert set(SETTING_NAMES) <= set(parameters)
    assert set(parameters) - set(SETTING_NAMES) == {"self", "model", "model_params", "scaler", "progress"}
    for name in SETTING_NAMES:
        assert parameters[name].default == getattr(DEFAULTS, name), name


def test_the_config_uses_the_same_object_names_and_defaults():
    assert RunConfig().training == DEFAULTS and type(RunConfig().training) is TrainingSettings
    assert [k.removeprefix("training.") for k in valid_keys() if k.startswith("training.")] == list(SETTING_NAMES)
    built = build_classifier(RunConfig())
    assert built.settings() == DEFAULTS == FlareClassifier().settings()


def test_an_override_reaches_the_estimator_unchanged():
    config = RunConfig().with_overrides(["training.batching=balanced", "training.loss=focal",
                                         "training.focal_alpha=0.25", "training.clip_grad_norm=0",
                                         "model.name=trellisnet", "model.params.n_levels=4", "prep.scaler=signed-log"])
    clf = build_classifier(config)
    assert (clf.batching, clf.loss, clf.focal_alpha, clf.clip_grad_norm, clf.scaler) == (
        "balanced", "focal", 0.25, 0.0, "signed-log")
    assert clf.model_params == {"n_levels": 4}
    assert clf.settings() == config.training


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"optimizer": "sgd"}, r"optimizer must be one of \['rmsprop', 'rmsprop-torch', 'adam', 'adamw'\]"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"steps_per_epoch": -1}, "steps_per_epoch must be an integer >= 0"),
        ({"steps_per_epoch": 5}, "steps_per_epoch applies to batching"),
        ({"focal_alpha": 1.5}, r"focal_alpha must be 0 \(none\) or in \(0, 1\)"),
        ({"threshold_metric": "f1"}, r"threshold_metric must be one of \['', 'tss', 'hss2'\]"),
        ({"class_weight": {1: 5}}, "class_weight must be"),
        ({"monitor": "val_auc"}, r"monitor must be one of \['loss'"),
    ],
)
def test_bad_settings_are_clear_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(DEFAULTS, **changes)


# -- Keras's RMSprop (keras/src/optimizers/rmsprop.py, update_step) ----------------------------
def keras_rmsprop_steps(w, gradients, lr=1e-3, rho=0.9, eps=1e-7):
    """Keras 3's update written out: v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)."""
    v = np.zeros_like(w)
    for g in gradients:
        v = rho * v + (1 - rho) * g * g
        w = w - lr * g / np.sqrt(v + eps)
    return w


@pytest.mark.parametrize("magnitude", [1e-1, 1e-2, 1e-3, 1e-4, 1e-5])
def test_rmsprop_is_keras_update_over_five_decades_of_gradients(magnitude):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=6)
    gradients = [magnitude * rng.normal(size=6) for _ in range(5)]
    w = torch.nn.Parameter(torch.tensor(w0))
    optimizer = make_optimizer("rmsprop", [w], 1e-3)
    assert isinstance(optimizer, KerasRMSprop)
    for g in gradients:
        w.grad = torch.tensor(g)
        optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), keras_rmsprop_steps(w0, gradients), rtol=1e-12, atol=1e-15)


def _first_step(name, g):
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = make_optimizer(name, [w], 1e-3)
    w.grad = torch.tensor([g], dtype=torch.float64)
    optimizer.step()
    return -float(w.detach()[0])


def test_one_step_at_small_gradients_ours_against_keras():
    keras = -keras_rmsprop_steps(np.zeros(1), [np.array([1e-5])])[0]
    assert _first_step("rmsprop", 1e-5) / keras == pytest.approx(1.0, rel=1e-12)
    # torch's rule (epsilon outside the root), kept as "rmsprop-torch": 97x Keras's step here
    assert _first_step("rmsprop-torch", 1e-5) / keras == pytest.approx(97.0, rel=0.01)


def test_adamw_without_weight_decay_has_none():
    assert make_optimizer("adamw", [torch.nn.Parameter(torch.zeros(1))], 1e-3, 0.0).param_groups[0][
        "weight_decay"] == 0.0
