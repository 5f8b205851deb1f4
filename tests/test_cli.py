"""The command line as a new user meets it: help for every command, fast answers to mistakes,
"did you mean", stores that are not created by typos, a closed pipe, a busy port."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flareseq.cli import build_parser, main

# What parsing must not import (each costs from 0.1 s to several seconds before the first byte).
HEAVY_MODULES = ("torch", "mlflow", "pandas", "numpy", "pyarrow", "matplotlib", "pyspark", "sklearn", "scipy",
                 "urllib.request", "ssl")


def _commands(parser: argparse.ArgumentParser, prefix: str = "flareseq") -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, nested ones included ("flareseq download kaggle")."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix} {name}"] = sub
                found.update(_commands(sub, f"{prefix} {name}"))
    return found


def run_cli(*args: str, cwd: str | Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flareseq", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


# --------------------------------------------------------------------------- help

def test_every_command_has_a_description_and_a_runnable_example():
    commands = _commands(build_parser())
    assert {"flareseq train", "flareseq experiments", "flareseq ui", "flareseq download swan-sf"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description and len(parser.description) > 40, name
        assert parser.epilog and "example" in parser.epilog, name
        examples = [line.strip() for line in parser.epilog.splitlines()[1:]]
        assert examples and all(e.startswith("flareseq ") for e in examples), (name, examples)
        text = parser.format_help()
        assert "%%" not in text, name  # argparse only halves %% in argument help, not in descriptions
        assert "  " + examples[0] in text, name  # the example is printed as written, not re-wrapped


def test_every_option_of_ui_and_the_store_options_have_help():
    commands = _commands(build_parser())
    for name in ("flareseq ui", "flareseq train", "flareseq experiments", "flareseq report"):
        for action in commands[name]._actions:
            assert action.help, (name, action.option_strings)
    train = commands["flareseq train"].format_help()
    assert "--output-dir DIR" in train and "--tracking-uri URI" in train and "--experiment" in train


def test_parsing_imports_nothing_heavy():
    code = ("import sys; from flareseq.cli import build_parser; build_parser(); "
            f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_constants_written_into_the_parsers_match_the_library():
    from flareseq.cli import download, models
    from flareseq.data.download import dataverse, kaggle
    from flareseq.data.schema import KAGGLE_PARAMETERS

    assert download.SWAN_SF_DOI == dataverse.SWAN_SF_DOI
    assert tuple(download.SWAN_SF_PARTITIONS) == tuple(dataverse.SWAN_SF_PARTITIONS)
    assert download.KAGGLE_COMPETITION == kaggle.KAGGLE_COMPETITION
    assert models.N_FEATURES == len(KAGGLE_PARAMETERS)


def test_help_version_and_usage_errors_answer_in_a_fresh_process():
    assert run_cli("--help").returncode == 0
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("flareseq ")
    usage = run_cli("train", "--no-such-option")
    assert usage.returncode == 2 and "unrecognized arguments: --no-such-option" in usage.stderr


# --------------------------------------------------------------------------- --set and configuration files

@pytest.mark.parametrize(("override", "suggestion"), [
    ("training.epochz=2", "'training.epochs'"),
    ("trainin.epochs=2", "'training.epochs'"),
    ("epochs=2", "'training.epochs'"),
    ("model.nmae=lstm", "'model.name'"),
    ("prep.scalr=zscore", "'prep.scaler'"),
])
def test_an_unknown_set_key_names_the_closest_keys_not_all_of_them(override, suggestion, capsys):
    assert main(["train", "--set", override]) == 2
    err = capsys.readouterr().err
    assert f"--set {override}: unknown configuration key" in err and f"Did you mean {suggestion}" in err
    assert "Valid keys are" not in err and err.count("training.") <= 3
    assert err.count("\n") == 1  # one paragraph, no traceback


def test_a_set_typo_is_answered_before_torch_or_mlflow_load(tmp_path):
    code = ("import sys; from flareseq.cli import main; code = main(['train', '--set', 'training.epochz=2']); "
            "print(code, 'torch' in sys.modules, 'mlflow' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split() == ["2", "False", "False", "False"]
    assert list(tmp_path.iterdir()) == []  # no store was made


def test_keys_of_free_tables_pass_and_sections_are_not_keys(capsys):
    from flareseq.cli.config_check import check_overrides, unknown_key_message

    check_overrides(["model.params.hidden_size=8", "training.class_weight.1=5", "data.split.method=region",
                     "training.epochs=3", "name=x"])
    assert "is a section, not a key" in unknown_key_message("training", "--set training=2")
    assert main(["train", "--set", "training=2"]) == 2


def test_unknown_keys_in_a_file_name_the_file_and_the_closest_key(tmp_path, capsys):
    run_file = tmp_path / "run.toml"
    run_file.write_text("[training]\nepochz = 3\n")
    assert main(["train", "--config", str(run_file)]) == 2
    err = capsys.readouterr().err
    assert f"{run_file}: unknown configuration key 'training.epochz'. Did you mean 'training.epochs'?" in err
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text('[grid]\n"model.nam" = ["lstm"]\n')
    assert main(["experiments", str(grid_file)]) == 2
    assert "'model.nam'. Did you mean 'model.name'?" in capsys.readouterr().err


def test_keys_of_grid_cases_are_checked_too():
    from flareseq.cli.config_check import check_file_keys
    from flareseq.errors import ConfigError

    grid = {"grid": {"cases": [{"name": "a", "model.name": "lstm"}, {"training.epochz": 3}]}}
    with pytest.raises(ConfigError, match="'training.epochz'. Did you mean 'training.epochs'"):
        check_file_keys(grid, "grid.toml")
    check_file_keys({"grid": {"cases": [{"name": "a", "model.name": "lstm"}]}}, "grid.toml")


def test_an_unknown_model_name_says_which_one_was_meant(tmp_path, capsys):
    assert main(["train", "--set", "model.name=lstmm", "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'lstmm'. Did you mean 'lstm'?" in err and "climatology" in err
    assert not (tmp_path / "runs").exists()  # refused before any run or store


def test_store_options_of_train_map_onto_the_tracking_settings():
    from flareseq.cli.store import store_overrides

    args = argparse.Namespace(output_dir="out dir", tracking_uri=None, experiment="e")
    assert store_overrides(args) == ['tracking.output_dir="out dir"', 'tracking.experiment="e"']
    assert store_overrides(argparse.Namespace(output_dir=None, tracking_uri=None, experiment=None)) == []


def test_train_records_into_the_output_dir_and_experiment_it_was_given(tmp_path, capsys):
    mlflow = pytest.importorskip("mlflow")
    out = tmp_path / "my runs"
    sets = ["model.name=climatology", "data.synthetic_samples=300", "tracking.log_model=false",
            "tracking.plots=false", "verification.n_bootstrap=0"]
    assert main(["train", "--no-progress", "--output-dir", str(out), "--experiment", "mine",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    assert "experiment 'mine'" in capsys.readouterr().out
    client = mlflow.MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    assert client.get_experiment_by_name("mine") is not None


# --------------------------------------------------------------------------- stores, experiments, run names

def test_reading_commands_refuse_a_store_that_does_not_exist(tmp_path, capsys):
    (tmp_path / "demo-output").mkdir()
    (tmp_path / "demo-output" / "mlflow.db").write_bytes(b"")  # beside the typo: the store meant
    typo = tmp_path / "demo-outptu"
    for command in (["ui"], ["report"], ["compare", "a", "b"], ["evaluate", "run", "--data", "x"],
                    ["predict", "run", "--data", "x", "--out", str(tmp_path / "p.csv")]):
        assert main([*command, "--output-dir", str(typo)]) == 2, command
        err = capsys.readouterr().err
        assert "no MLflow tracking store there (the folder does not exist)" in err, command
        assert f"Did you mean '{tmp_path / 'demo-output'}'?" in err, command
    assert not typo.exists()  # nothing was created from the typo
    assert main(["predict", str(tmp_path / "model-dir"), "--data", "x", "--out", "p.csv", "--output-dir", str(typo)]) == 2
    assert "is not a saved model folder (there is no folder at that path)" in capsys.readouterr().err
    assert main(["report", "--tracking-uri", f"sqlite:///{tmp_path / 'nothing.db'}"]) == 2
    assert "no tracking store at" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """A real SQLite MLflow store with experiment 'grid' holding two finished runs and a failed one."""
    mlflow = pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("store")
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment("grid", artifact_location=(folder / "artifacts").as_uri())
    for name, status in (("lstm-c1", "FINISHED"), ("lstm-c2", "FINISHED"), ("broken", "FAILED")):
        run = client.create_run(experiment, run_name=name)
        client.set_terminated(run.info.run_id, status=status)
    return folder


def test_a_missing_experiment_is_reported_as_a_missing_experiment(small_store, capsys):
    for command in (["report", "--experiment", "gird"], ["compare", "lstm-c1", "lstm-c2", "--experiment", "gird"],
                    ["predict", "lstm-c1", "--data", "x", "--out", "x.csv", "--experiment", "gird"]):
        assert main([*command, "--output-dir", str(small_store)]) == 2, command
        err = capsys.readouterr().err
        assert "no experiment 'gird' in the tracking store" in err and "Did you mean 'grid'?" in err, command
        assert "no finished run" not in err


def test_an_unknown_run_name_names_the_closest_finished_runs(small_store, capsys):
    assert main(["compare", "lstm-c11", "lstm-c2", "--experiment", "grid", "--output-dir", str(small_store)]) == 2
    err = capsys.readouterr().err
    assert "no finished run with id or name 'lstm-c11' in experiment 'grid'" in err and "Did you mean 'lstm-c1'" in err
    assert main(["compare", "broken", "lstm-c2", "--experiment", "grid", "--output-dir", str(small_store)]) == 2
    assert "'broken' in experiment 'grid'" in (err := capsys.readouterr().err) and "is FAILED, not FINISHED" in err


# --------------------------------------------------------------------------- pipes and ports

@pytest.mark.parametrize("args", [["--help"], ["models", "--json"]])
def test_a_closed_pipe_ends_quietly_without_a_traceback(args):
    # The reader goes away before anything is written, as `flareseq models --json | head -0` would.
    process = subprocess.Popen([sys.executable, "-m", "flareseq", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    # argparse swallows the failed write of --help itself; any other output ends as a shell's SIGPIPE would.
    assert process.returncode == (0 if args == ["--help"] else 141)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ui_on_a_busy_port_is_an_error_that_names_a_free_port(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--output-dir", str(tmp_path), "--create", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
    suggested = int(err.rsplit("--port ", 1)[1].rstrip(".\n"))
    assert suggested > port


def _group_alive(group: int) -> list[int]:
    from flareseq.cli.ui import group_members

    return group_members(group)


def _descendants(pid: int) -> set[int]:
    """Every process whose chain of parents reaches ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the server's processes")
