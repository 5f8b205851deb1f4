import pytest

from flareseq.errors import ConfigError
from flareseq.experiments.grid import expand_grid, load_experiment


def test_crossed_and_zipped_axes(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(
        'name = "e"\n[training]\nepochs = 1\n'
        '[grid]\n"model.name" = ["lstm", "stacked-lstm"]\n'
        '[grid.zip]\n"training.epochs" = [10, 20, 30]\n"training.batch_size" = [8, 16, 32]\n'
    )
    experiment = load_experiment(path, overrides=["training.learning_rate=0.01"])
    assert experiment.name == "e"
    assert [r.name for r in experiment.runs] == [
        "lstm-c1", "lstm-c2", "lstm-c3", "stacked-lstm-c1", "stacked-lstm-c2", "stacked-lstm-c3",
    ]
    third = experiment.runs[2]
    assert (third.model.name, third.training.epochs, third.training.batch_size) == ("lstm", 30, 32)
    assert all(r.training.learning_rate == 0.01 for r in experiment.runs)


def test_no_grid_is_one_run():
    experiment = expand_grid({"model": {"name": "lstm"}}, default_name="single")
    assert [r.name for r in experiment.runs] == ["single"]


@pytest.mark.parametrize(
    "grid, match",
    [
        ({"zip": {"training.epochs": [1, 2], "training.batch_size": [1]}}, "equal lengths"),
        ({"model.name": []}, "non-empty list"),
        ({"training.epoch": [1]}, "unknown configuration key"),
    ],
)
def test_bad_grids(grid, match):
    with pytest.raises(ConfigError, match=match):
        expand_grid({"grid": grid})


def test_user_overrides_win_over_grid_values():
    experiment = expand_grid({"grid": {"zip": {"training.epochs": [10, 20]}}}, overrides=["training.epochs=2"])
    assert [r.training.epochs for r in experiment.runs] == [2, 2]
