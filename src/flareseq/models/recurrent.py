"""The LSTM layer of every model: Keras's layout (one bias per gate), Keras's dropouts.

Why not ``torch.nn.LSTM`` as it is: it carries two biases per gate (``bias_ih`` and
``bias_hh``), which makes a 32-unit LSTM on 25 inputs count 7,584 parameters where the
study's Keras model counts 7,424 + 33 = 7,457, and it has no recurrent dropout. This layer
keeps one trainable bias per gate and still runs on the fused ``torch.lstm`` kernel (the op
behind ``nn.LSTM``): the kernel's second bias slot is fed a constant zero buffer, which is
neither a parameter nor trained, so the sum of the two biases is exactly our one bias.

Dropouts follow Keras 3 (``keras.layers.LSTM(dropout=, recurrent_dropout=)``):

* ``dropout`` multiplies the layer's *input* by one mask per sequence (the same at every
  step), scaled by ``1 / (1 - p)``;
* ``recurrent_dropout`` multiplies the recurrent state ``h_{t-1}`` by one mask per sequence
  before the recurrent matmul, again the same at every step.

Both act only in training. With ``recurrent_dropout == 0`` (or in eval mode) the fused
kernel runs. With recurrent dropout in training, no fused kernel applies (none masks the
recurrent state), and the layer runs, fastest first:

* :class:`_MaskedLSTMKernel` (float32 on the CPU, when the compiled ``flareseq._lstm`` is
  built and ``FLARESEQ_PURE_PYTHON`` is not set): torch computes the input projection and the weight gradients (big matrix
  products); C runs the time loop, each sample's whole sequence at once, the batch split
  over torch's thread count. Measured here on (256, 60, 25) batches, 32 units, one thread:
  ~2x faster than the next path;
* :meth:`KerasLSTM._forward_last_masked`, for a layer that returns only its last state
  when the C loop is absent or the dtype is not float32: the fused kernel fed a mask it can
  apply itself (shut output gates);
* :class:`_MaskedLSTMFunction`, a hand-written forward and backward over the sequence in
  Python (autograd through a plain loop is ~3-6x slower than fused; this function needs
  about half as many tensor operations per step and builds no autograd graph).

All three give the same function and gradients as a plain autograd loop
(tests/test_models_recurrent.py), to float rounding.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn
from torch.nn import functional as F

if os.environ.get("FLARESEQ_PURE_PYTHON"):  # to compare, or to rule the C code out when in doubt
    _lstm = None
else:
    try:
        from flareseq import _lstm
    except ImportError:  # built at install time with a C compiler; the Python paths remain
        _lstm = None

# Gate order inside the masked path: o, i, f, g. Sigmoid gates come first (one call for 3H
# columns) and the three gates multiplied by dc in the backward pass are contiguous.
# torch's (and the stored weights') order is i, f, g, o.
def _to_ofig(n: int, device: torch.device) -> torch.Tensor:
    i, f, g, o = (torch.arange(k * n, (k + 1) * n, device=device) for k in range(4))
    return torch.cat([o, i, f, g])


class _MaskedLSTMFunction(torch.autograd.Function):
    """One LSTM layer over a whole sequence with a fixed recurrent-dropout mask.

    Inputs are time-major: ``x (T, B, F)``, weights in o,i,f,g order: ``w_ih (4H, F)``,
    ``w_hh (4H, H)``, ``bias (4H,)``, ``mask (B, H)`` (already scaled). Returns all hidden
    states ``(T, B, H)``. Initial states are zero (as in Keras without ``initial_state``).
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, mask):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        # All input projections in one matmul; the loop only does the recurrent part.
        gates = torch.addmm(bias, x.reshape(T * B, -1), w_ih.t()).view(T, B, 4 * H)
        cells = x.new_empty(T + 1, B, H)
        cells[0].zero_()
        tanh_cells = x.new_empty(T, B, H)
        hidden = x.new_empty(T, B, H)
        masked = x.new_empty(T, B, H)  # masked[t] = h_{t-1} * mask, the recurrent input
        masked[0].zero_()
        w_hh_t = w_hh.t()
        # Per-step views made once (one C++ call each), not re-sliced in the loop: at these
        # sizes Python and dispatch overhead, not arithmetic, is what the loop costs.
        g_all = gates.unbind(0)
        sig_all = gates[..., : 3 * H].unbind(0)
        tanh_all = gates[..., 3 * H :].unbind(0)
        o_all = gates[..., :H].unbind(0)
        i_all = gates[..., H : 2 * H].unbind(0)
        f_all = gates[..., 2 * H : 3 * H].unbind(0)
        c_all = cells.unbind(0)
        tc_all = tanh_cells.unbind(0)
        h_all = hidden.unbind(0)
        m_all = masked.unbind(0)
        for t in range(T):
            if t:
                g_all[t].addmm_(m_all[t], w_hh_t)
            sig_all[t].sigmoid_()
            tanh_all[t].tanh_()
            c = torch.mul(f_all[t], c_all[t], out=c_all[t + 1])
            c.addcmul_(i_all[t], tanh_all[t])
            torch.tanh(c, out=tc_all[t])
            torch.mul(o_all[t], tc_all[t], out=h_all[t])
            if t + 1 < T:
                torch.mul(h_all[t], mask, out=m_all[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, mask, gates, cells, tanh_cells, masked)
        return hidden

    @staticmethod
    def backward(ctx, grad_hidden):
        x, w_ih, w_hh, mask, gates, cells, tanh_cells, masked = ctx.saved_tensors
        T, B, _ = x.shape
        H = w_hh.shape[1]
        o, i, f, c_hat = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H : 3 * H], gates[..., 3 * H :]
        # Everything that does not depend on the running gradient, for all steps at once.
        d_c_from_h = o * (1 - tanh_cells * tanh_cells)  # dc/dh through h = o * tanh(c)
        d_o_pre = tanh_cells * o * (1 - o)  # dh -> pre-activation of o
        d_ifg_pre = torch.stack(
            [c_hat * i * (1 - i), cells[:-1] * f * (1 - f), i * (1 - c_hat * c_hat)], dim=2
        )  # (T, B, 3, H): dc -> pre-activations of i, f, g
        grad_gates = torch.empty_like(gates)
        grad_hidden = grad_hidden.contiguous()
        gh_all = grad_hidden.unbind(0)
        k_all = d_c_from_h.unbind(0)
        po_all = d_o_pre.unbind(0)
        q_all = d_ifg_pre.unbind(0)
        f_all = f.unbind(0)
        go_all = grad_gates[..., :H].unbind(0)
        gifg_all = grad_gates[..., H:].view(T, B, 3, H).unbind(0)
        gg_all = grad_gates.unbind(0)
        dh = gh_all[T - 1].clone()
        dc = torch.zeros_like(dh)
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh.add_(gh_all[t])
            dc.addcmul_(dh, k_all[t])
            torch.mul(dh, po_all[t], out=go_all[t])
            torch.mul(dc.unsqueeze(1), q_all[t], out=gifg_all[t])
            if t:
                dc.mul_(f_all[t])
                dh = torch.mm(gg_all[t], w_hh).mul_(mask)
        return (*_input_and_weight_grads(grad_gates, x, masked, w_ih, ctx.needs_input_grad[0]), None)


