"""Every MODELS entry on the test device (``FLARESEQ_TEST_DEVICE``: cpu by default, cuda on
a GPU machine, as benchmarks/gpu_check.sh runs it): a training step, the same function as on
the CPU, and the estimator's fit, predict and save/load there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flareseq.models import MODELS
from flareseq.training.estimator import FlareClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_FEATURES = 5
NAMES = list(MODELS)


def _build(name: str, seed: int = 0):
    spec = MODELS[name]
    torch.manual_seed(seed)
    return spec.build(N_FEATURES, dict(spec.test_params))


def _x(device, batch: int = 6, steps: int = 7) -> torch.Tensor:
    return torch.randn(batch, steps, N_FEATURES, generator=torch.Generator().manual_seed(1)).to(device)


@pytest.mark.parametrize("name", NAMES)
def test_a_training_step_on_the_device_reaches_every_parameter(name, device):
    model = _build(name).to(device).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logits = model(_x(device))
    assert logits.device.type == device.type and logits.shape == (6,)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1.0] * 3, device=device))
    loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    optimizer.step()
    assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("name", NAMES)
def test_the_device_computes_what_the_cpu_computes(name, device):
    if device.type == "cpu":
        pytest.skip("compares the test device with the CPU: set FLARESEQ_TEST_DEVICE=cuda")
    model = _build(name).eval()
    expected = model(_x("cpu"))
    got = model.to(device)(_x(device)).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["lstm", "stacked-lstm"])
def test_the_estimator_fits_predicts_and_reloads_on_the_device(name, device, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 6, N_FEATURES)).astype(np.float32)
    y = (X[:, -1, 0] > 0).astype(np.int8)
    clf = FlareClassifier(name, MODELS[name].test_params, epochs=2, batch_size=16, progress=False,
                          device=str(device), random_state=0, threshold_metric="", early_stopping=False).fit(X, y)
    assert clf.device_.type == device.type
    proba = clf.predict_proba(X)
    assert proba.shape == (32, 2) and np.isfinite(proba).all()
    clf.save(tmp_path / "model")
    again = FlareClassifier.load(tmp_path / "model", device=str(device))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
