"""The tensors the gateway sends to Triton, typed by the tensor contract (``gsv_triton.contract``), and the
client field names of each route kind.

The gateway checks only what the wire format itself needs (an integer that does not fit its Triton datatype, a
non-zero number that FP32 would turn into 0 or infinity);
every request rule and the reference clip (decoded once, inside Triton) belong to the models, whose errors come
back as data naming the input and the HTTP status (``gateway.triton``). Where a route calls a tensor by another
name (the reference is ``audio`` on the forms, ``refer_wav_path`` for api.py; the text is ``input`` for OpenAI),
its table below renames those errors in one place (``gateway.service``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gsv_triton.contract import VOICE_CLONE, ModelContract, TensorSpec
from gsv_triton.errors import InputError
from gsv_triton.settings import Settings

# Wire ranges of the integer inputs (INT32 top_k / max_new_tokens, INT64 seed; a seed may also be given as
# its unsigned 64-bit value, which is what the responses report).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN = -(2**63)
UINT64_END = 2**64
# FP32's range: a finite number beyond its largest becomes inf, a non-zero one below its smallest normal loses
# its precision and, below about 1.4e-45, becomes 0, either of which would break the model's rule in the client's
# name ("temperature: must be > 0, got 0" for 1e-50).
FP32_LARGEST = float(np.finfo(np.float32).max)
FP32_SMALLEST = float(np.finfo(np.float32).tiny)
# The input name the models use for the reference clip (the client's field name differs per route).
REFERENCE_INPUT = "reference_audio"
# Each route kind's client field names, where they differ from the tensor names (tensor -> field): Triton's
# errors name tensors, and the service renames them through the table of the route that called.
FORM_FIELDS: Mapping[str, str] = {REFERENCE_INPUT: "audio"}  # the multipart routes: /v1/voice-clone(/stream), ...
UPSTREAM_FIELDS: Mapping[str, str] = {REFERENCE_INPUT: "refer_wav_path"}  # api.py's GET/POST /
OPENAI_FIELDS: Mapping[str, str] = {"text": "input", "text_language": "language"}  # /v1/audio/speech


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
    # The model set to speak with (None: the gateway's default; a stored voice's set when it names one).
    model: str | None = None


def wire_tensor(spec: TensorSpec, value: object) -> np.ndarray:
    """``value`` as the tensor ``spec`` describes; InputError (400) when a number does not fit its datatype.

    Arrays pass unchanged (a stored voice's features are already typed). The ranges of the wire types are the
    only rules Triton cannot state itself: it sees the number after the cast. Infinity and NaN as sent pass,
    and the model refuses them by name.
    """
    if isinstance(value, np.ndarray):
        return value
    if spec.datatype == "INT32" and isinstance(value, int) and not INT32_MIN <= value <= INT32_MAX:
        raise InputError(spec.name, f"must be an integer in [{INT32_MIN}, {INT32_MAX}], got {value}")
    if spec.datatype == "INT64" and isinstance(value, int):
        # Seeds are reported as unsigned 64-bit values; sent back, they travel as the same 64 bits.
        if not INT64_MIN <= value < UINT64_END:
            raise InputError(spec.name, f"must be an integer in [{INT64_MIN}, {UINT64_END - 1}], got {value}")
        return np.array([value % UINT64_END], dtype=np.uint64).view(np.int64)
    if spec.datatype == "FP32" and isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_fp32(spec.name, value)
    with np.errstate(over="ignore"):
        return spec.array(value)


def _check_fp32(name: str, value: float) -> None:
    """InputError (400) for a finite, non-zero ``value`` that FP32 cannot hold (checked as the client sent it)."""
    too_large = f"is too large for FP32 (largest {FP32_LARGEST:.9g})"
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise InputError(name, f"{too_large}, got an integer of {len(str(abs(value)))} digits") from None
    if not math.isfinite(number) or number == 0.0:
        return
    if abs(number) > FP32_LARGEST:
        raise InputError(name, f"{too_large}, got {number:.9g}")
    if abs(number) < FP32_SMALLEST:
        raise InputError(name, f"is too small for FP32 (smallest {FP32_SMALLEST:.9g}), got {number:.9g}")


def contract_tensors(contract: ModelContract, values: Mapping[str, object]) -> dict[str, np.ndarray]:
    """The input tensors of ``contract`` for ``values`` (input name -> value; None: not sent, left out)."""
    return {name: wire_tensor(contract.input(name), value) for name, value in values.items() if value is not None}


def build_tensors(fields: CloneFields, settings: Settings) -> dict[str, np.ndarray]:
    """The voice_clone (and voice_clone_stream) input tensors of ``fields``, plus the configured defaults."""
    values: dict[str, object] = {
        "text": fields.text,
        "text_language": fields.text_language,
        # api.py: an explicit cut_punc, even an empty one, wins over the configured default
        "cut_punc": fields.cut_punc if fields.cut_punc is not None else settings.default_cut_punc,
        "top_k": fields.top_k,
        "top_p": fields.top_p,
        "temperature": fields.temperature,
        "speed": fields.speed,
        "seed": fields.seed,
        "max_new_tokens": settings.max_new_tokens,
        "model": fields.model,
    }
    if fields.voice is not None:
        values.update(fields.voice)
    else:
        values.update(prompt_text=fields.prompt_text, prompt_language=fields.prompt_language,
                      reference_audio=fields.reference_audio)  # fmt: skip
    return contract_tensors(VOICE_CLONE, values)
