"""Upstream GPT-SoVITS ``api_v2.py`` on top of the Triton pipeline (spec 5.2): ``GET/POST /tts``,
``/set_refer_audio``, ``/set_gpt_weights``, ``/set_sovits_weights`` and ``/control``.

The same names and defaults, and api_v2's answers: audio as ``audio/{media_type}``, ``{"message": "success"}``
for the set routes, and every broken rule a 4xx whose body has api_v2's ``message`` (ours names the field and
the rule). What maps where (gateway/README.md, "api_v2 drop-in", has the table):

* the text is split here with api_v2's ``text_split_method`` (cut0..cut5, :func:`split_sentences`) and sent
  with ``cut_punc=""``, so ``voice_clone`` takes the pieces as they are (one per line);
* ``streaming_mode`` 0 is one ``voice_clone`` call, 1 the per-piece stream of ``voice_clone_stream``, 2 and 3
  its token-chunk stream (``min_chunk_length`` tokens a chunk, ``overlap_length`` cross-faded; see :func:`_pieces`);
* ``fragment_interval`` other than the model's 0.3 s re-spaces the pieces of ``voice_clone_stream``, which are
  the same audio as ``voice_clone``'s for the same seed;
* ``aux_ref_audio_paths`` average their ``ge`` with the main reference's (gateway/api_v2_refs.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from gsv_triton.audio.formats import API_V2_FORMATS, encode_audio
from gsv_triton.audio.output import SEGMENT_SILENCE_SECONDS, pcm16_bytes, pcm_wav_header
from gsv_triton.errors import GsvError, InputError, UserError
from gsv_triton.settings import Limits
from gsv_triton.text.splitting import split_sentences

from ..api_v2_params import DEFAULT_FRAGMENT_INTERVAL, TtsParams, parse_tts
from ..api_v2_refs import StoredReference, averaged_voice, checked_reference, load_references, read_reference, state_of
from ..api_v2_weights import weights_model_set
from ..errors import GatewayError, ServiceUnavailable, request_id_of
from ..models import ErrorResponse
from ..offload import run_cpu
from ..references import load_default_reference
from ..service import StreamChunking, VoiceCloneService, audio_headers, encode_result
from ..triton import StreamPiece, Synthesis
from ..validation import CloneFields

router = APIRouter(tags=["upstream api_v2.py"])
log = logging.getLogger("gsv_gateway.api_v2")

# Triton's errors name tensors; api_v2 clients know these fields by api_v2's names.
API_V2_FIELDS: Mapping[str, str] = {
    "reference_audio": "ref_audio_path", "text_language": "text_lang", "prompt_language": "prompt_lang",
    "speed": "speed_factor", "cut_punc": "text_split_method", "chunk_tokens": "min_chunk_length",
    "overlap_tokens": "overlap_length",
}  # fmt: skip
BITS = 16
ERRORS = {status: {"model": ErrorResponse} for status in (400, 403, 413, 415, 422, 500, 503, 504)}
TTS_RESPONSES = {
    200: {"content": {f"audio/{name}": {} for name in API_V2_FORMATS},
          "description": "the audio as audio/{media_type}; streamed (chunked) when streaming_mode is not 0/false"},
    **ERRORS,
}  # fmt: skip


class ApiV2Message(BaseModel):
    """api_v2's success body of the set routes and /control."""

    message: str = "success"


class ControlForbidden(GatewayError):
    """``/control?command=exit`` on a gateway whose operator did not allow it."""

    status = 403


