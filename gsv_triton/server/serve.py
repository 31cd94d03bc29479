"""``gsv-triton serve``: tritonserver in the foreground, supervised, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from types import FrameType

from gsv_triton.errors import UserError
from gsv_triton.server.supervisor import Launch, Supervisor
from gsv_triton.server.tritonserver import ANY_ADDRESS, TritonServerError

# The main thread wakes this often to notice a supervisor that gave up.
WAKE_S = 0.5


class _StopRequested(Exception):
    """Raised in the main thread by our SIGINT/SIGTERM handler."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def serve_main(
    model_repository: Path,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    address: str = ANY_ADDRESS,
) -> int:
    """Run tritonserver until Ctrl-C or SIGTERM; a model whose stub dies is reloaded and a server that dies is
    restarted (:class:`~gsv_triton.server.supervisor.Supervisor`).

    The server log passes through to stdout. The first signal drains in-flight requests and returns 0 on a
    clean exit; a second one kills the server at once. Returns 1 when the supervisor gave up restarting.
    """
    supervisor = Supervisor(Launch(Path(model_repository), http_port, grpc_port, metrics_port, address),
                            say=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            waited = supervisor.start()
            server = supervisor.server
            print(
                f"gsv-triton serve: ready in {waited:.1f} s on {address}: "
                f"HTTP {http_port}, gRPC {grpc_port}, metrics {metrics_port} "
                f"(tritonserver pid {server.pid}, {server.install.kind if server.install else '?'}); "
                "Ctrl-C to stop",
                flush=True,
            )
            while not supervisor.failed.wait(WAKE_S):
                pass
            print(f"gsv-triton serve: {supervisor.status().detail}", file=sys.stderr)
            return 1
        except TritonServerError as exc:
            # The log already went to stdout; one line is enough here.
            raise UserError(f"{exc.summary} (see its log above)") from exc
        except _StopRequested:
            pass
        print(
            "gsv-triton serve: stopping, draining in-flight requests (Ctrl-C again to kill)",
            file=sys.stderr,
            flush=True,
        )
        try:
            code = supervisor.stop()
        except _StopRequested:
            supervisor.kill()
            print("gsv-triton serve: killed", file=sys.stderr)
            return 1
        if code not in (0, None):
            print(f"gsv-triton serve: tritonserver exited with code {code}", file=sys.stderr)
            return 1
        print("gsv-triton serve: stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        with contextlib.suppress(_StopRequested):
            supervisor.kill()  # an unexpected exception: never leave an orphan server behind (no-op after stop)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
