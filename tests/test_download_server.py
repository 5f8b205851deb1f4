"""The download tests' HTTP server (tests/http_file_server.py) behaves as they assume."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import pytest

# -- the server itself behaves as the download tests assume ------------------------------


def _get(url: str, range_: str | None = None):
    request = urllib.request.Request(url, headers={"Range": range_} if range_ else {})
    return urllib.request.urlopen(request, timeout=5)


def test_server_answers_range_requests_with_206(file_server):
    file_server.files["/f"] = bytes(range(100))
    with _get(file_server.url + "/f", "bytes=40-") as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 40-99/100"
        assert response.read() == bytes(range(40, 100))


def test_server_without_range_support_answers_200_with_everything(file_server):
    file_server.files["/f"] = bytes(range(100))
    file_server.range_support = False
    with _get(file_server.url + "/f", "bytes=40-") as response:
        assert response.status == 200
        assert response.read() == bytes(range(100))


def test_server_drop_delivers_fewer_bytes_than_announced(file_server):
    file_server.files["/f"] = bytes(200)
    file_server.drops["/f"] = [50]
    with _get(file_server.url + "/f") as response:
        assert int(response.headers["Content-Length"]) == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
    assert len(info.value.partial) == 50


def test_server_error_statuses_then_the_file(file_server):
    file_server.files["/f"] = b"abc"
    file_server.statuses["/f"] = [503]
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(file_server.url + "/f")
    info.value.close()
    assert info.value.code == 503
    with _get(file_server.url + "/f") as response:
        assert response.read() == b"abc"
