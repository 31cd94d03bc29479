"""The gateway without a Triton: settings, early input checks, path confinement, and a real uvicorn server whose
Triton is not running (503 fast, 4xx still precise, request ids, metrics, 413 before parsing, 500 without trace).

The tests with a running tritonserver are in test_gateway_triton.py (marked slow).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from gsv_gateway.app import create_app, max_body_bytes
from gsv_gateway.cli import build_parser, settings_from_args
from gsv_gateway.errors import ForbiddenPath
from gsv_gateway.references import confined_path, load_default_reference, read_confined
from gsv_gateway.server import BackgroundGateway
from gsv_gateway.service import VoiceCloneService
from gsv_gateway.validation import (
    FORM_FIELDS,
    OPENAI_FIELDS,
    UPSTREAM_FIELDS,
    CloneFields,
    build_tensors,
    contract_tensors,
)
from gsv_triton.audio import validate_reference
from gsv_triton.backend.requests import parse_request
from gsv_triton.contract import VOICE_CONVERT, VOICE_ENCODE
from gsv_triton.errors import InputError, UserError
from gsv_triton.server import free_port
from gsv_triton.settings import Limits, Settings

RATE = 32_000
# 503 must come back fast when Triton is down (the bound is 2 s).
UNAVAILABLE_WITHIN_S = 2.0


def wav(seconds: float, rate: int = RATE, amplitude: float = 0.3, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def fields(**changes) -> CloneFields:
    values = dict(text="你好，世界。", text_language="zh", prompt_text="参考音频文字", prompt_language="zh",
                  reference_audio=wav(3.5))  # fmt: skip
    values.update(changes)
    return CloneFields(**values)


# -- settings ---------------------------------------------------------------------------------------------------
def test_settings_read_gsv_environment_and_share_the_limits(monkeypatch) -> None:
    assert Settings().limits == Limits()  # same defaults as the Triton side
    monkeypatch.setenv("GSV_MAX_TEXT_CHARS", "123")
    monkeypatch.setenv("GSV_REQUEST_TIMEOUT_S", "7.5")
    monkeypatch.setenv("GSV_TRITON_URL", "grpc://triton:9001/")
    settings = Settings()
    assert settings.limits.max_text_chars == 123 and settings.request_timeout_s == 7.5
    assert settings.triton_url == "triton:9001"


def test_settings_reject_partial_default_reference_and_http_urls(tmp_path) -> None:
    with pytest.raises(ValueError, match="all three"):
        Settings(default_refer_path=tmp_path / "a.wav", default_refer_text="hi")
    with pytest.raises(ValueError, match="gRPC"):
        Settings(triton_url="http://127.0.0.1:8000")


def test_cli_flags_override_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GSV_REQUEST_TIMEOUT_S", "7.5")
    args = build_parser().parse_args(
        ["--triton-url", "h:1", "--timeout", "3", "-dr", str(tmp_path / "r.wav"), "-dt", "你好", "-dl", "zh", "-cp", "。"]
    )
    settings = settings_from_args(args)
    assert (settings.triton_url, settings.request_timeout_s, settings.default_cut_punc) == ("h:1", 3.0, "。")
    assert settings.default_refer_path == tmp_path / "r.wav"
    with pytest.raises(UserError, match="default reference"):
        load_default_reference(settings)  # the file does not exist: one line at start-up
    with pytest.raises(UserError, match="all three"):
        settings_from_args(build_parser().parse_args(["-dr", "x.wav"]))


# -- the tensors the gateway builds, under voice_clone's own rules ----------------------------------------------
def voice_clone_rules(tensors: dict[str, np.ndarray], limits: Limits) -> float:
    """What voice_clone checks inside Triton (its request parser, then the reference clip), in process; returns
    the clip's seconds. The gateway itself checks none of it: tests/test_gateway_triton.py sends the same
    catalogue through Triton."""
    request = parse_request(tensors, limits=limits, draw_seed=lambda: 0)
    mono, rate, _ = validate_reference(request.reference_audio, limits)
    return mono.shape[-1] / rate

@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"this is not audio at all" * 10, 415, "decode"),
        (wav(0.5), 400, "3-10 s"),
        (wav(60.0, rate=8000), 400, "3-10 s"),
        (wav(4.0, amplitude=0.0), 400, "silent"),
    ],
)
def test_reference_rules_give_their_status(data: bytes, status: int, words: str) -> None:
    with pytest.raises(InputError) as info:
        validate_reference(data, Limits())
    assert (info.value.field, info.value.status) == ("audio", status)
    assert words in info.value.message


def test_reference_over_the_upload_limit_is_413() -> None:
    with pytest.raises(InputError) as info:
        validate_reference(wav(3.5), Limits(max_upload_bytes=1000))
    assert (info.value.field, info.value.status) == ("audio", 413)
    mono, rate, _ = validate_reference(wav(3.5, channels=2), Limits())
    assert mono.shape[-1] / rate == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"text": ""}, "text", 400),
        ({"text": "字" * 1001}, "text", 413),
        ({"text_language": "klingon"}, "text_language", 400),
        ({"prompt_language": ""}, "prompt_language", 400),
        ({"prompt_text": " "}, "prompt_text", 400),
        ({"top_k": 0}, "top_k", 400),
        ({"top_k": 2**40}, "top_k", 400),
        ({"top_p": 1.5}, "top_p", 400),
        ({"temperature": 1e300}, "temperature", 400),  # beyond FP32: inf on the wire, refused by name
        ({"speed": 9.0}, "speed", 400),
        ({"seed": 2**64}, "seed", 400),
        ({"reference_audio": b"RIFF...."}, "audio", 415),
    ],
)
def test_request_rules_name_the_field(change, field, status) -> None:
    settings = Settings()
    with pytest.raises(InputError) as info:
        voice_clone_rules(build_tensors(fields(**change), settings), settings.limits)
    assert (info.value.field, info.value.status) == (field, status)


def test_tensors_carry_exactly_what_was_sent_plus_configured_defaults() -> None:
    plain = build_tensors(fields(), Settings())
    assert set(plain) == {"text", "text_language", "prompt_text", "prompt_language", "reference_audio"}
    configured = Settings(default_cut_punc="。", max_new_tokens=40)
    tensors = build_tensors(fields(seed=2**64 - 1, top_k=5, speed=1.25), configured)
    assert tensors["cut_punc"][0] == "。".encode() and tensors["max_new_tokens"].tolist() == [40]
    assert tensors["seed"].dtype == np.int64 and tensors["seed"].tolist() == [-1]  # same 64 bits
    assert tensors["top_k"].dtype == np.int32 and tensors["speed"].dtype == np.float32
    explicit = build_tensors(fields(cut_punc=""), configured)
    assert explicit["cut_punc"][0] == b""  # an explicit empty cut_punc wins over the default (api.py)
    assert voice_clone_rules(tensors, configured.limits) == pytest.approx(3.5)


def test_every_model_gets_contract_typed_tensors_and_only_wire_checks() -> None:
    convert = contract_tensors(VOICE_CONVERT, {"source_audio": b"RIFF", "text": "hi", "text_language": "en",
                                               "reference_audio": None, "ge": np.ones(4, np.float32), "seed": 2**63})  # fmt: skip
    assert set(convert) == {"source_audio", "text", "text_language", "ge", "seed"}  # None: not sent
    assert convert["text"].dtype == object and convert["seed"].tolist() == [-(2**63)]
    encode = contract_tensors(VOICE_ENCODE, {"reference_audio": b"", "prompt_text": "x", "prompt_language": "zh"})
    assert encode["reference_audio"][0] == b""  # an empty clip is the model's to refuse (400 "empty")
    for change, field in (({"top_k": 2**31}, "top_k"), ({"seed": -(2**63) - 1}, "seed")):
        with pytest.raises(InputError) as info:
            build_tensors(fields(**change), Settings())
        assert (info.value.field, info.value.status) == (field, 400)
    # a number FP32 cannot hold is refused as sent (400), not sent on as inf or 0
    with pytest.raises(InputError, match="too large for FP32"):
        build_tensors(fields(temperature=1e300), Settings())


@pytest.mark.parametrize(
    ("names", "tensor", "field"),
    [(FORM_FIELDS, "reference_audio", "audio"), (UPSTREAM_FIELDS, "reference_audio", "refer_wav_path"),
     (OPENAI_FIELDS, "text", "input"), (OPENAI_FIELDS, "top_k", "top_k")],
)  # fmt: skip
def test_triton_errors_come_back_under_the_route_s_field_names(names, tensor, field) -> None:
    """A model's InputError names its tensor; the service renames it once, through the calling route's table."""
    import asyncio

    class RefusingTriton:
        async def model_states(self):  # the default model set, loaded
            return {"t2s": "READY", "vq_encode": "READY", "ref_encoder": "READY", "sovits_decode": "READY"}

        async def synthesize(self, tensors, request_id):
            raise InputError(tensor, "breaks a rule", 415)

    service = VoiceCloneService(RefusingTriton(), Settings(), None)  # type: ignore[arg-type]
    with pytest.raises(InputError) as info:
        asyncio.run(service.synthesize(fields(), "id", names))
    assert (info.value.field, info.value.status, info.value.message) == (field, 415, "breaks a rule")


# -- refer_wav_path confinement ---------------------------------------------------------------------------------
def test_paths_are_confined_to_the_reference_directory(tmp_path) -> None:
    root = tmp_path / "refs"
    (root / "voices").mkdir(parents=True)
    (root / "voices" / "a.wav").write_bytes(wav(3.5))
    outside = tmp_path / "secret.wav"
    outside.write_bytes(wav(3.5))
    (root / "link_out.wav").symlink_to(outside)
    (root / "link_in.wav").symlink_to(root / "voices" / "a.wav")
    (root / "dir_out").symlink_to(tmp_path)

    inside = (root / "voices" / "a.wav").resolve()
    assert confined_path("voices/a.wav", root) == inside
    assert confined_path(str(inside), root) == inside  # an absolute path inside the root is fine
    assert confined_path("voices/../voices/a.wav", root) == inside
    assert confined_path("link_in.wav", root) == inside
    for raw in ("../secret.wav", str(outside), "link_out.wav", "dir_out/secret.wav", "/etc/passwd",
                "voices/../../secret.wav", "../refs_not/x.wav"):  # fmt: skip
        with pytest.raises(ForbiddenPath):
            confined_path(raw, root)
    with pytest.raises(ForbiddenPath, match="--refer-root"):
        confined_path("voices/a.wav", None)
    limits = Limits()
    assert read_confined("voices/a.wav", root, limits) == (root / "voices" / "a.wav").read_bytes()
    with pytest.raises(InputError, match="does not exist"):
        read_confined("voices/missing.wav", root, limits)
    with pytest.raises(InputError) as info:
        read_confined("voices/a.wav", root, Limits(max_upload_bytes=100))
    assert info.value.status == 413


# -- a real uvicorn whose Triton is down ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway_without_triton(tmp_path_factory):
    refs = tmp_path_factory.mktemp("refs")
    (refs / "ref.wav").write_bytes(wav(3.5))
    settings = Settings(
        triton_url=f"127.0.0.1:{free_port()}",  # nothing listens there
        refer_root=refs,
        default_refer_path=refs / "ref.wav",
        default_refer_text="参考音频文字",
        default_refer_language="zh",
        max_upload_bytes=300_000,
    )
    with BackgroundGateway(settings) as gateway:
        yield gateway, settings


def _form(**changes):
    data = {"text": "你好，世界。", "text_language": "zh", "prompt_text": "参考", "prompt_language": "zh"}
    data.update({k: v for k, v in changes.items() if k != "audio"})
    return {k: v for k, v in data.items() if v is not None}, {"audio": ("ref.wav", changes.get("audio", wav(3.5)))}


def test_triton_down_is_a_fast_503_that_says_how_to_start_it(gateway_without_triton) -> None:
    gateway, _ = gateway_without_triton
    data, files = _form()
    start = time.monotonic()
    response = httpx.post(f"{gateway.url}/v1/voice-clone", data=data, files=files, timeout=10)
    assert time.monotonic() - start < UNAVAILABLE_WITHIN_S
    assert response.status_code == 503
    body = response.json()
    assert body["service_available"] is False and "gsv-triton serve" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    upstream = httpx.get(f"{gateway.url}/", params={"text": "你好。", "text_language": "zh"}, timeout=10)
    assert upstream.status_code == 503  # the default reference is used, then Triton is missed
    health = httpx.get(f"{gateway.url}/health", timeout=10)
    assert health.status_code == 503 and health.json()["triton"]["live"] is False


def test_what_the_gateway_knows_gets_its_4xx_even_while_triton_is_down(gateway_without_triton) -> None:
    """Missing or mistyped fields and the upload's size are the gateway's to judge; the request rules and the
    reference clip are voice_clone's (tests/test_gateway_triton.py sends those through Triton)."""
    gateway, settings = gateway_without_triton
    cases = [
        (_form(audio=wav(3.5, rate=48_000)), 413, "audio"),  # over this gateway's 300 kB limit, by size alone
        (_form(text=""), 422, "text"),  # an empty form field is a missing one
        (_form(prompt_language=None), 422, "prompt_language"),
        (_form(top_k="many"), 422, "top_k"),
        (_form(seed=str(2**64)), 400, "seed"),  # does not fit the INT64 wire type
    ]
    for (data, files), status, field in cases:
        response = httpx.post(f"{gateway.url}/v1/voice-clone", data=data, files=files, timeout=10)
        assert response.status_code == status, (field, response.text)
        body = response.json()
        assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
        assert body["code"] == status and body["service_available"] is True


