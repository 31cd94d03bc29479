"""The gateway's domain errors and the ONE place that maps every error to a status code and a JSON body.

* ``gsv_triton.errors.InputError`` (a bad request input) -> its own status (400/413/415/422), field named;
* :class:`GatewayError` subclasses -> their ``status`` (403 path outside the root, 503 Triton down, 504 timeout);
* FastAPI's validation errors (missing or mistyped fields) -> 422 naming the first field at fault;
* Starlette's HTTP errors (404, 405) -> their status.
Anything else is an unexpected fault: :mod:`gsv_gateway.middleware` answers 500 with the request id only.

Every error body is built by :func:`error_body`, which also bounds what a message may echo of a client's input
(:func:`bounded`): a rule message is short, so a long one only ever is one quoting a long value, and it is cut
in the middle, keeping the field and rule at its start and what the client may send at its end.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gsv_triton.errors import GsvError, InputError

from .models import ErrorResponse

STATUS_FORBIDDEN = 403
STATUS_METHOD_NOT_ALLOWED = 405
STATUS_UNPROCESSABLE = 422
STATUS_INTERNAL = 500
STATUS_UNAVAILABLE = 503
STATUS_TIMEOUT = 504
# error messages longer than this are cut in the middle (a 1 MB field never comes back as a 2 MB body)
MAX_DETAIL_CHARS = 400
DETAIL_HEAD_CHARS = 240
DETAIL_TAIL_CHARS = 120
START_HINT = (
    "start it with `gsv-triton serve --model-repository REPO` "
    "(or run Triton and the gateway together: `gsv-triton up --model-repository REPO`)"
)


class GatewayError(GsvError):
    """An expected failure with an HTTP status and a message meant for the client."""

    status = STATUS_INTERNAL

    def __init__(self, message: str, field: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s  # sent as Retry-After: when trying again makes sense


class ServiceUnavailable(GatewayError):
    """Triton is unreachable, or up but its voice_clone model is not ready."""

    status = STATUS_UNAVAILABLE


class Overloaded(ServiceUnavailable):
    """More requests than the gateway or Triton admits at once: try again after ``retry_after_s``."""


class UpstreamTimeout(GatewayError):
    """Triton did not answer within the configured request timeout."""

    status = STATUS_TIMEOUT


class UpstreamFailure(GatewayError):
    """Triton failed inside (not the client's fault): a 500 whose detail stays generic."""

    status = STATUS_INTERNAL


class ForbiddenPath(GatewayError):
    """A refer_wav_path outside the configured reference directory (or reading paths is disabled)."""

    status = STATUS_FORBIDDEN


class NoReference(GatewayError):
    """api.py: a request lacks a reference field and no default reference is set."""

    status = 400


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


def bounded(detail: str) -> str:
    """``detail`` itself when it has at most MAX_DETAIL_CHARS characters, else its head and tail around a note
    of how many characters were left out."""
    if len(detail) <= MAX_DETAIL_CHARS:
        return detail
    left_out = len(detail) - DETAIL_HEAD_CHARS - DETAIL_TAIL_CHARS
    return f"{detail[:DETAIL_HEAD_CHARS]}... ({left_out} characters left out) ...{detail[-DETAIL_TAIL_CHARS:]}"


def error_body(status: int, detail: str, request_id: str, field: str | None = None) -> dict:
    detail = bounded(detail)
    return ErrorResponse(
        detail=detail,
        field=field,
        code=status,
        message=detail,
        request_id=request_id,
        service_available=status != STATUS_UNAVAILABLE,
    ).model_dump()


def error_response(request: Request, status: int, detail: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, detail, request_id_of(request), field), status_code=status)


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    return error_response(request, exc.status, f"{exc.field}: {exc.message}", exc.field)


async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
    response = error_response(request, exc.status, exc.message, exc.field)
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # loc is ("body" | "query" | ..., name, <union member or index>, ...): the name is what the client must fix.
    fields: dict[str, dict] = {}
    for error in exc.errors():
        names = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "form", "path", "header")]
        if error.get("type") == "json_invalid":
            names = ["body"]  # its loc is ("body", <character offset>): the offset names no field
        fields.setdefault(names[0] if names else "", error)
    field, first = next(iter(fields.items()), ("", {}))
    rule = "is required" if first.get("type") == "missing" else str(first.get("msg", "is invalid")).lower()
    detail = f"{field}: {rule}" if field else rule
    if len(fields) > 1:
        detail += f" (and {len(fields) - 1} more field{'s' if len(fields) > 2 else ''})"
    return error_response(request, STATUS_UNPROCESSABLE, detail, field or None)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = error_response(request, exc.status_code, str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    if exc.status_code == STATUS_METHOD_NOT_ALLOWED:
        # Starlette's Allow names the methods of the first route on the path only ("/" has GET and POST).
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping above on ``app``."""
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
