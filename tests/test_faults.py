"""Faults under ``gsv-triton up`` (real tritonserver + gateway, tiny models): a Python stub that dies is replaced
and a tritonserver that dies is restarted, with ``/health`` telling the truth in between and nothing left behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gateway_fixtures import terminate

from gsv_triton.server import free_port
from gsv_triton.server.stubs import group_members, server_stubs

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 90.0
RECOVERY_GOAL_S = 10.0  # issue 20: every request succeeds again within this after a stub dies
RESTART_GOAL_S = 60.0  # a new tritonserver loads every tiny model in about 20 s on 2 cores
POLL_S = 0.1
FORM = {"text": "你好，世界。", "text_language": "zh", "prompt_text": "参考音频文字", "prompt_language": "zh",
        "seed": "7"}  # fmt: skip
# Every model of the tiny repository runs Python stubs; killing one of each kind covers them all.
MODELS = ("t2s", "voice_clone", "sovits_decode", "bert", "ssl", "vq_encode", "ref_encoder", "voice_clone_stream",
          "voice_encode", "voice_convert")  # fmt: skip


@dataclass
class Up:
    """A running ``python -m gsv_cli.up``."""

    url: str
    process: subprocess.Popen
    log: Path
    reference: bytes
    baseline: str = ""

    def triton_pid(self) -> int:
        """The tritonserver child of the up process (a restart gives a new one)."""
        for child in _children(self.process.pid):
            if Path(f"/proc/{child}/exe").resolve().name == "tritonserver":
                return child
        raise AssertionError("no tritonserver under up")

    def clone(self, timeout: float = 30.0) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/voice-clone", files={"audio": ("ref.wav", self.reference)}, data=FORM,
                          timeout=timeout)  # fmt: skip

    def health(self) -> str:
        try:
            return str(httpx.get(f"{self.url}/health", timeout=5).json()["status"])
        except (httpx.TransportError, ValueError):
            return "no answer"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _audio_digest(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text[:500]
    return hashlib.sha256(response.json()["output_audio_base64"].encode()).hexdigest()


@pytest.fixture(scope="module")
def up(tiny_model_repository: Path, reference_audio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    port, http, grpc, metrics = (free_port() for _ in range(4))
    log = tmp_path_factory.mktemp("faults") / "up.log"
    command = [
        sys.executable, "-m", "gsv_cli.up", "--model-repository", str(tiny_model_repository),
        "--host", "127.0.0.1", "--port", str(port), "--triton-http-port", str(http), "--triton-grpc-port", str(grpc),
        "--triton-metrics-port", str(metrics), "--max-new-tokens", "30",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stack = Up(f"http://127.0.0.1:{port}", process, log, reference_audio(3))
    try:
        _wait(lambda: stack.health() == "ok", READY_TIMEOUT_S, stack)
        stack.baseline = _audio_digest(stack.clone())
        yield stack
    finally:
        killed = terminate(process, STOP_TIMEOUT_S)  # SIGTERM: drain and stop both, as an operator would
    assert not killed and process.returncode == 0, log.read_text()[-3000:]


def _wait(condition, timeout: float, stack: Up) -> float:
    start = time.monotonic()
    while not condition():
        assert stack.process.poll() is None, stack.log.read_text()[-3000:]
        assert time.monotonic() - start < timeout, stack.log.read_text()[-3000:]
        time.sleep(POLL_S)
    return time.monotonic() - start


class HealthWatch:
    """Polls /health in a thread and keeps every status seen."""

    def __init__(self, stack: Up) -> None:
        self.stack, self.seen, self._stop = stack, set[str](), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.seen.add(self.stack.health())

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _recovered(stack: Up, in_a_row: int = 3) -> bool:
    """``in_a_row`` requests in a row succeed with the baseline audio (the seed makes them identical)."""
    for _ in range(in_a_row):
        response = stack.clone()
        if response.status_code != 200 or _audio_digest(response) != stack.baseline:
            return False
    return True


@pytest.mark.parametrize("model", MODELS)
def test_a_dead_stub_is_replaced_and_health_says_degraded_meanwhile(up: Up, model: str) -> None:
    triton = up.triton_pid()
    victim = next(s for s in server_stubs(triton) if s.model == model)
    with HealthWatch(up) as watch:
        os.kill(victim.pid, signal.SIGKILL)
        took = _wait(lambda: _recovered(up), RECOVERY_GOAL_S, up)
        _wait(lambda: up.health() == "ok", RECOVERY_GOAL_S, up)
    assert "degraded" in watch.seen, watch.seen
    assert not Path("/dev/shm", victim.region).exists(), "the dead stub's shared memory is still there"
    assert f"{model} reloaded" in up.log.read_text()
    print(f"{model}: recovered in {took:.1f} s")


def test_a_dead_tritonserver_is_restarted_without_orphans(up: Up) -> None:
    old = up.triton_pid()
    old_stubs = server_stubs(old)
    prefix = old_stubs[0].region.rsplit("_", 1)[0]
    with HealthWatch(up) as watch:
        os.kill(old, signal.SIGKILL)
        _wait(lambda: not group_members(old), 10.0, up)  # no stub outlives its server
        took = _wait(lambda: up.health() == "ok", RESTART_GOAL_S, up)
    assert "unavailable" in watch.seen, watch.seen
    assert up.triton_pid() != old
    assert _audio_digest(up.clone()) == up.baseline
    assert not [p for p in os.listdir("/dev/shm") if p.startswith(prefix)], "the old server's regions are left"
    assert "tritonserver restarted" in up.log.read_text()
    print(f"tritonserver back in {took:.1f} s")
