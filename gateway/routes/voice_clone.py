"""``POST /v1/voice-clone``: the seed's contract (multipart in, JSON with a base64 WAV out)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gsv_triton.audio.formats import EncodedAudio, check_output
from gsv_triton.errors import InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

from ..aux_voices import with_aux_voices
from ..errors import request_id_of
from ..forms import SynthesisForm, parse_form, read_form
from ..models import ErrorResponse, VoiceCloneResponse
from ..offload import INLINE_MAX_SAMPLES, run_cpu
from ..service import VoiceCloneService, encode_result
from ..validation import FORM_FIELDS, CloneFields
from ..voices import VoiceStore, load_voice, voice_model_set

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


async def clone_fields(service: VoiceCloneService, voices: VoiceStore, form: SynthesisForm) -> CloneFields:
    """The request's voice, from ``voice_id`` (a stored voice) or from the upload and its transcript."""
    if form.voice_id is not None:
        sent = [name for name in REFERENCE_FIELDS if getattr(form, name) is not None]
        if sent:
            raise InputError("voice_id", f"send either voice_id or audio + prompt_text + prompt_language, not both "
                                         f"(got {', '.join(sent)} too)")  # fmt: skip
        voice = await load_voice(voices, form.voice_id)
        reference = CloneFields(form.text, form.text_language, None, None, None, voice=voice.features,
                                model=voice_model_set(voice.info, form.model))  # fmt: skip
    else:
        if form.audio is None:
            raise InputError("audio", "is required (or send voice_id, a stored voice)", 422)
        for name in ("prompt_text", "prompt_language"):
            if getattr(form, name) is None:
                raise InputError(name, "is required (with audio)", 422)
        limit = service.limits.max_upload_bytes
        if len(form.audio) > limit:
            raise InputError("audio", f"the upload is {len(form.audio)} bytes; the limit is {limit} bytes", 413)
        reference = CloneFields(form.text, form.text_language, form.prompt_text, form.prompt_language, form.audio,
                                model=form.model)  # fmt: skip
    return dataclasses.replace(reference, cut_punc=form.cut_punc, top_k=form.top_k, top_p=form.top_p,
                               temperature=form.temperature, speed=form.speed, seed=form.seed)  # fmt: skip


@router.post(
    "/v1/voice-clone", response_model=VoiceCloneResponse, responses=ERRORS, openapi_extra=SynthesisForm.openapi()
)
async def voice_clone(request: Request) -> Response:
    """Clone the voice of ``audio`` (or of a stored ``voice_id``) speaking ``text`` (multipart form, see the
    request body schema); the WAV comes back base64-encoded in JSON."""
    started = getattr(request.state, "started", time.perf_counter())
    form = parse_form(SynthesisForm, await read_form(request))
    fmt, _ = check_output(form.response_format, form.sample_rate, OUTPUT_SAMPLE_RATE)
    service: VoiceCloneService = request.app.state.service
    fields = await clone_fields(service, request.app.state.voices, form)
    fields = await with_aux_voices(
        service, request.app.state.voices, fields, form.aux_voice_ids, request_id_of(request)
    )
    result = await service.synthesize(fields, request_id_of(request), FORM_FIELDS)
    encoded = await encode_result(result, fmt, form.sample_rate)
    inline = len(encoded.data) <= INLINE_MAX_SAMPLES * 2  # base64 of up to 3 s of 16-bit audio: < 0.2 ms
    body = await run_cpu(inline, _response_json, encoded, form.text, started, result.seed)
    return Response(body, media_type="application/json")
