"""The forecast service's page: one HTML file, its script and its style, all served here.

Nothing is loaded from elsewhere (no CDN, no web fonts), so the page works offline; the
Content-Security-Policy says so to the browser too: scripts, styles and requests only from
this service. The script draws each sample's series as inline SVG and writes every value
from the server as text, never as HTML.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response

STATIC = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return files("flareseq.forecasting").joinpath("static", name).read_bytes()


def register_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its two assets under ``/static/`` (no other file: the
    name is looked up in a fixed table, never joined to a path)."""

    @app.get("/", include_in_schema=False)
    def page():
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/page.js", include_in_schema=False)
    def script():
        return Response(_asset("page.js"), media_type=STATIC["page.js"], headers=PAGE_HEADERS)

    @app.get("/static/page.css", include_in_schema=False)
    def style():
        return Response(_asset("page.css"), media_type=STATIC["page.css"], headers=PAGE_HEADERS)
