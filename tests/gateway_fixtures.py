"""Helpers of the gateway tests: the gateway as a real process (``python -m gsv_gateway``) on a free port, and
a stored voice created through it (``POST /v1/voices``).

Not a conftest: the gateway test modules import what they use, so nothing here costs other tests anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from gsv_triton.server import free_port

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.1
LOOPBACK = "127.0.0.1"
VOICE_PROMPT = "参考音频文字"
VOICE_TIMEOUT_S = 120.0


@dataclass
class GatewayProcess:
    """A running ``python -m gsv_gateway``; its JSON log goes to ``log_path``."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> int:
        """SIGTERM (uvicorn finishes in-flight requests), SIGKILL after a grace period; returns the exit code."""
        terminate(self.process, STOP_TIMEOUT_S)
        return int(self.process.returncode)


def start_gateway(
    triton_grpc_url: str, workdir: Path, args: list[str] | None = None, env: dict[str, str] | None = None,
    triton_http_url: str | None = None,
) -> GatewayProcess:  # fmt: skip
    """Start the gateway against ``triton_grpc_url`` (and, for unary inference, ``triton_http_url`` when given)
    and return once it answers HTTP (whatever Triton's state)."""
    port = free_port()
    log_path = workdir / f"gateway-{port}.log"
    http = ["--triton-http-url", triton_http_url] if triton_http_url else []
    command = [
        sys.executable, "-m", "gsv_gateway", "--triton-url", triton_grpc_url, *http,
        "--host", LOOPBACK, "--port", str(port), *(args or []),
    ]  # fmt: skip
    # Stored voices go to the session's GSV_VOICE_DIR (tests/conftest.py) unless ``env`` names another folder.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    gateway = GatewayProcess(url=f"http://{LOOPBACK}:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{gateway.log_text()[-3000:]}")
        try:
            httpx.get(f"{gateway.url}/metrics", timeout=1.0)
            return gateway
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            gateway.stop()
            raise RuntimeError(f"the gateway did not answer within {STARTUP_TIMEOUT_S:g} s:\n{gateway.log_text()[-3000:]}")
        time.sleep(POLL_S)


def create_voice(url: str, audio: bytes, headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    """``POST /v1/voices`` of ``audio`` with the prompt text VOICE_PROMPT (zh); ``fields`` add or replace form
    fields (``name``, ``prompt_language``, ...)."""
    data = {"prompt_text": VOICE_PROMPT, "prompt_language": "zh", **fields}
    return httpx.post(f"{url}/v1/voices", data=data, files={"audio": ("ref.wav", audio)}, headers=headers,
                      timeout=VOICE_TIMEOUT_S)  # fmt: skip


def terminate(process: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM, then SIGKILL if ``process`` has not exited after ``timeout`` s; True when it had to be killed."""
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True
    return False
