"""``POST /v1/voice-clone``: the seed's contract (multipart in, JSON with a base64 WAV out)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic.json_schema import SkipJsonSchema

from gsv_triton.audio.formats import EncodedAudio, check_output
from gsv_triton.errors import InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

from .dependencies import get_service, get_voices
from .errors import request_id_of
from .models import ErrorResponse, VoiceCloneResponse
from .offload import INLINE_MAX_SAMPLES, run_cpu
from .service import VoiceCloneService, encode_result
from .validation import CloneFields
from .voices import VoiceStore, load_voice

router = APIRouter(tags=["voice clone"])

ERRORS = {
    status: {"model": ErrorResponse, "description": why}
    for status, why in {
        400: "a field breaks a rule (the body names it): empty text, unknown language, reference not 3-10 s, "
        "voice_id together with audio, unknown response_format, ...",
        404: "voice_id names no stored voice",
        413: "the upload or a text is over its limit",
        415: "the upload is not audio in a supported format (wav, flac, ogg, mp3)",
        422: "a required field is missing or has the wrong type",
        500: "unexpected fault (quote the request id)",
        503: "Triton is not running or not ready (service_available: false)",
        504: "synthesis took longer than the configured timeout",
    }.items()
}


REFERENCE_FIELDS = ("audio", "prompt_text", "prompt_language")


def _response_json(encoded: EncodedAudio, text: str, started: float, seed: int) -> bytes:
    """The 200 body. Built by hand around the base64 text: a pydantic dump of a 100 kB string costs more
    than the rest of the body (the schema is still :class:`VoiceCloneResponse`, field for field)."""
    head = {"task": "voice_clone"}
    tail = {
        "output_sample_rate": encoded.sample_rate,
        "text_length": len(text),
        "output_duration": encoded.duration_s,
        "processing_time": round(time.perf_counter() - started, 4),
        "service_available": True,
        "seed": seed,
    }
    audio_b64 = base64.b64encode(encoded.data)
    return b"".join((
        json.dumps(head)[:-1].encode(), b', "output_audio_base64": "', audio_b64, b'", ',
        json.dumps(tail)[1:].encode(),
    ))  # fmt: skip


async def clone_fields(
    service: VoiceCloneService, voices: VoiceStore, text: str, text_language: str, audio: UploadFile | None,
    prompt_text: str | None, prompt_language: str | None, voice_id: str | None,
) -> CloneFields:  # fmt: skip
    """The request's voice, from ``voice_id`` (a stored voice) or from the upload and its transcript."""
    if voice_id is not None:
        given = (audio, prompt_text, prompt_language)
        sent = [name for name, value in zip(REFERENCE_FIELDS, given, strict=True) if value is not None]
        if sent:
            raise InputError("voice_id", f"send either voice_id or audio + prompt_text + prompt_language, not both "
                                         f"(got {', '.join(sent)} too)")  # fmt: skip
        voice = await load_voice(voices, voice_id)
        return CloneFields(text, text_language, None, None, None, voice=voice.features)
    if audio is None:
        raise InputError("audio", "is required (or send voice_id, a stored voice)", 422)
    for name, value in (("prompt_text", prompt_text), ("prompt_language", prompt_language)):
        if value is None:
            raise InputError(name, "is required (with audio)", 422)
    limit = service.limits.max_upload_bytes
    if audio.size is not None and audio.size > limit:  # refuse before reading a spooled file into memory
        raise InputError("audio", f"the upload is {audio.size} bytes; the limit is {limit} bytes", 413)
    return CloneFields(text, text_language, prompt_text, prompt_language, await audio.read())


@router.post("/v1/voice-clone", response_model=VoiceCloneResponse, responses=ERRORS)
async def voice_clone(
    request: Request,
    text: Annotated[str, Form(min_length=1, description="text to speak")],
    text_language: Annotated[
        str, Form(min_length=1, description="zh, en, yue, all_zh, auto, ... (api.py's codes)", examples=["zh", "en"])
    ],
    service: Annotated[VoiceCloneService, Depends(get_service)],
    voices: Annotated[VoiceStore, Depends(get_voices)],
    # SkipJsonSchema: "not sent" is the only empty value; the schema must not offer null, which a form sends as
    # the text "null".
    audio: Annotated[
        UploadFile | SkipJsonSchema[None],
        File(description="reference audio file, 3-10 s (wav, flac, ogg, mp3); required unless voice_id is sent"),
    ] = None,
    prompt_text: Annotated[
        str | SkipJsonSchema[None], Form(description="transcript of the reference audio (required with audio)")
    ] = None,
    prompt_language: Annotated[
        str | SkipJsonSchema[None], Form(description="language of the transcript (required with audio)", examples=["zh"])
    ] = None,
    voice_id: Annotated[
        str | SkipJsonSchema[None], Form(description="a stored voice (POST /v1/voices) instead of audio + prompt")
    ] = None,
    cut_punc: Annotated[str | SkipJsonSchema[None], Form(description="split the text after these marks, e.g. '，。'")] = None,
    top_k: Annotated[int | SkipJsonSchema[None], Form(description="default 15")] = None,
    top_p: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, in (0, 1]")] = None,
    temperature: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, > 0")] = None,
    speed: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, in [0.25, 4]")] = None,
    seed: Annotated[
        int | SkipJsonSchema[None], Form(description="sampling seed; the same request and seed give the same audio")
    ] = None,
    response_format: Annotated[
        str | SkipJsonSchema[None],
        Form(description="format of output_audio_base64: wav (default), pcm, flac, mp3, opus"),
    ] = None,
    sample_rate: Annotated[
        int | SkipJsonSchema[None], Form(description="output sample rate in Hz (default: the model's, 32000)")
    ] = None,
) -> Response:
    started = getattr(request.state, "started", time.perf_counter())
    fmt, _ = check_output(response_format, sample_rate, OUTPUT_SAMPLE_RATE)
    fields = await clone_fields(service, voices, text, text_language, audio, prompt_text, prompt_language, voice_id)
    fields = dataclasses.replace(fields, cut_punc=cut_punc, top_k=top_k, top_p=top_p, temperature=temperature,
                                 speed=speed, seed=seed)  # fmt: skip
    result = await service.synthesize(fields, request_id_of(request), reference_field="audio")
    encoded = await encode_result(result, fmt, sample_rate)
    inline = len(encoded.data) <= INLINE_MAX_SAMPLES * 2  # base64 of up to 3 s of 16-bit audio: < 0.2 ms
    body = await run_cpu(inline, _response_json, encoded, text, started, result.seed)
    return Response(body, media_type="application/json")
