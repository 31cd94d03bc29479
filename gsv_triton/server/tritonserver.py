"""Run a real ``tritonserver`` as a child process: start, wait for readiness, drain, stop.

Choices worth knowing:

* ``--exit-on-error=true`` (Triton's default, passed explicitly): a model that fails to load makes
  the server exit, and :meth:`TritonServer.wait_ready` turns that into an error carrying the log
  tail. A half-up server that answers for some models and 400s for others is harder to notice
  than a launch that fails. ``--strict-readiness=true`` likewise keeps /v2/health/ready false
  until every model is ready.
* The server runs in its own session (process group), so a terminal's Ctrl-C reaches only us and
  we decide how it stops: SIGTERM makes Triton refuse new requests and wait for the ones in flight
  (up to ``--exit-timeout-secs``); SIGKILL to the whole group (server plus Python stubs) is the
  last resort after ``stop(timeout)``. Whichever way the server ends, whatever is left of its group (stubs
  of a server that was killed outlive it) is killed too, and its shared-memory regions are unlinked: each
  server gets its own region prefix, so they are found by name (:mod:`gsv_triton.server.stubs`).
* ``--model-control-mode=explicit`` with a ``--load-model`` per model of :func:`~gsv_triton.model_sets.
  startup_models`: every model but the named model sets' networks loads at start (those load on demand, through
  the gateway), and the repository API can reload one (the supervisor replaces a model whose stub died that way).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from gsv_triton.errors import GsvError, UserError
from gsv_triton.model_sets import startup_models
from gsv_triton.server.locate import TritonInstall, locate_tritonserver
from gsv_triton.server.stubs import group_members, remove_regions
from gsv_triton.settings import Settings

LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"
# Seconds Triton waits for in-flight requests after SIGTERM before it exits anyway.
DRAIN_TIMEOUT_S = 30
# Our own grace period on top of the drain before SIGKILL (Triton also unloads models and stubs).
STOP_MARGIN_S = 10.0
READY_POLL_S = 0.1
HTTP_PROBE_TIMEOUT_S = 1.0
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024
# serve_main: generous, big ONNX models load slowly on small CPUs; a dead server is noticed at once.
SERVE_READY_TIMEOUT_S = 600.0
PUMP_JOIN_S = 2.0
MAX_PROBLEMS = 3
MAX_PROBLEM_CHARS = 300
# Error-level lines Triton prints on every CPU-only host; they explain nothing about a failure.
_CPU_NOISE = ("CudaDriverHelper", "CUDA driver", "unable to create stream", "NVML", "DCGM")
# Triton's glog-style error line: E1125 11:51:29.052226 9881 model_lifecycle.cc:642] "message"
_ERROR_LINE = re.compile(r'^E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "?(.*?)"?$')
# Each server's Python-backend regions are named /dev/shm/<prefix><uuid>; the prefix tells whose they are.
SHM_PREFIX = "gsv_triton_shm_"
GROUP_EXIT_WAIT_S = 5.0
_server_numbers = itertools.count()
# Probes go straight to the local server even when http_proxy is set in the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TritonServerError(GsvError):
    """tritonserver died or never became ready; ``log_tail`` holds its last log lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        full = f"{message}\n--- last lines of the tritonserver log ---\n{log_tail}" if log_tail else message
        super().__init__(full)
        self.summary = message
        self.log_tail = log_tail


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free right now (another process may still take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_model_repository(path: Path) -> Path:
    """``path`` resolved; UserError if it is missing or holds no model folder."""
    if not path.exists():
        raise UserError(f"model repository {path} does not exist")
    if not path.is_dir():
        raise UserError(f"model repository {path} is not a directory")
    if not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        raise UserError(f"model repository {path} is empty (no model folders)")
    return path.resolve()


class TritonServer:
    """One tritonserver process. ``with TritonServer().start(repo, ...) as server:`` stops it on exit."""

    def __init__(self, install: TritonInstall | None = None) -> None:
        self._install = install
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._problems: list[str] = []  # error lines seen in a passed-through log
        self._tail_lock = threading.Lock()  # the pump thread appends while callers read
        self._pump: threading.Thread | None = None
        self._log_file = None
        self.address = LOOPBACK
        self.http_port = self.grpc_port = self.metrics_port = 0
        self.command: list[str] = []
        self.shm_prefix = f"{SHM_PREFIX}{os.getpid()}_{next(_server_numbers)}_"
        self.leftovers: list[str] = []  # what the last clean-up found: stubs killed, regions unlinked

    # -- lifecycle ---------------------------------------------------------------------------
    def start(
        self,
        model_repository: Path,
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        address: str = LOOPBACK,
    ) -> TritonServer:
        """Launch tritonserver and return at once (call :meth:`wait_ready`).

        ``log_path`` None passes the server's log through to our stdout (and keeps a tail for
        errors); otherwise the log goes to that file. ``address`` is what the three endpoints bind.
        """
        if self._proc is not None:
            raise RuntimeError("this TritonServer was already started")
        repo = check_model_repository(Path(model_repository))
        install = self._install or locate_tritonserver()
        self._install = install
        self.address, self.http_port, self.grpc_port, self.metrics_port = (
            address, http_port, grpc_port, metrics_port,
        )
        for name, port in (("HTTP", http_port), ("gRPC", grpc_port), ("metrics", metrics_port)):
            if _port_in_use(self._probe_host, port):
                # Otherwise readiness polling could succeed against the other server.
                raise UserError(f"{name} port {port} is already in use")

        self.command = [str(install.binary), f"--model-repository={repo}"]
        if install.backend_dir is not None:
            self.command.append(f"--backend-directory={install.backend_dir}")
        self.command += [
            f"--http-address={address}", f"--http-port={http_port}",
            f"--grpc-address={address}", f"--grpc-port={grpc_port}",
            f"--metrics-address={address}", f"--metrics-port={metrics_port}",
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--exit-timeout-secs={DRAIN_TIMEOUT_S}",
            "--model-control-mode=explicit",
            *(f"--load-model={model}" for model in startup_models(repo, Settings().load_model_sets)),
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        if not Path("/dev/nvidiactl").exists():
            # No GPU: skip the DCGM/NVML probing that only produces errors in the log.
            self.command.append("--allow-gpu-metrics=false")
        self.command += list(extra_args)

        if log_path is None:
            stdout = subprocess.PIPE
        else:
            self._log_path = Path(log_path)
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            stdout = self._log_file = open(self._log_path, "wb")  # closed in _reap
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=install.environment(),
            start_new_session=True,
        )
        if log_path is None:
            self._pump = threading.Thread(target=self._pump_log, name="tritonserver-log", daemon=True)
            self._pump.start()
        return self

    def wait_ready(self, timeout: float) -> float:
        """Poll /v2/health/ready until it answers 200; return the seconds waited.

        Raises TritonServerError (with the log tail) if the server exits first or the time runs out.
        """
        proc = self._require_proc()
        url = f"http://{self._probe_host}:{self.http_port}/v2/health/ready"
        start = time.monotonic()
        while True:
            code = proc.poll()
            if code is not None:
                self._reap()
                message = f"tritonserver exited with code {code} before it was ready"
                problems = self.problems()
                if problems:
                    message += ": " + "; ".join(problems)
                raise TritonServerError(message, self.log_tail())
            if _http_ok(url):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TritonServerError(
                    f"tritonserver was not ready after {timeout:.0f} s", self.log_tail()
                )
            time.sleep(READY_POLL_S)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the server exits (its exit code) or ``timeout`` passes (None)."""
        proc = self._require_proc()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reap()
        return code

    def stop(self, timeout: float = DRAIN_TIMEOUT_S + STOP_MARGIN_S) -> int:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL the group after ``timeout`` s.

        Returns the exit code (negative for a signal, as in subprocess). Safe to call twice.
        """
        proc = self._require_proc()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()
        return int(proc.returncode)

    def kill(self) -> None:
        """SIGKILL the server and its Python stubs (its whole process group) at once."""
        proc = self._require_proc()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._reap()

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self.stop()

    # -- state -------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self._require_proc().pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The log file, or None when the log passes through to stdout."""
        return self._log_path

    @property
    def install(self) -> TritonInstall | None:
        return self._install

    @property
    def http_endpoint(self) -> str:
        """``host:port`` for ``tritonclient.http.InferenceServerClient(url=...)``."""
        return f"{self._probe_host}:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        """``host:port`` for ``tritonclient.grpc.InferenceServerClient(url=...)``."""
        return f"{self._probe_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._probe_host}:{self.metrics_port}/metrics"

    def log_tail(self) -> str:
        """The last lines of the server log (from the file, or from what passed through)."""
        if self._log_path is not None:
            if self._log_file is not None:
                self._log_file.flush()
            try:
                with open(self._log_path, "rb") as f:
                    f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                return ""
            return "\n".join(lines[-LOG_TAIL_LINES:])
        if self._pump is not None and self._proc is not None and self._proc.poll() is not None:
            self._pump.join(PUMP_JOIN_S)  # let the last lines (the error itself) arrive
        with self._tail_lock:
            return "\n".join(self._tail)

    def problems(self) -> list[str]:
        """The first few error messages in the log (one line each), CPU-host noise left out."""
        if self._log_path is None:
            with self._tail_lock:
                found = list(self._problems)
        else:
            if self._log_file is not None:
                self._log_file.flush()
            try:
                text = self._log_path.read_text("utf-8", "replace")
            except OSError:
                return []
            found = [p for p in map(_problem, text.splitlines()) if p]
        return list(dict.fromkeys(found))[:MAX_PROBLEMS]

    # -- internals ---------------------------------------------------------------------------
    @property
    def _probe_host(self) -> str:
        return LOOPBACK if self.address in (ANY_ADDRESS, "") else self.address

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("this TritonServer has not been started")
        return self._proc

    def _pump_log(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace")
            problem = _problem(line.rstrip("\n"))
            with self._tail_lock:
                self._tail.append(line.rstrip("\n"))
                if problem and len(self._problems) < MAX_PROBLEMS * 4:
                    self._problems.append(problem)
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (OSError, ValueError):
                pass  # our stdout closed: keep draining the pipe so the server never blocks on it

    def _reap(self) -> None:
        self._clean_group()
        if self._pump is not None:
            # The stubs inherit the pipe; do not hang if one outlives the server for a moment.
            self._pump.join(PUMP_JOIN_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _clean_group(self) -> None:
        """After the server exited: kill what is left of its process group and unlink its regions."""
        if self._proc is None or self._proc.poll() is None:
            return
        found = group_members(self._proc.pid)
        if found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + GROUP_EXIT_WAIT_S
            while group_members(self._proc.pid) and time.monotonic() < deadline:
                time.sleep(READY_POLL_S)
        regions = remove_regions(self.shm_prefix)
        self.leftovers = [f"pid {pid}" for pid in found] + regions


def _problem(line: str) -> str | None:
    """The message of an error line of Triton's log (first line only), or None."""
    match = _ERROR_LINE.match(line)
    if match:
        message = match.group(1)
    elif line.startswith("error: "):  # how tritonserver reports a fatal startup error
        message = line[len("error: "):]
    else:
        return None
    if any(noise in message for noise in _CPU_NOISE):
        return None
    # Triton escapes newlines inside its quoted messages; the first line carries the cause.
    return message.split("\\n")[0].strip()[:MAX_PROBLEM_CHARS] or None


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(HTTP_PROBE_TIMEOUT_S)
        return sock.connect_ex((host, port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=HTTP_PROBE_TIMEOUT_S) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False