class TtsRequest(BaseModel):
    """``/tts``'s fields (api_v2's names and defaults). Typed loosely on purpose: the gateway checks each value
    itself, so a wrong one is api_v2's 400 naming the field rather than a schema 422."""

    model_config = ConfigDict(extra="ignore")

    text: str | None = Field(None, description="required: the text to speak")
    text_lang: str | None = Field(None, description="required: its language (zh, en, ja, ko, yue, auto, ...)")
    ref_audio_path: str | None = Field(None, description="the reference clip, inside the gateway's --refer-root "
                                                         "(default: the one /set_refer_audio set)")  # fmt: skip
    aux_ref_audio_paths: list[str] | None = Field(None, description="more references; their timbre is averaged")
    prompt_text: str | None = Field(None, description="required: the reference's transcript")
    prompt_lang: str | None = Field(None, description="required: its language")
    top_k: int | str | None = Field(None, description="15")
    top_p: float | str | None = Field(None, description="1")
    temperature: float | str | None = Field(None, description="1")
    text_split_method: str | None = Field(None, description="cut0 .. cut5 (default cut5)")
    batch_size: int | str | None = Field(None, description="1 (accepted; Triton batches every piece)")
    batch_threshold: float | str | None = Field(None, description="0.75 (accepted, no effect)")
    split_bucket: bool | str | None = Field(None, description="true (accepted, no effect)")
    speed_factor: float | str | None = Field(None, description="1.0, in [0.25, 4]")
    fragment_interval: float | str | None = Field(None, description="0.3 s of silence after each piece, [0, 10]")
    seed: int | str | None = Field(None, description="-1: a random seed (sent back in X-Seed)")
    media_type: str | None = Field(None, description="wav (default), raw, ogg, aac")
    streaming_mode: bool | int | str | None = Field(None, description="false/0 one file, true/1 per piece, 2, 3")
    parallel_infer: bool | str | None = Field(None, description="true (accepted, no effect)")
    repetition_penalty: float | str | None = Field(None, description="1.35")
    sample_steps: int | str | None = Field(None, description="32; v3/v4 only: another value is a 400")
    super_sampling: bool | str | None = Field(None, description="false; v3 only: true is a 400")
    overlap_length: int | str | None = Field(None, description="2 (streaming modes 2/3)")
    min_chunk_length: int | str | None = Field(None, description="16 (streaming modes 2/3)")


class TtsQuery(TtsRequest):
    """``GET /tts``'s query: every value a string (``aux_ref_audio_paths`` repeated)."""

    top_k: str | None = None
    top_p: str | None = None
    temperature: str | None = None
    batch_size: str | None = None
    batch_threshold: str | None = None
    split_bucket: str | None = None
    speed_factor: str | None = None
    fragment_interval: str | None = None
    seed: str | None = None
    streaming_mode: str | None = None
    parallel_infer: str | None = None
    repetition_penalty: str | None = None
    sample_steps: str | None = None
    super_sampling: str | None = None
    overlap_length: str | None = None
    min_chunk_length: str | None = None


def split_text(params: TtsParams, limits: Limits) -> str:
    """The text as ``voice_clone`` takes pre-split pieces: api_v2's split, one piece per line.

    The limit is checked on the text as sent first; the split adds a sentence mark to pieces that lack one,
    so a text at the very limit can still exceed it once split (a 413 that says so).
    """
    limit = limits.max_text_chars
    if len(params.text) > limit:
        raise InputError("text", f"is longer than {limit} characters", 413)
    pieces = split_sentences(params.text, params.text_split_method, None, params.text_lang)
    joined = "\n".join(pieces)
    if len(joined) > limit:
        raise InputError("text", f"is {len(joined)} characters once split into {len(pieces)} piece{'s' * (len(pieces) != 1)} by "
                                 f"{params.text_split_method} (a mark ends each piece); the limit is {limit}", 413)  # fmt: skip
    return joined


async def _clone_fields(request: Request, params: TtsParams, service: VoiceCloneService) -> CloneFields:
    root, limits = service.settings.refer_root, service.limits
    if params.ref_audio_path is not None:
        main = await run_in_threadpool(read_reference, params.ref_audio_path, root, limits, "ref_audio_path")
    else:
        stored = state_of(request.app.state).reference
        if stored is None:
            raise InputError("ref_audio_path", "is required (or set a reference first with GET /set_refer_audio)")
        main = stored.audio
    aux = await load_references(params.aux_ref_audio_paths, root, limits)
    text = split_text(params, limits)
    # CloneFields.voice carries extra voice_clone inputs through build_tensors unchanged: the reference (a clip,
    # or the averaged features) and repetition_penalty, which the shared form fields do not have.
    model = state_of(request.app.state).model
    voice: dict[str, Any]
    if aux:
        voice = await averaged_voice(service, main, aux, params.prompt_text, params.prompt_lang, request_id_of(request),
                                     model)  # fmt: skip
    else:
        voice = {"reference_audio": main, "prompt_text": params.prompt_text, "prompt_language": params.prompt_lang}
    if params.repetition_penalty is not None:
        voice["repetition_penalty"] = params.repetition_penalty
    return CloneFields(text, params.text_lang, None, None, None, cut_punc="", top_k=params.top_k, top_p=params.top_p,
                       temperature=params.temperature, speed=params.speed_factor, seed=params.seed, voice=voice,
                       model=model)  # fmt: skip


