"""The gateway as a real process (uvicorn on a free port) in front of a real tritonserver on the tiny models.

* the seed's own curl command and ``requests`` snippet (voice-clone-integration-summary.md), URL adapted;
* the bad-input catalogue, each with its documented status, then a good request;
* upstream api.py routes (GET/POST ``/``, ``/change_refer``) and an api.py-style client;
* /health and /metrics after real traffic; 504 past the timeout;
* Triton down -> 503 within 2 s, Triton (re)started -> 200 without restarting the gateway;
* 16 concurrent clients over 4 references for 60 s: no errors, every answer equal to the same request alone.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from gateway_fixtures import start_gateway

from gsv_gateway.server import BackgroundGateway
from gsv_triton.server import TritonServer, free_port
from gsv_triton.settings import Settings

pytestmark = pytest.mark.slow

OUTPUT_RATE = 32_000
# Bounds the tiny random GPT (it usually stops at EOS after 11-40 tokens) so every request is quick.
MAX_NEW_TOKENS = 40
UPLOAD_LIMIT = 1_000_000  # small, so the over-limit case uploads little
REQUEST_TIMEOUT_S = 120.0
DEFAULT_PROMPT = "参考音频文字"
RESPONSE_FIELDS = {
    "task", "output_audio_base64", "output_sample_rate", "text_length", "output_duration", "processing_time",
    "service_available", "seed",
}  # fmt: skip
SOAK_SECONDS = 60.0
SOAK_CLIENTS = 16
UNAVAILABLE_WITHIN_S = 2.0
READY_TIMEOUT_S = 300.0
# After Triton is back, the gateway's gRPC channel reconnects within its capped backoff (1 s).
RECOVER_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def refs(tmp_path_factory, reference_audio) -> Path:
    """The reference directory: ref0..ref3.wav (different voices) and default.wav."""
    root = tmp_path_factory.mktemp("gateway_refs")
    for i in range(4):
        (root / f"ref{i}.wav").write_bytes(reference_audio(i + 1))
    (root / "default.wav").write_bytes(reference_audio(5))
    return root


@pytest.fixture(scope="module")
def gateway(triton_server, refs, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway_run")
    args = [
        "--refer-root", str(refs), "-dr", str(refs / "default.wav"), "-dt", DEFAULT_PROMPT, "-dl", "zh",
        "--max-new-tokens", str(MAX_NEW_TOKENS),
    ]  # fmt: skip
    # Unary inference over Triton's HTTP endpoint, as `gsv-triton up` runs it (tests/test_voices.py and others
    # keep the gRPC-only configuration covered).
    running = start_gateway(triton_server.grpc_url, workdir, args, env={"GSV_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)},
                            triton_http_url=triton_server.http_url)  # fmt: skip
    yield running
    assert running.stop() == 0, running.log_text()[-3000:]


def _decode_wav(data: bytes) -> tuple[np.ndarray, sf._SoundFileInfo]:
    info = sf.info(io.BytesIO(data))
    audio, _ = sf.read(io.BytesIO(data), dtype="int16")
    return audio, info


def _post_clone(url: str, reference: bytes, client: httpx.Client | None = None, **fields) -> httpx.Response:
    data = {"text": "你好，这是一个语音克隆测试。", "text_language": "zh", "prompt_text": DEFAULT_PROMPT,
            "prompt_language": "zh"}  # fmt: skip
    data.update({k: str(v) for k, v in fields.items()})
    post = client.post if client is not None else httpx.post
    return post(f"{url}/v1/voice-clone", data=data, files={"audio": ("ref.wav", reference)}, timeout=REQUEST_TIMEOUT_S)


# -- the seed's examples ----------------------------------------------------------------------------------------
def test_seed_curl_example(gateway, refs, tmp_path) -> None:
    (tmp_path / "reference_audio.wav").write_bytes((refs / "ref0.wav").read_bytes())
    # Verbatim from the integration summary; only the URL differs ("python" is this venv's, first on PATH).
    command = f"""curl -X POST "{gateway.url}/v1/voice-clone" \\
  -F "audio=@reference_audio.wav" \\
  -F "text=Hello, this is a voice cloning test." \\
  -F "text_language=en" \\
  -F "prompt_text=This is the reference audio." \\
  -F "prompt_language=en" \\
  | python -c "import sys, json, base64; \\
    data=json.load(sys.stdin); \\
    open('output.wav', 'wb').write(base64.b64decode(data['output_audio_base64']))"
