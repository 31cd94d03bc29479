"""Running the gateway under uvicorn: in the foreground (``gsv-triton gateway`` / ``up``) or in a background
thread (the demo, tests).

The listening socket is bound before uvicorn starts, so a port in use is one clear error line instead of a
uvicorn log and exit code. uvicorn re-raises the signal that stopped it once it has shut down; the foreground
runner installs its own handlers first, so that re-raise ends in a flag instead of a KeyboardInterrupt trace.

Slow clients: uvicorn closes an idle keep-alive connection after ``GSV_KEEP_ALIVE_TIMEOUT_S`` but bounds neither
the time nor the size of a request's headers (a connection that sends nothing is held for ever). Its httptools
protocol is run here with those two bounds added (:func:`bounded_protocol`): headers not complete within
``GSV_HEADER_READ_TIMEOUT_S`` of the connection or of the request's first byte, or larger than
``GSV_MAX_HEADER_BYTES``, end the connection (408 or 431 when the client had started a request). The body's
deadline is the middleware's (``GSV_BODY_READ_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType

import uvicorn

from gsv_triton.errors import UserError
from gsv_triton.settings import Settings

from .app import create_app
from .errors import error_body
from .logs import configure_logging
from .models import SupervisorHealth
from .references import check_startup_paths
from .voices import VoiceStore

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# In-flight requests get this long to finish after Ctrl-C/SIGTERM before connections are closed.
GRACEFUL_SHUTDOWN_S = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_POLL_S = 0.02
STATUS_HEADER_TIMEOUT = 408
STATUS_HEADER_TOO_LARGE = 431
REASONS = {STATUS_HEADER_TIMEOUT: b"Request Timeout", STATUS_HEADER_TOO_LARGE: b"Request Header Fields Too Large"}

client_log = logging.getLogger("gsv_gateway.client")


def bounded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[asyncio.Protocol] | str:
    """uvicorn's httptools HTTP protocol with a deadline and a size cap on each request's headers, or "h11" with
    its size cap only where httptools is missing (uvicorn[standard] installs it)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Headers are awaited from the connection's start and from each request's first byte (parser callback
        ``on_message_begin``) until ``on_headers_complete``; between requests uvicorn's keep-alive timer runs."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            super().connection_made(transport)  # type: ignore[arg-type]
            self._header_bytes = 0
            self._header_timer: asyncio.TimerHandle | None = None
            self._await_headers()

        def _await_headers(self) -> None:
            self._header_bytes = 0
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _headers_done(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._await_headers()

        def on_headers_complete(self) -> None:
            self._headers_done()
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and not self.transport.is_closing():
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self._refuse(STATUS_HEADER_TOO_LARGE, f"headers: the request headers are larger than "
                                 f"{max_header_bytes} bytes (GSV_MAX_HEADER_BYTES)")  # fmt: skip

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_done()
            super().connection_lost(exc)

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self._header_bytes == 0 and (self.cycle is None or self.cycle.response_complete):
                client_log.info("idle connection closed", extra={"fields": {
                    "client": (self.client or ("", 0))[0], "timeout_s": header_timeout_s}})  # fmt: skip
                self.transport.close()  # nothing was asked: nothing to answer
                return
            self._refuse(STATUS_HEADER_TIMEOUT, f"headers: the request headers were not received within "
                         f"{header_timeout_s:g} s (GSV_HEADER_READ_TIMEOUT_S)")  # fmt: skip

        def _refuse(self, status: int, detail: str) -> None:
            """Answer ``status`` outside the app (no request exists yet) and close the connection."""
            self._headers_done()
            client_log.warning("request refused before its headers were complete", extra={"fields": {
                "client": (self.client or ("", 0))[0], "status": status, "detail": detail}})  # fmt: skip
            body = json.dumps(error_body(status, detail, uuid.uuid4().hex, "headers")).encode("utf-8")
            head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            self.transport.write(head % (status, REASONS[status], len(body)) + body)
            self.transport.close()

    return BoundedHttpToolsProtocol


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); UserError when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(socket.SOMAXCONN)
    sock.set_inheritable(True)
    return sock


class GatewayServer:
    """One uvicorn server of the gateway app on an already bound socket."""

    def __init__(
        self,
        settings: Settings,
        host: str = "0.0.0.0",
        port: int = 8080,
        supervisor_status: Callable[[], SupervisorHealth] | None = None,
    ) -> None:
        """``supervisor_status``: the state of the supervisor running Triton beside us (``gsv-triton up``)."""
        # Fail before binding anything when a configured path is unusable (one line, not a lifespan trace).
        check_startup_paths(settings)
        VoiceStore(settings.voice_dir)  # creates the voice directory, or one clear line why it cannot
        self.settings = settings
        self.socket = bind_socket(host, port)
        self.host = host
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(
            create_app(settings, supervisor_status),
            log_config=None,
            access_log=False,  # the middleware writes one structured line per request instead
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            http=bounded_protocol(settings.header_read_timeout_s, settings.max_header_bytes),
            h11_max_incomplete_event_size=settings.max_header_bytes,  # the size cap where h11 serves instead
            timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]  (a float works)
        )
        self.server = uvicorn.Server(config)

    @property
    def url(self) -> str:
        host = LOOPBACK if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve until asked to exit (blocking)."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.close()

    def request_exit(self) -> None:
        self.server.should_exit = True

    def close(self) -> None:
        """Release the port of a server that will not run (idempotent)."""
        self.socket.close()


def run_foreground(server: GatewayServer, on_start: Callable[[], None] | None = None) -> int:
    """Run ``server`` in the main thread until Ctrl-C/SIGTERM (graceful: in-flight requests finish)."""
    stopped: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    try:
        if on_start is not None:
            on_start()
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def serve(settings: Settings, host: str = "0.0.0.0", port: int = 8080) -> int:
    """``gsv-triton gateway``: structured logs to stderr, serve until Ctrl-C/SIGTERM; returns the exit status."""
    configure_logging(settings.log_level)
    server = GatewayServer(settings, host, port)
    print(
        f"gsv-triton gateway: listening on {server.url} (Triton gRPC {settings.triton_url}); "
        "POST /v1/voice-clone, /v1/voices, /v1/audio/speech, api.py routes /, /change_refer; /health, /metrics, "
        "/docs; Ctrl-C to stop",
        flush=True,
    )
    return run_foreground(server)


class BackgroundGateway:
    """The gateway in a daemon thread of this process: ``with BackgroundGateway(settings) as gw: gw.url``."""

    def __init__(self, settings: Settings, host: str = LOOPBACK, port: int = 0) -> None:
        self._server = GatewayServer(settings, host, port)
        self._thread = threading.Thread(target=self._server.run, name="gsv-gateway", daemon=True)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> BackgroundGateway:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.server.started:
            if not self._thread.is_alive():
                raise UserError("the gateway stopped during start-up (see its log)")
            if time.monotonic() > deadline:
                raise UserError(f"the gateway did not start within {timeout:g} s")
            time.sleep(_POLL_S)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._server.request_exit()
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