def test_sigterm_to_ui_stops_the_mlflow_server_and_frees_the_port(tmp_path):
    import signal
    import time
    import urllib.request

    port = _free_port()
    children: set[int] = set()
    ui = subprocess.Popen([sys.executable, "-m", "flareseq", "ui", "--output-dir", str(tmp_path), "--create",
                           "--port", str(port)], start_new_session=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while True:  # until the MLflow server answers HTTP
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                assert ui.poll() is None, ui.stderr.read().decode()
                assert time.monotonic() < deadline, "the MLflow UI did not answer within 180 s"
                time.sleep(0.5)
        children = _descendants(ui.pid)
        groups = {os.getpgid(pid) for pid in children if _alive(pid)} | {ui.pid}
        assert children and len(groups) >= 2  # the server runs in a group of its own
        os.kill(ui.pid, signal.SIGTERM)
        assert ui.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while any(_group_alive(g) for g in groups) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_group_alive(g) for g in groups), {g: _group_alive(g) for g in groups}
        assert not [pid for pid in children if _alive(pid)]
        with socket.socket() as probe:  # the port is free again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
        for pid in children | _descendants(ui.pid):  # whatever the test's failure left running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def test_report_and_models_json_still_print_parseable_output(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"lstm", "stacked-lstm"} <= {r["name"] for r in rows}
