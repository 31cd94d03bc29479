"""The voice library through a real gateway process and a real tritonserver (tiny models).

A voice is encoded once by Triton's ``voice_encode`` and stored as files; ``voice_id`` requests skip ssl,
vq_encode and ref_encoder, and give exactly the audio of the upload path for the same seed, also after a
gateway restart (a new process reading the same voice directory).
"""

from __future__ import annotations

import httpx
import pytest
from gateway_fixtures import VOICE_PROMPT, create_voice, start_gateway

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 40
TIMEOUT_S = 120.0
PROMPT = VOICE_PROMPT  # the prompt text of the voices create_voice stores
TEXT = "你好，这是一个语音克隆测试。"


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("voices")


def _gateway(triton_server, voice_dir, workdir):
    return start_gateway(triton_server.grpc_url, workdir, ["--max-new-tokens", str(MAX_NEW_TOKENS)],
                         env={"GSV_VOICE_DIR": str(voice_dir)})  # fmt: skip


def _clone(url: str, seed: int = 11, audio: bytes | None = None, **fields) -> httpx.Response:
    data = {"text": TEXT, "text_language": "zh", "seed": str(seed), **fields}
    files = {"audio": ("ref.wav", audio)} if audio is not None else None
    return httpx.post(f"{url}/v1/voice-clone", data=data, files=files, timeout=TIMEOUT_S)


def test_voice_lifecycle_same_audio_as_upload_and_survives_restart(triton_server, voice_dir, reference_audio,
                                                                    tmp_path) -> None:  # fmt: skip
    clip = reference_audio(3)
    gateway = _gateway(triton_server, voice_dir, tmp_path)
    try:
        created = create_voice(gateway.url, clip, name="narrator")
        assert created.status_code == 201, created.text
        voice = created.json()
        assert voice["name"] == "narrator" and voice["prompt_text"] == PROMPT and voice["prompt_tokens"] > 0
        assert abs(voice["reference_seconds"] - 3.5) < 0.01
        assert httpx.get(f"{gateway.url}/v1/voices/{voice['id']}").json() == voice
        assert voice in httpx.get(f"{gateway.url}/v1/voices").json()["voices"]

        upload = _clone(gateway.url, audio=clip, prompt_text=PROMPT, prompt_language="zh")
        by_id = _clone(gateway.url, voice_id=voice["id"])
        assert upload.status_code == 200 and by_id.status_code == 200, (upload.text, by_id.text)
        assert by_id.json()["output_audio_base64"] == upload.json()["output_audio_base64"]
        other_seed = _clone(gateway.url, seed=12, voice_id=voice["id"])
        assert other_seed.json()["output_audio_base64"] != by_id.json()["output_audio_base64"]
    finally:
        assert gateway.stop() == 0

    restarted = _gateway(triton_server, voice_dir, tmp_path)
    try:
        assert httpx.get(f"{restarted.url}/v1/voices/{voice['id']}").json() == voice
        again = _clone(restarted.url, voice_id=voice["id"])
        assert again.json()["output_audio_base64"] == upload.json()["output_audio_base64"]

        deleted = httpx.delete(f"{restarted.url}/v1/voices/{voice['id']}")
        assert deleted.status_code == 200 and deleted.json()["id"] == voice["id"]
        assert httpx.get(f"{restarted.url}/v1/voices/{voice['id']}").status_code == 404
        gone = _clone(restarted.url, voice_id=voice["id"])
        assert gone.status_code == 404 and gone.json()["field"] == "voice_id"
        assert voice not in httpx.get(f"{restarted.url}/v1/voices").json()["voices"]
        assert not list(voice_dir.glob(f"{voice['id']}*"))
    finally:
        assert restarted.stop() == 0


def test_voice_errors_name_their_field(triton_server, voice_dir, reference_audio, tmp_path) -> None:
    gateway = _gateway(triton_server, voice_dir, tmp_path)
    try:
        clip = reference_audio(2)
        cases = [
            (create_voice(gateway.url, b"not audio at all"), 415, "audio"),
            (create_voice(gateway.url, clip, prompt_language="martian"), 400, "prompt_language"),
            (httpx.post(f"{gateway.url}/v1/voices", data={"prompt_language": "zh"}, files={"audio": ("r.wav", clip)}),
             422, "prompt_text"),
            (_clone(gateway.url, voice_id="voice_0123456789abcdef"), 404, "voice_id"),
            (_clone(gateway.url, voice_id="../../etc/passwd"), 404, "voice_id"),
            (_clone(gateway.url, voice_id="voice_0123456789abcdef", audio=clip), 400, "voice_id"),
            (_clone(gateway.url), 422, "audio"),
            (_clone(gateway.url, audio=clip, prompt_text=PROMPT), 422, "prompt_language"),
            (httpx.delete(f"{gateway.url}/v1/voices/voice_0123456789abcdef"), 404, "voice_id"),
        ]  # fmt: skip
        for response, status, field in cases:
            assert response.status_code == status, response.text
            body = response.json()
            assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
        assert create_voice(gateway.url, clip).status_code == 201  # and a good request right after
    finally:
        assert gateway.stop() == 0
