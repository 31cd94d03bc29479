"""``POST /v1/voice-clone``: the seed's contract (multipart in, JSON with a base64 WAV out)."""

from __future__ import annotations

import base64
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from gsv_triton.errors import InputError

from .dependencies import get_service
from .errors import request_id_of
from .models import ErrorResponse, VoiceCloneResponse
from .service import VoiceCloneService, wav_bytes
from .triton import Synthesis
from .validation import CloneFields

router = APIRouter(tags=["voice clone"])

ERRORS = {
    status: {"model": ErrorResponse, "description": why}
    for status, why in {
        400: "a field breaks a rule (the body names it): empty text, unknown language, reference not 3-10 s, ...",
        413: "the upload or a text is over its limit",
        415: "the upload is not audio in a supported format (wav, flac, ogg, mp3)",
        422: "a required field is missing or has the wrong type",
        500: "unexpected fault (quote the request id)",
        503: "Triton is not running or not ready (service_available: false)",
        504: "synthesis took longer than the configured timeout",
    }.items()
}


def _response_json(result: Synthesis, text: str, started: float) -> bytes:
    """The 200 body, built in a worker thread: WAV encoding and base64 of long audio take milliseconds."""
    audio_b64 = base64.b64encode(wav_bytes(result)).decode("ascii")
    return VoiceCloneResponse(
        output_audio_base64=audio_b64,
        output_sample_rate=result.sample_rate,
        text_length=len(text),
        output_duration=result.duration_s,
        processing_time=round(time.perf_counter() - started, 4),
        seed=result.seed,
    ).model_dump_json().encode("utf-8")


@router.post("/v1/voice-clone", response_model=VoiceCloneResponse, responses=ERRORS)
async def voice_clone(
    request: Request,
    audio: Annotated[UploadFile, File(description="reference audio file, 3-10 s (wav, flac, ogg, mp3)")],
    text: Annotated[str, Form(min_length=1, description="text to speak")],
    text_language: Annotated[
        str, Form(min_length=1, description="zh, en, yue, all_zh, auto, ... (api.py's codes)", examples=["zh", "en"])
    ],
    prompt_text: Annotated[str, Form(min_length=1, description="transcript of the reference audio")],
    prompt_language: Annotated[str, Form(min_length=1, description="language of the transcript", examples=["zh"])],
    service: Annotated[VoiceCloneService, Depends(get_service)],
    # SkipJsonSchema: "not sent" is the only empty value; the schema must not offer null, which a form sends as
    # the text "null".
    cut_punc: Annotated[str | SkipJsonSchema[None], Form(description="split the text after these marks, e.g. '，。'")] = None,
    top_k: Annotated[int | SkipJsonSchema[None], Form(description="default 15")] = None,
    top_p: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, in (0, 1]")] = None,
    temperature: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, > 0")] = None,
    speed: Annotated[float | SkipJsonSchema[None], Form(description="default 1.0, in [0.25, 4]")] = None,
    seed: Annotated[
        int | SkipJsonSchema[None], Form(description="sampling seed; the same request and seed give the same audio")
    ] = None,
) -> Response:
    started = getattr(request.state, "started", time.perf_counter())
    limit = service.limits.max_upload_bytes
    if audio.size is not None and audio.size > limit:  # refuse before reading a spooled file into memory
        raise InputError("audio", f"the upload is {audio.size} bytes; the limit is {limit} bytes", 413)
    data = await audio.read()
    fields = CloneFields(
        text=text,
        text_language=text_language,
        prompt_text=prompt_text,
        prompt_language=prompt_language,
        reference_audio=data,
        cut_punc=cut_punc,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        speed=speed,
        seed=seed,
    )
    result = await service.synthesize(fields, request_id_of(request), reference_field="audio")
    body = await run_in_threadpool(_response_json, result, text, started)
    return Response(body, media_type="application/json")
