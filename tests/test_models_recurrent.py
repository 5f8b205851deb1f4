"""KerasLSTM: one bias per gate, Keras dropout semantics, the hand-written masked path."""

from __future__ import annotations

import pytest
import torch

from flareseq.models.recurrent import KerasLSTM, _MaskedLSTMFunction, _to_ofig

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


@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_path_equals_reference(return_sequences):
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, return_sequences=return_sequences).double().eval()
    x = torch.randn(2, 5, 3, dtype=torch.double)
    expected = _reference(x, layer, torch.ones(3, dtype=torch.double), torch.ones(4, dtype=torch.double))
    torch.testing.assert_close(layer(x), expected if return_sequences else expected[:, -1])


@pytest.mark.parametrize("return_sequences", [False, True])
def test_training_dropouts_follow_keras_masks(return_sequences):
    """Input mask (B, 1, F) and recurrent mask (B, H), each drawn once per sequence."""
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, dropout=0.3, recurrent_dropout=0.4, return_sequences=return_sequences).double().train()
    x = torch.randn(6, 5, 3, dtype=torch.double)
    torch.manual_seed(11)
    out = layer(x)
    torch.manual_seed(11)
    in_mask = torch.bernoulli(x.new_full((6, 1, 3), 0.7)) / 0.7
    rec_mask = torch.bernoulli(x.new_full((6, 4), 0.6)) / 0.6
    assert (rec_mask == 0).any() and (in_mask == 0).any()
    expected = _reference(x, layer, in_mask[:, 0], rec_mask)
    torch.testing.assert_close(out, expected if return_sequences else expected[:, -1])


def test_recurrent_dropout_acts_only_in_training():
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, recurrent_dropout=0.5).train()
    x = torch.randn(8, 6, 3)
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))


def test_masked_function_gradients_match_finite_differences():
    torch.manual_seed(0)
    T, B, F, H = 3, 2, 2, 3
    dbl = {"dtype": torch.double}
    x = torch.randn(T, B, F, **dbl, requires_grad=True)
    w_ih = torch.randn(4 * H, F, **dbl, requires_grad=True)
    w_hh = torch.randn(4 * H, H, **dbl, requires_grad=True)
    bias = torch.randn(4 * H, **dbl, requires_grad=True)
    mask = torch.bernoulli(torch.full((B, H), 0.6, **dbl)) / 0.6
    assert torch.autograd.gradcheck(lambda *a: _MaskedLSTMFunction.apply(*a, mask), (x, w_ih, w_hh, bias))


def test_gate_permutation_is_o_i_f_g():
    assert _to_ofig(2, torch.device("cpu")).tolist() == [6, 7, 0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_paths_gradients_equal_reference(return_sequences):
    """Both recurrent-dropout paths (fused with shut gates, hand-written) against autograd."""
    torch.manual_seed(0)
    layer = KerasLSTM(3, 4, recurrent_dropout=0.5, return_sequences=return_sequences).double().train()
    x = torch.randn(6, 5, 3, dtype=torch.double)
    torch.manual_seed(2)
    out = layer(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=torch.double).view_as(out)).sum().backward()
    ours = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    torch.manual_seed(2)
    rec_mask = torch.bernoulli(x.new_full((6, 4), 0.5)) / 0.5
    expected = _reference(x, layer, torch.ones(3, dtype=torch.double), rec_mask)
    expected = expected if return_sequences else expected[:, -1]
    torch.testing.assert_close(out, expected)
    (expected * torch.linspace(-1, 1, out.numel(), dtype=torch.double).view_as(out)).sum().backward()
    for got, want in zip(ours, [p.grad for p in layer.parameters()]):
        torch.testing.assert_close(got, want)
