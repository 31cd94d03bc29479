"""``POST /v1/voice-clone/stream``: the audio of each sentence piece as soon as Triton has it.

Backed by the decoupled ``voice_clone_stream`` model over one gRPC stream. The same form as
``/v1/voice-clone``; the body is chunked: ``wav`` (default) is a WAV header whose sizes say "unknown length"
(0xFFFFFFFF, what streaming players and FFmpeg expect) followed by 16-bit samples, ``pcm`` the bare samples.
Chunk boundaries are the sentence pieces: every chunk is a whole piece followed by its 0.3 s of silence, so
nothing is cross-faded and the concatenation equals ``/v1/voice-clone``'s audio for the same seed.

With ``chunk_tokens`` (> 0; ``overlap_tokens`` optional) the audio comes in chunks of that many semantic tokens
(25 per second of speech; later chunks 2x and 4x that) while T2S still runs, cross-faded inside Triton (``voice_clone_stream``): the
tokens equal the unstreamed request's, the audio meets the quality rule of perf/README.md.

The status line waits for the first piece: a bad input or Triton being down still gets its JSON 4xx/5xx.
A failure after that can no longer change the status; the connection is then closed without the final chunk,
which HTTP clients report as an incomplete body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from gsv_triton.audio.output import pcm16_bytes, pcm_wav_header
from gsv_triton.errors import GsvError, InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

from ..errors import request_id_of
from ..forms import SynthesisForm, parse_form, read_form
from ..models import ErrorResponse
from ..service import StreamChunking, VoiceCloneService
from ..triton import StreamPiece
from ..validation import FORM_FIELDS
from .voice_clone import clone_fields

router = APIRouter(tags=["voice clone"])
log = logging.getLogger("gsv_gateway.stream")

STREAM_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm"}
BITS = 16
ERRORS = {status: {"model": ErrorResponse} for status in (400, 404, 413, 415, 422, 500, 503, 504)}
RESPONSES = {
    200: {
        "content": {m: {} for m in STREAM_FORMATS.values()},
        "description": "chunked audio, one chunk per piece (or per token chunk)",
    },
    **ERRORS,
}


class StreamForm(SynthesisForm):
    """/v1/voice-clone's form; the stream is sent as it is made, so only uncompressed formats at the model's rate."""

    response_format: str | SkipJsonSchema[None] = Field(None, description="wav (default) or pcm")
    sample_rate: int | SkipJsonSchema[None] = Field(None, description="only 32000 (the model's rate)")
    chunk_tokens: int | SkipJsonSchema[None] = Field(
        None,
        description="the first chunk's semantic tokens while T2S runs (1-1500, 25 = 1 s; later chunks "
        "double up to 4x); 0 or absent: one chunk per sentence piece",
    )
    overlap_tokens: int | SkipJsonSchema[None] = Field(
        None, description="with chunk_tokens: tokens cross-faded at each join (0 <= overlap < chunk_tokens, default 4)"
    )


@router.post(
    "/v1/voice-clone/stream", response_class=StreamingResponse, responses=RESPONSES, openapi_extra=StreamForm.openapi()
)
async def voice_clone_stream(request: Request) -> StreamingResponse:
    """/v1/voice-clone's synthesis, streamed piece by piece or in token chunks (see the module docstring)."""
    form = parse_form(StreamForm, await read_form(request))
    name = (form.response_format or "wav").strip().lower()
    if name not in STREAM_FORMATS:
        raise InputError("response_format", f"a stream is wav or pcm, got {form.response_format!r}")
    if form.sample_rate is not None and form.sample_rate != OUTPUT_SAMPLE_RATE:
        raise InputError(
            "sample_rate", f"a stream is sent at the model's {OUTPUT_SAMPLE_RATE} Hz, got {form.sample_rate}"
        )
    service: VoiceCloneService = request.app.state.service
    fields = await clone_fields(service, request.app.state.voices, form)
    request_id = request_id_of(request)
    chunking = StreamChunking(form.chunk_tokens or 0, form.overlap_tokens) if form.chunk_tokens is not None else None
    if chunking is None and form.overlap_tokens is not None:
        raise InputError("overlap_tokens", "needs chunk_tokens (> 0): it is the overlap of token chunks")
    pieces = service.stream(fields, request_id, FORM_FIELDS, chunking)
    return await stream_response(pieces, name, request_id)


async def stream_response(
    pieces: AsyncIterator[StreamPiece], name: str, request_id: str, headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    """The chunked response of a stream's responses (``name``: wav or pcm). Waits for the first one, so errors
    before any audio still get their status and JSON body."""
    first = await anext(pieces)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield (pcm_wav_header(first.sample_rate, BITS, None) if name == "wav" else b"") + pcm16_bytes(first.audio)
            async for piece in pieces:
                yield pcm16_bytes(piece.audio)
        except GsvError:
            raise  # expected (a later piece timed out, Triton went away): the middleware logs it as a warning
        except Exception:
            log.exception("stream broken after its first piece", extra={"fields": {"request_id": request_id}})
            raise  # uvicorn then closes the connection without the final chunk
        finally:
            await pieces.aclose()

    all_headers = {"X-Sample-Rate": str(first.sample_rate), "X-Seed": str(first.seed), "X-Pieces": str(first.pieces),
                   "Cache-Control": "no-store", **(headers or {})}  # fmt: skip
    return StreamingResponse(body(), media_type=STREAM_FORMATS[name], headers=all_headers)
