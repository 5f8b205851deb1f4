"""The study's six LSTM architectures (SPEC section 2), as one configurable network.

All six are the same pipeline with parts switched on or off::

    x (B, T, F) -> [embedding: Dense(E, relu) per step] -> LSTM x n_layers
                -> [decoder: Dense(F, relu), kernel = embedding kernel transposed]
                -> Dense(1) -> logit (B,)

Two kinds of weight tying, as the study defines them (SPEC section 2: "a second LSTM layer
sharing the first one's input and recurrent weights"; "a decoder whose kernel is the
transpose of the embedding's kernel"). Tied layers share **kernels, not biases**:

* ``tie_layers``: LSTM layers 2..n use layer 1's input and recurrent kernels. Each layer
  keeps its own bias (4H values): the bias is what lets a repeated layer act differently at
  each depth at almost no cost.
* ``tie_decoder``: the decoder's kernel is the embedding's kernel, transposed; the decoder
  keeps its own bias (F values), as the study's ``TiedtDense`` did.

Each shared kernel is one :class:`~torch.nn.Parameter`, stored and counted once
(``count_unique_parameters``), trainable, and its gradient is the sum of the gradients of its
uses (autograd does this; tests/test_models_common.py checks it against the untied twin).
The study's notebook (cell [68]) meant the same but built something else:

* its ``TiedtDense`` (cells [72], [75]) took ``tf.transpose`` of the embedding's kernel once,
  in ``build``, which Keras runs eagerly inside ``init_scope``: a copy of the embedding's
  *initial* kernel, listed as non-trainable (the 625 non-trainable parameters of cell [72]'s
  summary). It received no gradient and did not follow the embedding as it trained: the
  decoder was a fixed random projection with a trained bias.
* its ``TiedtLSTM`` (cells [69], [75]) stored a transposed copy (non-trainable, 2,500) and a
  25-value bias that nothing reads ("Gradients do not exist for variables" in cell [69]),
  but never built its cell, so Keras built the cell with fresh weights on the first call:
  cell [69]'s summary counts 10,251 trainable parameters = 2 x 5,100 + 25 + 26, i.e. the
  second LSTM trained its own, untied kernels. (Cell [69] also adds that layer twice, so
  Keras's layer reuse shares it between depths 2 and 3: the only real tie in the notebook.)

Tying forces the LSTM's width to its input's width (layer 1's input kernel must fit layer 2).
Without an embedding that is F, 4 on SMARP's tables: ``tied-stacked-lstm`` there is an LSTM of
width 4 (165 parameters). ``embedding_size`` on ``tied-stacked-lstm`` puts a Dense(E, relu)
embedding first, so the width is E whatever F is (docs/models.md, "Does tying help?").

Regularisation beyond the study (its own recommendation; all off by default, so the study's
six models and their parameter counts are unchanged):

* ``input_dropout``: element-wise dropout of the raw input ``(B, T, F)`` (each value of each
  step dropped on its own). The LSTMs' Keras ``dropout`` is different: one mask per sequence,
  so it drops a whole series of a sample, and it acts after the embedding.
* ``output_dropout``: dropout of the last LSTM's output ``(B, H)`` before the decoder/head
  (the non-recurrent output connection of Zaremba et al. 2014, "Recurrent Neural Network
  Regularization", arXiv:1409.2329).
* ``normalization``: ``"layer"`` (Ba et al. 2016, arXiv:1607.06450: each step's state
  normalised over its H units) or ``"batch"`` (Ioffe & Szegedy 2015: each unit normalised
  over the batch and the time steps, running statistics in eval mode) after every LSTM
  layer; each layer has its own scale and shift (2H parameters), tied layers too.

Weight decay is a training setting (``training.weight_decay``), not a model parameter.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from flareseq.errors import ConfigError
from flareseq.models.common import check_input
from flareseq.models.common import glorot_dense as _glorot_dense
from flareseq.models.recurrent import KerasLSTM

NORMALIZATIONS = ("layer", "batch")


class SequenceNorm(nn.Module):
    """Layer or batch normalisation of ``(B, T, H)`` sequences or ``(B, H)`` states over H units."""

    def __init__(self, kind: str, size: int) -> None:
        super().__init__()
        self.kind = kind
        self.norm = nn.LayerNorm(size) if kind == "layer" else nn.BatchNorm1d(size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "batch" and h.dim() == 3:
            # BatchNorm1d wants channels second: statistics over batch and time per unit.
            return self.norm(h.transpose(1, 2)).transpose(1, 2)
        return self.norm(h)


def _check_regularisation(input_dropout: float, output_dropout: float, normalization: str | None) -> str | None:
    for name, rate in (("input_dropout", input_dropout), ("output_dropout", output_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {rate}.")
    if normalization in (None, "none", ""):
        return None
    if normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"normalization must be one of {list(NORMALIZATIONS)} or None, got {normalization!r}."
        )
    return normalization


class SequenceNet(nn.Module):
    """(B, T, F) -> one logit per sample, through optional embedding, LSTMs and decoder.

    Parameters
    ----------
    n_features : number of input series F.
    hidden_size : LSTM width H (every layer). With an embedding and a decoder it must equal
        ``embedding_size``: the tied decoder maps H back to F through the embedding's
        (E, F) kernel. A tied layer stack needs input width (F, or E) = H.
    n_layers : number of stacked LSTM layers.
    embedding_size : width E of the per-step Dense(E, relu) embedding; ``None`` for none.
    decoder : with an embedding, a Dense(F, relu) decoder between the last LSTM and the head
        (the study's models 3, 5, 6); ``False``: the head reads the LSTM state, and the
        embedding only sets the width (``tied-stacked-lstm`` with ``embedding_size``).
    tie_layers : layers 2..n share layer 1's ``weight_ih`` and ``weight_hh`` (each keeps its
        own bias).
    tie_decoder : the decoder's kernel is the embedding's, transposed (else its own); the
        decoder keeps its own bias.
    dropout, recurrent_dropout : Keras-style rates of every LSTM layer.
    input_dropout, output_dropout, normalization : regularisation (module docstring).
    """

    def __init__(
        self,
        n_features: int,
        *,
        hidden_size: int,
        n_layers: int = 1,
        embedding_size: int | None = None,
        decoder: bool = True,
        tie_layers: bool = False,
        tie_decoder: bool = False,
        dropout: float = 0.2,
        recurrent_dropout: float = 0.2,
        input_dropout: float = 0.0,
        output_dropout: float = 0.0,
        normalization: str | None = None,
    ) -> None:
        super().__init__()
        normalization = _check_regularisation(input_dropout, output_dropout, normalization)
        if n_layers < 1:
            raise ConfigError(f"n_layers must be at least 1, got {n_layers}.")
        input_size = n_features if embedding_size is None else embedding_size
        decoder = decoder and embedding_size is not None
        for name, size in (("embedding_size", embedding_size), ("hidden_size", hidden_size)):
            if size is not None and (not isinstance(size, int) or size < 1):
                raise ConfigError(f"{name} must be a positive integer, got {size!r}.")
        if decoder and hidden_size != embedding_size:
            raise ConfigError(
                f"with an embedding the LSTM width must equal embedding_size ({embedding_size}), "
                f"got hidden_size={hidden_size}: the decoder reuses the embedding's kernel."
            )
        if tie_layers and n_layers > 1 and input_size != hidden_size:
            raise ConfigError(
                f"tied LSTM layers need input width = hidden_size, got {input_size} inputs and "
                f"hidden_size={hidden_size}; set hidden_size={input_size}, or embedding_size={hidden_size} "
                "to widen the input with an embedding first."
            )
        if tie_decoder and not decoder:
            raise ConfigError("tie_decoder needs an embedding (embedding_size) and a decoder to tie to.")
        self.n_features = n_features
        self.tie_layers = tie_layers and n_layers > 1
        self.tie_decoder = tie_decoder
        self.embedding = None if embedding_size is None else _glorot_dense(nn.Linear(n_features, embedding_size))
        self.lstms = nn.ModuleList(
            KerasLSTM(
                input_size if k == 0 else hidden_size,
                hidden_size,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                return_sequences=k < n_layers - 1,
            )
            for k in range(n_layers)
        )
        if self.tie_layers:
            for layer in self.lstms[1:]:
                # Weight tying: the same Parameter objects, so one tensor is stored and trained.
                layer.weight_ih = self.lstms[0].weight_ih
                layer.weight_hh = self.lstms[0].weight_hh
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout else None
        self.output_dropout = nn.Dropout(output_dropout) if output_dropout else None
        self.norms = None if normalization is None else nn.ModuleList(
            SequenceNorm(normalization, hidden_size) for _ in range(n_layers)
        )
        self.has_decoder = decoder
        self.decoder: nn.Linear | None = None
        self.decoder_bias: nn.Parameter | None = None
        if decoder:
            if tie_decoder:
                self.decoder_bias = nn.Parameter(torch.zeros(n_features))
            else:
                self.decoder = _glorot_dense(nn.Linear(hidden_size, n_features))
        head_in = n_features if decoder else hidden_size
        self.head = _glorot_dense(nn.Linear(head_in, 1))

    def tied_parameter_names(self) -> dict[str, list[str]]:
        """Each shared parameter's name (as in ``named_parameters()``) -> where else it is used."""
        tied: dict[str, list[str]] = {}
        if self.tie_layers:
            for kind in ("weight_ih", "weight_hh"):
                tied[f"lstms.0.{kind}"] = [f"lstms.{k}.{kind}" for k in range(1, len(self.lstms))]
        if self.tie_decoder:
            tied["embedding.weight"] = ["decoder kernel (transposed)"]
        return tied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.n_features)
        h = x  # (B, T, F)
        if self.input_dropout is not None:
            h = self.input_dropout(h)
        if self.embedding is not None:
            h = F.relu(self.embedding(h))  # (B, T, E)
        for k, layer in enumerate(self.lstms):
            h = layer(h)  # (B, T, H) between layers, (B, H) after the last
            if self.norms is not None:
                h = self.norms[k](h)
        if self.output_dropout is not None:
            h = self.output_dropout(h)  # (B, H)
        if self.has_decoder:
            if self.tie_decoder:
                # Tied decoder: (B, E) @ (E, F) with the embedding's own kernel.
                h = F.relu(F.linear(h, self.embedding.weight.t(), self.decoder_bias))  # (B, F)
            else:
                h = F.relu(self.decoder(h))  # (B, F)
        return self.head(h).squeeze(1)  # (B,)


