"""The leak guard refuses label sources as features, and only an explicit override passes."""

from __future__ import annotations

import pytest

from flareseq.data.leakage import DEFAULT_LEAKY_FEATURES, check_features
from flareseq.errors import ConfigError, FlareseqWarning, LeakageError


def test_defaults_are_the_smarp_label_sources():
    assert DEFAULT_LEAKY_FEATURES == ("flares", "FLARE_INDEX")


@pytest.mark.parametrize(
    "features, match",
    [
        (["AREA", "FLARE_INDEX"], r"'FLARE_INDEX'.*non-zero almost only for positive"),
        (["flares"], r"'flares'.*where the label comes from"),
        (["flare_index"], r"'flare_index'"),  # the guard ignores case
        (["USFLUX", "flares", "FLARE_INDEX"], r"\['flares', 'FLARE_INDEX'\].*Remove them"),
    ],
)
def test_leaky_features_are_refused_with_the_reason(features, match):
    with pytest.raises(LeakageError, match=match):
        check_features(features)


def test_the_label_column_is_never_a_feature():
    with pytest.raises(LeakageError, match="'label'.*the label column itself"):
        check_features(["AREA", "label"], label_column="label")


def test_a_custom_list_replaces_the_default():
    check_features(["FLARE_INDEX"], leaky_features=["XR_MAX"])  # no longer forbidden
    with pytest.raises(LeakageError, match="'XR_MAX'.*listed as a label source"):
        check_features(["XR_MAX"], leaky_features=["XR_MAX"])


def test_override_warns_instead_of_failing():
    with pytest.warns(FlareseqWarning, match="not forecasting skill"):
        check_features(["AREA", "FLARE_INDEX"], allow_leaky_features=True)


def test_clean_features_pass_silently():
    check_features(["AREA", "USFLUX", "MEANGBZ", "R_VALUE"], label_column="label")


def test_a_single_string_is_a_config_error():
    with pytest.raises(ConfigError, match="list of column names"):
        check_features("AREA")
