"""Kaggle: the credential check, unzipping and checking the competition files, the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from flareseq.data.download.kaggle import (
    KAGGLE_COMPETITION,
    KAGGLE_FILES,
    check_kaggle_files,
    download_kaggle,
    extract_zip,
    find_kaggle_credentials,
    kaggle_config_dir,
    unpack_kaggle_archives,
)
from flareseq.errors import DataFormatError, DownloadError, MissingDependencyError

SECRET = "0123456789abcdef-not-a-real-key"
LINE = b'{"id": 1, "classNum": 0, "fold": 1, "values": {"TOTUSJH": {"0": NaN}}}\n'


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _contents() -> dict[str, bytes]:
    return {name: LINE * (i + 1) for i, name in enumerate(KAGGLE_FILES)}


# -- credentials ------------------------------------------------------------------------------


def test_credentials_from_the_environment(tmp_path):
    env = {"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": SECRET}
    source = find_kaggle_credentials(env, home=tmp_path)
    assert source == "environment variables KAGGLE_USERNAME and KAGGLE_KEY"
    assert SECRET not in source


def test_credentials_from_kaggle_json_in_home_or_config_dir(tmp_path):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "someone", "key": SECRET}))
    assert find_kaggle_credentials({}, home=home) == str(home / ".kaggle" / "kaggle.json")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "kaggle.json").write_text(json.dumps({"username": "someone", "key": SECRET}))
    assert find_kaggle_credentials({"KAGGLE_CONFIG_DIR": str(other)}, home=home) == str(other / "kaggle.json")


def test_missing_credentials_say_where_to_put_them(tmp_path):
    with pytest.raises(DownloadError) as info:
        find_kaggle_credentials({}, home=tmp_path)
    message = str(info.value)
    expected_file = kaggle_config_dir({}, tmp_path) / "kaggle.json"
    assert "no Kaggle API credentials found" in message
    assert "KAGGLE_USERNAME" in message and "KAGGLE_KEY" in message and str(expected_file) in message
    assert "https://www.kaggle.com/settings" in message


def test_half_a_credential_pair_is_named(tmp_path):
    with pytest.raises(DownloadError, match=r"KAGGLE_USERNAME is set but KAGGLE_KEY is not"):
        find_kaggle_credentials({"KAGGLE_USERNAME": "someone"}, home=tmp_path)


@pytest.mark.parametrize(
    "content, found",
    [
        (json.dumps({"user": "someone", "key": SECRET}), r"found the keys \['key', 'user'\]"),
        ('{"username": "someone", "key": ', "found not a JSON object"),
        (json.dumps([SECRET]), "found not a JSON object"),
    ],
)
def test_malformed_kaggle_json_names_the_keys_never_the_values(tmp_path, content, found):
    (tmp_path / "kaggle.json").write_text(content)
    with pytest.raises(DownloadError, match=found) as info:
        find_kaggle_credentials({"KAGGLE_CONFIG_DIR": str(tmp_path)}, home=tmp_path)
    assert str(tmp_path / "kaggle.json") in str(info.value)
    assert SECRET not in str(info.value)


def test_client_missing_is_reported_with_the_install_command(tmp_path, monkeypatch):
    # Credentials are present, so the next step is importing the client; make it absent.
    monkeypatch.setitem(sys.modules, "kaggle", None)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    with pytest.raises(MissingDependencyError, match=r"pip install 'flareseq\[kaggle\]'"):
        download_kaggle(tmp_path / "kaggle", progress=False)


# -- unzip and check ----------------------------------------------------------------------------


def test_bundle_of_individually_zipped_files_is_unpacked_and_checked(tmp_path):
    contents = _contents()
    inner = {f"{name}.zip": _zip({name: data}) for name, data in contents.items()}
    (tmp_path / f"{KAGGLE_COMPETITION}.zip").write_bytes(_zip(inner))
    unpack_kaggle_archives(tmp_path, progress=False)
    found = check_kaggle_files(tmp_path)
    assert {name: path.read_bytes() for name, path in found.items()} == contents
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(KAGGLE_FILES)  # zips removed


def test_files_in_a_subfolder_are_moved_to_the_top(tmp_path):
    contents = _contents()
    (tmp_path / "bundle.zip").write_bytes(_zip({f"data/{name}": data for name, data in contents.items()}))
    unpack_kaggle_archives(tmp_path, keep_archives=True, progress=False)
    found = check_kaggle_files(tmp_path)
    assert all(path.parent == tmp_path for path in found.values())
    assert (tmp_path / "bundle.zip").exists()


def test_missing_competition_file_is_named(tmp_path):
    contents = _contents()
    del contents["fold3Training.json"]
    (tmp_path / "bundle.zip").write_bytes(_zip(contents))
    unpack_kaggle_archives(tmp_path, progress=False)
    with pytest.raises(DownloadError, match=r"missing fold3Training\.json\. Found: fold1Training\.json, "
                       r"fold2Training\.json, testSet\.json\. Run `flareseq download kaggle .*--force`"):
        check_kaggle_files(tmp_path)


def test_zip_members_that_escape_are_refused_before_anything_is_written(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "bad.zip").write_bytes(_zip({"fold1Training.json": LINE, "../escaped.json": LINE}))
    with pytest.raises(DataFormatError, match=r"bad\.zip: field '\.\./escaped\.json'"):
        extract_zip(tmp_path / "dest" / "bad.zip", tmp_path / "dest", progress=False)
    assert not (tmp_path / "escaped.json").exists()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["bad.zip"]


def test_damaged_zip_is_a_format_error(tmp_path):
    data = bytearray(_zip({"fold1Training.json": LINE * 50}))
    data[len(data) // 3] ^= 0xFF  # damage the compressed body: the CRC check catches it
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"expected a complete zip archive"):
        extract_zip(tmp_path / "bad.zip", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor its .part


def test_existing_files_need_no_credentials_and_no_client(tmp_path, monkeypatch):
    for name, data in _contents().items():
        (tmp_path / name).write_bytes(data)
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.setitem(sys.modules, "kaggle", None)
    assert set(download_kaggle(tmp_path, progress=False)) == set(KAGGLE_FILES)


# -- command line ------------------------------------------------------------------------------


def test_cli_without_credentials_explains_and_never_imports_the_client(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(tmp_path), KAGGLE_CONFIG_DIR=str(tmp_path / "cfg"))
    code = (
        "import sys; from flareseq.cli import main; rc = main(sys.argv[1:]); "
        "print('client imported' if 'kaggle' in sys.modules else 'client not imported'); sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code, "download", "kaggle", "--dest", str(tmp_path / "k")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("flareseq download: error: no Kaggle API credentials found")
    assert str(tmp_path / "cfg" / "kaggle.json") in run.stderr
    assert "client not imported" in run.stdout
    assert not (tmp_path / "k").exists() and not (tmp_path / "cfg").exists()


@pytest.mark.parametrize(
    "status, match",
    [
        (403, r"\(HTTP 403\): Kaggle refused access: accept the competition's rules at "
              r"https://www\.kaggle\.com/competitions/bigdata2019-flare-prediction/rules"),
        (401, r"\(HTTP 401\): Kaggle rejected the credentials"),
        (404, r"\(HTTP 404\): there is no competition 'bigdata2019-flare-prediction'"),
        (500, r"with the Kaggle client failed: HTTPError: 500 Server Error"),
    ],
)
def test_client_http_errors_become_messages_with_the_fix(status, match):
    requests = pytest.importorskip("requests")  # the Kaggle client's HTTP library
    from flareseq.data.download.kaggle import _client_error

    response = requests.Response()
    response.status_code, response.url, response.reason = status, "https://api.kaggle.com/v1/x", "Server Error"
    try:
        response.raise_for_status()
    except requests.HTTPError as exc:
        error = _client_error(exc, KAGGLE_COMPETITION)
    assert isinstance(error, DownloadError)
    assert re.search(match, str(error)), str(error)
