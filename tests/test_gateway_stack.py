"""Triton and the gateway run together: ``gsv-triton up`` (as a process, stopped by SIGTERM) and the demo step
of the README's main command (``gsv_cli.demo.run_demo``), both on the tiny exported repository."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import soundfile as sf

from gsv_cli.demo import run_demo
from gsv_triton.server import free_port

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
POLL_S = 0.25


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_serves_and_stops_triton_and_gateway_together(tiny_model_repository, reference_audio, tmp_path) -> None:
    port, http, grpc, metrics = (free_port() for _ in range(4))
    command = [
        sys.executable, "-m", "gsv_cli.up", "--model-repository", str(tiny_model_repository),
        "--host", "127.0.0.1", "--port", str(port), "--triton-http-port", str(http), "--triton-grpc-port", str(grpc),
        "--triton-metrics-port", str(metrics), "--max-new-tokens", "40",
    ]  # fmt: skip
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(POLL_S)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/voice-clone",
            files={"audio": ("ref.wav", reference_audio(1))},
            data={"text": "你好，世界。", "text_language": "zh", "prompt_text": "参考音频文字", "prompt_language": "zh"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert _port_open(grpc) and _port_open(http)
        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "gsv-triton up: stopped (tritonserver exit code 0)" in text
    assert "Traceback" not in text
    for open_port in (port, http, grpc, metrics):
        assert not _port_open(open_port), f"port {open_port} still served after up exited"


def test_demo_step_writes_output_wav_and_stops_everything(tiny_model_repository, tmp_path, capsys) -> None:
    out = tmp_path / "demo" / "output.wav"
    result = run_demo(tiny_model_repository, out, max_new_tokens=40)
    assert result.out == out and out.is_file() and result.reference.is_file()
    info = sf.info(io.BytesIO(out.read_bytes()))
    assert (info.samplerate, info.subtype, info.channels) == (32_000, "PCM_16", 1)
    assert info.frames / info.samplerate == pytest.approx(result.duration_s, abs=1e-9)
    assert "Triton and the gateway are stopped" in capsys.readouterr().out