def test_request_ids_metrics_and_the_body_limit(gateway_without_triton) -> None:
    gateway, settings = gateway_without_triton
    mine = httpx.get(f"{gateway.url}/nowhere", headers={"X-Request-ID": "client-id-42"}, timeout=5)
    assert mine.status_code == 404 and mine.headers["x-request-id"] == "client-id-42"
    assert mine.json()["request_id"] == "client-id-42"
    odd = httpx.get(f"{gateway.url}/nowhere", headers={"X-Request-ID": "bad id with spaces"}, timeout=5)
    assert odd.headers["x-request-id"] != "bad id with spaces" and len(odd.headers["x-request-id"]) == 32

    huge = b"\0" * (max_body_bytes(settings) + 1)
    response = httpx.post(f"{gateway.url}/v1/voice-clone", files={"audio": ("big.wav", huge)}, timeout=10)
    assert response.status_code == 413 and response.json()["field"] == "audio"
    # The same body streamed without a Content-Length is cut off once it passes the limit.
    chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
    streamed = httpx.post(f"{gateway.url}/", content=chunks, headers={"content-type": "application/json"}, timeout=10)
    assert streamed.status_code == 413 and streamed.json()["field"] == "body"

    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'gsv_gateway_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert 'gsv_gateway_requests_total{method="POST",route="/v1/voice-clone",status="413"}' in text
    assert "gsv_gateway_request_duration_seconds_bucket" in text and "gsv_gateway_audio_seconds_total" in text


