"""KerasLSTM: one bias per gate, Keras dropout semantics, on the test device
(``FLARESEQ_TEST_DEVICE``, default cpu; the C loop's own tests are in test_lstm_kernel.py)."""

from __future__ import annotations

import pytest
import torch

from flareseq.models.recurrent import KerasLSTM, _masked_lstm_loop, masked_loop_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference(x, layer, in_mask, rec_mask):
    """Plain autograd loop of Keras's LSTMCell: x * in_mask, h_{t-1} * rec_mask, same masks at every step."""
    B, T, _ = x.shape
    H = layer.hidden_size
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    outs = []
    for t in range(T):
        gates = (x[:, t] * in_mask) @ layer.weight_ih.t() + (h * rec_mask) @ layer.weight_hh.t() + layer.bias
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1)


def test_one_bias_per_gate_and_no_hidden_parameters():
    layer = KerasLSTM(25, 32)
    assert {n: tuple(p.shape) for n, p in layer.named_parameters()} == {
        "weight_ih": (128, 25), "weight_hh": (128, 32), "bias": (128,)}
    assert "_zero_bias" not in layer.state_dict()


def test_forget_gate_bias_starts_at_one():
    layer = KerasLSTM(3, 4)
    assert torch.equal(layer.bias[4:8], torch.ones(4))
    assert layer.bias[:4].abs().sum() == 0 and layer.bias[8:].abs().sum() == 0


@pytest.mark.parametrize("dtype", [torch.double, torch.float32])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_path_equals_reference(return_sequences, dtype, device):
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, return_sequences=return_sequences).to(device, dtype).eval()
    x = torch.randn(2, 5, 3, dtype=dtype, device=device)
    ones = torch.ones(3, dtype=dtype, device=device), torch.ones(4, dtype=dtype, device=device)
    expected = _reference(x, layer, *ones)
    tolerance = {} if dtype == torch.double else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(layer(x), expected if return_sequences else expected[:, -1], **tolerance)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_training_dropouts_follow_keras_masks(return_sequences, device):
    """Input mask (B, 1, F) and recurrent mask (B, H), each drawn once per sequence, outputs
    and gradients as the reference's (float64: the autograd loop on any device)."""
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, dropout=0.3, recurrent_dropout=0.4, return_sequences=return_sequences)
    layer = layer.to(device, torch.double).train()
    x = torch.randn(6, 5, 3, dtype=torch.double, device=device)
    torch.manual_seed(11)
    out = layer(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=torch.double, device=device).view_as(out)
    (out * weights).sum().backward()
    ours = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    torch.manual_seed(11)
    in_mask = torch.bernoulli(x.new_full((6, 1, 3), 0.7)) / 0.7
    rec_mask = torch.bernoulli(x.new_full((6, 4), 0.6)) / 0.6
    assert (rec_mask == 0).any() and (in_mask == 0).any()
    expected = _reference(x, layer, in_mask[:, 0], rec_mask)
    expected = expected if return_sequences else expected[:, -1]
    torch.testing.assert_close(out, expected)
    (expected * weights).sum().backward()
    for got, want in zip(ours, [p.grad for p in layer.parameters()]):
        torch.testing.assert_close(got, want)


def test_float32_training_on_the_device(device):
    """What training runs: float32 with recurrent dropout (the C loop on the CPU, the
    autograd loop elsewhere), finite states and gradients for every parameter."""
    torch.manual_seed(0)
    layer = KerasLSTM(5, 8, dropout=0.2, recurrent_dropout=0.2, return_sequences=True).to(device).train()
    x = torch.randn(16, 7, 5, device=device)
    expected_path = "python" if device.type != "cpu" else None
    path = masked_loop_path(x, layer.weight_ih)
    assert path == expected_path or (expected_path is None and path != "python")
    out = layer(x)
    assert out.shape == (16, 7, 8) and torch.isfinite(out).all()
    out.square().mean().backward()
    for p in layer.parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_recurrent_dropout_acts_only_in_training(device):
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, recurrent_dropout=0.5).to(device).train()
    x = torch.randn(8, 6, 3, device=device)
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))


def test_autograd_loop_gradients_match_finite_differences():
    torch.manual_seed(0)
    B, T, F, H = 2, 3, 2, 3
    dbl = {"dtype": torch.double}
    x = torch.randn(B, T, F, **dbl, requires_grad=True)
    w_ih = torch.randn(4 * H, F, **dbl, requires_grad=True)
    w_hh = torch.randn(4 * H, H, **dbl, requires_grad=True)
    bias = torch.randn(4 * H, **dbl, requires_grad=True)
    mask = torch.bernoulli(torch.full((B, H), 0.6, **dbl)) / 0.6
    assert torch.autograd.gradcheck(lambda *a: _masked_lstm_loop(*a, mask), (x, w_ih, w_hh, bias))
