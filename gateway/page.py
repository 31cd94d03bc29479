"""The web page (``/ui/``): static files shipped as package data (``gateway/static``, no build step, nothing
from a CDN), served with headers that keep it to its own origin, and the rule of which requests reach it
without an API key.

The page itself is open (it asks for the key and keeps it in the tab's session storage); every call it makes
to the API carries the key like any other client's.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
PAGE_PATH = "/ui"
PAGE_CONFIG_PATH = f"{PAGE_PATH}/config.json"
# Only this origin's scripts, styles and connections; the page's own blob: URLs (the result's audio, which the
# page may read back) and data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; media-src 'self' blob:; connect-src 'self' blob:; img-src 'self' data: blob:; "
    "object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate each load, so a new gateway version's page is never mixed with an old script.
    "Cache-Control": "no-cache",
}


class PageFiles(StaticFiles):
    """``gateway/static`` at ``/ui/`` (``index.html`` for the folder) with :data:`PAGE_HEADERS`."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR, html=True)

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(PAGE_HEADERS)
        return response


def page_paths() -> frozenset[str]:
    """The page's URL paths (its files and config), as the metrics label them."""
    files = {f"{PAGE_PATH}/{p.name}" for p in STATIC_DIR.iterdir() if p.is_file()}
    return frozenset({PAGE_PATH, f"{PAGE_PATH}/", PAGE_CONFIG_PATH, *files})


def is_browser_visit(scope: Scope) -> bool:
    """A browser opening the gateway's root: ``GET /`` with no query that accepts HTML. api.py's ``GET /`` always
    carries a query (its text), so such a visit is sent to the page instead."""
    if scope.get("method") != "GET" or scope.get("path") != "/" or scope.get("query_string"):
        return False
    return "text/html" in Headers(scope=scope).get("accept", "")


def is_open_page_request(scope: Scope) -> bool:
    """The page's own files and config, and a browser's visit to ``/`` that leads there: open with API keys on."""
    path = scope.get("path", "")
    return path == PAGE_PATH or path.startswith(f"{PAGE_PATH}/") or is_browser_visit(scope)
