"""OpenAI-compatible speech: ``POST /v1/audio/speech`` and ``GET /v1/models``.

OpenAI client libraries work with only their base URL changed (``base_url="http://host:8080/v1"``). ``voice``
is a stored voice of the voice library (its id, its name, or OpenAI's ``{"id": ...}`` object): GPT-SoVITS
clones a reference, it has no built-in voices. As in OpenAI's API the default format is mp3 and ``pcm`` is
24 kHz 16-bit little-endian. ``input`` is read as ``language`` (an extension, default ``auto``: api.py's
per-segment language detection).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from gsv_triton.audio.formats import MEDIA_TYPES, check_output
from gsv_triton.errors import InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

from ..dependencies import get_service, get_voices
from ..errors import request_id_of
from ..models import ErrorResponse, SpeechRequest, SpeechVoice
from ..service import DEFAULT_CHUNK_TOKENS, StreamChunking, VoiceCloneService, audio_headers, encode_result
from ..validation import OPENAI_FIELDS, CloneFields
from ..voices import ID_PREFIX, Voice, VoiceNotFound, VoiceStore, load_voice, voice_model_set
from .stream import STREAM_FORMATS, stream_response

router = APIRouter(tags=["OpenAI-compatible"])

# Every name maps to the same Triton pipeline; OpenAI's own names are accepted so existing code runs unchanged.
MODEL_IDS = ("gpt-sovits", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_DEFAULT_FORMAT = "mp3"
OPENAI_PCM_RATE = 24_000
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 422, 500, 503, 504)}
SPEECH_RESPONSES = {
    200: {"content": {m: {} for m in MEDIA_TYPES}, "description": "the audio file (or raw pcm)"},
    **ERRORS,
}


async def _voice(store: VoiceStore, voice: str | SpeechVoice) -> Voice:
    """A voice by id, or by its (unique) name."""
    key = voice.id if isinstance(voice, SpeechVoice) else voice
    if key.startswith(ID_PREFIX):
        return await load_voice(store, key, "voice")
    matches = [v for v in await run_in_threadpool(store.list) if v.name == key]
    if len(matches) != 1:
        why = (
            "no stored voice has this id or name"
            if not matches
            else f"{len(matches)} voices have this name; use the id"
        )
        raise VoiceNotFound(f"voice: {key!r}: {why} (create one with POST /v1/voices)", "voice")
    return await load_voice(store, matches[0].id, "voice")


async def _model_set(body: SpeechRequest, voice: Voice, service: VoiceCloneService) -> str:
    """The set OpenAI's ``model`` names (OpenAI's own ids: the voice's), which must be the stored voice's set;
    an unknown name is a 404 naming the sets and OpenAI's ids."""
    if body.model in MODEL_IDS:
        return voice.info.model
    try:
        await service.model_sets.entry(body.model)
    except InputError as exc:
        raise InputError("model", f"{exc.message}; OpenAI's ids ({', '.join(MODEL_IDS)}) speak with the voice's own "
                         "set", exc.status) from None  # fmt: skip
    return voice_model_set(voice.info, body.model, "model")


class StreamingSpeechRequest(SpeechRequest):
    """OpenAI's request plus ``stream`` (this gateway's extension): audio while the model still generates."""

    stream: bool = Field(False, description="true: chunked wav, or pcm with sample_rate 32000, while T2S runs")
    chunk_tokens: int | None = Field(None, description="with stream: tokens of the first chunk (default 25 = 1 s)")
    overlap_tokens: int | None = Field(None, description="with stream: tokens cross-faded at each join (default 4)")


@router.post("/v1/audio/speech", response_class=Response, responses=SPEECH_RESPONSES)
async def speech(
    request: Request,
    body: StreamingSpeechRequest,
    service: Annotated[VoiceCloneService, Depends(get_service)],
    voices: Annotated[VoiceStore, Depends(get_voices)],
) -> Response:
    """OpenAI's text-to-speech request, answered with the audio bytes."""
    if not body.stream and (body.chunk_tokens is not None or body.overlap_tokens is not None):
        raise InputError("chunk_tokens" if body.chunk_tokens is not None else "overlap_tokens",
                         "applies to streams only: send stream=true")  # fmt: skip
    if body.stream:
        return await _stream_speech(request, body, service, voices)
    name = body.response_format or OPENAI_DEFAULT_FORMAT
    rate = body.sample_rate
    if rate is None and name.strip().lower() == "pcm":
        rate = OPENAI_PCM_RATE
    fmt, _ = check_output(name, rate, OUTPUT_SAMPLE_RATE)
    voice = await _voice(voices, body.voice)
    fields = CloneFields(body.input, body.language, None, None, None, speed=body.speed, seed=body.seed,
                         voice=voice.features, model=await _model_set(body, voice, service))  # fmt: skip
    result = await service.synthesize(fields, request_id_of(request), OPENAI_FIELDS)
    encoded = await encode_result(result, fmt, rate)
    headers = {**audio_headers(encoded), "X-Seed": str(result.seed), "X-Voice-Id": voice.info.id}
    return Response(encoded.data, media_type=encoded.media_type, headers=headers)


async def _stream_speech(
    request: Request, body: StreamingSpeechRequest, service: VoiceCloneService, voices: VoiceStore
) -> StreamingResponse:
    """``stream=true``: token-chunk audio as it is made (wav with an unknown-length header, or 32 kHz pcm)."""
    name = (body.response_format or "wav").strip().lower()
    if name not in STREAM_FORMATS:
        raise InputError("response_format", f"a stream is wav or pcm, got {body.response_format!r}")
    if (body.sample_rate or (None if name == "wav" else OPENAI_PCM_RATE)) not in (None, OUTPUT_SAMPLE_RATE):
        raise InputError("sample_rate", f"a stream is sent at the model's {OUTPUT_SAMPLE_RATE} Hz: send sample_rate "
                         f"{OUTPUT_SAMPLE_RATE} (pcm streams are not resampled to OpenAI's 24 kHz)")  # fmt: skip
    voice = await _voice(voices, body.voice)
    fields = CloneFields(body.input, body.language, None, None, None, speed=body.speed, seed=body.seed,
                         voice=voice.features, model=await _model_set(body, voice, service))  # fmt: skip
    chunking = StreamChunking(DEFAULT_CHUNK_TOKENS if body.chunk_tokens is None else body.chunk_tokens,
                              body.overlap_tokens)  # fmt: skip
    headers = {"X-Voice-Id": voice.info.id}
    return await stream_response(service.stream(fields, request_id_of(request), OPENAI_FIELDS, chunking), name,
                                 request_id_of(request), headers)  # fmt: skip
