"""The voice library: ``POST /v1/voices`` (encode a reference once, through Triton's ``voice_encode``),
``GET /v1/voices``, ``GET /v1/voices/{voice_id}``, ``DELETE /v1/voices/{voice_id}``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from gsv_triton.errors import InputError

from ..dependencies import get_service, get_voices
from ..errors import request_id_of
from ..models import ErrorResponse, VoiceList, VoiceResponse
from ..service import VoiceCloneService
from ..validation import FORM_FIELDS
from ..voices import VoiceStore, check_voice_id

router = APIRouter(tags=["voice library"])

ERRORS = {status: {"model": ErrorResponse} for status in (400, 404, 413, 415, 422, 500, 503, 504)}
# The voice directory cannot be used (missing, read-only, full): the body names the problem.
STORAGE = {507: {"model": ErrorResponse, "description": "the voice directory (GSV_VOICE_DIR) cannot be used"}}
UNREADABLE = {422: {"model": ErrorResponse, "description": "the voice's files are damaged (DELETE removes it)"}}
NOT_FOUND = {404: {"model": ErrorResponse}}
STATUS_NO_CONTENT = 204


@router.post("/v1/voices", response_model=VoiceResponse, status_code=201, responses={**ERRORS, **STORAGE})
async def create_voice(
    request: Request,
    audio: Annotated[UploadFile, File(description="reference audio file, 3-10 s (wav, flac, ogg, mp3)")],
    prompt_text: Annotated[str, Form(min_length=1, description="transcript of the reference audio")],
    prompt_language: Annotated[str, Form(min_length=1, description="language of the transcript", examples=["zh"])],
    service: Annotated[VoiceCloneService, Depends(get_service)],
    voices: Annotated[VoiceStore, Depends(get_voices)],
    name: Annotated[str | SkipJsonSchema[None], Form(description="a label for people (default: the id)")] = None,
    model: Annotated[str | SkipJsonSchema[None], Form(description="the model set to encode it with (default: the "
                                                      "server's default); the voice speaks with that set")] = None,
) -> VoiceResponse:
    """Encode a reference clip once (prompt phones + BERT, prompt codes, ge) and store it; 201 with its id."""
    limit = service.limits.max_upload_bytes
    if audio.size is not None and audio.size > limit:
        raise InputError("audio", f"the upload is {audio.size} bytes; the limit is {limit} bytes", 413)
    await run_in_threadpool(voices.check_usable)  # a missing directory fails before Triton does any work
    data = await audio.read()
    model_set, features = await service.encode_voice(data, prompt_text, prompt_language, request_id_of(request),
                                                     FORM_FIELDS, model)  # fmt: skip
    seconds = float(features.pop("reference_seconds")[0])
    info = await run_in_threadpool(voices.create, name, prompt_text, prompt_language, data, seconds, features,
                                   model_set)  # fmt: skip
    return VoiceResponse(**asdict(info))


@router.get("/v1/voices", response_model=VoiceList, responses=STORAGE)
async def list_voices(voices: Annotated[VoiceStore, Depends(get_voices)]) -> VoiceList:
    """Every stored voice, oldest first (a voice whose files are damaged is left out; GET or DELETE it by id)."""
    return VoiceList(voices=[VoiceResponse(**asdict(v)) for v in await run_in_threadpool(voices.list)])


@router.get("/v1/voices/{voice_id}", response_model=VoiceResponse, responses={**NOT_FOUND, **UNREADABLE, **STORAGE})
async def get_voice(voice_id: str, voices: Annotated[VoiceStore, Depends(get_voices)]) -> VoiceResponse:
    check_voice_id(voice_id)
    return VoiceResponse(**asdict(await run_in_threadpool(voices.info, voice_id)))


@router.delete(
    "/v1/voices/{voice_id}", response_model=VoiceResponse, responses={
        STATUS_NO_CONTENT: {"description": "a voice whose files were damaged: they are removed"}, **NOT_FOUND, **STORAGE,
    },
)  # fmt: skip
async def delete_voice(voice_id: str, voices: Annotated[VoiceStore, Depends(get_voices)]) -> VoiceResponse | Response:
    """Delete a stored voice; answers what was deleted (204 when its metadata was damaged)."""
    check_voice_id(voice_id)
    info = await run_in_threadpool(voices.delete, voice_id)
    return Response(status_code=STATUS_NO_CONTENT) if info is None else VoiceResponse(**asdict(info))
