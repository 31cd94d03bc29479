"""The synthesis routes' form: Starlette's parser (python-multipart) reads the body, one pydantic model
validates the fields.

Why one model instead of sixteen ``Form()``/``File()`` parameters per route: the two synthesis routes share
it, and its JSON schema is the routes' documented request body (``openapi_extra``, FastAPI's documented way to
describe a body the route reads itself). Its errors are FastAPI's own ``RequestValidationError``, so a client
sees the same 422 as with form parameters. The body's size is capped before parsing (the middleware).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from gsv_triton.errors import InputError

MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"
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
    model: str | SkipJsonSchema[None] = Field(
        None, description="the model set (fine-tune) to speak with, by its export --name (default: the server's "
        "default; a stored voice speaks with the set it was stored under)",
    )
    aux_voice_ids: str | SkipJsonSchema[None] = Field(
        None,
        description="/v1/voice-clone: more stored voices, comma-separated; their timbre (ge) is averaged with "
        "the request's voice, as api_v2's aux_ref_audio_paths",
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
    """The body's fields (multipart or urlencoded, parsed by Starlette with python-multipart): text parts as
    str, file parts as :class:`Upload` (a repeated name: the last wins). Any other body reads as no fields, so
    the client learns which required field is missing (422), as with FastAPI's own form parameters."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in (MULTIPART, URLENCODED):
        return {}
    fields: dict[str, str | Upload] = {}
    async with request.form() as form:
        for name, value in form.multi_items():
            fields[name] = value if isinstance(value, str) else Upload(value.filename or "", await value.read())
    return fields


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
