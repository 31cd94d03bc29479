"""Overload, deadlines, cancellation and the output cap (real tritonserver + gateway, tiny models).

"Long" requests are 140 sentence pieces of zh text (980 characters, about 10 s alone on 2 cores, 200 s of
audio): long enough to outlive a short gateway timeout, short enough for the default output cap.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_fixtures import GatewayProcess, start_gateway

from gsv_triton.server import TritonServer
from gsv_triton.server.stubs import server_stubs

pytestmark = pytest.mark.slow

LONG_TEXT = "今天天气很好。" * 140
SHORT_TEXT = "你好，世界。"
FORM = {"text_language": "zh", "prompt_text": "参考音频文字", "prompt_language": "zh", "seed": "5", "cut_punc": "。"}
SHORT_TIMEOUT_S = 3.0
CONCURRENT = 64
MAX_IN_FLIGHT = 16
IDLE_CPU_S = 0.3  # CPU seconds all stubs together may use in 2 s once nothing is asked of them
CAP_SECONDS = 20.0  # GSV_MAX_OUTPUT_SECONDS of the capped server below


def _form(text: str) -> dict[str, str]:
    return {**FORM, "text": text}


def _stub_cpu_seconds(server: TritonServer) -> float:
    """CPU time (user + system) of every Python stub of ``server`` so far."""
    total = 0
    for stub in server_stubs(server.pid):
        try:
            stat = Path(f"/proc/{stub.pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / 100.0


def _wait_idle(server: TritonServer, within_s: float) -> float:
    """Seconds until the stubs use less than IDLE_CPU_S per 2 s (fails after ``within_s``)."""
    start = time.monotonic()
    while True:
        before = _stub_cpu_seconds(server)
        time.sleep(2.0)
        used = _stub_cpu_seconds(server) - before
        if used < IDLE_CPU_S:
            return time.monotonic() - start - 2.0
        assert time.monotonic() - start < within_s, f"the stubs still use {used:.2f} s CPU per 2 s"


@pytest.fixture(scope="module")
def impatient_gateway(triton_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gRPC-only gateway (cancellation reaches Triton) with a short timeout and the default in-flight cap."""
    workdir = tmp_path_factory.mktemp("overload")
    gateway = start_gateway(triton_server.grpc_url, workdir, ["--timeout", str(SHORT_TIMEOUT_S)],
                            env={"GSV_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT)})  # fmt: skip
    yield gateway
    gateway.stop()


async def _post_all(url: str, reference: bytes, count: int) -> list[tuple[int, float, str | None]]:
    """``count`` concurrent long requests: (status, seconds, Retry-After) each."""
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=count)) as client:

        async def one() -> tuple[int, float, str | None]:
            start = time.monotonic()
            response = await client.post(f"{url}/v1/voice-clone", files={"audio": ("ref.wav", reference)},
                                         data=_form(LONG_TEXT))  # fmt: skip
            return response.status_code, time.monotonic() - start, response.headers.get("retry-after")

        return await asyncio.gather(*(one() for _ in range(count)))


def _clone(url: str, reference: bytes, text: str = SHORT_TEXT, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/voice-clone", files={"audio": ("ref.wav", reference)}, data=_form(text),
                      timeout=timeout)  # fmt: skip


def test_a_burst_is_refused_quickly_and_abandoned_work_stops(impatient_gateway, triton_server, reference_audio):
    reference = reference_audio(11)
    url = impatient_gateway.url
    start = time.monotonic()
    assert _clone(url, reference).status_code == 200
    normal_s = time.monotonic() - start

    results = asyncio.run(_post_all(url, reference, CONCURRENT))
    statuses = [status for status, _, _ in results]
    refused = [(seconds, retry) for status, seconds, retry in results if status == 503]
    timed_out = [seconds for status, seconds, _ in results if status == 504]
    assert len(refused) == CONCURRENT - MAX_IN_FLIGHT, statuses
    assert len(timed_out) == MAX_IN_FLIGHT, statuses
    assert all(retry == "1" for _, retry in refused)
    assert max(seconds for seconds, _ in refused) < SHORT_TIMEOUT_S  # answered before any admitted one ends
    assert all(seconds < SHORT_TIMEOUT_S + 2 for seconds in timed_out)

    idle_after = _wait_idle(triton_server.server, within_s=10.0)
    assert idle_after <= 1.0, f"abandoned requests computed {idle_after:.1f} s after the last 504"

    start = time.monotonic()
    response = _clone(url, reference)
    assert response.status_code == 200, response.text
    assert time.monotonic() - start < 3 * normal_s + 1.0


