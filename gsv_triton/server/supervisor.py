"""Keep one tritonserver serving: replace a model whose Python stub died, restart a server that died.

Triton's Python backend does not replace a stub process that died (``kill -9``, the OOM killer): every request
routed to that instance fails with "Stub process ... is not healthy" from then on, while the model still reads
as ready. A :class:`Supervisor` watches the server's stubs in ``/proc`` (every :data:`POLL_S`) and, when one
dies, reloads its model through Triton's repository API: the new instances serve within seconds while the old
ones finish what they hold. Triton leaves the old generation's living stubs behind after such a reload; they
are killed :data:`STALE_STUB_GRACE_S` later (their in-flight requests have ended by then), and the dead
stubs' regions are unlinked.

When the server itself dies, what is left of its process group is killed and its regions unlinked
(:class:`~gsv_triton.server.tritonserver.TritonServer` does that), and it is started again on the same ports
after a backoff that doubles from :data:`FIRST_BACKOFF_S` to :data:`MAX_BACKOFF_S`. After
:data:`MAX_FAILED_STARTS` starts in a row that never became ready the supervisor gives up (``failed``), so
whatever runs it can exit non-zero. :meth:`Supervisor.status` says what is happening, for ``/health``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from gsv_triton.errors import UserError
from gsv_triton.server.stubs import Stub, is_alive, remove_region, server_stubs
from gsv_triton.server.tritonserver import SERVE_READY_TIMEOUT_S, TritonServer, TritonServerError

POLL_S = 0.25
STALE_STUB_GRACE_S = 60.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
MAX_FAILED_STARTS = 5
# A server that stayed up this long starts the backoff afresh when it next dies.
STABLE_AFTER_S = 60.0
RELOAD_TIMEOUT_S = SERVE_READY_TIMEOUT_S
RELOAD_RETRY_S = 5.0
# A config parameter that only the supervisor sets: a reload's config differs from the running one by it.
GENERATION_PARAMETER = "gsv_supervisor_generation"
# Triton's proxy-free loopback opener, as in tritonserver.py's probes.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

OK, RECOVERING, RESTARTING, FAILED, STOPPED = "ok", "recovering", "restarting", "failed", "stopped"


@dataclass(frozen=True)
class SupervisorStatus:
    """What the supervisor is doing: ``state`` is ok, recovering (reloading ``models``), restarting, failed
    or stopped; the counters add up over the supervisor's life."""

    state: str = OK
    detail: str = ""
    models: tuple[str, ...] = ()
    stub_deaths: int = 0
    reloads: int = 0
    restarts: int = 0

    @property
    def healthy(self) -> bool:
        return self.state == OK


@dataclass(frozen=True)
class Launch:
    """How to start the server again: the arguments of :meth:`TritonServer.start`."""

    model_repository: Path
    http_port: int
    grpc_port: int
    metrics_port: int
    address: str
    log_path: Path | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def log_for(self, restart: int) -> Path | None:
        """Restart ``n`` logs next to the first log (``triton.restart1.log``), so no log is overwritten."""
        if self.log_path is None or restart == 0:
            return self.log_path
        return self.log_path.with_name(f"{self.log_path.stem}.restart{restart}{self.log_path.suffix}")


