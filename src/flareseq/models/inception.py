"""One Inception network of InceptionTime (Ismail Fawaz et al. 2020, "InceptionTime: Finding
AlexNet for time series classification", Data Mining and Knowledge Discovery 34:1936-1962,
arXiv:1909.04939) for ``(B, T, F)`` classification.

Architecture, as in the authors' Keras code (github.com/hfawaz/InceptionTime,
``classifiers/inception.py``)::

    x (B, F, T) -> [Inception module] x depth, a residual shortcut every 3 modules
                -> global average pooling over time -> Dense(1) -> logit (B,)

    Inception module (input with C channels):
        bottleneck: Conv1d(C -> 32, kernel 1, no bias)           (only when C > 1)
        three convolutions of the bottleneck, kernels 40, 20, 10 ('same' padding, no bias)
        MaxPool1d(3, stride 1, 'same') of the module's input -> Conv1d(C -> 32, kernel 1)
        concatenate (4 x 32 channels) -> BatchNorm -> ReLU

    residual shortcut: Conv1d(kernel 1, no bias) -> BatchNorm of the block's input, added
    to the third module's output, then ReLU.

InceptionTime proper is an ensemble of five such networks trained from different random
initialisations, averaging their probabilities; here one network is one registry entry
(``inception``): an ensemble is five runs with different ``training.random_state``. Keras's
'same' padding of an even kernel puts the extra zero at the end; so does this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from flareseq.errors import ConfigError
from flareseq.models.common import check_input, glorot_dense


class InceptionModule(nn.Module):
    """Bottleneck, three 'same' convolutions, max-pool branch, concatenation, BN, ReLU."""

    def __init__(self, in_channels: int, n_filters: int, kernel_sizes: Sequence[int], bottleneck_size: int) -> None:
        super().__init__()
        self.bottleneck = (
            nn.Conv1d(in_channels, bottleneck_size, 1, bias=False) if in_channels > 1 and bottleneck_size else None
        )
        branch_in = bottleneck_size if self.bottleneck is not None else in_channels
        self.kernel_sizes = tuple(kernel_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(branch_in, n_filters, k, bias=False) for k in self.kernel_sizes)
        self.pool_conv = nn.Conv1d(in_channels, n_filters, 1, bias=False)
        self.norm = nn.BatchNorm1d(n_filters * (len(self.kernel_sizes) + 1))
        # Keras 'same': left (k - 1) // 2, right the rest. Pad once for the widest kernel
        # and give each branch its window of that one padded tensor.
        self._left = max((k - 1) // 2 for k in self.kernel_sizes)
        self._right = max(k - 1 - (k - 1) // 2 for k in self.kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[2]  # x: (B, C, T)
        z = x if self.bottleneck is None else self.bottleneck(x)  # (B, 32, T)
        padded = F.pad(z, (self._left, self._right))
        branches = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            start = self._left - (k - 1) // 2
            branches.append(conv(padded[:, :, start : start + T + k - 1]))  # (B, n_filters, T)
        # 'same' max-pooling of width 3: pad with -inf so padding never wins.
        pooled = F.max_pool1d(F.pad(x, (1, 1), value=float("-inf")), 3, stride=1)
        branches.append(self.pool_conv(pooled))
        return F.relu(self.norm(torch.cat(branches, dim=1)))  # (B, 4 n_filters, T)


class Shortcut(nn.Module):
    """The residual connection of every third module: 1x1 convolution and BN of its input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, block_input: torch.Tensor, block_output: torch.Tensor) -> torch.Tensor:
        return F.relu(block_output + self.norm(self.conv(block_input)))


class InceptionNet(nn.Module):
    """One Inception network: ``(B, T, F)`` -> one logit per sample.

    Parameters
    ----------
    n_features : number of input series F.
    n_filters : filters per branch (32); a module outputs ``4 * n_filters`` channels.
    depth : number of Inception modules (6).
    kernel_sizes : kernel widths of the three convolution branches (40, 20, 10).
    bottleneck_size : channels of the 1x1 bottleneck (32); 0 for none.
    residual : add a shortcut every 3 modules.
    """

    def __init__(
        self, n_features: int, *, n_filters: int = 32, depth: int = 6, kernel_sizes: Sequence[int] = (40, 20, 10),
        bottleneck_size: int = 32, residual: bool = True,
    ) -> None:
        super().__init__()
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if depth < 1:
            raise ConfigError(f"depth must be at least 1, got {depth}.")
        if n_filters < 1:
            raise ConfigError(f"n_filters must be a positive integer, got {n_filters}.")
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ConfigError(f"kernel_sizes must be a non-empty list of positive integers, got {list(kernel_sizes)}.")
        self.n_features = n_features
        self.residual = residual
        width = n_filters * (len(kernel_sizes) + 1)
        self.blocks = nn.ModuleList(
            InceptionModule(n_features if i == 0 else width, n_filters, kernel_sizes, bottleneck_size)
            for i in range(depth)
        )
        # Shortcut k joins the input of module 3k to the output of module 3k + 2.
        self.shortcuts = nn.ModuleList(
            Shortcut(n_features if i == 0 else width, width) for i in range(depth // 3)
        ) if residual else nn.ModuleList()
        self.head = glorot_dense(nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.n_features)
        h = x.transpose(1, 2)  # (B, F, T)
        block_input = h
        for i, module in enumerate(self.blocks):
            h = module(h)  # (B, 4 n_filters, T)
            if self.residual and i % 3 == 2:
                h = self.shortcuts[i // 3](block_input, h)
                block_input = h
        return self.head(h.mean(dim=2)).squeeze(1)  # global average pooling -> (B,)


def inception(
    n_features: int, *, n_filters: int = 32, depth: int = 6, kernel_sizes: Sequence[int] = (40, 20, 10),
    bottleneck_size: int = 32, residual: bool = True,
) -> InceptionNet:
    """One Inception network of InceptionTime: 6 modules, residual every 3, GAP -> Dense(1)."""
    return InceptionNet(n_features, n_filters=n_filters, depth=depth, kernel_sizes=kernel_sizes,
                        bottleneck_size=bottleneck_size, residual=residual)
