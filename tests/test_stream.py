"""``POST /v1/voice-clone/stream`` (decoupled ``voice_clone_stream`` over gRPC) through a real gateway process and
a real tritonserver (tiny models): the first audio arrives before the response completes, and the concatenated
stream equals the non-streamed audio for the same seed."""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
from gateway_fixtures import create_voice, start_gateway
from test_formats import decode_with_av  # skips this module without PyAV, as there

pytestmark = pytest.mark.slow

TIMEOUT_S = 120.0
PROMPT = "参考音频文字"
TEXT = "你好，这是第一句。这是第二句话，还有一点。最后是第三句！"
CUT = "，。！"
WAV_HEADER_BYTES = 44


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory):
    running = start_gateway(
        triton_server.grpc_url, tmp_path_factory.mktemp("stream_gateway"), ["--max-new-tokens", "40"]
    )
    yield running
    assert running.stop() == 0


def _form(seed: int = 9, **changes) -> dict:
    """The request's fields; a change to None removes the field."""
    form = {"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh", "seed": str(seed),
            "cut_punc": CUT, **changes}  # fmt: skip
    return {k: v for k, v in form.items() if v is not None}


def _files(reference: bytes | None) -> dict | None:
    return {"audio": ("ref.wav", reference)} if reference is not None else None


def _stream(url: str, data: dict, reference: bytes | None) -> tuple[httpx.Response, bytes, list[float], float]:
    """(response, body, arrival time of each read, time the body completed), times from the request start."""
    start = time.perf_counter()
    arrivals, body = [], b""
    with httpx.stream("POST", f"{url}/v1/voice-clone/stream", data=data, files=_files(reference),
                      timeout=TIMEOUT_S) as response:  # fmt: skip
        for chunk in response.iter_raw():
            arrivals.append(time.perf_counter() - start)
            body += chunk
    return response, body, arrivals, time.perf_counter() - start


def _full_pcm(url: str, data: dict, reference: bytes | None) -> np.ndarray:
    answer = httpx.post(f"{url}/v1/voice-clone", data={**data, "response_format": "pcm"}, files=_files(reference),
                        timeout=TIMEOUT_S)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return np.frombuffer(base64.b64decode(answer.json()["output_audio_base64"]), "<i2")


def test_wav_stream_arrives_early_and_equals_the_full_answer(gateway, reference_audio) -> None:
    reference = reference_audio(1)
    response, body, arrivals, done = _stream(gateway.url, _form(), reference)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert response.headers["transfer-encoding"] == "chunked" and int(response.headers["x-pieces"]) >= 4
    # The first audio bytes (the header and the first piece) came well before the response completed.
    assert len(arrivals) >= 2 and arrivals[0] < done - 0.02, (arrivals, done)

    full = _full_pcm(gateway.url, _form(), reference)
    np.testing.assert_array_equal(np.frombuffer(body[WAV_HEADER_BYTES:], "<i2"), full)
    # The streaming header (unknown sizes) is read by independent decoders too.
    decoded = decode_with_av(body)[0].size
    assert decoded == full.size
    audio, rate = sf.read(io.BytesIO(body), dtype="int16")
    assert rate == 32_000 and audio.size == full.size


def test_pcm_stream_with_a_stored_voice(gateway, reference_audio) -> None:
    created = create_voice(gateway.url, reference_audio(2))
    assert created.status_code == 201, created.text
    data = _form(seed=4, voice_id=created.json()["id"], prompt_text=None, prompt_language=None)
    response, body, _, _ = _stream(gateway.url, {**data, "response_format": "pcm"}, None)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/pcm"
    np.testing.assert_array_equal(np.frombuffer(body, "<i2"), _full_pcm(gateway.url, data, None))


def test_stream_errors_come_before_any_audio(gateway, reference_audio) -> None:
    reference = reference_audio(1)
    cases = [
        ({"text_language": "martian"}, reference, 400, "text_language"),
        ({"response_format": "mp3"}, reference, 400, "response_format"),
        ({"sample_rate": "16000"}, reference, 400, "sample_rate"),
        ({}, b"not audio", 415, "audio"),
        ({}, None, 422, "audio"),
        ({"voice_id": "voice_0123456789abcdef", "prompt_text": None, "prompt_language": None}, None, 404, "voice_id"),
    ]
    for changes, audio, status, field in cases:
        response = httpx.post(f"{gateway.url}/v1/voice-clone/stream", data=_form(**changes), files=_files(audio),
                              timeout=TIMEOUT_S)  # fmt: skip
        assert response.status_code == status, response.text
        assert response.json()["field"] == field


def test_direct_triton_stream_client_equals_synthesize(triton_server, reference_audio) -> None:
    """gsv_triton.client.synthesize_stream (voice_clone_stream over gRPC) against synthesize (voice_clone)."""
    from gsv_triton.client import synthesize, synthesize_stream

    request = dict(text=TEXT, reference_audio=reference_audio(3), prompt_text=PROMPT, seed=21, cut_punc=CUT,
                   max_new_tokens=40)  # fmt: skip
    parts = list(synthesize_stream(triton_server.grpc_url, **request))
    full, rate = synthesize(triton_server.grpc_url, "grpc", **request)
    assert len(parts) >= 4 and all(r == rate for _, r in parts)
    np.testing.assert_array_equal(np.concatenate([p for p, _ in parts]), full)