class Supervisor:
    """``Supervisor(launch).start()`` runs the server and a watcher thread; :meth:`stop` drains and ends both."""

    def __init__(self, launch: Launch, say: Callable[[str], None] = print) -> None:
        self.launch = launch
        self._say = say
        self._lock = threading.Lock()
        self._status = SupervisorStatus()
        self._server = TritonServer()
        self._stopping = threading.Event()
        self.failed = threading.Event()  # set when the supervisor gave up: the caller should exit non-zero
        self._thread: threading.Thread | None = None
        self._known: dict[str, Stub] = {}  # instance name -> its newest stub
        self._stale: list[tuple[float, Stub]] = []  # (kill at, stub) of replaced generations
        self._started_at = 0.0
        self._backoff = FIRST_BACKOFF_S
        self._generation = 0
        self._retry_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, ready_timeout: float = SERVE_READY_TIMEOUT_S) -> float:
        """Start the server, wait until it is ready (TritonServerError otherwise), then watch it; returns the
        seconds the start took."""
        waited = self._launch(self._server, 0, ready_timeout)
        self._thread = threading.Thread(target=self._watch, name="triton-supervisor", daemon=True)
        self._thread.start()
        return waited

    def stop(self) -> int | None:
        """Stop watching, then drain and stop the server; its exit code (None if none was running)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._set(state=STOPPED, detail="stopped")
        return self._server.stop() if self._server.is_running else self._server.returncode

    def kill(self) -> None:
        """Stop watching and kill the server's whole process group at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._server.is_running:
            self._server.kill()

    @property
    def server(self) -> TritonServer:
        """The server now running (a restart replaces it)."""
        return self._server

    def status(self) -> SupervisorStatus:
        with self._lock:
            return self._status

    # -- the watcher ----------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            if not self._server.is_running:
                if not self._restart():
                    return
                continue
            self._check_stubs()
            self._kill_stale()

    def _check_stubs(self) -> None:
        if time.monotonic() < self._retry_at:
            return  # a reload just failed: try again a little later, not four times a second
        living = server_stubs(self._server.pid)
        for stub in living:
            known = self._known.get(stub.instance)
            if known is None or stub.start_ticks > known.start_ticks:
                self._known[stub.instance] = stub
        dead = [s for s in self._known.values() if not is_alive(s)]
        if not dead or not self._server.is_running:
            return  # a server on its way down takes its stubs with it: the restart path handles that
        models = tuple(sorted({s.model for s in dead}))
        for stub in dead:
            self._say(f"gsv-triton: the stub of {stub.instance} (pid {stub.pid}) died; reloading {stub.model}")
        self._set(state=RECOVERING, detail=f"reloading {', '.join(models)} after a stub died", models=models,
                  stub_deaths=self.status().stub_deaths + len(dead))  # fmt: skip
        reloaded = [self._reload(model, [s for s in dead if s.model == model]) for model in models]
        if all(reloaded):
            self._set(state=OK, detail="", models=())
        else:
            self._retry_at = time.monotonic() + RELOAD_RETRY_S

    def _reload(self, model: str, dead: list[Stub]) -> bool:
        """Reload ``model`` after its ``dead`` stubs; False when Triton refused or did not answer."""
        started = time.monotonic()
        try:
            self._load_anew(model)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # The server may be going down (the restart path takes over then), or it refused: retried later.
            self._say(f"gsv-triton: reloading {model} failed: {exc}")
            return False
        for stub in dead:
            remove_region(stub.region)
        # Triton leaves the old generation's living stubs behind: the newest stub of each instance serves.
        mine = [s for s in server_stubs(self._server.pid) if s.model == model]
        newest: dict[str, Stub] = {}
        for stub in mine:
            if stub.instance not in newest or stub.start_ticks > newest[stub.instance].start_ticks:
                newest[stub.instance] = stub
        self._known.update(newest)
        kill_at = time.monotonic() + STALE_STUB_GRACE_S
        self._stale += [(kill_at, s) for s in mine if newest[s.instance].pid != s.pid]
        self._set(reloads=self.status().reloads + 1)
        self._say(f"gsv-triton: {model} reloaded in {time.monotonic() - started:.1f} s")
        return True

    def _load_anew(self, model: str) -> None:
        """Reload ``model`` through the repository API with new instances (and so new stubs).

        Triton skips a load whose model files did not change; a config override whose parameters differ
        (:data:`GENERATION_PARAMETER`, counted up) makes it load a new generation and unload the old one.
        """
        base = f"http://{self._server.http_endpoint}/v2"
        with _NO_PROXY.open(f"{base}/models/{model}/config", timeout=RELOAD_TIMEOUT_S) as reply:
            config = json.loads(reply.read())
        self._generation += 1
        config.setdefault("parameters", {})[GENERATION_PARAMETER] = {"string_value": str(self._generation)}
        body = json.dumps({"parameters": {"config": json.dumps(config)}}).encode()
        request = urllib.request.Request(f"{base}/repository/models/{model}/load", data=body, method="POST")
        with _NO_PROXY.open(request, timeout=RELOAD_TIMEOUT_S):
            pass

    def _kill_stale(self) -> None:
        now = time.monotonic()
        due = [s for at, s in self._stale if at <= now]
        self._stale = [(at, s) for at, s in self._stale if at > now]
        for stub in due:
            if is_alive(stub):
                os.kill(stub.pid, signal.SIGKILL)
            remove_region(stub.region)

    def _restart(self) -> bool:
        """Start a new server after the old one died; False when the supervisor gave up or is stopping."""
        code = self._server.returncode
        up_for = time.monotonic() - self._started_at
        restarts = self.status().restarts
        self._say(f"gsv-triton: tritonserver exited with code {code} after {up_for:.0f} s; restarting it")
        self._server.kill()  # reaps: what is left of its group is killed and its regions unlinked
        if up_for >= STABLE_AFTER_S:
            self._backoff = FIRST_BACKOFF_S  # a crash loop keeps doubling it instead
        for attempt in range(MAX_FAILED_STARTS):
            self._set(state=RESTARTING, detail=f"tritonserver exited with code {code}; restarting it",
                      restarts=restarts + 1)  # fmt: skip
            if self._stopping.wait(self._backoff):
                return False
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
            server = TritonServer()
            try:
                waited = self._launch(server, restarts + 1 + attempt, SERVE_READY_TIMEOUT_S)
            except (TritonServerError, UserError) as exc:
                self._say(f"gsv-triton: restart {attempt + 1} failed: {getattr(exc, 'summary', exc)}")
                if server.is_running:
                    server.kill()
                continue
            self._server, self._known, self._stale, self._retry_at = server, {}, [], 0.0
            self._set(state=OK, detail="", restarts=restarts + 1)
            self._say(f"gsv-triton: tritonserver restarted, ready in {waited:.1f} s (pid {server.pid})")
            return True
        self._set(state=FAILED, detail=f"tritonserver did not come back after {MAX_FAILED_STARTS} starts")
        self._say(f"gsv-triton: giving up: tritonserver did not come back after {MAX_FAILED_STARTS} starts")
        self.failed.set()
        return False

    # -- helpers --------------------------------------------------------------------------------------------
    def _launch(self, server: TritonServer, restart: int, ready_timeout: float) -> float:
        launch = self.launch
        server.start(launch.model_repository, launch.http_port, launch.grpc_port, launch.metrics_port,
                     log_path=launch.log_for(restart), extra_args=launch.extra_args, address=launch.address)  # fmt: skip
        waited = server.wait_ready(ready_timeout)
        self._started_at = time.monotonic()
        return waited

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
