"""``POST /v1/voice-convert``: what a source clip says, in a target voice (Triton's ``voice_convert``).

The target is a stored voice (``voice_id``) or a reference upload (``audio``; only its timbre is used, so no
transcript is needed for it). The source needs its transcript: SoVITS decodes the source's semantic codes
together with the phones of the words. The answer is the audio file in ``response_format``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic.json_schema import SkipJsonSchema

from gsv_triton.audio.formats import MEDIA_TYPES, check_output
from gsv_triton.errors import InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

from ..dependencies import get_service, get_voices
from ..errors import request_id_of
from ..models import ErrorResponse
from ..service import VoiceCloneService, audio_headers, encode_result
from ..validation import FORM_FIELDS
from ..voices import VoiceStore, load_voice, voice_model_set

router = APIRouter(tags=["voice conversion"])

ERRORS = {status: {"model": ErrorResponse} for status in (400, 404, 413, 415, 422, 500, 503, 504)}
RESPONSES = {
    200: {"content": {m: {} for m in MEDIA_TYPES}, "description": "the converted audio (response_format)"},
    **ERRORS,
}


async def _upload(file: UploadFile, field: str, service: VoiceCloneService) -> bytes:
    limit = service.limits.max_upload_bytes
    if file.size is not None and file.size > limit:
        raise InputError(field, f"the upload is {file.size} bytes; the limit is {limit} bytes", 413)
    return await file.read()


@router.post("/v1/voice-convert", response_class=Response, responses=RESPONSES)
async def voice_convert(
    request: Request,
    source_audio: Annotated[UploadFile, File(description="the speech to convert, 3-10 s (wav, flac, ogg, mp3)")],
    text: Annotated[str, Form(min_length=1, description="transcript of source_audio")],
    text_language: Annotated[str, Form(min_length=1, description="its language (api.py's codes)", examples=["zh"])],
    service: Annotated[VoiceCloneService, Depends(get_service)],
    voices: Annotated[VoiceStore, Depends(get_voices)],
    voice_id: Annotated[str | SkipJsonSchema[None], Form(description="the target: a stored voice")] = None,
    audio: Annotated[
        UploadFile | SkipJsonSchema[None],
        File(description="the target: a reference clip, 3-10 s (instead of voice_id)"),
    ] = None,
    speed: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, in [0.25, 4]")] = None,
    seed: Annotated[int | SkipJsonSchema[None], Form(description="seed of the decoder noise")] = None,
    response_format: Annotated[
        str | SkipJsonSchema[None], Form(description="wav (default), pcm, flac, mp3, opus")
    ] = None,
    sample_rate: Annotated[int | SkipJsonSchema[None], Form(description="output rate in Hz (default 32000)")] = None,
    model: Annotated[str | SkipJsonSchema[None], Form(description="the model set (default: the server's default; "
                                                      "a stored voice's own set)")] = None,
) -> Response:
    """The source clip's words in the target's voice."""
    fmt, _ = check_output(response_format, sample_rate, OUTPUT_SAMPLE_RATE)
    if (voice_id is None) == (audio is None):
        raise InputError("voice_id", "send the target as exactly one of voice_id (a stored voice) or audio (a clip)",
                         422 if voice_id is None else 400)  # fmt: skip
    voice = await load_voice(voices, voice_id) if voice_id is not None else None
    values = {
        "source_audio": await _upload(source_audio, "source_audio", service),
        "text": text,
        "text_language": text_language,
        "reference_audio": await _upload(audio, "audio", service) if audio is not None else None,
        "ge": voice.features["ge"] if voice is not None else None,
        "speed": speed,
        "seed": seed,
        "model": voice_model_set(voice.info, model) if voice is not None else model,
    }
    result = await service.convert(values, request_id_of(request), FORM_FIELDS)
    encoded = await encode_result(result, fmt, sample_rate)
    headers = {**audio_headers(encoded), "X-Seed": str(result.seed)}
    return Response(encoded.data, media_type=encoded.media_type, headers=headers)
