"""The recurrent-dropout time loop: every compiled copy of the C loop (flareseq._lstm) and the
autograd loop against a plain float64 autograd loop, and against each other."""

from __future__ import annotations

import pytest
import torch

from flareseq import _lstm
from flareseq.models import recurrent
from flareseq.models.recurrent import KerasLSTM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COPIES = [name for _, name in _lstm.variants()]  # the C copies this CPU runs, best first
PATHS = [*COPIES, "python"]


def _reference(x, w_ih, w_hh, bias, in_mask, rec_mask):
    """Keras's LSTMCell as a plain autograd loop (written apart from the library's)."""
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


def _run(layer, x, path, seed):
    """Output and parameter gradients of ``layer`` on ``path`` with the masks of ``seed``."""
    layer.zero_grad()
    torch.manual_seed(seed)
    keep = 1.0 - layer.dropout
    x_in = x * (torch.bernoulli(x.new_full((x.shape[0], 1, x.shape[2]), keep)) / keep) if layer.dropout else x
    out = layer._forward_masked(x_in, path)
    out = out if layer.return_sequences else out[:, -1]
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * weights).sum().backward()
    return out.detach(), [p.grad.clone() for p in (layer.weight_ih, layer.weight_hh, layer.bias)]


def test_this_cpu_runs_the_generic_copy_at_least():
    assert COPIES[-1] == "generic" and recurrent.LOOP in COPIES
    assert [name for name in ("avx512", "avx2", "generic") if name in COPIES] == COPIES  # best first


# sizes with ragged ends: a batch that is not a multiple of the 2-, 4- or 8-row blocks, widths
# whose 4H and H are not multiples of the vectors (25 is the embedding models' width)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("B, T, F, H", [(11, 7, 5, 25), (8, 3, 3, 16), (3, 9, 4, 3), (13, 4, 2, 32)])
def test_each_path_matches_the_float64_reference(B, T, F, H, return_sequences, path):
    torch.manual_seed(0)
    layer = KerasLSTM(F, H, dropout=0.3, recurrent_dropout=0.4, return_sequences=return_sequences).train()
    x = torch.randn(B, T, F)
    out, grads = _run(layer, x, path, seed=5)
    torch.manual_seed(5)
    in_mask = torch.bernoulli(torch.full((B, 1, F), 0.7)) / 0.7
    rec_mask = torch.bernoulli(torch.full((B, H), 0.6)) / 0.6
    assert (rec_mask == 0).any()
    params = [p.detach().double().requires_grad_() for p in (layer.weight_ih, layer.weight_hh, layer.bias)]
    expected = _reference(x.double(), *params, in_mask[:, 0].double(), rec_mask.double())
    expected = expected if return_sequences else expected[:, -1]
    (expected * torch.linspace(-1, 1, out.numel()).view_as(out).double()).sum().backward()
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=2e-6)
    for got, want in zip(grads, params):
        torch.testing.assert_close(got.double(), want.grad, rtol=1e-4, atol=2e-5)


def test_all_paths_agree_with_each_other_in_float32():
    """The equality between the paths that remain: same outputs and gradients to float32
    rounding (the C copies use a polynomial exp, torch its own)."""
    torch.manual_seed(3)
    layer = KerasLSTM(25, 32, recurrent_dropout=0.2, return_sequences=True).train()
    x = torch.randn(37, 60, 25)
    runs = {path: _run(layer, x, path, seed=4) for path in PATHS}
    out0, grads0 = runs["python"]
    for path, (out, grads) in runs.items():
        torch.testing.assert_close(out, out0, rtol=1e-5, atol=1e-6, msg=path)
        for a, b in zip(grads, grads0):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=path)


@pytest.mark.parametrize("path", COPIES)
def test_threads_split_the_batch_without_changing_a_bit(path):
    torch.manual_seed(1)
    layer = KerasLSTM(6, 25, recurrent_dropout=0.3, return_sequences=True).train()
    x = torch.randn(37, 12, 6)
    results = []
    for threads in (1, 3):
        torch.set_num_threads(threads)
        results.append(_run(layer, x, path, seed=2))
    torch.set_num_threads(1)
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)  # torch's own matrix products may sum in another order


def test_the_layer_trains_on_the_chosen_loop():
    x = torch.randn(4, 5, 3)
    layer = KerasLSTM(3, 4, recurrent_dropout=0.2)
    assert recurrent.masked_loop_path(x, layer.weight_ih) == recurrent.LOOP
    assert recurrent.masked_loop_path(x.double(), layer.weight_ih.double()) == "python"


def test_the_c_loop_refuses_a_copy_this_cpu_cannot_run():
    with pytest.raises(ValueError, match="variant 99"):
        _lstm.forward(99, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("value, ok", [("python", True), ("generic", True), ("", True), ("fast", False)])
def test_the_loop_can_be_forced_by_environment(monkeypatch, value, ok):
    from flareseq.errors import ConfigError

    monkeypatch.setenv("FLARESEQ_LSTM_LOOP", value)
    if ok:
        assert recurrent._choose_loop() == (value or COPIES[0])
    else:
        with pytest.raises(ConfigError, match="FLARESEQ_LSTM_LOOP must be one of"):
            recurrent._choose_loop()


@pytest.mark.parametrize("path", PATHS)
def test_each_path_with_a_mask_of_ones_equals_the_fused_kernel(path):
    """Without a dropped unit, the recurrent-dropout paths and torch's fused kernel (what
    runs without recurrent dropout) compute the same function and gradients."""
    torch.manual_seed(6)
    layer = KerasLSTM(7, 25, return_sequences=True).train()
    x = torch.randn(19, 9, 7)
    fused = layer(x)  # recurrent_dropout == 0: the fused kernel
    (fused * torch.linspace(-1, 1, fused.numel()).view_as(fused)).sum().backward()
    expected = [p.grad.clone() for p in (layer.weight_ih, layer.weight_hh, layer.bias)]
    layer.zero_grad()
    ones = torch.ones(19, 25)
    if path == "python":
        out = recurrent._masked_lstm_loop(x, layer.weight_ih, layer.weight_hh, layer.bias, ones)
    else:
        out = recurrent._MaskedLSTMKernel.apply(x, layer.weight_ih, layer.weight_hh, layer.bias, ones,
                                                recurrent._VARIANT_INDEX[path])
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    torch.testing.assert_close(out, fused.detach(), rtol=1e-5, atol=1e-6)
    for got, want in zip((layer.weight_ih, layer.weight_hh, layer.bias), expected):
        torch.testing.assert_close(got.grad, want, rtol=1e-4, atol=1e-5)