def test_a_client_that_goes_away_cancels_its_work(impatient_gateway, triton_server, tmp_path, reference_audio):
    """The client gives up after 1 s (before the gateway's own 3 s): Triton stops at once, 499 is counted."""
    reference = reference_audio(12)
    gateway = start_gateway(triton_server.grpc_url, tmp_path, ["--timeout", "60"])
    try:
        with pytest.raises(httpx.ReadTimeout):
            _clone(gateway.url, reference, LONG_TEXT, timeout=1.0)
        idle_after = _wait_idle(triton_server.server, within_s=10.0)
        assert idle_after <= 1.0, f"the abandoned request computed {idle_after:.1f} s after the client left"
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
        assert 'status="499"' in metrics
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text()


def test_a_stream_has_an_idle_deadline_not_a_total_one(impatient_gateway, reference_audio):
    """Each piece comes well within the 3 s timeout; the whole stream takes longer and still completes."""
    start = time.monotonic()
    with httpx.stream("POST", f"{impatient_gateway.url}/v1/voice-clone/stream",
                      files={"audio": ("ref.wav", reference_audio(13))}, data=_form(LONG_TEXT),
                      timeout=120) as response:  # fmt: skip
        assert response.status_code == 200
        pieces = int(response.headers["x-pieces"])
        body = b"".join(response.iter_bytes())
    took = time.monotonic() - start
    assert pieces == 140 and len(body) > 44
    assert took > SHORT_TIMEOUT_S, f"the stream took only {took:.1f} s: it proves nothing about the deadline"


@pytest.fixture(scope="module")
def capped_triton(tiny_model_repository, start_tritonserver, tmp_path_factory) -> Iterator[TritonServer]:
    """A tritonserver whose models cap a request's audio at CAP_SECONDS (GSV_MAX_OUTPUT_SECONDS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GSV_MAX_OUTPUT_SECONDS", str(CAP_SECONDS))
        server = start_tritonserver(tiny_model_repository, tmp_path_factory.mktemp("capped") / "triton.log")
    yield server
    server.stop()


def _inferences(server: TritonServer, model: str) -> int:
    with urllib.request.urlopen(f"http://{server.http_endpoint}/v2/models/{model}/stats", timeout=10) as reply:
        stats = json.loads(reply.read())["model_stats"][0]
    return int(stats["inference_count"])


def test_the_output_cap_refuses_before_any_network_or_before_decoding(capped_triton, tmp_path, reference_audio):
    gateway = start_gateway(capped_triton.grpc_endpoint, tmp_path)
    reference = reference_audio(14)
    try:
        networks = ("bert", "ssl", "t2s", "sovits_decode")
        before = {m: _inferences(capped_triton, m) for m in networks}
        # 70 pieces come with 21 s of silence: over 20 s before anything is generated.
        response = _clone(gateway.url, reference, "好。" * 70)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "text" and "GSV_MAX_OUTPUT_SECONDS" in response.json()["detail"]
        assert {m: _inferences(capped_triton, m) for m in networks} == before  # no network ran

        # 50 pieces: 15 s of silence, and their speech passes the cap: refused after t2s, before decoding.
        response = _clone(gateway.url, reference, "今天天气很好。" * 50)
        assert response.status_code == 422, response.text
        assert "exceeds" in response.json()["detail"]
        assert _inferences(capped_triton, "t2s") > before["t2s"]
        assert _inferences(capped_triton, "sovits_decode") == before["sovits_decode"]

        assert _clone(gateway.url, reference).status_code == 200  # within the cap: served
    finally:
        gateway.stop()