# Builders with the study's defaults; the registry in __init__ reads their signatures. Every
# builder also takes the regularisation parameters, off by default (module docstring).

def lstm(
    n_features: int, *, hidden_size: int = 32, dropout: float = 0.2, recurrent_dropout: float = 0.2,
    input_dropout: float = 0.0, output_dropout: float = 0.0, normalization: str | None = None,
) -> SequenceNet:
    """1. Basic LSTM: LSTM(32) -> Dense(1)."""
    return SequenceNet(
        n_features, hidden_size=hidden_size, dropout=dropout, recurrent_dropout=recurrent_dropout,
        input_dropout=input_dropout, output_dropout=output_dropout, normalization=normalization,
    )


def stacked_lstm(
    n_features: int, *, hidden_size: int = 32, n_layers: int = 2, dropout: float = 0.2, recurrent_dropout: float = 0.2,
    input_dropout: float = 0.0, output_dropout: float = 0.0, normalization: str | None = None,
) -> SequenceNet:
    """2. Stacked LSTM: LSTM(32, sequences) -> LSTM(32) -> Dense(1)."""
    return SequenceNet(
        n_features, hidden_size=hidden_size, n_layers=n_layers, dropout=dropout, recurrent_dropout=recurrent_dropout,
        input_dropout=input_dropout, output_dropout=output_dropout, normalization=normalization,
    )


