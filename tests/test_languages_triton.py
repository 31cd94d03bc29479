"""Japanese and Korean requests end to end on the tiny models: straight to a real tritonserver (gRPC), and
through the real gateway over HTTP. The audio-length rule of api.py holds: SAMPLES_PER_TOKEN samples per
generated token plus 0.3 s of silence after every piece."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from gateway_fixtures import start_gateway

from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SAMPLES_PER_TOKEN

pytestmark = pytest.mark.slow

SILENCE = int(0.3 * OUTPUT_SAMPLE_RATE)
MAX_TOKENS = 40  # bounds the tiny random GPT
# (text_language, text, cut_punc, pieces, prompt_language, prompt_text)
CASES = [
    ("ja", "こんにちは。今日は2024年12月6日、いい天気ですね！", "。！", 2, "ja", "参考音声のテキストです。"),
    ("ko", "안녕하세요. 오늘 KBS 뉴스는 3개입니다!", ".!", 2, "ko", "참고 음성의 문장입니다."),
    ("auto", "今日はいい天気。안녕하세요! Hello world.", "。!", 3, "auto", "参考音频文字。"),
]


def _clone(endpoints, reference: bytes, language: str, text: str, cut_punc: str, prompt_language: str,
           prompt_text: str):  # fmt: skip
    import tritonclient.grpc as grpcclient

    from gsv_triton.client import build_inputs

    client = grpcclient.InferenceServerClient(endpoints.grpc_url)
    try:
        inputs = build_inputs("grpc", text, reference, prompt_text, language, prompt_language, seed=7,
                              cut_punc=cut_punc, max_new_tokens=MAX_TOKENS)  # fmt: skip
        result = client.infer("voice_clone", inputs)
    finally:
        client.close()
    return result.as_numpy("audio"), result.as_numpy("segment_tokens")


@pytest.mark.parametrize(("language", "text", "cut_punc", "pieces", "prompt_language", "prompt_text"), CASES)
def test_through_triton(triton_server, reference_audio, language, text, cut_punc, pieces, prompt_language,
                        prompt_text) -> None:  # fmt: skip
    audio, per_piece = _clone(triton_server, reference_audio(1), language, text, cut_punc, prompt_language,
                              prompt_text)  # fmt: skip
    assert len(per_piece) == pieces and per_piece.min() >= 1
    assert len(audio) == sum(SAMPLES_PER_TOKEN * int(n) + SILENCE for n in per_piece)
    assert np.abs(audio).max() > 0


@pytest.fixture(scope="module")
def gateway(triton_server, reference_audio, tmp_path_factory):
    refs = tmp_path_factory.mktemp("lang_refs")
    (refs / "default.wav").write_bytes(reference_audio(2))
    args = ["--refer-root", str(refs), "-dr", str(refs / "default.wav"), "-dt", "参考音频文字", "-dl", "zh",
            "--max-new-tokens", str(MAX_TOKENS)]  # fmt: skip
    running = start_gateway(triton_server.grpc_url, tmp_path_factory.mktemp("lang_gateway"), args,
                            triton_http_url=triton_server.http_url)  # fmt: skip
    yield running
    assert running.stop() == 0, running.log_text()[-3000:]


@pytest.mark.parametrize(("language", "text", "cut_punc", "pieces", "prompt_language", "prompt_text"), CASES)
def test_through_the_gateway(gateway, triton_server, reference_audio, language, text, cut_punc, pieces,
                             prompt_language, prompt_text) -> None:  # fmt: skip
    reference = reference_audio(3)
    data = {"text": text, "text_language": language, "prompt_text": prompt_text,
            "prompt_language": prompt_language, "cut_punc": cut_punc, "seed": "7"}  # fmt: skip
    response = httpx.post(f"{gateway.url}/v1/voice-clone", data=data, files={"audio": ("ref.wav", reference)},
                          timeout=120.0)  # fmt: skip
    assert response.status_code == 200, response.text
    result = response.json()
    audio, rate = sf.read(io.BytesIO(base64.b64decode(result["output_audio_base64"])), dtype="float32")
    assert rate == OUTPUT_SAMPLE_RATE and len(audio) / rate == pytest.approx(result["output_duration"], abs=1e-9)
    # the same request straight to Triton gives the token counts; the wav has exactly their length
    _, per_piece = _clone(triton_server, reference, language, text, cut_punc, prompt_language, prompt_text)
    assert len(per_piece) == pieces
    assert len(audio) == sum(SAMPLES_PER_TOKEN * int(n) + SILENCE for n in per_piece)


def test_ui_names_map_through_the_gateway(gateway, reference_audio) -> None:
    # api.py's UI names: 日文 -> all_ja, 韩文 -> all_ko
    for language, text in (("日文", "ちょっと待って。"), ("韩文", "같이 가요.")):
        data = {"text": text, "text_language": language, "prompt_text": "参考音频文字", "prompt_language": "中文"}
        response = httpx.post(f"{gateway.url}/v1/voice-clone", data=data,
                              files={"audio": ("ref.wav", reference_audio(4))}, timeout=120.0)  # fmt: skip
        assert response.status_code == 200, (language, response.text)