def respaced(piece: StreamPiece, interval: float) -> np.ndarray:
    """A stream response with ``interval`` seconds of silence instead of the model's 0.3 s after its piece
    (only a piece's last response ends with that silence; a token chunk inside a piece passes unchanged)."""
    if not piece.piece_done:
        return piece.audio
    model_silence = int(round(SEGMENT_SILENCE_SECONDS * piece.sample_rate))
    speech = piece.audio[: max(len(piece.audio) - model_silence, 0)]
    return np.concatenate([speech, np.zeros(int(round(interval * piece.sample_rate)), dtype=np.float32)])


def _pieces(service: VoiceCloneService, fields: CloneFields, params: TtsParams, request_id: str
            ) -> AsyncIterator[StreamPiece]:  # fmt: skip
    """voice_clone_stream's responses: per sentence piece (streaming_mode 0/1), or token chunks (2 and 3).

    api_v2's mode 2 cuts at "mute" tokens of at least ``min_chunk_length`` and mode 3 at fixed lengths; the
    stream model here has one rule, fixed chunks of ``chunk_tokens`` with ``overlap_tokens`` cross-faded
    (measured against the unstreamed audio, perf/README.md), so both modes use it with the client's sizes.
    """
    chunking = None
    if params.streaming_mode in (2, 3):
        chunking = StreamChunking(chunk_tokens=params.min_chunk_length, overlap_tokens=params.overlap_length)
    return service.stream(fields, request_id, API_V2_FIELDS, chunking)


def _chunk(audio: np.ndarray, rate: int, params: TtsParams) -> bytes:
    """One streamed piece in ``media_type`` (wav: raw samples after the header; ogg and aac: a whole file
    per piece, as api_v2 sends them, chained Ogg and back-to-back ADTS)."""
    if params.media_type in ("wav", "raw"):
        return pcm16_bytes(audio)
    return encode_audio(audio, rate, API_V2_FORMATS[params.media_type]).data


async def _stream_response(service: VoiceCloneService, fields: CloneFields, params: TtsParams,
                           request_id: str) -> StreamingResponse:  # fmt: skip
    pieces = _pieces(service, fields, params, request_id)
    first = await anext(pieces)  # errors before any audio still get their status and JSON body

    inline = params.media_type in ("wav", "raw")  # raw samples: no encoder to move off the event loop

    async def body() -> AsyncIterator[bytes]:
        try:
            piece = first
            head = pcm_wav_header(first.sample_rate, BITS, None) if params.media_type == "wav" else b""
            while True:
                audio = respaced(piece, params.fragment_interval)
                data = await run_cpu(inline, _chunk, audio, piece.sample_rate, params)
                yield head + data
                head = b""
                if piece.last:
                    return
                piece = await anext(pieces)
        except GsvError:
            raise  # expected (a later piece timed out, Triton went away): the middleware logs it
        except Exception:
            log.exception("api_v2 stream broken after its first piece", extra={"fields": {"request_id": request_id}})
            raise
        finally:
            await pieces.aclose()

    headers = {"X-Sample-Rate": str(first.sample_rate), "X-Seed": str(first.seed), "X-Pieces": str(first.pieces),
               "Cache-Control": "no-store"}  # fmt: skip
    return StreamingResponse(body(), media_type=f"audio/{params.media_type}", headers=headers)


async def _joined(service: VoiceCloneService, fields: CloneFields, params: TtsParams, request_id: str) -> Synthesis:
    """The whole audio with ``fragment_interval`` between pieces (from the stream's pieces: the same audio)."""
    parts, rate, seed = [], 0, 0
    async for piece in _pieces(service, fields, params, request_id):  # streaming_mode 0: per-piece responses
        parts.append(respaced(piece, params.fragment_interval))
        rate, seed = piece.sample_rate, piece.seed
    return Synthesis(np.concatenate(parts), rate, seed)


async def _tts(request: Request, values: Mapping[str, object]) -> Response:
    params = parse_tts(values)
    if params.ignored:
        log.debug("api_v2 fields without effect", extra={"fields": {"ignored": params.ignored}})
    service: VoiceCloneService = request.app.state.service
    fields = await _clone_fields(request, params, service)
    request_id = request_id_of(request)
    if params.streaming_mode:
        return await _stream_response(service, fields, params, request_id)
    if params.fragment_interval == DEFAULT_FRAGMENT_INTERVAL:
        result = await service.synthesize(fields, request_id, API_V2_FIELDS)
    else:
        result = await _joined(service, fields, params, request_id)
    encoded = await encode_result(result, API_V2_FORMATS[params.media_type])
    headers = {**audio_headers(encoded), "X-Seed": str(result.seed)}
    return Response(encoded.data, media_type=f"audio/{params.media_type}", headers=headers)


