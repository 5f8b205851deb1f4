import json

import pytest

from flareseq.errors import ConfigError
from flareseq.experiments.config import RunConfig, parse_override, valid_keys


def test_defaults_file_and_overrides_compose(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "stacked-lstm"\n[training]\nepochs = 3\nclass_weight = {0 = 1, 1 = 5}\n')
    config = RunConfig.from_toml(path).with_overrides(["training.epochs=7", "model.params.hidden_size=16"])
    assert config.model.name == "stacked-lstm"
    assert config.training.epochs == 7
    assert config.model.params == {"hidden_size": 16}
    assert config.training.class_weight == {"0": 1, "1": 5}
    assert config.training.batch_size == RunConfig().training.batch_size


def test_round_trip_through_json_and_flatten():
    config = RunConfig().with_overrides({"data.split.train_folds": [1, 2], "prep.train_fraction": 0.3})
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again == config
    flat = config.flatten()
    assert flat["data.split.train_folds"] == "[1, 2]" and flat["prep.train_fraction"] == "0.3"
    assert flat["model.name"] == "lstm"


@pytest.mark.parametrize(
    "override, match",
    [
        ("training.epoch=5", "unknown configuration key 'training.epoch'.*training.epochs"),
        ("nonsense=1", "unknown configuration key"),
        ("training.epochs=five", "training.epochs must be an integer"),
        ("training.early_stopping=1", "must be true or false"),
        ("model.params=3", "model.params must be a table"),
        ("no-equals-sign", "not of the form section.key=value"),
    ],
)
def test_bad_overrides_are_clear_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig().with_overrides([override])


def test_unknown_key_in_file_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nepohcs = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key\(s\) \['training.epohcs'\].*training.epochs"):
        RunConfig.from_toml(path)


def test_parse_override_types():
    assert parse_override("a.b=1.5") == ("a.b", 1.5)
    assert parse_override("a.b=lstm") == ("a.b", "lstm")
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert "training.epochs" in valid_keys()
