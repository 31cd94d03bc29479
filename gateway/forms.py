"""The synthesis routes' form, read by hand: one pydantic model for the fields, one pass over the body.

Why not FastAPI's ``Form()``/``File()`` parameters: on ``/v1/voice-clone`` they cost about 1 ms of CPU per
request (FastAPI inspects the sixteen parameters' annotations on every call, Starlette spools the upload
through a temporary file, and python-multipart calls back for every CR in the binary upload), a fifth of the
gateway's budget (issue 5: at most 5 ms added). Here the body, already in memory (the middleware caps its
size), is split at its boundaries with ``bytes.find``, and one pydantic model validates the fields. The model's JSON schema is the route's documented request
body (``openapi_extra``, FastAPI's documented way to describe a body the route reads itself), and its errors
are FastAPI's own ``RequestValidationError``, so a client sees the same 422 as before.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from python_multipart.multipart import parse_options_header

from gsv_triton.errors import InputError

MULTIPART = b"multipart/form-data"
URLENCODED = b"application/x-www-form-urlencoded"
CRLF = b"\r\n"
STATUS_UNPROCESSABLE = 422
# The schema of a file part, as FastAPI writes it for an UploadFile (OpenAPI 3.1).
FILE_SCHEMA = {"type": "string", "contentMediaType": "application/octet-stream"}

FormModel = TypeVar("FormModel", bound="SynthesisForm")


class Upload(NamedTuple):
    """A file part of a multipart form, held in memory."""

    filename: str
    data: bytes


# What a browser sends for a file input with no file selected.
EMPTY_UPLOAD = Upload("", b"")


class SynthesisForm(BaseModel):
    """The fields of ``POST /v1/voice-clone`` (and of its streaming twin). ``None``: not sent."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    # Fields that must arrive as file parts; every other field is a text part.
    file_fields: ClassVar[tuple[str, ...]] = ("audio",)

    text: str = Field(min_length=1, description="text to speak")
    text_language: str = Field(
        min_length=1, description="zh, en, yue, all_zh, auto, ... (api.py's codes)", examples=["zh", "en"]
    )
    # SkipJsonSchema: "not sent" is the only empty value; the schema must not offer null, which a form sends
    # as the text "null".
    audio: bytes | SkipJsonSchema[None] = Field(
        None, description="reference audio file, 3-10 s (wav, flac, ogg, mp3); required unless voice_id is sent"
    )
    prompt_text: str | SkipJsonSchema[None] = Field(
        None, description="transcript of the reference audio (required with audio)"
    )
    prompt_language: str | SkipJsonSchema[None] = Field(
        None, description="language of the transcript (required with audio)", examples=["zh"]
    )
    voice_id: str | SkipJsonSchema[None] = Field(
        None, description="a stored voice (POST /v1/voices) instead of audio + prompt"
    )
    cut_punc: str | SkipJsonSchema[None] = Field(None, description="split the text after these marks, e.g. '，。'")
    top_k: int | SkipJsonSchema[None] = Field(None, description="default 15")
    top_p: float | SkipJsonSchema[None] = Field(None, description="default 1.0, in (0, 1]")
    temperature: float | SkipJsonSchema[None] = Field(None, description="default 1.0, > 0")
    speed: float | SkipJsonSchema[None] = Field(None, description="default 1.0, in [0.25, 4]")
    seed: int | SkipJsonSchema[None] = Field(
        None, description="sampling seed; the same request and seed give the same audio"
    )
    response_format: str | SkipJsonSchema[None] = Field(
        None, description="format of output_audio_base64: wav (default), pcm, flac, mp3, opus"
    )
    sample_rate: int | SkipJsonSchema[None] = Field(
        None, description="output sample rate in Hz (default: the model's, 32000)"
    )

    @classmethod
    def openapi(cls) -> dict[str, Any]:
        """``openapi_extra`` of a route that reads this form: the request body, multipart or urlencoded."""
        schema = cls.model_json_schema()
        for name, prop in schema["properties"].items():
            if prop.get("default", ...) is None:  # "not sent" is not a value a client could send
                del prop["default"]
            if name in cls.file_fields:
                prop.pop("format", None)
                prop.update(FILE_SCHEMA)
        return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def read_form(request: Request) -> dict[str, str | Upload]:
    """The body's fields: text parts as str, file parts as :class:`Upload` (a repeated name: the last wins).

    A body that is neither multipart nor urlencoded reads as no fields at all, so the client learns which
    required field is missing (422), as with FastAPI's own form parameters.
    """
    media, params = parse_options_header(request.headers.get("content-type", ""))
    if media not in (MULTIPART, URLENCODED):
        return {}
    body = await request.body()
    if media == URLENCODED:
        try:
            return dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict"))
        except UnicodeDecodeError:
            raise InputError("body", "the urlencoded form is not valid UTF-8") from None
    boundary = params.get(b"boundary")
    if not boundary:
        raise InputError("body", "the multipart content-type has no boundary")
    return split_multipart(body, boundary)


