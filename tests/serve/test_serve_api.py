"""The forecast service over real HTTP on 127.0.0.1: answers, identity, limits, token, CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from serve_helpers import FEATURES, TOKEN, serve

from flareseq.cli import main
from flareseq.data.kaggle import read_kaggle
from flareseq.data.swansf import read_swansf
from flareseq.data.synthetic import (
    synthetic_dataset,
    write_synthetic_kaggle,
    write_synthetic_swansf,
)
from flareseq.experiments.run_models import load_forecaster
from flareseq.forecasting.guard import ServiceLimits
from flareseq.forecasting.served_model import load_served_model

# one worker runs them all under xdist: one tiny model trained, one service started
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.xdist_group("serve")]


def arrays_body(dataset, names=None, **extra) -> dict:
    names = list(names or dataset.feature_names)
    X = dataset.select_features(names).X.astype(np.float64)
    values = [[[None if np.isnan(v) else float(v) for v in row] for row in sample] for sample in X]
    return {"feature_names": names, "X": values, **extra}


@pytest.fixture(scope="module")
def forecaster(tiny_run):
    """The model as `flareseq predict` loads it, to compare the service with."""
    return load_forecaster(tiny_run.run_id, experiment=tiny_run.experiment, output_dir=tiny_run.output_dir)


# -- answers ----------------------------------------------------------------------------------
def test_health_and_models_name_the_run(service, tiny_run, forecaster):
    import mlflow

    health = requests.get(f"{service.url}/health", timeout=10).json()
    assert health == {"status": "ok", "model": "tiny", "run_id": tiny_run.run_id, "latest_regions": False}
    (model,) = requests.get(f"{service.url}/models", timeout=10).json()["models"]
    run = mlflow.MlflowClient(f"sqlite:///{tiny_run.output_dir.resolve() / 'mlflow.db'}").get_run(tiny_run.run_id)
    assert model["run_id"] == tiny_run.run_id and model["source"] == "run" and model["experiment"] == "serve-test"
    assert model["data_content_hash"] == run.data.params["data.content_hash"]
    assert model["data_content_hash"].startswith("sha256:")
    assert model["metrics"]["val_tss"] == pytest.approx(run.data.metrics["val_tss"])
    assert model["metrics"]["test_tss"] == pytest.approx(run.data.metrics["test_tss"])
    assert model["threshold"] == pytest.approx(forecaster.threshold)
    assert model["feature_names"] == FEATURES and model["n_timesteps"] == 60


def test_arrays_forecast_is_the_forecasters_own(service, forecaster):
    dataset = synthetic_dataset(6, seed=11)
    X = dataset.X.copy()
    X[1, 5, dataset.feature_names.index("USFLUX")] = np.nan  # sent as null, filled as in training
    dataset = dataset.with_X(X)
    # Any order, extra features ignored, ids kept.
    names = ["R_VALUE", "MEANSHR", "USFLUX", "TOTUSJH"]
    body = arrays_body(dataset, names, ids=[f"s{i}" for i in range(6)])
    answer = requests.post(f"{service.url}/forecast", json=body, timeout=30).json()
    expected_p, expected_label = forecaster.predict(dataset)
    assert [f["id"] for f in answer["forecasts"]] == [f"s{i}" for i in range(6)]
    np.testing.assert_allclose([f["probability"] for f in answer["forecasts"]], expected_p, rtol=1e-6)
    assert [f["label"] for f in answer["forecasts"]] == expected_label.tolist()
    assert answer["n_flare"] == int(expected_label.sum()) and answer["n_samples"] == 6
    assert answer["threshold"] == pytest.approx(forecaster.threshold)
    assert answer["model"]["run_id"] == service_run_id(service)


def service_run_id(service) -> str:
    return requests.get(f"{service.url}/health", timeout=10).json()["run_id"]


def test_kaggle_lines_and_swansf_files_are_read_by_flareseqs_readers(service, forecaster, tmp_path):
    kaggle = write_synthetic_kaggle(tmp_path / "lines.jsonl", 4, seed=3, labelled=False)
    swan = write_synthetic_swansf(tmp_path / "swan", 3, seed=4)
    from_lines = requests.post(f"{service.url}/forecast/kaggle", data=kaggle.read_bytes(), timeout=30,
                               headers={"Content-Type": "application/x-ndjson"}).json()
    expected = forecaster.predict_proba(read_kaggle(kaggle, progress=False))
    np.testing.assert_allclose([f["probability"] for f in from_lines["forecasts"]], expected, rtol=1e-6)
    assert [f["id"] for f in from_lines["forecasts"]] == ["1", "2", "3", "4"]

    uploads = [("files", (p.name, p.read_bytes(), "text/csv")) for p in swan]
    uploads.append(("files", ("lines.jsonl", kaggle.read_bytes(), "application/x-ndjson")))
    from_files = requests.post(f"{service.url}/forecast/files", files=uploads, timeout=30).json()
    swan_data = read_swansf(tmp_path / "swan", progress=False)  # in its own (path) order
    by_id = dict(zip(swan_data.ids, forecaster.predict_proba(swan_data)))
    expected = np.concatenate([[by_id[p.name] for p in swan], expected])
    np.testing.assert_allclose([f["probability"] for f in from_files["forecasts"]], expected, rtol=1e-6)
    assert [f["id"] for f in from_files["forecasts"]] == [p.name for p in swan] + ["1", "2", "3", "4"]
    first, row = from_files["forecasts"][0], list(swan_data.ids).index(swan[0].name)
    assert first["region"] == swan_data.meta["region"][row]
    assert first["start"] == swan_data.meta["start"][row].isoformat()


def test_series_come_back_on_request_with_missing_values_as_null(service):
    dataset = synthetic_dataset(2, seed=5)
    X = dataset.X.copy()
    X[0, 2, dataset.feature_names.index("R_VALUE")] = np.nan
    dataset = dataset.with_X(X)
    plain = requests.post(f"{service.url}/forecast", json=arrays_body(dataset), timeout=30).json()
    assert "series" not in plain["forecasts"][0]
    answer = requests.post(f"{service.url}/forecast?series=true", json=arrays_body(dataset), timeout=30).json()
    series = answer["forecasts"][0]["series"]
    assert list(series) == FEATURES
    assert series["R_VALUE"][2] is None
    np.testing.assert_allclose(series["USFLUX"], X[0, :, dataset.feature_names.index("USFLUX")], rtol=1e-6)


# -- refusals ---------------------------------------------------------------------------------
def one_sample(**changes) -> dict:
    body = arrays_body(synthetic_dataset(1, seed=2), FEATURES)
    body.update(changes)
    return body


def short_sample() -> dict:
    body = one_sample()
    body["X"][0] = body["X"][0][:59]
    return body


def bad_value() -> dict:
    body = one_sample()
    body["X"][0][1][2] = "high"
    return body


def huge_value() -> dict:
    body = one_sample()
    body["X"][0][3][0] = 1e39
    return body


def short_row() -> dict:
    body = one_sample()
    body["X"][0][7] = body["X"][0][7][:2]
    return body


JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}

REFUSALS = [
    # (case, path, request keywords, status, field, words in the detail)
    ("wrong shape: 59 steps", "/forecast", {"json": short_sample()}, 422, "X[0]",
     "expected 60 time steps (the model's sequence length; X has shape (n_samples, 60, 3)"),
    ("wrong shape: a short row", "/forecast", {"json": short_row()}, 422, "X[0][7]",
     "expected 3 values, one per name in 'feature_names'"),
    ("missing features", "/forecast", {"json": {**arrays_body(synthetic_dataset(1), ["TOTUSJH", "R_VALUE"])}}, 422,
     "feature_names", "the model needs feature(s) ['USFLUX'] that 'feature_names' lacks"),
    ("duplicate feature", "/forecast", {"json": one_sample(feature_names=["TOTUSJH", "USFLUX", "USFLUX"])}, 422,
     "feature_names", "feature name 'USFLUX' appears twice"),
    ("a value that is no number", "/forecast", {"json": bad_value()}, 422, "X[0][1][2]",
     "expected a number or null (missing), found str 'high'"),
    ("a value beyond 1e30", "/forecast", {"json": huge_value()}, 422, "X[0][3][0]",
     "expected a number with |x| <= 1e+30 (SHARP keywords stay far below), found 1e+39."),
    ("unknown field", "/forecast", {"json": one_sample(values=[])}, 422, "values", "unknown field 'values'"),
    ("ids of another length", "/forecast", {"json": one_sample(ids=["a", "b"])}, 422, "ids",
     "expected a list of 1 sample ids"),
    ("not JSON", "/forecast", {"data": b"{X: 1", "headers": JSON}, 400, "body", "the body is not valid JSON"),
    ("not an object", "/forecast", {"json": [1, 2]}, 422, "body", "expected a JSON object"),
    ("wrong media type", "/forecast", {"data": b"X=1"}, 415, "Content-Type",
     "expected a body of media type application/json"),
    ("bad query", "/forecast?series=maybe", {"json": one_sample()}, 422, "series", "valid boolean"),
    ("unknown query", "/forecast?seris=true", {"json": one_sample()}, 422, "seris",
     "unknown query parameter 'seris'; it takes series."),
    ("Kaggle line too short", "/forecast/kaggle", {"data": None, "headers": NDJSON}, 422, "body",
     "request body, line 1: field 'TOTUSJH': expected a series of 60 time steps, found 59 time steps."),
    ("no files", "/forecast/files", {"data": {"x": "1"}}, 422, "files", "missing field 'files', which is required"),
    ("a file of another kind", "/forecast/files", {"files": [("files", ("notes.txt", b"hello"))]}, 415, "files[0]",
     "notes.txt: expected a SWAN-SF sample (.csv) or Kaggle BigData Cup JSON lines"),
    ("a SWAN-SF file misnamed", "/forecast/files", {"files": [("files", ("../../etc/sample.csv", b"a\tb\n"))]}, 422,
     "files[0]", "sample.csv: field 'file name': expected a SWAN-SF sample name"),
]


def short_kaggle_line(tmp_path) -> bytes:
    line = json.loads(write_synthetic_kaggle(tmp_path / "one.jsonl", 1, seed=1).read_text().replace("NaN", "null"))
    del line["values"]["TOTUSJH"]["59"]
    return json.dumps(line).encode()


@pytest.mark.parametrize(("case", "path", "options", "status", "field", "words"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_bad_requests_get_a_clear_4xx_naming_the_field(service, tmp_path, case, path, options, status, field, words):
    if case.startswith("Kaggle"):
        options = {**options, "data": short_kaggle_line(tmp_path)}
    response = requests.post(service.url + path, timeout=30, **options)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["field"] == field
    assert words in error["detail"]
    print(f"{case}: {response.status_code} {error}")


def test_limits_on_body_size_and_batch_size(served_model):
    limits = ServiceLimits(max_body_bytes=64 << 10, max_samples=3)
    with serve(served_model, limits=limits) as small:
        big = arrays_body(synthetic_dataset(40, seed=1), FEATURES)
        assert len(json.dumps(big)) > 64 << 10
        # declared too large: refused from the header, before the body is read
        response = requests.post(f"{small.url}/forecast", json=big, timeout=30)
        assert response.status_code == 413
        assert response.json()["field"] == "body"
        assert response.json()["detail"].startswith("the request body is too large: at most 65,536 bytes (0.0625 MiB), "
                                                    "found ")
        print(f"oversized body: {response.status_code} {response.json()}")
        # sent in chunks without a length: counted as it arrives
        payload = json.dumps(big).encode()
        chunks = (payload[i:i + 8192] for i in range(0, len(payload), 8192))
        response = requests.post(f"{small.url}/forecast", data=chunks, headers=JSON, timeout=30)
        assert response.status_code == 413 and response.json()["field"] == "body"
        # within the body limit, over the batch limit
        response = requests.post(f"{small.url}/forecast", json=arrays_body(synthetic_dataset(4, seed=1), ["R_VALUE",
                                 "USFLUX", "TOTUSJH"]) | {"X": [[[0.0] * 3] * 60] * 4}, timeout=30)
        assert response.status_code == 413 and response.json()["field"] == "X"
        assert "at most 3 samples per request, found 4" in response.json()["detail"]
        # and the service still answers
        assert requests.post(f"{small.url}/forecast", json=one_sample(), timeout=30).status_code == 200


def test_a_page_elsewhere_cannot_reach_a_loopback_service_by_another_name(service):
    response = requests.get(f"{service.url}/health", headers={"Host": "attacker.example:8080"}, timeout=10)
    assert response.status_code == 400 and response.json()["field"] == "Host"
    for host in ("localhost:1234", "127.0.0.1", "[::1]:80"):
        assert requests.get(f"{service.url}/health", headers={"Host": host}, timeout=10).status_code == 200


def test_a_source_of_todays_regions_gets_its_endpoint(served_model, service, forecaster):
    from flareseq.errors import FlareseqError

    regions = synthetic_dataset(3, seed=21)
    with serve(served_model, latest_regions=lambda: regions) as live:
        assert requests.get(f"{live.url}/health", timeout=10).json()["latest_regions"] is True
        answer = requests.get(f"{live.url}/forecast/latest-regions?series=true", timeout=30).json()
        np.testing.assert_allclose([f["probability"] for f in answer["forecasts"]], forecaster.predict_proba(regions),
                                   rtol=1e-6)
        assert [f["region"] for f in answer["forecasts"]] == list(regions.meta["region"])

    def offline():
        raise FlareseqError("the JSOC could not be reached")

    with serve(served_model, latest_regions=offline) as live:
        response = requests.get(f"{live.url}/forecast/latest-regions", timeout=30)
        assert response.status_code == 503
        assert response.json()["detail"] == "the latest regions are not available: the JSOC could not be reached"
    # without a source, no such endpoint
    assert requests.get(f"{service.url}/forecast/latest-regions", timeout=10).status_code == 404


# -- token ------------------------------------------------------------------------------------
def test_every_request_must_carry_the_token(served_model):
    with serve(served_model, token=TOKEN, allowed_hosts=None) as guarded:
        for path in ("/health", "/models", "/", "/openapi.json", "/static/page.js"):
            response = requests.get(guarded.url + path, timeout=10)
            assert response.status_code == 401, path
        response = requests.post(f"{guarded.url}/forecast", json=one_sample(), timeout=10,
                                 headers={"Authorization": "Bearer wrong-token-0123456789"})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.json()["field"] == "Authorization"
        assert response.json()["detail"].startswith("missing or wrong token: this service needs the header "
                                                    "'Authorization: Bearer <token>'")
        print(f"bad token: {response.status_code} {response.json()}")
        ok = requests.post(f"{guarded.url}/forecast", json=one_sample(), timeout=30,
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        # the page: /?token=... moves the token into a cookie and out of the address
        assert requests.get(f"{guarded.url}/?token=wrong-token-0123456789", timeout=10).status_code == 401
        browser = requests.Session()
        opened = browser.get(f"{guarded.url}/?token={TOKEN}", timeout=10, allow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        assert "HttpOnly" in opened.headers["set-cookie"] and "SameSite=Strict" in opened.headers["set-cookie"]
        assert browser.get(f"{guarded.url}/", timeout=10).status_code == 200
        assert browser.get(f"{guarded.url}/models", timeout=10).status_code == 200


def test_the_cli_refuses_a_remote_address_without_the_flag_and_a_token(capsys, monkeypatch):
    monkeypatch.delenv("FLARESEQ_SERVE_TOKEN", raising=False)
    assert main(["serve", "--model", "no-such-run", "--host", "0.0.0.0"]) == 2
    assert "--host 0.0.0.0 is not a loopback address" in capsys.readouterr().err
    assert main(["serve", "--model", "no-such-run", "--host", "0.0.0.0", "--allow-remote"]) == 2
    assert "--allow-remote needs a token" in capsys.readouterr().err
    assert main(["serve", "--model", "x", "--host", "0.0.0.0", "--allow-remote", "--token", "short"]) == 2
    assert "the token must be 16 to 256 characters" in capsys.readouterr().err


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                               ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                               ("10.1.2.3", False), ("example.org", False)])
def test_only_loopback_addresses_bind_without_the_flag(host, loopback):
    from flareseq.errors import FlareseqError
    from flareseq.forecasting.server import check_binding, is_loopback

    assert is_loopback(host) is loopback
    if loopback:  # answers only requests addressed to the loopback names
        assert check_binding(host, allow_remote=False, token=None) == frozenset(["127.0.0.1", "localhost", "[::1]",
                                                                                  "::1"])
    else:
        with pytest.raises(FlareseqError, match="is not a loopback address"):
            check_binding(host, allow_remote=False, token=TOKEN)
        with pytest.raises(FlareseqError, match="needs a token"):
            check_binding(host, allow_remote=True, token=None)
        assert check_binding(host, allow_remote=True, token=TOKEN) is None  # any Host: the token guards


# -- the model folder -------------------------------------------------------------------------
def saved_model_folder(tiny_run, target):
    import mlflow

    local = mlflow.artifacts.download_artifacts(f"runs:/{tiny_run.run_id}/model", dst_path=str(target),
                                                tracking_uri=f"sqlite:///{tiny_run.output_dir.resolve() / 'mlflow.db'}")
    return next(p.parent for p in sorted(target.rglob("forecaster.json"))), local


def test_a_folder_is_served_by_its_files_hash_and_no_code_in_it_runs(tiny_run, tmp_path):
    folder, model_dir = saved_model_folder(tiny_run, tmp_path / "model")
    # Code a loader that ran the artifact's Python (as mlflow.pyfunc.load_model does) would run.
    marker = tmp_path / "code-ran"
    trap = f"open({str(marker)!r}, 'w').write('ran')\n"
    for name in ("python_model.py", "__init__.py", "loader_module.py"):
        (folder / name).write_text(trap)
    pyfunc_code = list((tmp_path / "model").rglob("*.py"))
    assert pyfunc_code, "the logged MLflow model carries Python code"
    for code in pyfunc_code:
        code.write_text(trap)
    served = load_served_model(tmp_path / "model")
    assert served.identity.source == "folder" and served.identity.run_id is None
    assert served.identity.model_sha256.startswith("sha256:")
    p, _ = served.predict(synthetic_dataset(3, seed=9))
    assert p.shape == (3,) and not marker.exists()
    # the hash names the files: the same files, the same hash; a changed file, another
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert load_served_model(copy).identity.model_sha256 == served.identity.model_sha256
    state = json.loads((copy / "forecaster.json").read_text())
    state["threshold"] = 0.25
    (copy / "forecaster.json").write_text(json.dumps(state))
    assert load_served_model(copy).identity.model_sha256 != served.identity.model_sha256


def test_flareseq_serve_runs_the_service_with_a_token(tiny_run, tmp_path):
    folder, _ = saved_model_folder(tiny_run, tmp_path / "model")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "FLARESEQ_SERVE_TOKEN": TOKEN, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "flareseq", "serve", "--model", str(folder), "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = requests.get(f"{url}/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "flareseq serve did not start"
                time.sleep(0.3)
        assert health.status_code == 200
        assert requests.get(f"{url}/health", timeout=5).status_code == 401
        requests.get(f"{url}/?token={TOKEN}", timeout=5, allow_redirects=False)
        model = requests.get(f"{url}/models", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
        assert model["models"][0]["source"] == "folder"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}/ (token required)" in output
    assert "GET /?token=*** HTTP/1.1" in output and TOKEN not in output  # the access log hides it


def test_the_page_and_its_assets_load_nothing_from_elsewhere(service):
    import re

    page = requests.get(f"{service.url}/", timeout=10)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/", "/static/page.js", "/static/page.css"):
        text = requests.get(service.url + asset, timeout=10).text
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", text)) - {"http://www.w3.org"}  # the SVG namespace: a name
        assert not urls, f"{asset} refers to {urls}"
    assert requests.get(f"{service.url}/static/../pyproject.toml", timeout=10).status_code == 404


# -- real data ----------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_swansf_files_and_kaggle_lines_forecast_as_flareseq_predict_does(service, forecaster, shared_data):
    from flareseq.data import load_dataset

    folder = shared_data / "swan-sf-samples"
    files = sorted((folder / "mvts").glob("*.csv"))
    lines = folder / "bigdatacup_layout.jsonl"
    uploads = [("files", (p.name, p.read_bytes(), "text/csv")) for p in files]
    answer = requests.post(f"{service.url}/forecast/files", files=uploads, timeout=60).json()
    real = load_dataset(folder / "mvts", progress=False)
    by_id = dict(zip(real.ids, forecaster.predict_proba(real)))
    assert [f["id"] for f in answer["forecasts"]] == [p.name for p in files]
    np.testing.assert_allclose([f["probability"] for f in answer["forecasts"]], [by_id[p.name] for p in files],
                               rtol=1e-6)
    assert {f["region"] for f in answer["forecasts"]} >= {"3648", "3686"}  # HARP numbers from the names
    from_lines = requests.post(f"{service.url}/forecast/kaggle", data=lines.read_bytes(), headers=NDJSON,
                               timeout=60).json()
    np.testing.assert_allclose([f["probability"] for f in from_lines["forecasts"]],
                               forecaster.predict_proba(load_dataset(lines, progress=False)), rtol=1e-6)
