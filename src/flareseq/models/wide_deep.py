"""Wide-and-deep LSTM: logistic regression on the last step plus a recurrent residual.

On the SMARP keyword tables logistic regression on the *last time step's* features is the
strongest simple baseline (issue 15): the most recent values carry most of the signal. A
sequence model that has to rediscover that from random weights can end below it. This one
cannot start there::

    logit = w . x[:, -1] + b            (wide: logistic regression on the last step)
          + v . LSTM(x)[-1] + c         (deep: a residual over the whole window)

The deep part's output layer (``v``, ``c``) starts at zero, so at initialisation the model
*is* a logistic regression on the last step; ``warm_start`` (called by the training loop on
the training data before the first gradient step) fits ``w, b`` by maximum likelihood, so the
first epoch starts from logistic-last's solution and gradient descent adds the residual only
where the window helps (Cheng et al. 2016, "Wide & Deep Learning for Recommender Systems",
arXiv:1606.07792; the zero-initialised residual branch as in Bachlechner et al. 2020,
"ReZero", arXiv:2003.04887).

``differences=True`` feeds the LSTM the step-to-step differences beside the values (the
field's usual "derivatives as inputs"); the wide part always reads the raw last step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from flareseq.errors import FlareseqError
from flareseq.models.common import check_input, glorot_dense
from flareseq.models.recurrent import KerasLSTM


class WideDeepLSTM(nn.Module):
    """(B, T, F) -> one logit per sample: a linear function of the last step plus an LSTM residual.

    Parameters
    ----------
    n_features : number of input series F.
    hidden_size : width H of the residual's LSTM.
    dropout, recurrent_dropout : Keras-style rates of the LSTM.
    differences : feed the LSTM ``[x_t, x_t - x_{t-1}]`` (2F inputs; the first step's
        difference is 0).
    warm_start_l2 : L2 penalty (per sample, on ``w`` only) of the warm-start logistic fit;
        0 is plain maximum likelihood.
    """

    def __init__(self, n_features: int, *, hidden_size: int = 32, dropout: float = 0.2,
                 recurrent_dropout: float = 0.2, differences: bool = False, warm_start_l2: float = 1e-4) -> None:
        super().__init__()
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise FlareseqError(f"hidden_size must be a positive integer, got {hidden_size!r}.")
        self.n_features = n_features
        self.differences = bool(differences)
        self.warm_start_l2 = float(warm_start_l2)
        self.wide = glorot_dense(nn.Linear(n_features, 1))  # replaced by warm_start's fit in training
        self.lstm = KerasLSTM(2 * n_features if self.differences else n_features, hidden_size,
                              dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.deep_head = nn.Linear(hidden_size, 1)
        with torch.no_grad():
            # Zero residual: at initialisation the logit is the wide part's alone.
            self.deep_head.weight.zero_()
            self.deep_head.bias.zero_()

    def wide_logit(self, x: torch.Tensor) -> torch.Tensor:
        """The wide part alone: ``w . x[:, -1] + b`` ``(B,)``."""
        return self.wide(x[:, -1, :]).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.n_features)
        h = x  # (B, T, F)
        if self.differences:
            diff = torch.diff(x, dim=1, prepend=x[:, :1, :])  # (B, T, F), first step 0
            h = torch.cat([x, diff], dim=2)  # (B, T, 2F)
        h = self.lstm(h)  # (B, H)
        return self.wide_logit(x) + self.deep_head(h).squeeze(1)  # (B,)

    @torch.enable_grad()
    def warm_start(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit the wide part as a logistic regression on the last step of ``X (n, T, F)``.

        Called once by :func:`flareseq.training.loop.train_model` with the (prepared)
        training data before the first gradient step; the residual stays zero. Full-batch
        L-BFGS on the mean binary cross-entropy (what the loop trains; unweighted).
        """
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[2] != self.n_features or len(X) == 0 or len(y) != len(X):
            raise FlareseqError(f"warm_start expects X (n > 0, timesteps, {self.n_features}) and y (n,), "
                                f"got {X.shape} and {np.shape(y)}.")
        device = self.wide.weight.device
        last = torch.from_numpy(np.nan_to_num(np.asarray(X[:, -1, :], dtype=np.float32))).to(device)  # (n, F)
        target = torch.from_numpy(np.asarray(y, dtype=np.float32)).to(device)
        weight = self.wide.weight.detach().clone().requires_grad_(True)
        bias = self.wide.bias.detach().clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=200, tolerance_grad=1e-9,
                                      tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            logit = last @ weight.squeeze(0) + bias
            loss = F.binary_cross_entropy_with_logits(logit, target) + self.warm_start_l2 * (weight ** 2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            if torch.isfinite(weight).all() and torch.isfinite(bias).all():
                self.wide.weight.copy_(weight)
                self.wide.bias.copy_(bias)


def wide_deep_lstm(n_features: int, *, hidden_size: int = 32, dropout: float = 0.2, recurrent_dropout: float = 0.2,
                   differences: bool = False, warm_start_l2: float = 1e-4) -> WideDeepLSTM:
    """Logistic regression on the last step + a zero-initialised LSTM(32) residual."""
    return WideDeepLSTM(n_features, hidden_size=hidden_size, dropout=dropout, recurrent_dropout=recurrent_dropout,
                        differences=differences, warm_start_l2=warm_start_l2)


__all__ = ["WideDeepLSTM", "wide_deep_lstm"]
