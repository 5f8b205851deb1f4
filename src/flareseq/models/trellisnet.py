"""TrellisNet (Bai, Kolter & Koltun, ICLR 2019, "Trellis Networks for Sequence Modeling",
arXiv:1810.06682) for ``(B, T, F)`` classification.

A TrellisNet is a temporal convolutional network with two twists:

* **weights shared across depth**: every level applies the *same* causal convolution
  (kernel ``k``, default 2) and the same gated activation, so the parameter count does not
  depend on the number of levels;
* **input injection**: the raw input sequence is fed to every level, concatenated with the
  previous level's hidden sequence. Its part of the convolution, ``W_x * x``, is the same at
  every level and is computed once.

With the LSTM-style gated activation of the paper, level ``i + 1`` at time ``t`` is::

    [i, o, g, f] = W_x * x[t-k+1 .. t] + W_h * h_i[t-k+1 .. t] + b      (causal, dilation d)
    c_{i+1}[t]   = sigmoid(f) c_i[t - d] + sigmoid(i) tanh(g)
    h_{i+1}[t]   = sigmoid(o) tanh(c_{i+1}[t])

starting from ``h_0 = c_0 = 0``. Each level widens the receptive field by ``(k - 1) d``
steps; by default the number of levels is chosen at run time so that the last step sees the
whole window (``T - 1`` levels for ``k = 2``, ``d = 1``): sharing the weights is what makes
a depth that follows the input length possible. The classifier reads the last level's state
at the last step, ``h[:, :, -1] -> Dense(1)``.

Following the authors' code (github.com/locuslab/trellisnet, ``TrellisNet/trellisnet.py``):
weight normalisation of both kernels (``weight_norm``), and variational hidden dropout
(``dropout``: one mask per sequence on ``h``, the same at every level and step). Different
on purpose: the whole hidden state feeds the head (the paper splits off an output part for
language models), no auxiliary losses, and Keras-like initialisation (uniform
``+-1/sqrt(fan_in)`` kernels, forget-gate bias 1) instead of N(0, 0.01).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from flareseq.errors import ConfigError
from flareseq.models.common import check_input, glorot_dense


class TrellisNet(nn.Module):
    """TrellisNet classifier: ``(B, T, F)`` -> one logit per sample.

    Parameters
    ----------
    n_features : number of input series F.
    hidden_size : width H of the hidden state (the convolution outputs 4H channels).
    n_levels : number of levels (depth); ``None``: just enough for the receptive field to
        cover the input window, decided per call from T.
    kernel_size : width k of the shared causal convolution (2 in the paper).
    dilations : dilation of each level, cycled through the levels (``(1,)``: none).
    dropout : variational dropout rate of the hidden state fed to the convolution.
    weight_norm : weight-normalise both kernels per output channel (Salimans & Kingma 2016).
    """

    def __init__(
        self, n_features: int, *, hidden_size: int = 32, n_levels: int | None = None, kernel_size: int = 2,
        dilations: Sequence[int] = (1,), dropout: float = 0.0, weight_norm: bool = True,
    ) -> None:
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if hidden_size < 1:
            raise ConfigError(f"hidden_size must be a positive integer, got {hidden_size}.")
        if n_levels is not None and n_levels < 1:
            raise ConfigError(f"n_levels must be None or at least 1, got {n_levels}.")
        if kernel_size < 2:
            raise ConfigError(f"kernel_size must be at least 2 (a level must see the past), got {kernel_size}.")
        if not dilations or min(dilations) < 1:
            raise ConfigError(f"dilations must be a non-empty list of positive integers, got {list(dilations)}.")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}.")
        self.n_features = n_features
        self.hidden_size = hidden_size
        self.n_levels = n_levels
        self.kernel_size = kernel_size
        self.dilations = dilations
        self.dropout = float(dropout)
        self.weight_norm = weight_norm
        H = hidden_size
        # The one convolution of every level, split into its input and hidden parts.
        self.input_weight = nn.Parameter(torch.empty(4 * H, n_features, kernel_size))
        self.hidden_weight = nn.Parameter(torch.empty(4 * H, H, kernel_size))
        self.bias = nn.Parameter(torch.zeros(4 * H))
        bound = 1.0 / math.sqrt((n_features + H) * kernel_size)
        with torch.no_grad():
            self.input_weight.uniform_(-bound, bound)
            self.hidden_weight.uniform_(-bound, bound)
            self.bias[3 * H :] = 1.0  # forget gate open at the start, as Keras's unit_forget_bias
        if weight_norm:
            # w = g * v / |v| per output channel; g starts at |v| so w starts as initialised.
            self.input_gain = nn.Parameter(self.input_weight.detach().norm(dim=(1, 2), keepdim=True))
            self.hidden_gain = nn.Parameter(self.hidden_weight.detach().norm(dim=(1, 2), keepdim=True))
        self.head = glorot_dense(nn.Linear(H, 1))

    def extra_repr(self) -> str:
        return (f"{self.n_features}, hidden_size={self.hidden_size}, n_levels={self.n_levels}, "
                f"kernel_size={self.kernel_size}, dilations={self.dilations}, dropout={self.dropout}, "
                f"weight_norm={self.weight_norm}")

    def levels_for(self, n_timesteps: int) -> int:
        """The number of levels used for inputs of ``n_timesteps`` steps."""
        if self.n_levels is not None:
            return self.n_levels
        levels, field = 0, 1
        while field < n_timesteps or levels == 0:
            field += (self.kernel_size - 1) * self.dilations[levels % len(self.dilations)]
            levels += 1
        return levels

    def _kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.weight_norm:
            return self.input_weight, self.hidden_weight
        w_x = self.input_gain * self.input_weight / self.input_weight.norm(dim=(1, 2), keepdim=True)
        w_h = self.hidden_gain * self.hidden_weight / self.hidden_weight.norm(dim=(1, 2), keepdim=True)
        return w_x, w_h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.n_features)
        B, T, _ = x.shape
        H, k = self.hidden_size, self.kernel_size
        w_x, w_h = self._kernels()  # computed once: the same weights at every level
        x = x.transpose(1, 2)  # (B, F, T)
        # Input injection: W_x * x is the same at every level of a given dilation.
        injected = {
            d: F.conv1d(F.pad(x, ((k - 1) * d, 0)), w_x, self.bias, dilation=d)  # (B, 4H, T)
            for d in set(self.dilations)
        }
        mask = None
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            mask = torch.bernoulli(x.new_full((B, H, 1), keep)).div_(keep)  # one mask per sequence
        h = x.new_zeros(B, H, T)
        c = x.new_zeros(B, H, T)
        for level in range(self.levels_for(T)):
            d = self.dilations[level % len(self.dilations)]
            h_in = h if mask is None else h * mask
            # Causal: left padding only; the padded past is the zero initial state.
            pre = injected[d] + F.conv1d(F.pad(h_in, ((k - 1) * d, 0)), w_h, dilation=d)  # (B, 4H, T)
            i, o, g, f = pre.chunk(4, dim=1)
            c_past = F.pad(c, (d, 0))[:, :, :T]  # c_i[t - d]
            c = torch.sigmoid(f) * c_past + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)  # (B, H, T)
        return self.head(h[:, :, -1]).squeeze(1)  # (B,)


def trellisnet(
    n_features: int, *, hidden_size: int = 32, n_levels: int | None = None, kernel_size: int = 2,
    dilations: Sequence[int] = (1,), dropout: float = 0.0, weight_norm: bool = True,
) -> TrellisNet:
    """TrellisNet(H=32), levels covering the window, kernel 2, weight norm -> Dense(1)."""
    return TrellisNet(n_features, hidden_size=hidden_size, n_levels=n_levels, kernel_size=kernel_size,
                      dilations=dilations, dropout=dropout, weight_norm=weight_norm)
