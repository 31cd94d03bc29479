"""Optional bearer API keys (``GSV_API_KEYS``): with keys configured every route but the open ones needs
``Authorization: Bearer <key>``; without keys the gateway is open, as before.

Open routes: ``/health`` (load balancers and orchestrators probe it without credentials), ``/metrics``
(Prometheus scrapers), the API description (``/docs``, ``/redoc``, ``/openapi.json``), which reveal nothing
but the schema, and the web page (``/ui/``: its files and config; it asks for the key and sends it with every
API call it makes). The check runs before the body is read, so an unauthenticated upload costs nothing.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body
from .page import is_open_page_request

STATUS_UNAUTHORIZED = 401
OPEN_PATHS = frozenset({"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
SCHEME = b"bearer "
FIELD = "authorization"


def key_matches(presented: bytes, keys: frozenset[bytes]) -> bool:
    """Constant-time comparison against every key (no early exit that would time which one is close)."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented, key)
    return found


class ApiKeyMiddleware:
    """Refuse requests without a valid bearer key with 401 (JSON error body, ``WWW-Authenticate: Bearer``)."""

    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        self.app = app
        self.keys = frozenset(k.encode("utf-8") for k in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope.get("path") in OPEN_PATHS or is_open_page_request(scope):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        if header[: len(SCHEME)].lower() == SCHEME and key_matches(header[len(SCHEME) :].strip(), self.keys):
            await self.app(scope, receive, send)
            return
        detail = (
            f"{FIELD}: a valid API key is required: send the header 'Authorization: Bearer <key>'"
            if not header else f"{FIELD}: the API key is not valid"
        )  # fmt: skip
        request_id = scope.get("state", {}).get("request_id", "-")
        body = json.dumps(error_body(STATUS_UNAUTHORIZED, detail, request_id, FIELD)).encode("utf-8")
        await send({
            "type": "http.response.start", "status": STATUS_UNAUTHORIZED,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="gsv-triton"')],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
