"""What every request passes before it reaches the forecast service: host, token, body size.

:class:`Guard` is a plain ASGI middleware, so a refused request is answered from its headers
alone, before any of its body is read:

- **Host**: a service bound to a loopback address answers only requests addressed to
  ``127.0.0.1``, ``localhost`` or ``[::1]``; this stops a web page from reaching it through a
  domain that resolves to 127.0.0.1 (DNS rebinding).
- **Token**: when the service has one (required off loopback), each request carries it as
  ``Authorization: Bearer <token>``, or in the cookie the page gets when opened as
  ``/?token=<token>``; tokens are compared in constant time.
- **Body size**: a declared ``Content-Length`` over the limit is refused at once; a body
  sent without one is counted as it arrives, and refused when it passes the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

import orjson
from starlette.exceptions import HTTPException

TOKEN_COOKIE = "flareseq_token"
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")  # safe in a header, a cookie and a URL
LOOPBACK_HOSTS = frozenset(["127.0.0.1", "localhost", "[::1]", "::1"])


@dataclass(frozen=True)
class ServiceLimits:
    """The largest request the service takes.

    Attributes
    ----------
    max_body_bytes : request body size (413 past it).
    max_samples : samples in one request (413 past it).
    """

    max_body_bytes: int = 32 << 20
    max_samples: int = 1024


DEFAULT_LIMITS = ServiceLimits()


class BodyTooLarge(HTTPException):
    """A body without a (truthful) ``Content-Length`` that grew past the limit while read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large_message(limit))
        self.field = "body"


def body_too_large_message(limit: int, found: int | None = None) -> str:
    size = f"{found:,} bytes" if found is not None else "more"
    return (f"the request body is too large: at most {limit:,} bytes ({limit / 2**20:g} MiB), found {size}; "
            "send fewer samples per request (the server's --max-body-mb sets the limit).")


class Guard:
    """ASGI middleware checking host, token and body size (see the module's docstring).

    Parameters
    ----------
    app : the ASGI application behind it.
    token : the token every request must carry, or None for none.
    allowed_hosts : host names (without port) that requests may address; None for any.
    max_body_bytes : the largest request body.
    """

    def __init__(self, app, *, token: str | None, allowed_hosts: frozenset[str] | None, max_body_bytes: int) -> None:
        self.app = app
        self.token_digest = None if token is None else _digest(token)
        self.allowed_hosts = allowed_hosts
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = _host_name(headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            await _refuse(send, 400, "Host", f"the Host header names {host[:80]!r}, which is not this service's "
                          "address; a service on a loopback address answers only requests to 127.0.0.1, localhost "
                          "or [::1] (start it with --allow-remote to serve other addresses).")
            return
        if self.token_digest is not None:
            page_token = _query_token(scope)
            if page_token is not None and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
                await self._open_page(page_token, send)
                return
            if not self._carries_token(headers):
                await _refuse(send, 401, "Authorization", "missing or wrong token: this service needs the header "
                              "'Authorization: Bearer <token>' (the token it was started with, --token or "
                              "FLARESEQ_SERVE_TOKEN); in a browser, open /?token=<token> once.",
                              extra=[(b"www-authenticate", b"Bearer")])
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, 413, "body", body_too_large_message(self.max_body_bytes, int(declared)))
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive):
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return counted

    def _matches(self, candidate: str | None) -> bool:
        # Compare digests of equal length in constant time: neither content nor length leaks.
        return candidate is not None and hmac.compare_digest(_digest(candidate), self.token_digest)

    def _carries_token(self, headers: dict[str, str]) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._matches(value.strip()):
            return True
        return self._matches(_cookie_token(headers.get("cookie", "")))

    async def _open_page(self, token: str, send) -> None:
        """``/?token=...``: the page, by a redirect that moves the token into a cookie (so it
        leaves the address bar and history), or 401."""
        if not self._matches(token):
            await _refuse(send, 401, "token", "wrong token in the address: open /?token=<token> with the token "
                          "the service was started with (--token or FLARESEQ_SERVE_TOKEN).")
            return
        cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode()
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie), (b"cache-control", b"no-store"),
                                (b"referrer-policy", b"no-referrer"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def is_valid_token(token: str) -> bool:
    """A token the guard accepts: 16 to 256 characters of ``A-Z a-z 0-9 . _ ~ -``."""
    return bool(TOKEN_PATTERN.match(token))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _host_name(host: str) -> str:
    """The host of a Host header, without its port (``[::1]:8080`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _query_token(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _cookie_token(header: str) -> str | None:
    if not header:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(header)
    except CookieError:
        return None
    morsel = cookie.get(TOKEN_COOKIE)
    return None if morsel is None else morsel.value


async def _refuse(send, status: int, field: str, detail: str, extra: list | None = None) -> None:
    body = orjson.dumps({"detail": detail, "field": field})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
