"""Small pieces every model family shares: the input check and Keras's Dense initialiser."""

from __future__ import annotations

import math

import torch
from torch import nn

from flareseq.errors import FlareseqError


def check_input(x: torch.Tensor, n_features: int) -> None:
    """Refuse input that is not ``(batch, timesteps, n_features)``, naming what arrived.

    Every registered model calls this first: a wrong feature count would otherwise surface
    as a matrix-shape error deep inside a layer, or (for convolutions) not at all.
    """
    if x.dim() != 3 or x.shape[2] != n_features:
        raise FlareseqError(
            f"the model expects input of shape (batch, timesteps, {n_features}), "
            f"got {tuple(x.shape)}; pass the same features, in the same order, as in training."
        )


def glorot_dense(layer: nn.Linear) -> nn.Linear:
    """Keras Dense defaults: Glorot-uniform kernel, zero bias."""
    bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer
