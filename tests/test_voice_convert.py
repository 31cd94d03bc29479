"""``POST /v1/voice-convert`` through a real gateway process and a real tritonserver (tiny models)."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from gateway_fixtures import create_voice, start_gateway

pytestmark = pytest.mark.slow

TIMEOUT_S = 120.0
TRANSCRIPT = "你好，这是一个测试。"
SOURCE_SECONDS = 4.0
SSL_TAIL_SECONDS = 0.6  # upstream appends 0.6 s of zeros to the HuBERT input, so the codes cover it too
SECONDS_PER_CODE = 1280 / 32_000


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory):
    running = start_gateway(triton_server.grpc_url, tmp_path_factory.mktemp("convert_gateway"))
    yield running
    assert running.stop() == 0


def _convert(url: str, source: bytes, target: bytes | None = None, **fields) -> httpx.Response:
    files = {"source_audio": ("source.wav", source)}
    if target is not None:
        files["audio"] = ("target.wav", target)
    data = {"text": TRANSCRIPT, "text_language": "zh", "seed": "3", **{k: str(v) for k, v in fields.items()}}
    return httpx.post(f"{url}/v1/voice-convert", data=data, files=files, timeout=TIMEOUT_S)


def test_conversion_by_upload_and_by_stored_voice(gateway, reference_audio) -> None:
    source, target, other = reference_audio(1, SOURCE_SECONDS), reference_audio(2), reference_audio(3)
    created = create_voice(gateway.url, target)
    assert created.status_code == 201, created.text

    by_upload = _convert(gateway.url, source, target)
    by_voice = _convert(gateway.url, source, voice_id=created.json()["id"])
    assert by_upload.status_code == 200 and by_voice.status_code == 200, (by_upload.text, by_voice.text)
    assert by_upload.headers["content-type"] == "audio/wav"
    assert by_voice.content == by_upload.content  # the stored ge is the clip's ge, exactly
    audio, rate = sf.read(io.BytesIO(by_upload.content), dtype="float32")
    assert rate == 32_000 and float(by_upload.headers["x-audio-duration"]) == pytest.approx(len(audio) / rate)
    # The source's own codes set the length: one code per 40 ms of the source plus its 0.6 s tail.
    assert abs(len(audio) / rate - (SOURCE_SECONDS + SSL_TAIL_SECONDS)) <= 2 * SECONDS_PER_CODE
    assert np.abs(audio).max() > 0

    assert _convert(gateway.url, source, other).content != by_upload.content  # another target voice
    assert _convert(gateway.url, source, target).content == by_upload.content  # same seed, same audio
    mp3 = _convert(gateway.url, source, target, response_format="mp3", sample_rate=24_000)
    assert mp3.headers["content-type"] == "audio/mpeg" and mp3.headers["x-sample-rate"] == "24000"


def test_conversion_errors_name_their_field(gateway, reference_audio) -> None:
    source, target = reference_audio(1), reference_audio(2)
    cases = [
        (_convert(gateway.url, source), 422, "voice_id"),
        (_convert(gateway.url, source, target, voice_id="voice_0123456789abcdef"), 400, "voice_id"),
        (_convert(gateway.url, source, voice_id="voice_0123456789abcdef"), 404, "voice_id"),
        (_convert(gateway.url, b"not audio", target), 415, "source_audio"),
        (_convert(gateway.url, source, b"not audio"), 415, "audio"),
        (_convert(gateway.url, source, target, text_language="martian"), 400, "text_language"),
        (_convert(gateway.url, source, target, speed=9), 400, "speed"),
        (_convert(gateway.url, source, target, response_format="aac"), 400, "response_format"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.json()["field"] == field, response.text
    assert _convert(gateway.url, source, target).status_code == 200