def parse_form(model: type[FormModel], form: dict[str, str | Upload]) -> FormModel:
    """``form`` validated by ``model``: 422 for a missing or mistyped field, a file sent as text or vice versa.

    As with FastAPI's form parameters, an empty value (a browser's empty input or unselected file) counts as
    not sent, and fields the model does not name are ignored.
    """
    values: dict[str, object] = {}
    for name, value in form.items():
        if name not in model.model_fields or value == "" or value == EMPTY_UPLOAD:
            continue
        is_file_field = name in model.file_fields
        if isinstance(value, Upload) != is_file_field:
            kind = "a file part (with a filename)" if is_file_field else "a text field, not a file"
            raise InputError(name, f"must be sent as {kind}", STATUS_UNPROCESSABLE)
        values[name] = value.data if isinstance(value, Upload) else value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


def split_multipart(body: bytes, boundary: bytes) -> dict[str, str | Upload]:
    """The parts of a multipart/form-data ``body`` (RFC 7578), found with ``bytes.find``.

    A general streaming parser (python-multipart, Starlette's) calls back for every CR in binary data,
    about 0.3 ms for a 224 kB WAV; the body is already in memory here (the middleware caps its size), so
    each part is one search for the next delimiter.
    """
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != CRLF):
        raise InputError("body", "the multipart form does not contain its boundary")
    fields: dict[str, str | Upload] = {}
    position = start + len(delimiter)
    while not body.startswith(b"--", position):  # "--boundary--" closes the form
        line_end = body.find(CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise InputError("body", "the multipart form is malformed: a boundary line has trailing text")
        part_end = body.find(CRLF + delimiter, line_end)
        if part_end < 0:
            raise InputError("body", "the multipart form is malformed: it ends without its closing boundary")
        name, value = _part(body[line_end + 2 : part_end])
        fields[name] = value
        position = part_end + len(CRLF) + len(delimiter)
    return fields


def _part(part: bytes) -> tuple[str, str | Upload]:
    """(field name, text or upload) of one part: header lines, an empty line, the content."""
    if part.startswith(CRLF):
        head, content = b"", part[2:]
    else:
        head, separator, content = part.partition(CRLF + CRLF)
        if not separator:
            raise InputError("body", "the multipart form is malformed: a part's headers do not end")
    disposition = b""
    for line in head.split(CRLF) if head else ():
        header, colon, value = line.partition(b":")
        if not colon:
            raise InputError("body", "the multipart form is malformed: a part header has no colon")
        if header.strip().lower() == b"content-disposition":
            disposition = value.strip()
    _, options = parse_options_header(disposition)
    if b"name" not in options:
        raise InputError("body", 'a multipart part has no Content-Disposition "name"')
    name = _text(options[b"name"], "a multipart field name")
    if b"filename" in options:
        return name, Upload(options[b"filename"].decode("utf-8", "replace"), content)
    return name, _text(content, name)


def _text(data: bytes, field: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(field, "is not valid UTF-8 text") from None
