"""The outermost layer of every HTTP request (a plain ASGI middleware, so responses are never buffered):

* an ``X-Request-ID`` on every response: the client's own when it sent a sane one, else a new one;
* the body-size guard: a declared or streamed body beyond the upload limit is answered 413 at once,
  before a multipart parser spools it anywhere;
* the body-time guard: a body still incomplete ``GSV_BODY_READ_TIMEOUT_S`` after the request's headers (a client
  trickling it) is answered 408 naming ``body``, and the connection is closed;
* a client that goes away before its answer (mid-upload, say) is logged as such, without a traceback, and
  counted with status 499 (nginx's "client closed request"), whatever the app made of the lost body;
* unexpected exceptions: logged with their traceback, answered 500 with the request id and no traceback;
* one structured access-log line and the Prometheus observations per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gsv_triton.errors import GsvError
from gsv_triton.settings import DEFAULT_BODY_READ_TIMEOUT_S

from .errors import STATUS_INTERNAL, error_body
from .logs import REQUEST_ID
from .metrics import UNMATCHED_ROUTE, GatewayMetrics

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
STATUS_TOO_LARGE = 413
STATUS_BODY_TIMEOUT = 408
STATUS_CLIENT_CLOSED = 499  # nginx's convention: the client closed the connection before the answer

access_log = logging.getLogger("gsv_gateway.access")
error_log = logging.getLogger("gsv_gateway.error")
client_log = logging.getLogger("gsv_gateway.client")


def _json(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class RequestContextMiddleware:
    """See the module docstring. ``max_body_bytes`` bounds every request body; ``route_paths`` are the app's
    (parameter-free) route templates, used to label requests refused before the router saw them;
    ``body_read_timeout_s`` bounds the time to receive a body (None: the app's ``settings.body_read_timeout_s``)."""

    def __init__(
        self, app: ASGIApp, metrics: GatewayMetrics, max_body_bytes: int, route_paths: frozenset[str] = frozenset(),
        body_read_timeout_s: float | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.route_paths = route_paths
        self.body_read_timeout_s = body_read_timeout_s

    def _static_route(self, path: str) -> str:
        return path if path in self.route_paths else UNMATCHED_ROUTE

    def _body_timeout(self, scope: Scope) -> float:
        if self.body_read_timeout_s is not None:
            return self.body_read_timeout_s
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        return float(getattr(settings, "body_read_timeout_s", DEFAULT_BODY_READ_TIMEOUT_S))

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
        state = {"status": STATUS_INTERNAL, "started": False, "answered": False, "client_gone": False}

        async def send_with_id(message: Message) -> None:
            if state["answered"]:
                return  # we already answered (413) while the app was still reading; drop its reply
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        async def reject(status: int, field: str, detail: str) -> None:
            """Answer now, while the app may still be reading (it is told the client went away)."""
            body = _json(error_body(status, f"{field}: {detail}", request_id, field))
            await send_with_id(
                {"type": "http.response.start", "status": status,
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                             (b"connection", b"close")]}
            )  # fmt: skip
            await send_with_id({"type": "http.response.body", "body": body})
            state["answered"] = True

        async def reject_too_large() -> None:
            await reject(
                STATUS_TOO_LARGE, _body_field(headers), f"the request body is larger than {self.max_body_bytes} "
                "bytes (the upload limit GSV_MAX_UPLOAD_BYTES plus room for the form fields)",
            )  # fmt: skip

        received = 0
        body_complete = False
        body_timeout = self._body_timeout(scope)
        body_deadline = asyncio.get_running_loop().time() + body_timeout

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete or state["answered"]:
                message = await receive()  # past the body (a stream waiting for a disconnect): no deadline
            else:
                try:
                    async with asyncio.timeout_at(body_deadline):
                        message = await receive()
                except TimeoutError:
                    client_log.warning("request body too slow", extra={"fields": {
                        "path": scope.get("path"), "received_bytes": received, "timeout_s": body_timeout}})  # fmt: skip
                    if not state["started"]:
                        await reject(STATUS_BODY_TIMEOUT, "body", f"the request body was not received within "
                                     f"{body_timeout:g} s (GSV_BODY_READ_TIMEOUT_S); send it at once")  # fmt: skip
                    state["answered"] = True
                    return {"type": "http.disconnect"}
            if message["type"] == "http.request" and not state["answered"]:
                body_complete = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if not state["started"]:  # (our routes read the whole body before they answer)
                        await reject_too_large()
                    return {"type": "http.disconnect"}
            elif message["type"] == "http.disconnect" and not state["started"]:
                state["client_gone"] = True
            return message

        try:
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await reject_too_large()
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            # after our own 413/408 the app only saw a disconnect, and a client that went away left the app a body
            # cut short: neither is a fault
            if isinstance(exc, GsvError) and state["started"]:
                # an expected failure after the status was sent (a stream's later piece timed out): uvicorn closes
                # the connection without the final chunk, which the client sees as an incomplete body
                client_log.warning("response cut short after it started", extra={"fields": {
                    "path": scope.get("path"), "reason": str(exc)}})  # fmt: skip
            elif not state["answered"] and not state["client_gone"]:
                error_log.exception("unexpected error", extra={"fields": {"path": scope.get("path")}})
                if not state["started"]:  # (uvicorn drops what is sent to a client that left)
                    body = error_body(
                        STATUS_INTERNAL, f"internal error; quote request id {request_id} when reporting it", request_id
                    )
                    await send_with_id(
                        {"type": "http.response.start", "status": STATUS_INTERNAL,
                         "headers": [(b"content-type", b"application/json")]}
                    )  # fmt: skip
                    await send_with_id({"type": "http.response.body", "body": _json(body)})
        finally:
            if state["client_gone"] and not state["answered"]:
                state["status"] = STATUS_CLIENT_CLOSED  # not the 400/500 the app answered into the void
                client_log.info("client disconnected before the response", extra={"fields": {
                    "path": scope.get("path"), "received_bytes": received}})  # fmt: skip
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
