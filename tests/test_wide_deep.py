"""wide-deep-lstm starts as logistic regression on the last step (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from flareseq.models import MODELS, build_model
from flareseq.training.baselines import last_step
from flareseq.training.loop import train_model
from flareseq.training.settings import TrainingSettings


def _data(n=400, T=6, F=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    # The label depends on the last step (what logistic-last sees) and on the first step.
    logit = 1.5 * X[:, -1, 0] - X[:, -1, 2] + 2.0 * X[:, 0, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


def test_registered_after_the_models_beyond_the_study():
    assert "wide-deep-lstm" in MODELS
    assert list(MODELS).index("wide-deep-lstm") > list(MODELS).index("inception")


@pytest.mark.parametrize("differences", [False, True])
def test_at_initialisation_the_residual_is_zero(differences):
    torch.manual_seed(0)
    model = build_model("wide-deep-lstm", 3, {"hidden_size": 8, "differences": differences}).eval()
    with torch.no_grad():
        model.wide.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        model.wide.bias.fill_(-0.3)
    x = torch.randn(5, 6, 3)
    with torch.no_grad():
        expected = x[:, -1, :] @ torch.tensor([0.5, -1.0, 2.0]) - 0.3  # a linear function of the last step only
        assert torch.equal(model(x), model.wide_logit(x))
        torch.testing.assert_close(model(x), expected)
        # Changing every earlier step changes nothing: the residual contributes exactly zero.
        y = x.clone()
        y[:, :-1, :] = torch.randn(5, 5, 3)
        assert torch.equal(model(y), model(x))


def test_warm_start_is_logistic_regression_on_the_last_step():
    X, y = _data()
    torch.manual_seed(0)
    model = build_model("wide-deep-lstm", 3, {"hidden_size": 8, "warm_start_l2": 0.0}).eval()
    model.warm_start(X, y)
    reference = LogisticRegression(C=1e8, max_iter=5000).fit(last_step(X), y)  # unpenalised logistic-last's form
    with torch.no_grad():
        ours = model(torch.from_numpy(X)).numpy()
    theirs = reference.decision_function(last_step(X))
    np.testing.assert_allclose(ours, theirs, atol=2e-3)
    np.testing.assert_allclose(model.wide.weight.detach().numpy().ravel(), reference.coef_.ravel(), atol=2e-3)


def test_training_calls_the_warm_start_and_the_residual_learns():
    X, y = _data()
    torch.manual_seed(0)
    model = build_model("wide-deep-lstm", 3, {"hidden_size": 8, "dropout": 0.0, "recurrent_dropout": 0.0})
    settings = TrainingSettings(epochs=3, batch_size=64, learning_rate=0.01, early_stopping=False)
    train_model(model, X, y, settings=settings, progress=False)
    # The wide part was fitted to the labels (weights of the true logit's sign), and gradient descent
    # moved the residual off zero.
    w = model.wide.weight.detach().numpy().ravel()
    assert w[0] > 0.5 and w[2] < -0.3
    assert model.deep_head.weight.abs().sum().item() > 0
