"""The registry: names, order, unique parameter counts, configuration errors."""

from __future__ import annotations

import pytest
from torch import nn

from flareseq.errors import ConfigError
from flareseq.models import (
    MODELS,
    ModelSpec,
    build_model,
    count_unique_parameters,
    register_model,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Unique parameters with 25 features. lstm and stacked-lstm are the study's Keras summaries
# (SPEC section 2); the others follow from the architectures with one copy per tied tensor.
EXPECTED_COUNTS = {
    "lstm": 7_457,
    "stacked-lstm": 15_777,
    "embed-lstm": 5_801,
    "tied-stacked-lstm": 5_226,
    "embed-stacked-lstm": 10_901,
    "embed-tied-stacked-lstm": 5_901,
}


def test_names_in_study_order():
    assert list(MODELS)[:6] == list(EXPECTED_COUNTS)


@pytest.mark.parametrize("name, expected", EXPECTED_COUNTS.items())
def test_unique_parameter_counts(name, expected):
    assert count_unique_parameters(build_model(name, 25)) == expected


def test_lstm_count_is_keras_formula():
    # Keras LSTM: 4 * units * (inputs + units + 1), one bias per gate; Dense(1): units + 1.
    assert count_unique_parameters(build_model("lstm", 25)) == 4 * 32 * (25 + 32 + 1) + 33


def test_defaults_come_from_builder_signature():
    assert MODELS["lstm"].defaults == {
        "hidden_size": 32, "dropout": 0.2, "recurrent_dropout": 0.2,
        "input_dropout": 0.0, "output_dropout": 0.0, "normalization": None,
    }


def test_models_beyond_the_study_follow_the_six():
    assert list(MODELS)[6:11] == ["regularised-lstm", "trellisnet", "minirocket", "inception", "wide-deep-lstm"]


@pytest.mark.parametrize(
    "name, n_features, params, match",
    [
        ("transformer", 25, None, r"unknown model 'transformer'; choose one of \['lstm'"),
        ("lstm", 25, {"hidden": 3}, r"no parameter\(s\) \['hidden'\]; valid parameters .*hidden_size=32"),
        ("lstm", 0, None, "n_features must be a positive integer"),
        ("lstm", 25, {"recurrent_dropout": 1.0}, r"recurrent_dropout must be in \[0, 1\)"),
        ("tied-stacked-lstm", 25, {"hidden_size": 32}, "tied LSTM layers need input width = hidden_size"),
    ],
)
def test_configuration_errors(name, n_features, params, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, n_features, params)


def test_register_model_plugs_in_and_refuses_duplicates():
    def tiny(n_features: int, *, width: int = 3) -> nn.Module:
        return nn.Linear(n_features, width)

    spec = ModelSpec("test-tiny-linear", tiny, "a linear layer")
    from flareseq import models

    try:
        register_model(spec)
        assert count_unique_parameters(build_model("test-tiny-linear", 4)) == 4 * 3 + 3
        with pytest.raises(ConfigError, match="already registered"):
            register_model(spec)
    finally:
        models._REGISTRY.pop("test-tiny-linear", None)