"""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    audio, info = _decode_wav((tmp_path / "output.wav").read_bytes())
    assert info.samplerate == OUTPUT_RATE and info.subtype == "PCM_16" and len(audio) > 0


def test_seed_python_example_and_the_response_schema(gateway, refs, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reference.wav").write_bytes((refs / "ref1.wav").read_bytes())
    # --- verbatim from the integration summary; only the URL differs ---
    import base64

    import requests

    with open("reference.wav", "rb") as f:
        response = requests.post(
            f"{gateway.url}/v1/voice-clone",
            files={"audio": f},
            data={
                "text": "你好，这是一个语音克隆测试。",
                "text_language": "zh",
                "prompt_text": "参考音频文字",
                "prompt_language": "zh",
            },
        )

    if response.status_code == 200:
        result = response.json()
        audio_bytes = base64.b64decode(result["output_audio_base64"])
        with open("cloned_voice.wav", "wb") as f:
            f.write(audio_bytes)
    # --- end of the seed's snippet ---
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert len(response.headers["x-request-id"]) == 32
    result = response.json()
    assert set(result) == RESPONSE_FIELDS
    assert result["task"] == "voice_clone"
    assert result["output_sample_rate"] == OUTPUT_RATE
    assert result["text_length"] == len("你好，这是一个语音克隆测试。")
    assert result["service_available"] is True
    assert isinstance(result["processing_time"], float) and 0 < result["processing_time"] < REQUEST_TIMEOUT_S
    assert isinstance(result["seed"], int)
    audio, info = _decode_wav(Path("cloned_voice.wav").read_bytes())
    assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, OUTPUT_RATE)
    assert info.frames / info.samplerate == pytest.approx(result["output_duration"], abs=1e-9)
    assert np.abs(audio).max() > 0
    # The reported seed reproduces the audio exactly.
    again = _post_clone(gateway.url, (refs / "ref1.wav").read_bytes(), seed=result["seed"],
                        prompt_text="参考音频文字")  # fmt: skip
    assert again.json()["output_audio_base64"] == result["output_audio_base64"]


# -- bad inputs -------------------------------------------------------------------------------------------------
def _tone(seconds: float, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_bad_input_catalogue_then_a_good_request(gateway, refs) -> None:
    good = (refs / "ref2.wav").read_bytes()
    base = {"text": "你好。", "text_language": "zh", "prompt_text": "参考", "prompt_language": "zh"}
    clone = [
        ("non-audio file", {"audio": b"%PDF-1.7 definitely not audio"}, 415, "audio", "could not decode"),
        ("empty file", {"audio": b""}, 400, "audio", "empty"),
        ("0.5 s reference", {"audio": _tone(0.5)}, 400, "audio", "3-10 s"),
        ("60 s reference", {"audio": _tone(60.0, rate=8000)}, 400, "audio", "3-10 s"),
        ("upload over the limit", {"audio": _tone(40.0)}, 413, "audio", "limit"),
        ("unknown language", {"text_language": "martian"}, 400, "text_language", "unsupported language"),
        ("empty text", {"text": "   "}, 400, "text", "empty"),
        ("text over the limit", {"text": "字" * 1001}, 413, "text", "longer than 1000"),
        ("missing field", {"prompt_text": None}, 422, "prompt_text", "required"),
        ("bad number", {"speed": "0"}, 400, "speed", "must be in"),
    ]
    for name, change, status, field, words in clone:
        data = {**base, **{k: v for k, v in change.items() if k != "audio"}}
        data = {k: v for k, v in data.items() if v is not None}
        files = {"audio": ("x.wav", change.get("audio", good))}
        response = httpx.post(f"{gateway.url}/v1/voice-clone", data=data, files=files, timeout=REQUEST_TIMEOUT_S)
        assert response.status_code == status, (name, response.text)
        body = response.json()
        assert body["field"] == field and body["detail"].startswith(f"{field}: ") and words in body["detail"], name
        assert body["request_id"] == response.headers["x-request-id"], name
    upstream = [
        ("path traversal", {"refer_wav_path": "../../etc/passwd"}, 403, "refer_wav_path"),
        ("absolute path outside", {"refer_wav_path": "/etc/hostname"}, 403, "refer_wav_path"),
        ("missing file inside", {"refer_wav_path": "nope.wav"}, 400, "refer_wav_path"),
        ("missing text", {"text": None}, 400, "text"),
    ]
    for name, change, status, field in upstream:
        params = {"refer_wav_path": "ref2.wav", "prompt_text": "参考", "prompt_language": "zh", "text": "你好。",
                  "text_language": "zh", **change}  # fmt: skip
        params = {k: v for k, v in params.items() if v is not None}
        for response in (httpx.get(f"{gateway.url}/", params=params, timeout=REQUEST_TIMEOUT_S),
                         httpx.post(f"{gateway.url}/", json=params, timeout=REQUEST_TIMEOUT_S)):  # fmt: skip
            assert response.status_code == status, (name, response.text)
            assert response.json()["field"] == field and response.json()["code"] == status, name
    assert _post_clone(gateway.url, good, seed=1).status_code == 200


# -- upstream api.py --------------------------------------------------------------------------------------------
def test_upstream_api_py_routes(gateway, refs) -> None:
    import requests

    # An api.py client (README of GPT-SoVITS): only the URL changes.
    response = requests.post(gateway.url, json={
        "refer_wav_path": "ref3.wav", "prompt_text": "参考音频文字", "prompt_language": "zh",
        "text": "先帝创业未半而中道崩殂。", "text_language": "zh",
    })  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    audio, info = _decode_wav(response.content)
    assert (info.samplerate, info.subtype, info.channels) == (OUTPUT_RATE, "PCM_16", 1) and len(audio) > 0

    # No reference fields: the -dr/-dt/-dl default is used (GET with query parameters).
    default = httpx.get(f"{gateway.url}/", params={"text": "Hello world.", "text_language": "en", "top_k": 5},
                        timeout=REQUEST_TIMEOUT_S)  # fmt: skip
    assert default.status_code == 200 and _decode_wav(default.content)[1].samplerate == OUTPUT_RATE

    changed = httpx.post(f"{gateway.url}/change_refer", timeout=REQUEST_TIMEOUT_S,
                         json={"refer_wav_path": "ref0.wav", "prompt_text": "新的参考", "prompt_language": "zh"})  # fmt: skip
    assert changed.status_code == 200 and changed.json() == {"code": 0, "message": "Success"}
    refused = httpx.get(f"{gateway.url}/change_refer", params={"refer_wav_path": "default.wav.missing"},
                        timeout=REQUEST_TIMEOUT_S)  # fmt: skip
    assert refused.status_code == 400
    partial = httpx.get(f"{gateway.url}/change_refer", params={"prompt_language": "martian"}, timeout=REQUEST_TIMEOUT_S)
    assert partial.status_code == 400 and partial.json()["field"] == "prompt_language"
    after = httpx.get(f"{gateway.url}/", params={"text": "你好。", "text_language": "zh"}, timeout=REQUEST_TIMEOUT_S)
    assert after.status_code == 200  # failed changes left a usable default in place
    restored = httpx.get(f"{gateway.url}/change_refer", timeout=REQUEST_TIMEOUT_S,
                         params={"refer_wav_path": "default.wav", "prompt_text": DEFAULT_PROMPT, "prompt_language": "zh"})  # fmt: skip
    assert restored.status_code == 200


# -- operations -------------------------------------------------------------------------------------------------
def test_health_and_metrics_after_traffic(gateway, refs) -> None:
    assert _post_clone(gateway.url, (refs / "ref0.wav").read_bytes(), seed=3).status_code == 200
    health = httpx.get(f"{gateway.url}/health", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["service_available"] is True and body["triton"]["model_ready"]
    states = {m["name"]: (m["version"], m["state"]) for m in body["triton"]["models"]}
    assert states["voice_clone"] == ("1", "READY") and {"t2s", "bert", "sovits_decode"} <= set(states)
    # The precision setting of the two networks that may load int8 graphs (gsv_triton.precision); none elsewhere.
    precisions = {m["name"]: m["precision"] for m in body["triton"]["models"]}
    assert precisions["t2s"] == precisions["sovits_decode"] == "auto" and precisions["ssl"] is None
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert 'gsv_gateway_requests_total{method="POST",route="/v1/voice-clone",status="200"}' in metrics
    audio_line = next(line for line in metrics.splitlines() if line.startswith("gsv_gateway_audio_seconds_total"))
    assert float(audio_line.split()[-1]) > 0
    logs = [line for line in gateway.log_text().splitlines() if '"gsv_gateway.access"' in line]
    assert logs and '"request_id"' in logs[-1] and '"duration_ms"' in logs[-1]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_requests_past_the_timeout_are_504(triton_server, refs, transport) -> None:
    http_url = triton_server.http_url if transport == "http" else None
    settings = Settings(triton_url=triton_server.grpc_url, triton_http_url=http_url, request_timeout_s=0.001,
                               max_new_tokens=MAX_NEW_TOKENS)  # fmt: skip
    with BackgroundGateway(settings) as gateway:
        response = _post_clone(gateway.url, (refs / "ref1.wav").read_bytes(), seed=1)
    assert response.status_code == 504, response.text
    assert "GSV_REQUEST_TIMEOUT_S" in response.json()["detail"]


# -- Triton going away and coming back -------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_triton_stopped_is_503_and_restarted_is_200_without_gateway_restart(
    tiny_model_repository, refs, tmp_path, transport
) -> None:
    ports = [free_port() for _ in range(3)]
    http_url = f"127.0.0.1:{ports[0]}" if transport == "http" else None
    settings = Settings(
        triton_url=f"127.0.0.1:{ports[1]}", triton_http_url=http_url, max_new_tokens=MAX_NEW_TOKENS
    )
    reference = (refs / "ref2.wav").read_bytes()

    def start_triton(tag: str) -> TritonServer:
        server = TritonServer().start(tiny_model_repository, *ports, log_path=tmp_path / f"triton-{tag}.log")
        server.wait_ready(READY_TIMEOUT_S)
        return server

    def until_ok(url: str) -> httpx.Response:
        deadline = time.monotonic() + RECOVER_WITHIN_S
        while True:
            response = _post_clone(url, reference, seed=2)
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
            time.sleep(0.2)

    with BackgroundGateway(settings) as gateway:
        assert _post_clone(gateway.url, reference).status_code == 503  # the gateway came up before Triton
        first = start_triton("first")
        try:
            assert until_ok(gateway.url).status_code == 200
        finally:
            first.stop()
        start = time.monotonic()
        down = _post_clone(gateway.url, reference, seed=2)
        assert time.monotonic() - start < UNAVAILABLE_WITHIN_S
        assert down.status_code == 503 and down.json()["service_available"] is False
        assert "gsv-triton serve" in down.json()["detail"]
        assert httpx.get(f"{gateway.url}/health", timeout=10).status_code == 503
        second = start_triton("second")
        try:
            back = until_ok(gateway.url)
            assert back.status_code == 200, back.text
            # /health asks over gRPC, whose channel reconnects within its backoff cap (1 s): with the HTTP
            # transport the first synthesis can be served a moment earlier.
            deadline = time.monotonic() + RECOVER_WITHIN_S
            while (health := httpx.get(f"{gateway.url}/health", timeout=10)).status_code != 200:
                assert time.monotonic() < deadline, health.text
                time.sleep(0.2)
        finally:
            second.kill()  # its graceful stop was shown above; this one only has to be quick


# -- concurrency ------------------------------------------------------------------------------------------------
def test_sixteen_clients_for_a_minute_match_requests_made_alone(gateway, refs) -> None:
    texts = ["你好，世界。", "Hello there, how are you today?"]
    jobs = [(f"ref{i}.wav", text, 100 + 10 * i + j) for i in range(4) for j, text in enumerate(texts)]
    references = {name: (refs / name).read_bytes() for name, _, _ in jobs}

    def run(client: httpx.Client, job) -> httpx.Response:
        name, text, seed = job
        language = "zh" if text.startswith("你") else "en"
        return _post_clone(gateway.url, references[name], client, text=text, text_language=language, seed=seed)

    with httpx.Client() as client:
        alone = {}
        for job in jobs:
            response = run(client, job)
            assert response.status_code == 200, response.text
            alone[job] = response.json()["output_audio_base64"]

    errors: list[str] = []
    counts = [0] * SOAK_CLIENTS
    stop_at = time.monotonic() + SOAK_SECONDS
    barrier = threading.Barrier(SOAK_CLIENTS)

    def client_loop(index: int) -> None:
        with httpx.Client() as client:
            barrier.wait()
            n = index
            while time.monotonic() < stop_at:
                job = jobs[n % len(jobs)]
                n += 1
                try:
                    response = run(client, job)
                except httpx.HTTPError as exc:
                    errors.append(f"{job}: {exc!r}")
                    continue
                if response.status_code != 200:
                    errors.append(f"{job}: {response.status_code} {response.text[:200]}")
                elif response.json()["output_audio_base64"] != alone[job]:
                    errors.append(f"{job}: audio differs from the same request made alone")
                counts[index] += 1

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(SOAK_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"soak: {sum(counts)} requests from {SOAK_CLIENTS} clients in {SOAK_SECONDS:g} s")  # shown with -s
    assert not errors, f"{len(errors)} errors in {sum(counts)} requests, first: {errors[:3]}"
    assert min(counts) >= 1 and sum(counts) >= 2 * SOAK_CLIENTS, counts
    decoded = base64.b64decode(next(iter(alone.values())))
    assert _decode_wav(decoded)[1].samplerate == OUTPUT_RATE
