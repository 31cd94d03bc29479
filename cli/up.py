"""``gsv-triton up``: tritonserver and the gateway together, started together and stopped together.

Order: the gateway's port is bound first (a taken port fails before Triton spends time loading), then
tritonserver starts and must become ready, then the gateway serves. Ctrl-C or SIGTERM stops the gateway
gracefully (in-flight requests finish), then Triton drains and exits. Triton runs under a
:class:`~gsv_triton.server.supervisor.Supervisor`: a model whose stub dies is reloaded, and a Triton that dies is
restarted (its leftover stubs killed, its shared memory unlinked) while the gateway answers 503 and its
``/health`` says why. Only when Triton does not come back after several starts are both stopped, with a
non-zero exit status, so an outer supervisor notices.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from gsv_triton.errors import UserError
from gsv_triton.server.supervisor import Launch, Supervisor
from gsv_triton.server.tritonserver import LOOPBACK, SERVE_READY_TIMEOUT_S, TritonServerError

DEFAULT_TRITON_PORTS = (8000, 8001, 8002)  # HTTP, gRPC, metrics: Triton's own defaults
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_TRITON_DIED = 1


class _StopRequested(Exception):
    """Raised in the main thread by a signal while Triton is starting."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    """``gsv-triton up`` flags: the repository, Triton's ports and address, and every gateway flag."""
    from gsv_gateway.cli import add_gateway_arguments

    parser.add_argument("--model-repository", required=True, help="exported model repository (gsv-triton export)")
    parser.add_argument("--triton-http-port", type=int, default=DEFAULT_TRITON_PORTS[0])
    parser.add_argument("--triton-grpc-port", type=int, default=DEFAULT_TRITON_PORTS[1])
    parser.add_argument("--triton-metrics-port", type=int, default=DEFAULT_TRITON_PORTS[2])
    parser.add_argument(
        "--triton-address", default=LOOPBACK, help="Triton's bind address (default 127.0.0.1: only the gateway)"
    )
    parser.add_argument(
        "--unary-over-http", action="store_true",
        help="send unary inference over Triton's HTTP endpoint (about 2 ms less per request; a client that goes "
        "away then no longer cancels Triton's work, which ends at the request's deadline instead)",
    )  # fmt: skip
    add_gateway_arguments(parser, with_triton_url=False)


def up_main(args: argparse.Namespace) -> int:
    """Run Triton and the gateway in the foreground until Ctrl-C/SIGTERM; returns the exit status."""
    from gsv_gateway.cli import settings_from_args
    from gsv_gateway.logs import configure_logging
    from gsv_gateway.models import SupervisorHealth
    from gsv_gateway.server import GatewayServer, run_foreground

    grpc_port = args.triton_grpc_port
    probe_host = LOOPBACK if args.triton_address in ("0.0.0.0", "") else args.triton_address
    # gRPC by default: a client that goes away cancels Triton's work only over gRPC (HTTP costs ~2 ms less).
    http_url = f"{probe_host}:{args.triton_http_port}" if args.unary_over_http else None
    # The gateway reads the repository's manifest too (api_v2's weights routes compare paths with its sources).
    settings = settings_from_args(args, triton_url=f"{probe_host}:{grpc_port}", triton_http_url=http_url,
                                  model_repository=Path(args.model_repository))  # fmt: skip
    configure_logging(settings.log_level)
    triton = Supervisor(
        Launch(Path(args.model_repository), args.triton_http_port, grpc_port, args.triton_metrics_port,
               args.triton_address),
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    # Binds now: a taken port fails before Triton starts. /health reports what the supervisor is doing.
    gateway = GatewayServer(
        settings, args.host, args.port, supervisor_status=lambda: SupervisorHealth(**asdict(triton.status()))
    )
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        try:
            waited = triton.start(SERVE_READY_TIMEOUT_S)
        except _StopRequested:
            print("gsv-triton up: stopped during start-up", file=sys.stderr)
            return 0
        except TritonServerError as exc:
            raise UserError(f"{exc.summary} (see its log above)") from exc
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        def watch_triton() -> None:
            triton.failed.wait()
            gateway.request_exit()

        threading.Thread(target=watch_triton, name="triton-watch", daemon=True).start()

        def announce() -> None:
            print(
                f"gsv-triton up: Triton ready in {waited:.1f} s (gRPC {settings.triton_url}); gateway on {gateway.url}: "
                "POST /v1/voice-clone, api.py routes / and /change_refer, /health, /metrics; Ctrl-C to stop both",
                flush=True,
            )

        run_foreground(gateway, on_start=announce)
        if triton.failed.is_set():
            print(f"gsv-triton up: {triton.status().detail}; gateway stopped", file=sys.stderr)
            return EXIT_TRITON_DIED
        print("gsv-triton up: gateway stopped; stopping Triton (draining in-flight requests)", file=sys.stderr, flush=True)
        code = triton.stop()
        print(f"gsv-triton up: stopped (tritonserver exit code {code})", file=sys.stderr, flush=True)
        return 0
    finally:
        gateway.close()
        triton.kill()  # an unexpected exception: never leave an orphan tritonserver behind (no-op after stop)


def main(argv: list[str] | None = None) -> int:
    """``python -m gsv_cli.up`` (the same as ``gsv-triton up``)."""
    from gsv_triton.errors import GsvError

    parser = argparse.ArgumentParser(prog="gsv-triton up", description=__doc__)
    add_up_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return up_main(args)
    except GsvError as exc:
        print(f"gsv-triton up: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