def embed_lstm(
    n_features: int, *, embedding_size: int = 25, dropout: float = 0.2, recurrent_dropout: float = 0.2,
    tie_weights: bool = True, input_dropout: float = 0.0, output_dropout: float = 0.0,
    normalization: str | None = None,
) -> SequenceNet:
    """3. Dense(25, relu) embedding -> LSTM(25) -> tied Dense(F, relu) decoder -> Dense(1)."""
    return SequenceNet(
        n_features, hidden_size=embedding_size, embedding_size=embedding_size, tie_decoder=tie_weights,
        dropout=dropout, recurrent_dropout=recurrent_dropout,
        input_dropout=input_dropout, output_dropout=output_dropout, normalization=normalization,
    )


def tied_stacked_lstm(
    n_features: int, *, hidden_size: int | None = None, embedding_size: int | None = None, n_layers: int = 2,
    dropout: float = 0.2, recurrent_dropout: float = 0.2, tie_weights: bool = True, input_dropout: float = 0.0,
    output_dropout: float = 0.0, normalization: str | None = None,
) -> SequenceNet:
    """4. LSTM(F, sequences) -> LSTM(F) sharing layer 1's kernels -> Dense(1).

    ``hidden_size=None`` means "as many units as the LSTM's inputs": F (25 in the study), the
    only width at which layer 1's input kernel fits layer 2. On few features (SMARP's 4) that
    is a tiny model; ``embedding_size=E`` puts a Dense(E, relu) embedding first (no decoder),
    so the tied LSTMs are E wide whatever F is. ``tie_weights=False`` is the untied twin: the
    same network with independent kernels, at any ``hidden_size``.
    """
    input_size = n_features if embedding_size is None else embedding_size
    return SequenceNet(
        n_features, hidden_size=input_size if hidden_size is None else hidden_size, n_layers=n_layers,
        embedding_size=embedding_size, decoder=False, tie_layers=tie_weights, dropout=dropout,
        recurrent_dropout=recurrent_dropout, input_dropout=input_dropout, output_dropout=output_dropout,
        normalization=normalization,
    )


