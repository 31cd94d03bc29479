"""The synthesis routes' form (gateway/forms.py): Starlette's parser reads it, the model's field rules, and the
documented request body. The routes themselves are tested over real HTTP elsewhere."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from gsv_gateway.forms import SynthesisForm, Upload, parse_form, read_form
from gsv_triton.errors import InputError


def _encoded(data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """(body, boundary) of the multipart form httpx sends for ``data`` and ``files``."""
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    return request.read(), boundary


def _read(body: bytes, content_type: bytes) -> dict[str, str | Upload]:
    """``read_form`` on a real Starlette request whose body arrives in 4 kB chunks."""

    async def parse() -> dict[str, str | Upload]:
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] + [b""]

        async def receive() -> dict:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        request = Request({"type": "http", "method": "POST", "headers": [(b"content-type", content_type)]}, receive)
        return await read_form(request)

    return asyncio.run(parse())


def test_binary_uploads_and_text_fields_come_back_exactly() -> None:
    rng = np.random.default_rng(0)
    # Binary content full of CR, LF, dashes and near-boundaries, where a streaming parser has to look twice.
    tricky = b"\r\n--\r\n-\r\r\n\r\n--x" * 50
    upload = rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes() + tricky
    data = {"text": "你好，世界。", "text_language": "zh", "prompt_text": "", "seed": "7", "cut_punc": "，。\r\n"}
    body, boundary = _encoded(data, {"audio": ("ref.wav", upload)})
    parts = _read(body, b"multipart/form-data; boundary=" + boundary)
    assert parts == {**data, "audio": Upload("ref.wav", upload)}


def test_urlencoded_forms_and_other_bodies() -> None:
    body = httpx.Request("POST", "http://x/", data={"text": "hi there", "voice_id": "v1"}).read()
    assert _read(body, b"application/x-www-form-urlencoded") == {"text": "hi there", "voice_id": "v1"}
    assert _read(b'{"text": "hi"}', b"application/json") == {}  # then the model names the missing fields (422)


def test_parse_form_validates_types_and_part_kinds() -> None:
    form = parse_form(SynthesisForm, {"text": "hi", "text_language": "en", "top_k": "5", "audio": Upload("r", b"x")})
    assert (form.text, form.top_k, form.audio, form.seed) == ("hi", 5, b"x", None)
    with pytest.raises(RequestValidationError) as caught:
        parse_form(SynthesisForm, {"text": "hi", "text_language": "en", "top_k": "five"})
    assert caught.value.errors()[0]["loc"][0] == "top_k"
    with pytest.raises(RequestValidationError):
        parse_form(SynthesisForm, {"text_language": "en"})  # text is required
    with pytest.raises(InputError, match="file part") as as_text:
        parse_form(SynthesisForm, {"text": "hi", "text_language": "en", "audio": "not a file"})
    assert as_text.value.status == 422
    with pytest.raises(InputError, match="text field"):
        parse_form(SynthesisForm, {"text": Upload("t.txt", b"hi"), "text_language": "en"})


def test_empty_values_count_as_not_sent_and_unknown_fields_are_ignored() -> None:
    """FastAPI's rule for form parameters, kept so clients see no change."""
    form = parse_form(SynthesisForm, {"text": "hi", "text_language": "en", "cut_punc": "", "top_k": "",
                                      "audio": Upload("", b""), "extra": Upload("x", b"1")})  # fmt: skip
    assert (form.cut_punc, form.top_k, form.audio) == (None, None, None)
    with pytest.raises(RequestValidationError) as caught:
        parse_form(SynthesisForm, {"text": "", "text_language": "en"})
    assert caught.value.errors()[0]["type"] == "missing"


def test_the_documented_body_is_the_form() -> None:
    schema = SynthesisForm.openapi()["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["text", "text_language"]
    assert schema["properties"]["audio"]["contentMediaType"] == "application/octet-stream"
    for name, prop in schema["properties"].items():
        assert "default" not in prop and "anyOf" not in prop, name  # never offers null ("not sent" only)
