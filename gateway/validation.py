"""A synthesis request as the routes received it (:class:`CloneFields`) and the ``voice_clone`` tensors it
becomes, typed by the tensor contract (``gsv_triton.contract``).

The gateway checks only what the wire format itself needs (a number that does not fit its Triton datatype);
every request rule and the reference clip (decoded once, inside Triton) are ``voice_clone``'s own, and its
errors come back as data naming the input and the HTTP status (``gateway.triton``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gsv_triton.contract import VOICE_CLONE
from gsv_triton.errors import InputError
from gsv_triton.settings import Settings

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


def bytes_tensor(value: str | bytes) -> np.ndarray:
    """A BYTES tensor of one element (text as UTF-8)."""
    return VOICE_CLONE.input("text").array(value)


def seed_tensor(seed: int) -> np.ndarray:
    """The INT64 seed input of ``seed``, which may also be given as its unsigned 64-bit value."""
    if not INT64_MIN <= seed < UINT64_END:
        raise InputError("seed", f"must be an integer in [{INT64_MIN}, {UINT64_END - 1}], got {seed}")
    return np.array([seed % UINT64_END], dtype=np.uint64).view(np.int64)


def build_tensors(fields: CloneFields, settings: Settings) -> dict[str, np.ndarray]:
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
        tensors["top_k"] = VOICE_CLONE.input("top_k").array(fields.top_k)
    with np.errstate(over="ignore"):  # a float beyond FP32 becomes inf, which voice_clone rejects by name
        for name in ("top_p", "temperature", "speed"):
            value = getattr(fields, name)
            if value is not None:
                tensors[name] = VOICE_CLONE.input(name).array(value)
    if fields.seed is not None:
        tensors["seed"] = seed_tensor(fields.seed)
    if settings.max_new_tokens is not None:
        tensors["max_new_tokens"] = VOICE_CLONE.input("max_new_tokens").array(settings.max_new_tokens)
    return tensors
