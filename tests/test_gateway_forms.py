"""The synthesis routes' hand-read form (gateway/forms.py): the splitter against Starlette's parser, the field
rules, and the documented request body. The routes themselves are tested over real HTTP elsewhere."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from gsv_gateway.forms import SynthesisForm, Upload, parse_form, split_multipart
from gsv_triton.errors import InputError


def _encoded(data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """(body, boundary) of the multipart form httpx sends for ``data`` and ``files``."""
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    return request.read(), boundary


def _starlette_form(body: bytes, boundary: bytes) -> dict[str, str | Upload]:
    """The same body through Starlette's own multipart parser (python-multipart), as a reference."""

    async def parse() -> dict[str, str | Upload]:
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] + [b""]

        async def receive() -> dict:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        content_type = b"multipart/form-data; boundary=" + boundary
        request = Request({"type": "http", "method": "POST", "headers": [(b"content-type", content_type)]}, receive)
        form = await request.form()
        out: dict[str, str | Upload] = {}
        for name, value in form.multi_items():
            out[name] = value if isinstance(value, str) else Upload(value.filename or "", await value.read())
        await form.close()
        return out

    return asyncio.run(parse())


def test_split_matches_starlettes_parser_on_binary_uploads() -> None:
    rng = np.random.default_rng(0)
    # Binary content full of CR, LF, dashes and near-boundaries, where a streaming parser has to look twice.
    tricky = b"\r\n--\r\n-\r\r\n\r\n--x" * 50
    upload = rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes() + tricky
    data = {"text": "你好，世界。", "text_language": "zh", "prompt_text": "", "seed": "7", "cut_punc": "，。\r\n"}
    body, boundary = _encoded(data, {"audio": ("ref.wav", upload)})
    parts = split_multipart(body, boundary)
    assert parts == _starlette_form(body, boundary)
    assert parts["audio"] == Upload("ref.wav", upload) and parts["text"] == "你好，世界。" and parts["prompt_text"] == ""


def test_split_accepts_a_preamble_an_epilogue_and_headerless_parts() -> None:
    body = (
        b"this is a preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n"
        b"--XyZ  \r\n\r\nno headers\r\n"  # transport padding after the boundary, then a part without headers
        b"--XyZ\r\ncontent-disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\nContent-Type: a/b\r\n\r\n\r\n"
        b"--XyZ--\r\nepilogue"
    )
    with pytest.raises(InputError, match='no Content-Disposition "name"'):
        split_multipart(body, b"XyZ")
    fixed = body.replace(b"\r\n\r\nno headers", b"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nno headers")
    assert split_multipart(fixed, b"XyZ") == {"a": "one", "b": "no headers", "f": Upload("x.bin", b"")}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no boundary at all", "does not contain its boundary"),
        (b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx", "without its closing boundary"),
        (b"--B junk\r\n\r\nx\r\n--B--", "trailing text"),
        (b"--B\r\nContent-Disposition form-data\r\n\r\nx\r\n--B--", "header has no colon"),
        (b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\nx\r\n--B--", "headers do not end"),
        (b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--B--", "a: is not valid UTF-8"),
    ],
)
def test_split_names_what_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(InputError) as caught:
        split_multipart(body, b"B")
    assert caught.value.status == 400 and message in f"{caught.value.field}: {caught.value.message}"


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
