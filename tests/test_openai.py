"""OpenAI-compatible speech through the official ``openai`` client (base URL changed, nothing else), against a
real gateway process with API keys configured and a real tritonserver (tiny models)."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from gateway_fixtures import create_voice, start_gateway
from test_formats import decode_with_av  # skips this module without PyAV, as there

pytestmark = pytest.mark.slow
openai = pytest.importorskip("openai")

API_KEY = "test-key-123"
TEXT = "你好，这是一个语音克隆测试。"
TIMEOUT_S = 120.0
SEED = 5


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("openai_gateway")
    running = start_gateway(triton_server.grpc_url, workdir, ["--max-new-tokens", "40"], env={"GSV_API_KEYS": API_KEY})
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def voice(gateway, reference_audio) -> dict:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    response = create_voice(gateway.url, reference_audio(4), auth, name="openai-narrator")
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, timeout=TIMEOUT_S, max_retries=0)


def _frames(data: bytes) -> tuple[int, int]:
    """(samples, rate) as FFmpeg decodes the file."""
    audio, rate = decode_with_av(data)
    return audio.size, rate


def test_models_list(client) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gpt-sovits", "tts-1"} <= ids


def test_speech_in_every_format_equals_voice_clone(client, gateway, voice) -> None:
    extra = {"seed": SEED, "language": "zh"}
    wav = client.audio.speech.create(model="tts-1", voice=voice["id"], input=TEXT, response_format="wav",
                                     extra_body=extra).content  # fmt: skip
    reference = httpx.post(
        f"{gateway.url}/v1/voice-clone", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=TIMEOUT_S,
        data={"text": TEXT, "text_language": "zh", "voice_id": voice["id"], "seed": str(SEED)},
    )  # fmt: skip
    assert reference.status_code == 200, reference.text
    assert wav == base64.b64decode(reference.json()["output_audio_base64"])
    samples, rate = _frames(wav)
    assert rate == 32_000 and samples > 0

    # The default format is mp3, as OpenAI's; the voice may also be its name or OpenAI's {"id": ...} object.
    mp3 = client.audio.speech.create(model="gpt-sovits", voice="openai-narrator", input=TEXT, extra_body=extra)
    assert mp3.response.headers["content-type"] == "audio/mpeg"
    mp3_samples, mp3_rate = _frames(mp3.content)
    assert mp3_rate == 32_000 and abs(mp3_samples - samples) < 0.1 * rate
    for name in ("opus", "flac"):
        encoded = client.audio.speech.create(model="tts-1-hd", voice={"id": voice["id"]}, input=TEXT,
                                             response_format=name, extra_body=extra)  # fmt: skip
        n, r = _frames(encoded.content)
        assert abs(n / r - samples / rate) < 0.1, name
    pcm = client.audio.speech.create(model="tts-1", voice=voice["id"], input=TEXT, response_format="pcm",
                                     extra_body=extra)  # fmt: skip
    assert pcm.response.headers["x-sample-rate"] == "24000"
    assert abs(len(np.frombuffer(pcm.content, "<i2")) / 24_000 - samples / rate) < 0.01


def test_speech_errors(client, gateway, voice) -> None:
    with pytest.raises(openai.NotFoundError):
        client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
    with pytest.raises(openai.NotFoundError) as bad_model:  # neither a model set nor one of OpenAI's ids
        client.audio.speech.create(model="whisper-1", voice=voice["id"], input=TEXT)
    assert bad_model.value.body["field"] == "model" and "tts-1" in bad_model.value.body["detail"]
    with pytest.raises(openai.BadRequestError) as bad_format:
        client.audio.speech.create(model="tts-1", voice=voice["id"], input=TEXT, response_format="aac")
    assert bad_format.value.body["field"] == "response_format"
    with pytest.raises(openai.BadRequestError) as empty:
        client.audio.speech.create(model="tts-1", voice=voice["id"], input="   ")
    assert empty.value.body["field"] == "input"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong", max_retries=0).models.list()
