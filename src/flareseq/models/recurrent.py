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

Both act only in training. The time loop runs on one of two paths:

* the fused ``torch.lstm`` kernel: in eval mode, and in training without recurrent dropout;
* with recurrent dropout in training (no fused kernel masks the recurrent state):
  :class:`_MaskedLSTMKernel` for float32 on the CPU, where torch computes the input
  projection and the weight gradients (big matrix products) and C (``flareseq._lstm``)
  runs the time loop, the batch split over torch's thread count; elsewhere (a GPU, float64)
  :func:`_masked_lstm_loop`, a plain autograd loop.

The C loop is compiled for AVX-512, AVX2+FMA and baseline x86-64 and runs the best copy
the CPU has (:data:`LOOP`); ``FLARESEQ_LSTM_LOOP`` forces one (``avx512``, ``avx2``,
``generic``, or ``python`` for the autograd loop), to compare or to rule the C code out.
benchmarks/train.py measures every copy against the autograd loop and the fused kernel.
tests/test_lstm_kernel.py checks each copy against a float64 autograd loop.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn
from torch.nn import functional as F

from flareseq import _lstm
from flareseq.errors import ConfigError

LOOP_CHOICES = ("python", *(name for _, name in _lstm.variants()))


def _choose_loop() -> str:
    """The C loop's best copy for this CPU, or what ``FLARESEQ_LSTM_LOOP`` asks for."""
    wanted = os.environ.get("FLARESEQ_LSTM_LOOP", "").strip().lower()
    if not wanted:
        return LOOP_CHOICES[1]
    if wanted not in LOOP_CHOICES:
        raise ConfigError(f"FLARESEQ_LSTM_LOOP must be one of {list(LOOP_CHOICES)} on this CPU, got {wanted!r}.")
    return wanted


#: The recurrent-dropout time loop of float32 CPU training: a copy of the C loop
#: (``"avx512"``, ``"avx2"``, ``"generic"``) or ``"python"`` (the autograd loop).
LOOP = _choose_loop()
_VARIANT_INDEX = {name: index for index, name in _lstm.variants()}


class _MaskedLSTMKernel(torch.autograd.Function):
    """One LSTM layer over a whole sequence with a fixed recurrent-dropout mask, the time
    loop in C (``flareseq._lstm``).

    Batch-major and in torch's gate order (i, f, g, o), so nothing is transposed or permuted:
    ``x (B, T, F)``, ``w_ih (4H, F)``, ``w_hh (4H, H)``, ``bias (4H,)``, ``mask (B, H)``
    (scaled); returns all hidden states ``(B, T, H)``. float32, CPU. ``variant``: the
    index of the C loop's copy (``_lstm.variants()``).
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, mask, variant):
        B, T, F = x.shape
        H = w_hh.shape[1]
        x = x.contiguous()
        gates = torch.addmm(bias, x.view(B * T, F), w_ih.t()).view(B, T, 4 * H)  # all steps' input part
        cells_prev, tanh_cells, hidden, masked = (x.new_empty(B, T, H) for _ in range(4))
        w_hh_t, mask = _padded(w_hh.t()), mask.contiguous()  # (H, 4H rounded up to 16)
        _lstm.forward(variant, torch.get_num_threads(), B, T, H, gates.data_ptr(), w_hh_t.data_ptr(),
                      mask.data_ptr(), cells_prev.data_ptr(), tanh_cells.data_ptr(), hidden.data_ptr(),
                      masked.data_ptr())
        ctx.variant = variant
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
        _lstm.backward(ctx.variant, torch.get_num_threads(), B, T, H, grad_hidden.data_ptr(), gates.data_ptr(),
                       cells_prev.data_ptr(), tanh_cells.data_ptr(), w_hh_padded.data_ptr(), mask.data_ptr(),
                       grad_gates.data_ptr())
        # Gradients of x, w_ih, w_hh and the bias from the gates': one matmul each over all steps.
        flat = grad_gates.view(B * T, 4 * H)
        grad_x = torch.mm(flat, w_ih).view(B, T, F) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.mm(flat.t(), x.view(B * T, F))
        grad_w_hh = torch.mm(flat.t(), masked.view(B * T, H))
        return grad_x, grad_w_ih, grad_w_hh, flat.sum(0), None, None


def _padded(w: torch.Tensor) -> torch.Tensor:
    """``w`` with zero columns up to a multiple of 16, contiguous: the C loop reads whole
    16-float vectors of each weight row."""
    extra = -w.shape[1] % 16
    return F.pad(w, (0, extra)).contiguous() if extra else w.contiguous()


def _masked_lstm_loop(x, w_ih, w_hh, bias, mask) -> torch.Tensor:
    """The same function as :class:`_MaskedLSTMKernel` as a plain autograd loop, for any
    device and dtype: ``(B, T, F) -> (B, T, H)``. Slower on the CPU (dispatch overhead of
    ~10 small operations per step, forward and backward)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    gates_in = torch.addmm(bias, x.reshape(B * T, -1), w_ih.t()).view(B, T, 4 * H)  # all steps' input part
    h = c = x.new_zeros(B, H)
    hidden = []
    for t in range(T):
        gates = gates_in[:, t] if t == 0 else torch.addmm(gates_in[:, t], h * mask, w_hh.t())
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hidden.append(h)
    return torch.stack(hidden, dim=1)


def masked_loop_path(x: torch.Tensor, *weights: torch.Tensor) -> str:
    """Which recurrent-dropout loop trains on ``x``: a C copy's name or ``"python"``."""
    on_cpu_float32 = x.device.type == "cpu" and all(t.dtype == torch.float32 for t in (x, *weights))
    return LOOP if on_cpu_float32 else "python"


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
            hidden = self._forward_masked(x, masked_loop_path(x, self.weight_ih, self.weight_hh, self.bias))
            return hidden if self.return_sequences else hidden[:, -1]
        hx = x.new_zeros(1, B, self.hidden_size)
        out, _, _ = torch.lstm(
            x, (hx, hx), [self.weight_ih, self.weight_hh, self.bias, self._zero_bias],
            True, 1, 0.0, self.training, False, True,
        )  # (B, T, H)
        return out if self.return_sequences else out[:, -1]

    def _forward_masked(self, x: torch.Tensor, path: str) -> torch.Tensor:
        """All states ``(B, T, H)`` with a fresh recurrent-dropout mask, on ``path`` (a C
        copy's name or ``"python"``, see :func:`masked_loop_path`)."""
        keep = 1.0 - self.recurrent_dropout
        mask = torch.bernoulli(x.new_full((x.shape[0], self.hidden_size), keep)).div_(keep)  # (B, H)
        if path == "python":
            return _masked_lstm_loop(x, self.weight_ih, self.weight_hh, self.bias, mask)
        return _MaskedLSTMKernel.apply(x, self.weight_ih, self.weight_hh, self.bias, mask, _VARIANT_INDEX[path])