def embed_stacked_lstm(
    n_features: int, *, embedding_size: int = 25, n_layers: int = 2, dropout: float = 0.2,
    recurrent_dropout: float = 0.2, tie_weights: bool = True, input_dropout: float = 0.0,
    output_dropout: float = 0.0, normalization: str | None = None,
) -> SequenceNet:
    """5. Embedding -> LSTM(25) -> LSTM(25) -> tied decoder -> Dense(1)."""
    return SequenceNet(
        n_features, hidden_size=embedding_size, n_layers=n_layers, embedding_size=embedding_size,
        tie_decoder=tie_weights, dropout=dropout, recurrent_dropout=recurrent_dropout,
        input_dropout=input_dropout, output_dropout=output_dropout, normalization=normalization,
    )


def embed_tied_stacked_lstm(
    n_features: int, *, embedding_size: int = 25, n_layers: int = 2, dropout: float = 0.2,
    recurrent_dropout: float = 0.2, tie_weights: bool = True, input_dropout: float = 0.0,
    output_dropout: float = 0.0, normalization: str | None = None,
) -> SequenceNet:
    """6. Embedding -> LSTM(25) -> tied LSTM(25) -> tied decoder -> Dense(1)."""
    return SequenceNet(
        n_features, hidden_size=embedding_size, n_layers=n_layers, embedding_size=embedding_size,
        tie_layers=tie_weights, tie_decoder=tie_weights, dropout=dropout, recurrent_dropout=recurrent_dropout,
        input_dropout=input_dropout, output_dropout=output_dropout, normalization=normalization,
    )


def regularised_lstm(
    n_features: int, *, hidden_size: int = 32, n_layers: int = 2, dropout: float = 0.2,
    recurrent_dropout: float = 0.2, input_dropout: float = 0.1, output_dropout: float = 0.3,
    normalization: str | None = "layer",
) -> SequenceNet:
    """The stacked LSTM (2) with the study's recommended regularisation switched on.

    Defaults are conventional values, not tuned on any data set: per-value input dropout
    0.1, output dropout 0.3 before the head, layer normalisation after each LSTM layer, plus
    the study's Keras dropout and recurrent dropout of 0.2. Pair it with
    ``training.optimizer = "adamw"`` for decoupled weight decay.
    """
    return SequenceNet(
        n_features, hidden_size=hidden_size, n_layers=n_layers, dropout=dropout, recurrent_dropout=recurrent_dropout,
        input_dropout=input_dropout, output_dropout=output_dropout, normalization=normalization,
    )