def test_upstream_routes_refuse_paths_outside_the_root(gateway_without_triton, tmp_path) -> None:
    gateway, settings = gateway_without_triton
    outside = tmp_path / "outside.wav"
    outside.write_bytes(wav(3.5))
    os.symlink(outside, settings.refer_root / "sneaky.wav")
    for raw in ("../outside.wav", str(outside), "sneaky.wav", "/etc/passwd"):
        params = {"refer_wav_path": raw, "prompt_text": "x", "prompt_language": "zh", "text": "你好", "text_language": "zh"}
        assert httpx.get(f"{gateway.url}/", params=params, timeout=5).status_code == 403, raw
        assert httpx.post(f"{gateway.url}/", json=params, timeout=5).status_code == 403, raw
        change = httpx.post(f"{gateway.url}/change_refer", json={"refer_wav_path": raw}, timeout=5)
        assert change.status_code == 403 and change.json()["field"] == "refer_wav_path", raw
    empty = httpx.get(f"{gateway.url}/change_refer", timeout=5)
    assert empty.status_code == 400 and empty.json()["code"] == 400  # api.py: all three empty


def test_unexpected_faults_are_500_with_a_request_id_and_no_traceback() -> None:
    app = create_app(Settings(triton_url=f"127.0.0.1:{free_port()}"))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"] and body["request_id"] in body["detail"]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert json.loads(response.text)["service_available"] is True


def test_openapi_schema_lists_every_route() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert {"/v1/voice-clone", "/", "/change_refer", "/health", "/metrics"} <= set(paths)
    form = paths["/v1/voice-clone"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form is not None and "200" in paths["/v1/voice-clone"]["post"]["responses"]


def test_unusable_paths_stop_start_up(tmp_path: Path) -> None:
    (tmp_path / "short.wav").write_bytes(wav(1.0))
    settings = Settings(
        default_refer_path=tmp_path / "short.wav", default_refer_text="x", default_refer_language="zh"
    )
    with pytest.raises(UserError, match="3-10 s"):
        BackgroundGateway(settings)
    with pytest.raises(UserError, match="not a directory"):
        BackgroundGateway(Settings(refer_root=tmp_path / "missing"))


def test_invalid_json_names_the_body_not_a_character_offset(gateway_without_triton) -> None:
    """Issue 20: a JSON body that does not parse was reported as field "10" (the offset of the error)."""
    gateway, _ = gateway_without_triton
    response = httpx.post(f"{gateway.url}/v1/audio/speech", content=b'{"input": oops',
                          headers={"content-type": "application/json"}, timeout=10)  # fmt: skip
    assert response.status_code == 422
    assert response.json()["field"] == "body", response.text