@router.get("/tts", response_class=Response, responses=TTS_RESPONSES)
async def tts_get(request: Request, query: Annotated[TtsQuery, Query()]) -> Response:
    """api_v2's TTS with query parameters (``aux_ref_audio_paths`` repeated); answers ``audio/{media_type}``."""
    return await _tts(request, query.model_dump(exclude_none=True))


@router.post("/tts", response_class=Response, responses=TTS_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": TtsRequest.model_json_schema()}}}})  # fmt: skip
async def tts_post(request: Request) -> Response:
    """api_v2's TTS with a JSON body (api_v2's field names); answers ``audio/{media_type}``."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:  # UnicodeDecodeError included
        raise InputError("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise InputError("body", "must be a JSON object of /tts fields")
    return await _tts(request, body)


@router.get("/set_refer_audio", response_model=ApiV2Message, responses=ERRORS)
async def set_refer_audio(request: Request, refer_audio_path: str | None = None) -> ApiV2Message:
    """Set the reference ``/tts`` uses when a request names none (checked now: 3-10 s, decodable, not silent)."""
    if not refer_audio_path:
        raise InputError("refer_audio_path", "is required")
    service: VoiceCloneService = request.app.state.service
    audio = await run_in_threadpool(
        checked_reference, refer_audio_path, service.settings.refer_root, service.limits, "refer_audio_path"
    )
    state_of(request.app.state).reference = StoredReference(refer_audio_path, audio)
    return ApiV2Message()


async def _set_weights(request: Request, weights_path: str | None, kind: str) -> ApiV2Message:
    model = await run_in_threadpool(weights_model_set, weights_path, kind, request.app.state.settings.model_repository)
    service: VoiceCloneService = request.app.state.service
    await service.model_sets.load(model)  # as upstream: the weights are in memory when the call returns
    state_of(request.app.state).model = model
    return ApiV2Message()


@router.get("/set_gpt_weights", response_model=ApiV2Message, responses=ERRORS)
async def set_gpt_weights(request: Request, weights_path: str | None = None) -> ApiV2Message:
    """``/tts`` speaks with the model set exported from this GPT checkpoint (gateway/api_v2_weights.py)."""
    return await _set_weights(request, weights_path, "gpt")


@router.get("/set_sovits_weights", response_model=ApiV2Message, responses=ERRORS)
async def set_sovits_weights(request: Request, weights_path: str | None = None) -> ApiV2Message:
    """``/tts`` speaks with the model set exported from this SoVITS checkpoint (gateway/api_v2_weights.py)."""
    return await _set_weights(request, weights_path, "sovits")


def _terminate() -> None:
    # SIGTERM to ourselves: the server's own graceful stop (under `gsv-triton up`, Triton is stopped too).
    os.kill(os.getpid(), signal.SIGTERM)


@router.get("/control", response_model=ApiV2Message, responses=ERRORS)
async def control(
    request: Request, command: Annotated[str | None, Query(description="restart or exit")] = None
) -> Response:
    """``restart``: back to the start-up state (the /set_refer_audio reference forgotten, the api.py default
    reference read again from disk); ``exit``: stop the gateway, only where GSV_ALLOW_CONTROL_EXIT allows it."""
    settings = request.app.state.settings
    if not command:
        raise InputError("command", "is required (restart or exit)")
    if command == "restart":
        state_of(request.app.state).reference = None
        state_of(request.app.state).model = None
        try:
            request.app.state.references.current = await run_in_threadpool(load_default_reference, settings)
        except UserError as exc:  # the operator's -dr file changed on disk: the old reference stays in use
            raise ServiceUnavailable(
                f"command: restart could not read the default reference: {exc}", "command"
            ) from None
        return JSONResponse(ApiV2Message().model_dump())
    if command == "exit":
        if not settings.allow_control_exit:
            raise ControlForbidden("command: exit is disabled on this gateway; its operator allows it with "
                                   "GSV_ALLOW_CONTROL_EXIT=true", "command")  # fmt: skip
        log.warning("stopping on /control?command=exit")
        return JSONResponse(ApiV2Message().model_dump(), background=BackgroundTask(_terminate))
    raise InputError("command", f"must be restart or exit, got {command!r}")
