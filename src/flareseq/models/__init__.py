"""Sequence models as pure ``nn.Module``s, and the ``MODELS`` registry that names them.

Every registered model maps ``(B, T, F)`` float32 input to one logit per sample ``(B,)``.
A registry entry is a :class:`ModelSpec`: a builder ``builder(n_features, **params)``, the
parameters' defaults (read from the builder's signature, so they cannot drift), tiny
parameters for the shared test suite, and, for weight-tied models, the parameters that
build the untied twin. Training code lives in :mod:`flareseq.training.loop`, not here.

Registered, in this order: the study's six LSTMs (:mod:`.lstm`), ``regularised-lstm``,
``trellisnet`` (:mod:`.trellisnet`), ``minirocket`` (:mod:`.minirocket`), ``inception``
(:mod:`.inception`) and ``wide-deep-lstm`` (:mod:`.wide_deep`); docs/models.md describes each with its sources. Other families plug in
with :func:`register_model`.

A model may define ``fit_features(X_train)``: the training loop calls it once, on the
training data, before the first gradient step (MiniRocket fits its biases there); and
``warm_start(X_train, y_train)``, called next, for what is fitted to the labels in closed
form first (``wide-deep-lstm`` fits its logistic part there).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from flareseq.errors import ConfigError
from flareseq.models import inception as _inception
from flareseq.models import lstm as _lstm
from flareseq.models import minirocket as _minirocket
from flareseq.models import trellisnet as _trellisnet
from flareseq.models import wide_deep as _wide_deep


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes
    ----------
    name : the stable registry name (used in configs, saved models and the CLI).
    builder : ``builder(n_features, **params) -> nn.Module``.
    description : one line for ``flareseq models``.
    test_params : small parameters that make the model fast for the shared test suite.
    untied_params : for a weight-tied model, the parameters that build the same network
        with independent weights (to show what tying saves); ``None`` for untied models.
    """

    name: str
    builder: Callable[..., nn.Module]
    description: str
    test_params: Mapping[str, Any] = field(default_factory=dict)
    untied_params: Mapping[str, Any] | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """The builder's keyword parameters and their defaults."""
        signature = inspect.signature(self.builder)
        return {
            k: p.default for k, p in signature.parameters.items()
            if k != "n_features" and p.default is not inspect.Parameter.empty
        }

    @property
    def is_tied(self) -> bool:
        return self.untied_params is not None

    def build(self, n_features: int, params: Mapping[str, Any] | None = None) -> nn.Module:
        """The model for ``n_features`` inputs; unknown parameters are a :class:`ConfigError`."""
        params = dict(params or {})
        valid = self.defaults
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(
                f"model {self.name!r} has no parameter(s) {unknown}; valid parameters (defaults): "
                + ", ".join(f"{k}={v!r}" for k, v in valid.items())
            )
        if not isinstance(n_features, int) or n_features < 1:
            raise ConfigError(f"n_features must be a positive integer, got {n_features!r}.")
        return self.builder(n_features, **params)


_REGISTRY: dict[str, ModelSpec] = {}
MODELS: Mapping[str, ModelSpec] = MappingProxyType(_REGISTRY)
"""Registered models by name, in registration order (read-only; add with :func:`register_model`)."""


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to :data:`MODELS`; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ConfigError(f"a model named {spec.name!r} is already registered.")
    _REGISTRY[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name is an error listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {list(_REGISTRY)}.") from None


def build_model(name: str, n_features: int, params: Mapping[str, Any] | None = None) -> nn.Module:
    """Build the registered model ``name`` for ``n_features`` input series."""
    return get_model_spec(name).build(n_features, params)


def count_unique_parameters(model: nn.Module) -> int:
    """Number of trainable values, each shared (tied) tensor counted once.

    ``Module.parameters()`` already yields a tied Parameter once; storages are compared as
    well so that two Parameters viewing one buffer are not counted twice either.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in model.parameters():
        key = (p.untyped_storage().data_ptr(), p.storage_offset())
        if key in seen:
            continue
        seen.add(key)
        total += p.numel()
    return total


_TINY_LSTM = {"dropout": 0.1, "recurrent_dropout": 0.1}
for _spec in (
    ModelSpec("lstm", _lstm.lstm, "LSTM(32) -> Dense(1)", {"hidden_size": 8, **_TINY_LSTM}),
    ModelSpec("stacked-lstm", _lstm.stacked_lstm, "LSTM(32) -> LSTM(32) -> Dense(1)",
              {"hidden_size": 8, **_TINY_LSTM}),
    ModelSpec("embed-lstm", _lstm.embed_lstm,
              "Dense(25, relu) embedding -> LSTM(25) -> tied decoder -> Dense(1)",
              {"embedding_size": 8, **_TINY_LSTM}, untied_params={"tie_weights": False}),
    ModelSpec("tied-stacked-lstm", _lstm.tied_stacked_lstm,
              "LSTM(F) -> LSTM(F) sharing layer 1's kernels -> Dense(1) (embedding_size=E: E wide)",
              dict(_TINY_LSTM), untied_params={"tie_weights": False}),
    ModelSpec("embed-stacked-lstm", _lstm.embed_stacked_lstm,
              "embedding -> LSTM(25) -> LSTM(25) -> tied decoder -> Dense(1)",
              {"embedding_size": 8, **_TINY_LSTM}, untied_params={"tie_weights": False}),
    ModelSpec("embed-tied-stacked-lstm", _lstm.embed_tied_stacked_lstm,
              "embedding -> LSTM(25) -> tied LSTM(25) -> tied decoder -> Dense(1)",
              {"embedding_size": 8, **_TINY_LSTM}, untied_params={"tie_weights": False}),
    # Beyond the study (issue 9).
    ModelSpec("regularised-lstm", _lstm.regularised_lstm,
              "stacked LSTM(32) x 2 + input/output dropout + layer norm",
              {"hidden_size": 8, "input_dropout": 0.1, "output_dropout": 0.1, **_TINY_LSTM}),
    ModelSpec("trellisnet", _trellisnet.trellisnet,
              "TrellisNet(32): one causal conv + LSTM gate shared by every level, input injected",
              {"hidden_size": 8, "dropout": 0.1}),
    ModelSpec("minirocket", _minirocket.minirocket,
              "MiniRocket: 9,996 PPV features of 84 fixed kernels -> logistic head",
              {"n_ppv_features": 336, "max_dilations_per_kernel": 4}),
    ModelSpec("inception", _inception.inception,
              "Inception network (InceptionTime's member): 6 modules, residual every 3, GAP",
              {"n_filters": 4, "depth": 3, "kernel_sizes": (6, 4, 2), "bottleneck_size": 4}),
    # Issue 15: starts as logistic regression on the last step, the strongest simple baseline.
    ModelSpec("wide-deep-lstm", _wide_deep.wide_deep_lstm,
              "logistic regression on the last step + zero-initialised LSTM(32) residual",
              {"hidden_size": 8, **_TINY_LSTM}),
):
    register_model(_spec)
del _spec

__all__ = ["MODELS", "ModelSpec", "build_model", "count_unique_parameters", "get_model_spec", "register_model"]