class _MaskedLSTMKernel(torch.autograd.Function):
    """:class:`_MaskedLSTMFunction`'s job with the time loop in C (``flareseq._lstm``).

    Batch-major and in torch's gate order (i, f, g, o), so nothing is transposed or permuted:
    ``x (B, T, F)``, ``w_ih (4H, F)``, ``w_hh (4H, H)``, ``bias (4H,)``, ``mask (B, H)``
    (scaled); returns all hidden states ``(B, T, H)``. float32, CPU.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, mask):
        B, T, F = x.shape
        H = w_hh.shape[1]
        x = x.contiguous()
        gates = torch.addmm(bias, x.view(B * T, F), w_ih.t()).view(B, T, 4 * H)  # all steps' input part
        cells_prev, tanh_cells, hidden, masked = (x.new_empty(B, T, H) for _ in range(4))
        w_hh_t, mask = _padded(w_hh.t()), mask.contiguous()  # (H, 4H rounded up to 16)
        _lstm.forward(torch.get_num_threads(), B, T, H, gates.data_ptr(), w_hh_t.data_ptr(), mask.data_ptr(),
                      cells_prev.data_ptr(), tanh_cells.data_ptr(), hidden.data_ptr(), masked.data_ptr())
        ctx.save_for_backward(x, w_ih, w_hh, mask, gates, cells_prev, tanh_cells, masked)
        return hidden

    @staticmethod
    def backward(ctx, grad_hidden):
        x, w_ih, w_hh, mask, gates, cells_prev, tanh_cells, masked = ctx.saved_tensors
        B, T, F = x.shape
        H = w_hh.shape[1]
        grad_hidden = grad_hidden.contiguous()
        w_hh_padded = _padded(w_hh)  # (4H, H rounded up to 16)
        grad_gates = torch.empty_like(gates)
        _lstm.backward(torch.get_num_threads(), B, T, H, grad_hidden.data_ptr(), gates.data_ptr(),
                       cells_prev.data_ptr(), tanh_cells.data_ptr(), w_hh_padded.data_ptr(), mask.data_ptr(),
                       grad_gates.data_ptr())
        return (*_input_and_weight_grads(grad_gates, x, masked, w_ih, ctx.needs_input_grad[0]), None)


def _input_and_weight_grads(grad_gates, x, masked, w_ih, needs_grad_x: bool):
    """Gradients of ``x``, ``w_ih``, ``w_hh`` and the bias from the gates' gradients: one
    matmul each over all steps (the same for time-major and batch-major layouts, whose
    leading two dimensions are just flattened)."""
    flat = grad_gates.reshape(-1, grad_gates.shape[-1])
    grad_x = torch.mm(flat, w_ih).view(x.shape) if needs_grad_x else None
    grad_w_ih = torch.mm(flat.t(), x.reshape(-1, x.shape[-1]))
    grad_w_hh = torch.mm(flat.t(), masked.reshape(-1, masked.shape[-1]))
    return grad_x, grad_w_ih, grad_w_hh, flat.sum(0)


def _padded(w: torch.Tensor) -> torch.Tensor:
    """``w`` with zero columns up to a multiple of 16, contiguous: the C loop reads whole
    16-float vectors of each weight row."""
    extra = -w.shape[1] % 16
    return F.pad(w, (0, extra)).contiguous() if extra else w.contiguous()


def _kernel_usable(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    return _lstm is not None and x.device.type == "cpu" and all(t.dtype == torch.float32 for t in (x, *weights))


class KerasLSTM(nn.Module):
    """An LSTM layer with Keras's parameter layout and dropout semantics.

    Parameters
    ----------
    input_size, hidden_size : widths of the input and of the state.
    dropout : rate of the per-sequence dropout mask on the layer's input.
    recurrent_dropout : rate of the per-sequence dropout mask on ``h_{t-1}``.
    return_sequences : return every step's state ``(B, T, H)`` rather than the last ``(B, H)``.

    Attributes ``weight_ih (4H, F)``, ``weight_hh (4H, H)``, ``bias (4H,)`` use torch's gate
    order (i, f, g, o). Another layer's ``weight_ih``/``weight_hh`` may be assigned to this
    one to tie them (same :class:`~torch.nn.Parameter` object, trained once).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
    ) -> None:
        super().__init__()
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                from flareseq.errors import ConfigError

                raise ConfigError(f"{name} must be in [0, 1), got {rate}.")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.return_sequences = return_sequences
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        # The fused kernel wants a second bias: a constant zero, not a parameter.
        self.register_buffer("_zero_bias", torch.zeros(4 * hidden_size), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras's initialisers: Glorot-uniform input kernel, orthogonal recurrent kernel,
        zero bias except 1 on the forget gate (``unit_forget_bias=True``)."""
        n = self.hidden_size
        # Keras draws one (F, 4H) Glorot matrix for all gates: bound from fan_in + fan_out.
        bound = math.sqrt(6.0 / (self.input_size + 4 * n))
        with torch.no_grad():
            self.weight_ih.uniform_(-bound, bound)
            # Keras: orthogonal (H, 4H) recurrent kernel; ours is its transpose.
            nn.init.orthogonal_(self.weight_hh.data.T)
            self.bias.zero_()
            self.bias[n : 2 * n] = 1.0

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, dropout={self.dropout}, "
            f"recurrent_dropout={self.recurrent_dropout}, return_sequences={self.return_sequences}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, F)
        B = x.shape[0]
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            in_mask = torch.bernoulli(x.new_full((B, 1, x.shape[2]), keep)).div_(keep)
            x = x * in_mask
        if self.training and self.recurrent_dropout > 0:
            if _kernel_usable(x, self.weight_ih, self.weight_hh, self.bias):
                return self._forward_kernel(x)
            if self.return_sequences:
                return self._forward_masked(x)
            return self._forward_last_masked(x)
        hx = x.new_zeros(1, B, self.hidden_size)
        out, _, _ = torch.lstm(
            x, (hx, hx), [self.weight_ih, self.weight_hh, self.bias, self._zero_bias],
            True, 1, 0.0, self.training, False, True,
        )  # (B, T, H)
        return out if self.return_sequences else out[:, -1]

    def _forward_kernel(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.recurrent_dropout
        mask = torch.bernoulli(x.new_full((x.shape[0], self.hidden_size), keep)).div_(keep)
        hidden = _MaskedLSTMKernel.apply(x, self.weight_ih, self.weight_hh, self.bias, mask)  # (B, T, H)
        return hidden if self.return_sequences else hidden[:, -1]

    def _forward_masked(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.recurrent_dropout
        B, n = x.shape[0], self.hidden_size
        mask = torch.bernoulli(x.new_full((B, n), keep)).div_(keep)
        order = _to_ofig(n, x.device)
        hidden = _MaskedLSTMFunction.apply(
            x.transpose(0, 1).contiguous(),  # (T, B, F)
            self.weight_ih[order], self.weight_hh[order], self.bias[order], mask,
        )  # (T, B, H)
        return hidden.transpose(0, 1) if self.return_sequences else hidden[-1]

    def _forward_last_masked(self, x: torch.Tensor) -> torch.Tensor:
        """Recurrent dropout on the fused kernel, for a layer that returns its last state.

        Write the scaled mask as ``m = keep_bits / keep``. Then
        ``W_hh (h * m) = (W_hh / keep) (h * keep_bits)``, and ``h * keep_bits`` is what the
        kernel's own state becomes if each dropped unit's output gate is shut: its
        pre-activation gets ``-1e4`` (sigmoid -> exactly 0, and so does its derivative)
        through extra input columns ``1 - keep_bits`` (constant over time) with weight
        ``-1e4`` on the output-gate rows. The cell states are untouched, so ``c_T`` is exact;
        only the layer's output must be unmasked, ``h_T = o_T * tanh(c_T)``, with ``o_T``
        recomputed from ``x_T`` and the kernel's last masked state. Checked against a plain
        autograd loop in tests/test_models_recurrent.py.
        """
        keep = 1.0 - self.recurrent_dropout
        B, T, _ = x.shape
        n = self.hidden_size
        keep_bits = torch.bernoulli(x.new_full((B, n), keep))
        dropped = (1.0 - keep_bits).unsqueeze(1).expand(B, T, n)
        shut = torch.zeros(4 * n, n, dtype=x.dtype, device=x.device)
        shut[3 * n :].fill_diagonal_(-1e4)  # rows of the output gate (torch order i, f, g, o)
        w_ih = torch.cat([self.weight_ih, shut], dim=1)
        w_hh = self.weight_hh / keep
        hx = x.new_zeros(1, B, n)
        masked, _, c_last = torch.lstm(
            torch.cat([x, dropped], dim=2), (hx, hx), [w_ih, w_hh, self.bias, self._zero_bias],
            True, 1, 0.0, True, False, True,
        )  # masked: (B, T, H), the states h_t * keep_bits
        o_pre = F.linear(x[:, -1], self.weight_ih[3 * n :], self.bias[3 * n :])  # (B, H)
        if T > 1:
            o_pre = o_pre + F.linear(masked[:, -2], w_hh[3 * n :])
        return torch.sigmoid(o_pre) * torch.tanh(c_last[0])
