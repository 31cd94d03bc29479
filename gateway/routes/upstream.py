"""Upstream GPT-SoVITS ``api.py`` on top of the Triton pipeline (spec 5.1): ``GET/POST /`` and ``/change_refer``.

Same parameter names, same defaults and the same answer (a complete 32 kHz 16-bit WAV file, ``audio/wav``), so
an api.py client only changes its URL. Where api.py fails without a useful reply (a missing ``text`` is its
plain 500, a bad language breaks the stream after the 200), this gateway answers a JSON 4xx instead, whose
``code`` and ``message`` keys match api.py's own error bodies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gsv_triton.audio.formats import MEDIA_TYPES, check_output
from gsv_triton.errors import InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE
from gsv_triton.text.languages import normalize_code

from ..dependencies import get_references, get_service
from ..errors import NoReference, request_id_of
from ..models import ChangeReferRequest, ErrorResponse, UpstreamResult, UpstreamTTSRequest
from ..page import PAGE_PATH, is_browser_visit
from ..references import PATH_FIELD, Reference, ReferenceStore, load_reference, read_confined
from ..service import VoiceCloneService, audio_headers, encode_result
from ..validation import UPSTREAM_FIELDS, CloneFields

router = APIRouter(tags=["upstream api.py"])

# api.py's reply when a reference field is missing and no default is set ("no reference given and the
# API has no preset"), kept verbatim for clients that match on it.
NO_REFERENCE = "未指定参考音频且接口无预设"
NO_REFERENCE_HINT = (
    " (no reference: send refer_wav_path, prompt_text and prompt_language, or start the gateway with "
    "-dr/-dt/-dl to set a default reference)"
)
STATUS_TEMPORARY_REDIRECT = 307
CHANGE_NEEDS_FIELDS = '缺少任意一项以下参数: "path", "text", "language"'
ERRORS = {
    status: {"model": ErrorResponse}
    for status in (400, 403, 413, 415, 422, 500, 503, 504)
}
TTS_RESPONSES = {
    200: {"content": {m: {} for m in MEDIA_TYPES}, "description": "a 32 kHz 16-bit WAV file (or the response_format asked for)"},
    **ERRORS,
}


def _given(value: str | None) -> bool:
    return value is not None and value != ""


async def _reference_for(params: UpstreamTTSRequest, store: ReferenceStore, service: VoiceCloneService) -> Reference:
    """api.py's rule: the request's reference if all three fields are given, else the default one."""
    if _given(params.refer_wav_path) and _given(params.prompt_text) and _given(params.prompt_language):
        assert params.refer_wav_path and params.prompt_text and params.prompt_language
        audio = await run_in_threadpool(
            read_confined, params.refer_wav_path, service.settings.refer_root, service.limits
        )
        return Reference(audio, params.prompt_text, params.prompt_language, params.refer_wav_path)
    if store.current is None:
        raise NoReference(NO_REFERENCE + NO_REFERENCE_HINT, PATH_FIELD)
    return store.current


async def _tts(request: Request, params: UpstreamTTSRequest, store: ReferenceStore, service: VoiceCloneService):
    # Extensions (not in api.py): the output format and rate; checked before any work is done.
    fmt, _ = check_output(params.response_format, params.sample_rate, OUTPUT_SAMPLE_RATE)
    reference = await _reference_for(params, store, service)
    for name in ("text", "text_language"):
        if getattr(params, name) is None:
            raise InputError(name, "is required")
    assert params.text is not None and params.text_language is not None
    fields = CloneFields(
        text=params.text,
        text_language=params.text_language,
        prompt_text=reference.prompt_text,
        prompt_language=reference.prompt_language,
        reference_audio=reference.audio,
        cut_punc=params.cut_punc,
        top_k=params.top_k,
        top_p=params.top_p,
        temperature=params.temperature,
        speed=params.speed,
    )
    result = await service.synthesize(fields, request_id_of(request), UPSTREAM_FIELDS)
    encoded = await encode_result(result, fmt, params.sample_rate)
    return Response(encoded.data, media_type=encoded.media_type, headers=audio_headers(encoded))


@router.get("/", response_class=Response, responses=TTS_RESPONSES)
async def tts_get(
    request: Request,
    store: Annotated[ReferenceStore, Depends(get_references)],
    service: Annotated[VoiceCloneService, Depends(get_service)],
    refer_wav_path: str | None = None,
    prompt_text: str | None = None,
    prompt_language: str | None = None,
    text: str | None = None,
    text_language: Annotated[str | None, Query(examples=["zh", "en", "auto"])] = None,
    cut_punc: str | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
    speed: float | None = None,
    inp_refs: Annotated[list[str] | None, Query()] = None,
    sample_steps: int | None = None,
    if_sr: bool | None = None,
    response_format: Annotated[str | None, Query(description="wav (default), pcm, flac, mp3, opus")] = None,
    sample_rate: Annotated[int | None, Query(description="output rate in Hz (default 32000)")] = None,
) -> Response:
    """api.py's TTS with query parameters; answers a WAV file (or ``response_format``). A browser opening the
    gateway's address (no query, accepts HTML) is sent to the web page."""
    if is_browser_visit(request.scope):
        return RedirectResponse(PAGE_PATH.lstrip("/") + "/", status_code=STATUS_TEMPORARY_REDIRECT)
    params = UpstreamTTSRequest(
        refer_wav_path=refer_wav_path, prompt_text=prompt_text, prompt_language=prompt_language, text=text,
        text_language=text_language, cut_punc=cut_punc, top_k=top_k, top_p=top_p, temperature=temperature,
        speed=speed, inp_refs=inp_refs, sample_steps=sample_steps, if_sr=if_sr, response_format=response_format,
        sample_rate=sample_rate,
    )  # fmt: skip
    return await _tts(request, params, store, service)


