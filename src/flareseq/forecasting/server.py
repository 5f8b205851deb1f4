"""Running the forecast service: where it may listen, with which token, under uvicorn.

Security model (docs/serve.md says more):

- It listens on a loopback address unless told otherwise; another address needs
  ``allow_remote`` and a token, which every request must then carry.
- It serves the one model it was started with: no request names or loads a model, and the
  model is read from JSON, safetensors and npz files only (no pickle, no code from the artifact).
- Request bodies and batches are bounded (:class:`~flareseq.forecasting.guard.ServiceLimits`),
  as is the number of requests handled at once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable

from flareseq.data.dataset import FlareDataset
from flareseq.errors import FlareseqError
from flareseq.forecasting.guard import DEFAULT_LIMITS, LOOPBACK_HOSTS, ServiceLimits, is_valid_token
from flareseq.forecasting.served_model import ServedModel

TOKEN_ENV = "FLARESEQ_SERVE_TOKEN"
MAX_CONCURRENCY = 16
MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is on this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def resolve_token(given: str | None) -> str | None:
    """The token from ``--token``, else ``FLARESEQ_SERVE_TOKEN``, else None; checked."""
    token = given if given is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None and not is_valid_token(token):
        raise FlareseqError(
            f"the token must be 16 to 256 characters of A-Z, a-z, 0-9, '.', '_', '~', '-', found {len(token)} "
            f"characters; make one with: {MAKE_TOKEN}.")
    return token


def check_binding(host: str, *, allow_remote: bool, token: str | None) -> frozenset[str] | None:
    """Refuse a non-loopback ``host`` without ``allow_remote`` and a token; return the host
    names requests may address (the loopback names, or None for any when remote)."""
    if is_loopback(host):
        return LOOPBACK_HOSTS
    if not allow_remote:
        raise FlareseqError(
            f"--host {host} is not a loopback address: the service would be reachable from other machines. "
            f"Pass --allow-remote and a token (--token or {TOKEN_ENV}) that every request must carry, or serve on "
            "127.0.0.1 and reach it through an SSH tunnel.")
    if token is None:
        raise FlareseqError(f"--allow-remote needs a token that every request must carry: set {TOKEN_ENV} (or "
                            f"pass --token); make one with: {MAKE_TOKEN}.")
    return None


class RedactToken(logging.Filter):
    """Hide the value of ``token=`` in access-log lines (the page is opened as ``/?token=...``)."""

    pattern = re.compile(r"(token=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def build_server(model: ServedModel, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                 allow_remote: bool = False, limits: ServiceLimits = DEFAULT_LIMITS,
                 max_concurrency: int = MAX_CONCURRENCY, latest_regions: Callable[[], FlareDataset] | None = None,
                 log_level: str = "info"):
    """A ``uvicorn.Server`` for ``model`` (not yet started: call ``.run()``), after the
    binding checks of :func:`check_binding`."""
    import uvicorn

    from flareseq.forecasting.service import create_app

    allowed_hosts = check_binding(host, allow_remote=allow_remote, token=token)
    app = create_app(model, limits=limits, token=token, allowed_hosts=allowed_hosts, latest_regions=latest_regions)
    logging.getLogger("uvicorn.access").addFilter(RedactToken())
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, limit_concurrency=max_concurrency,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)
