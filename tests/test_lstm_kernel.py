"""The recurrent-dropout time loop in C (flareseq._lstm) against a plain autograd loop."""

from __future__ import annotations

import pytest
import torch

from flareseq.models import recurrent
from flareseq.models.recurrent import KerasLSTM

pytestmark = pytest.mark.skipif(recurrent._lstm is None, reason="flareseq._lstm is not built (no C compiler)")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _reference(x, w_ih, w_hh, bias, in_mask, rec_mask):
    """Keras's LSTMCell as a plain autograd loop, in float64."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    outs = []
    for t in range(T):
        i, f, g, o = ((x[:, t] * in_mask) @ w_ih.t() + (h * rec_mask) @ w_hh.t() + bias).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1)


# sizes with ragged ends: a batch that is not a multiple of the 8-row blocks, widths whose
# 4H and H are not multiples of the 16-float vectors (25 is the embedding models' width)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("B, T, F, H", [(11, 7, 5, 25), (8, 3, 3, 16), (3, 9, 4, 3)])
def test_kernel_matches_the_float64_reference(B, T, F, H, return_sequences):
    torch.manual_seed(0)
    layer = KerasLSTM(F, H, dropout=0.3, recurrent_dropout=0.4, return_sequences=return_sequences).train()
    x = torch.randn(B, T, F)
    assert recurrent._kernel_usable(x, layer.weight_ih)
    torch.manual_seed(5)
    out = layer(x)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * weights).sum().backward()
    torch.manual_seed(5)
    in_mask = torch.bernoulli(torch.full((B, 1, F), 0.7)) / 0.7
    rec_mask = torch.bernoulli(torch.full((B, H), 0.6)) / 0.6
    assert (rec_mask == 0).any()
    params = [p.detach().double().requires_grad_() for p in (layer.weight_ih, layer.weight_hh, layer.bias)]
    expected = _reference(x.double(), *params, in_mask[:, 0].double(), rec_mask.double())
    expected = expected if return_sequences else expected[:, -1]
    (expected * weights.double()).sum().backward()
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=2e-6)
    for got, want in zip((layer.weight_ih, layer.weight_hh, layer.bias), params):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=2e-5)


def test_threads_split_the_batch_without_changing_a_bit():
    torch.manual_seed(1)
    layer = KerasLSTM(6, 25, recurrent_dropout=0.3, return_sequences=True).train()
    x = torch.randn(37, 12, 6)
    results = []
    for threads in (1, 3):
        torch.set_num_threads(threads)
        layer.zero_grad()
        torch.manual_seed(2)
        out = layer(x)
        out.pow(2).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in layer.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)  # torch's own matrix products may sum in another order


def test_kernel_and_python_paths_agree_in_float32():
    torch.manual_seed(3)
    layer = KerasLSTM(4, 9, recurrent_dropout=0.5, return_sequences=True).train()
    x = torch.randn(10, 6, 4)
    runs = []
    for path in ("_forward_kernel", "_forward_masked"):
        layer.zero_grad()
        torch.manual_seed(4)
        out = getattr(layer, path)(x)
        out.sum().backward()
        runs.append((out.detach(), [p.grad.clone() for p in layer.parameters()]))
    torch.testing.assert_close(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
