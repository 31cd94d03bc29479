"""The outermost layer of every HTTP request (a plain ASGI middleware, so responses are never buffered):

* an ``X-Request-ID`` on every response: the client's own when it sent a sane one, else a new one;
* the body-size guard: a declared or streamed body beyond the upload limit is answered 413 at once,
  before a multipart parser spools it anywhere;
* unexpected exceptions: logged with their traceback, answered 500 with the request id and no traceback;
* one structured access-log line and the Prometheus observations per request.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import STATUS_INTERNAL, error_body
from .logs import REQUEST_ID
from .metrics import UNMATCHED_ROUTE, GatewayMetrics

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
STATUS_TOO_LARGE = 413

access_log = logging.getLogger("gsv_gateway.access")
error_log = logging.getLogger("gsv_gateway.error")


def _json(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class RequestContextMiddleware:
    """See the module docstring. ``max_body_bytes`` bounds every request body; ``route_paths`` are the app's
    (parameter-free) route templates, used to label requests refused before the router saw them."""

    def __init__(
        self, app: ASGIApp, metrics: GatewayMetrics, max_body_bytes: int, route_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.route_paths = route_paths

    def _static_route(self, path: str) -> str:
        return path if path in self.route_paths else UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER, b"")
        request_id = incoming.decode() if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        start = time.perf_counter()
        scope.setdefault("state", {}).update(request_id=request_id, started=start)
        token = REQUEST_ID.set(request_id)
        state = {"status": STATUS_INTERNAL, "started": False, "answered": False}

        async def send_with_id(message: Message) -> None:
            if state["answered"]:
                return  # we already answered (413) while the app was still reading; drop its reply
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        async def reject_too_large() -> None:
            field = _body_field(headers)
            body = error_body(
                STATUS_TOO_LARGE,
                f"{field}: the request body is larger than {self.max_body_bytes} bytes (the upload limit "
                "GSV_MAX_UPLOAD_BYTES plus room for the form fields)",
                request_id,
                field,
            )
            await send_with_id(
                {"type": "http.response.start", "status": STATUS_TOO_LARGE,
                 "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]}
            )  # fmt: skip
            await send_with_id({"type": "http.response.body", "body": _json(body)})
            state["answered"] = True

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request" and not state["answered"]:
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if not state["started"]:  # (our routes read the whole body before they answer)
                        await reject_too_large()
                    return {"type": "http.disconnect"}
            return message

        try:
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await reject_too_large()
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception:
            if not state["answered"]:  # after our own 413 the app only saw a disconnect: not a fault
                error_log.exception("unexpected error", extra={"fields": {"path": scope.get("path")}})
                if not state["started"]:
                    body = error_body(
                        STATUS_INTERNAL, f"internal error; quote request id {request_id} when reporting it", request_id
                    )
                    await send_with_id(
                        {"type": "http.response.start", "status": STATUS_INTERNAL,
                         "headers": [(b"content-type", b"application/json")]}
                    )  # fmt: skip
                    await send_with_id({"type": "http.response.body", "body": _json(body)})
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or self._static_route(scope.get("path", ""))
            method = scope.get("method", "")
            self.metrics.observe(route, method, state["status"], seconds)
            access_log.info(
                "request",
                extra={"fields": {
                    "method": method, "path": scope.get("path"), "route": route, "status": state["status"],
                    "duration_ms": round(seconds * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                }},
            )  # fmt: skip
            REQUEST_ID.reset(token)


def _body_field(headers: dict[bytes, bytes]) -> str:
    """The field a too-large body is blamed on: the upload for multipart forms, else the body."""
    return "audio" if headers.get(b"content-type", b"").startswith(b"multipart/") else "body"
