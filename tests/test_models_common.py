"""The shared suite every MODELS entry passes (tiny sizes: seconds for the whole registry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flareseq.errors import FlareseqError
from flareseq.models import MODELS, count_unique_parameters
from flareseq.training.estimator import FlareClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


N_FEATURES = 5
NAMES = list(MODELS)
TIED = [name for name, spec in MODELS.items() if spec.is_tied]


def _build(name: str, seed: int = 0, **overrides):
    spec = MODELS[name]
    torch.manual_seed(seed)
    return spec.build(N_FEATURES, {**spec.test_params, **overrides})


def _x(batch: int = 4, steps: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, steps, N_FEATURES, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("training", [True, False])
def test_one_finite_logit_per_sample(name, training):
    model = _build(name).train(training)
    out = model(_x())
    assert out.shape == (4,)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights_and_dropout(name):
    outputs = []
    for _ in range(2):
        model = _build(name, seed=3).train()
        torch.manual_seed(5)
        outputs.append(model(_x()))
    assert torch.equal(outputs[0], outputs[1])
    other = _build(name, seed=4).train()
    torch.manual_seed(5)
    assert not torch.equal(outputs[0], other(_x()))


@pytest.mark.parametrize("name", NAMES)
def test_overfits_16_samples(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 6, N_FEATURES)).astype(np.float32)
    y = np.array([0, 1] * 8, dtype=np.int8)
    clf = FlareClassifier(name, MODELS[name].test_params, optimizer="adam", learning_rate=0.02, epochs=150,
                          threshold_metric="", early_stopping=False,
                          batch_size=16, scaler="none", progress=False, random_state=0).fit(X, y)
    assert (clf.predict(X) == y).all()
    assert clf.history_["loss"][-1] < 0.25 * clf.history_["loss"][0]


@pytest.mark.parametrize("name", NAMES)
def test_save_load_gives_identical_probabilities(name, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 6, N_FEATURES)).astype(np.float32)
    y = np.array([0, 0, 1] * 8, dtype=np.int8)
    clf = FlareClassifier(name, MODELS[name].test_params, epochs=1, batch_size=8, progress=False, threshold_metric="",
                          early_stopping=False).fit(X, y)
    clf.save(tmp_path / "m")
    loaded = FlareClassifier.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert count_unique_parameters(loaded.model_) == count_unique_parameters(clf.model_)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_feature_count_is_a_clear_error(name):
    model = _build(name)
    bad = torch.randn(2, 7, N_FEATURES + 1)
    with pytest.raises(FlareseqError, match=rf"expects input of shape \(batch, timesteps, {N_FEATURES}\), got \(2, 7, 6\)"):
        model(bad)


@pytest.mark.parametrize("name", TIED)
def test_tied_parameter_is_one_tensor_that_learns(name):
    model = _build(name).train()
    tied = model.tied_parameter_names()
    assert tied, f"{name} is registered as tied but reports no shared parameter"
    params = dict(model.named_parameters())
    all_params = list(model.parameters())
    model(_x()).sum().backward()
    for owner, users in tied.items():
        shared = params[owner]
        assert sum(p is shared for p in all_params) == 1
        for user in users:
            if user.startswith("lstms."):
                layer, attr = user.rsplit(".", 1)
                assert getattr(model.get_submodule(layer), attr) is shared
        assert shared.grad is not None and shared.grad.abs().sum() > 0


@pytest.mark.parametrize("name", TIED)
def test_tied_count_is_below_untied_twin(name):
    spec = MODELS[name]
    tied = count_unique_parameters(spec.build(25))
    untied = count_unique_parameters(spec.build(25, spec.untied_params))
    assert tied < untied


def _untie_copy(tied, twin) -> None:
    """Load the tied model's values into its untied twin, duplicating each shared tensor."""
    state = tied.state_dict()
    new = {}
    for key in twin.state_dict():
        if key in state:
            new[key] = state[key]
        elif key.startswith("lstms.") and key.endswith(("weight_ih", "weight_hh")):
            new[key] = state["lstms.0." + key.rsplit(".", 1)[1]]
        elif key == "decoder.weight":
            new[key] = state["embedding.weight"].t()
        elif key == "decoder.bias":
            new[key] = state["decoder_bias"]
    twin.load_state_dict(new, strict=False)
    missing = set(twin.state_dict()) - set(new)
    assert not missing, missing


@pytest.mark.parametrize("name", TIED)
def test_tied_gradient_is_the_sum_over_its_uses(name):
    """A tied model equals its untied twin holding copies, and the shared tensor's gradient is
    the sum of the copies' gradients (the study's tied weights got none)."""
    spec = MODELS[name]
    params = {**spec.test_params, "dropout": 0.0, "recurrent_dropout": 0.0}
    tied = spec.build(N_FEATURES, params).double()
    twin = spec.build(N_FEATURES, {**params, **spec.untied_params}).double()
    _untie_copy(tied, twin)
    x = _x().double()
    out_tied, out_twin = tied(x), twin(x)
    torch.testing.assert_close(out_tied, out_twin)
    out_tied.sum().backward()
    out_twin.sum().backward()
    twin_params = dict(twin.named_parameters())
    for owner, users in tied.tied_parameter_names().items():
        expected = twin_params[owner].grad.clone()
        for user in users:
            if user.startswith("lstms."):
                expected += twin_params[user].grad
            else:
                expected += twin_params["decoder.weight"].grad.t()
        torch.testing.assert_close(dict(tied.named_parameters())[owner].grad, expected)