@router.post("/", response_class=Response, responses=TTS_RESPONSES)
async def tts_post(
    request: Request,
    params: UpstreamTTSRequest,
    store: Annotated[ReferenceStore, Depends(get_references)],
    service: Annotated[VoiceCloneService, Depends(get_service)],
) -> Response:
    """api.py's TTS with a JSON body; answers a WAV file."""
    return await _tts(request, params, store, service)


async def _change_refer(params: ChangeReferRequest, store: ReferenceStore, service: VoiceCloneService):
    if not any(_given(v) for v in (params.refer_wav_path, params.prompt_text, params.prompt_language)):
        raise InputError(PATH_FIELD, CHANGE_NEEDS_FIELDS + " (give refer_wav_path, prompt_text, prompt_language)")
    current = store.current
    # Unlike api.py (whose partial update blanks the other two fields), a partial update keeps them.
    text = params.prompt_text if _given(params.prompt_text) else (current.prompt_text if current else None)
    language = params.prompt_language if _given(params.prompt_language) else (current.prompt_language if current else None)
    if text is None or language is None or (current is None and not _given(params.refer_wav_path)):
        raise InputError(PATH_FIELD, "there is no default reference to update: give all three fields")
    try:
        normalize_code(language, "v2")
    except InputError as exc:
        raise InputError("prompt_language", exc.message, exc.status) from None
    if _given(params.refer_wav_path):
        assert params.refer_wav_path is not None
        reference = await run_in_threadpool(
            load_reference, params.refer_wav_path, text, language, service.settings.refer_root, service.limits
        )
    else:
        assert current is not None
        reference = Reference(current.audio, text, language, current.path)
    store.current = reference
    return UpstreamResult()


@router.get("/change_refer", response_model=UpstreamResult, responses=ERRORS)
async def change_refer_get(
    store: Annotated[ReferenceStore, Depends(get_references)],
    service: Annotated[VoiceCloneService, Depends(get_service)],
    refer_wav_path: str | None = None,
    prompt_text: str | None = None,
    prompt_language: str | None = None,
) -> UpstreamResult:
    """Replace the default reference (api.py's ``/change_refer``)."""
    params = ChangeReferRequest(refer_wav_path=refer_wav_path, prompt_text=prompt_text, prompt_language=prompt_language)
    return await _change_refer(params, store, service)


@router.post("/change_refer", response_model=UpstreamResult, responses=ERRORS)
async def change_refer_post(
    params: ChangeReferRequest,
    store: Annotated[ReferenceStore, Depends(get_references)],
    service: Annotated[VoiceCloneService, Depends(get_service)],
) -> UpstreamResult:
    """Replace the default reference (api.py's ``/change_refer``) from a JSON body."""
    return await _change_refer(params, store, service)
