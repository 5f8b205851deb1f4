"""A real HTTP server on 127.0.0.1 for the download tests (the ``file_server`` fixture in
conftest.py starts one per test).

It serves small in-memory files with or without HTTP Range support, can drop the
connection after a given number of body bytes, serve a corrupted copy, answer with error
statuses, and serve JSON (a Dataverse native-API answer). It records every request so a
test can check what the client asked for.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Seen:
    path: str
    range: str | None
    status: int


@dataclass
class FileServer:
    """State the handler serves from; tests change it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    json: dict[str, object] = field(default_factory=dict)
    range_support: bool = True
    drops: dict[str, list[int]] = field(default_factory=dict)  # path -> body bytes sent before each drop
    statuses: dict[str, list[int]] = field(default_factory=dict)  # path -> error statuses to answer first
    corrupt: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _Handler(BaseHTTPRequestHandler):
    server_version = "flareseq-test/1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _record(self, status: int) -> None:
        self.server.state.seen.append(Seen(urlsplit(self.path).path, self.headers.get("Range"), status))

    def do_GET(self) -> None:
        state: FileServer = self.server.state
        split = urlsplit(self.path)
        path = split.path
        key = path + (f"?{split.query}" if split.query else "")
        if key in state.json or path in state.json:
            body = json.dumps(state.json.get(key, state.json.get(path))).encode()
            self._record(200)
            self._send(200, body, {"Content-Type": "application/json"})
            return
        if state.statuses.get(path):
            status = state.statuses[path].pop(0)
            self._record(status)
            self._send(status, b'{"status":"ERROR","message":"test error"}', {})
            return
        if path not in state.files:
            self._record(404)
            self._send(404, b'{"status":"ERROR","message":"not found"}', {})
            return
        body = state.files[path]
        if path in state.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])  # same size, one byte flipped
        start, status, headers = 0, 200, {"Accept-Ranges": "bytes"} if state.range_support else {}
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and state.range_support:
            start = int(match.group(1))
            if start >= len(body):
                self._record(416)
                self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        payload = body[start:]
        self._record(status)
        drop = state.drops[path].pop(0) if state.drops.get(path) else None
        if drop is not None and drop < len(payload):
            self._send(status, payload[:drop], headers, length=len(payload))
            # The connection dies mid-body: the client got fewer bytes than Content-Length.
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self._send(status, payload, headers)

    def _send(self, status: int, body: bytes, headers: dict, length: int | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)


def start_file_server():
    """A running server and its state; stop it with ``stop()`` of the returned pair."""
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = state
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
        thread.join(5)

    return state, stop
