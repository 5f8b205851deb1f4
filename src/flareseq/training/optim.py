"""Optimisers, with Keras's RMSprop written out (the study trained with it).

Keras 3 (``keras/src/optimizers/rmsprop.py``, ``update_step``) and TensorFlow 2's
``ApplyRMSProp`` update a weight as::

    v <- rho v + (1 - rho) g^2            (v starts at 0)
    w <- w - lr g / sqrt(v + epsilon)     (epsilon *inside* the square root)

with ``rho = 0.9`` and ``epsilon = 1e-7`` by default. torch's ``RMSprop`` divides by
``sqrt(v) + epsilon`` instead: with epsilon 1e-7 the two steps differ by x1.4 at
``|g| = 1e-3``, x10 at 1e-4 and x97 at 1e-5, so small gradients move ten to a hundred times
further under torch's rule. :class:`KerasRMSprop` implements Keras's; ``"rmsprop-torch"``
keeps torch's available under its own name.
"""

from __future__ import annotations

import torch

from flareseq.errors import ConfigError
from flareseq.training.settings import OPTIMIZERS


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop with Keras's update: ``w -= lr * g / sqrt(v + eps)``, ``v = rho v + (1 - rho) g^2``.

    ``weight_decay`` adds ``weight_decay * w`` to the gradient (classic L2, as torch's
    RMSprop); Keras's own ``weight_decay`` is decoupled and the study did not use one.
    """

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7, weight_decay: float = 0.0):
        if not lr > 0 or not 0 <= rho < 1 or not eps > 0 or weight_decay < 0:
            raise ConfigError(f"RMSprop needs lr > 0, 0 <= rho < 1, eps > 0, weight_decay >= 0; got lr={lr}, "
                              f"rho={rho}, eps={eps}, weight_decay={weight_decay}.")
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            velocities = []
            for p in params:
                state = self.state[p]
                if not state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            rho = group["rho"]
            # v <- rho v + (1 - rho) g^2
            torch._foreach_mul_(velocities, rho)
            torch._foreach_addcmul_(velocities, grads, grads, value=1 - rho)
            # w <- w - lr g / sqrt(v + eps)
            denominators = torch._foreach_add(velocities, group["eps"])
            torch._foreach_sqrt_(denominators)
            torch._foreach_addcdiv_(params, grads, denominators, value=-group["lr"])
        return loss


def make_optimizer(name: str, parameters, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``name`` (one of :data:`~flareseq.training.settings.OPTIMIZERS`) with
    Keras's defaults where Keras has them (epsilon 1e-7, RMSprop's rho 0.9)."""
    if name == "rmsprop":
        return KerasRMSprop(parameters, lr=learning_rate, rho=0.9, eps=1e-7, weight_decay=weight_decay)
    if name == "rmsprop-torch":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=0.9, eps=1e-7, momentum=0.0,
                                   centered=False, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-7, weight_decay=weight_decay)
    if name == "adamw":
        # weight_decay 0 means none (torch's AdamW default of 0.01 is never slipped in)
        return torch.optim.AdamW(parameters, lr=learning_rate, eps=1e-7, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}.")


__all__ = ["KerasRMSprop", "make_optimizer"]
