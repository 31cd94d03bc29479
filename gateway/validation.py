"""Early checks of a synthesis request, so bad inputs get their precise 4xx before any Triton round trip.

The rules are not written again here: the text, language and sampling rules are ``voice_clone``'s own request
parser (``gsv_triton.backend.requests.parse_request``) run on exactly the tensors the gateway is about
to send, and the reference rules are those of ``gsv_triton.audio.reference``. Triton checks again; the
gateway only adds the status codes HTTP clients expect (413 too large, 415 not audio) that gRPC cannot carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gsv_triton.audio import validate_reference
from gsv_triton.backend.requests import parse_request

# The reference rules without prepare_reference's resampling and spectrogram (12-22 ms per clip), which
# Triton computes anyway and caches per reference; decoding plus these checks take about 0.3 ms.
from gsv_triton.errors import InputError, renamed
from gsv_triton.settings import Limits

from .settings import GatewaySettings

# Wire ranges of the integer inputs (INT32 top_k / max_new_tokens, INT64 seed; a seed may also be given as
# its unsigned 64-bit value, which is what the response reports).
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
UINT64_END = 2**64
# The input name voice_clone uses for the reference, renamed to the field the client sent.
REFERENCE_INPUT = "reference_audio"


@dataclass(frozen=True)
class CloneFields:
    """One synthesis request as the HTTP routes received it (None: not sent)."""

    text: str
    text_language: str
    prompt_text: str | None
    prompt_language: str | None
    reference_audio: bytes | None
    cut_punc: str | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    speed: float | None = None
    seed: int | None = None
    # A stored voice's features (gateway.voices.FEATURES); then the three reference fields above are None.
    voice: Mapping[str, np.ndarray] | None = None


def check_reference(data: bytes, limits: Limits, field: str = "audio") -> float:
    """Size (413), decodable (400 empty / 415 not audio), duration and content (400); returns seconds."""
    try:
        mono, rate, _ = validate_reference(data, limits)
    except InputError as exc:
        raise InputError(field, exc.message, exc.status) from None
    return mono.shape[-1] / rate


def bytes_tensor(value: str | bytes) -> np.ndarray:
    """A BYTES tensor of one element (text as UTF-8)."""
    return np.array([value.encode("utf-8") if isinstance(value, str) else value], dtype=np.object_)


def seed_tensor(seed: int) -> np.ndarray:
    """The INT64 seed input of ``seed``, which may also be given as its unsigned 64-bit value."""
    if not INT64_MIN <= seed < UINT64_END:
        raise InputError("seed", f"must be an integer in [{INT64_MIN}, {UINT64_END - 1}], got {seed}")
    return np.array([seed % UINT64_END], dtype=np.uint64).view(np.int64)


def build_tensors(fields: CloneFields, settings: GatewaySettings) -> dict[str, np.ndarray]:
    """The voice_clone input tensors of ``fields`` (optional inputs only when given or configured)."""
    tensors = {"text": bytes_tensor(fields.text), "text_language": bytes_tensor(fields.text_language)}
    if fields.voice is not None:
        tensors.update(fields.voice)
    else:
        for name in ("prompt_text", "prompt_language", REFERENCE_INPUT):
            value = getattr(fields, name)
            if value is None:
                raise InputError(name, "is required")
            tensors[name] = bytes_tensor(value)
    cut_punc = fields.cut_punc if fields.cut_punc is not None else settings.default_cut_punc
    if cut_punc is not None:
        tensors["cut_punc"] = bytes_tensor(cut_punc)
    if fields.top_k is not None:
        if not -INT32_MAX <= fields.top_k <= INT32_MAX:
            raise InputError("top_k", f"must be an integer in [1, {INT32_MAX}], got {fields.top_k}")
        tensors["top_k"] = np.array([fields.top_k], dtype=np.int32)
    with np.errstate(over="ignore"):  # a float beyond FP32 becomes inf, which the rules reject by name
        for name in ("top_p", "temperature", "speed"):
            value = getattr(fields, name)
            if value is not None:
                tensors[name] = np.array([value], dtype=np.float32)
    if fields.seed is not None:
        tensors["seed"] = seed_tensor(fields.seed)
    if settings.max_new_tokens is not None:
        tensors["max_new_tokens"] = np.array([settings.max_new_tokens], dtype=np.int32)
    return tensors


def check_tensors(tensors: dict[str, np.ndarray], limits: Limits, reference_field: str) -> float:
    """Run voice_clone's request rules and the reference rules on ``tensors``; returns the reference seconds
    (0 for a stored voice).

    CPU work (the decode): call it from a worker thread, not the event loop.
    """
    # The reference goes first: an oversized upload is refused before anything else looks at it.
    seconds = 0.0
    if REFERENCE_INPUT in tensors:
        seconds = check_reference(bytes(tensors[REFERENCE_INPUT][0]), limits, reference_field)
    try:
        # The seed is only validated here; Triton draws its own when the request has none.
        parse_request(tensors, limits=limits, draw_seed=lambda: 0)
    except InputError as exc:
        raise renamed(exc, {REFERENCE_INPUT: reference_field}) from None
    return seconds
