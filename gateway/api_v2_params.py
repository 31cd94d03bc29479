"""Upstream ``api_v2.py``'s ``/tts`` parameters (spec 5.2): their names, defaults and our rules, in one parser.

GET sends every value as a string and POST as JSON; both go through :func:`parse_tts`, so a value means the same
either way and every broken rule is an :class:`InputError` naming the field (400, as api_v2 answers). Which
rules belong to Triton (languages, sampling ranges, speed) stays with Triton: those fields pass through as sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from gsv_triton.audio.formats import API_V2_FORMATS
from gsv_triton.errors import InputError
from gsv_triton.text.splitting import CUT_METHODS

DEFAULT_SPLIT_METHOD = "cut5"
DEFAULT_FRAGMENT_INTERVAL = 0.3  # the silence voice_clone itself puts after every piece
MAX_FRAGMENT_INTERVAL = 10.0  # seconds of silence between pieces; more is a typo, and bounds the work
MAX_AUX_REFERENCES = 8  # each one is a voice_encode call
# v3/v4-only settings: accepted at upstream's default, refused otherwise (no model we serve uses them).
DEFAULT_SAMPLE_STEPS = 32
DEFAULT_MIN_CHUNK_LENGTH = 16  # api_v2's default: semantic tokens per chunk of streaming_mode 2/3
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
STREAMING_MODES = "0, 1, 2, 3, true or false"


@dataclass(frozen=True)
class TtsParams:
    """One ``/tts`` request after the rules; None: not sent (the model's default applies)."""

    text: str
    text_lang: str
    ref_audio_path: str | None
    prompt_text: str
    prompt_lang: str
    aux_ref_audio_paths: tuple[str, ...] = ()
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    text_split_method: str = DEFAULT_SPLIT_METHOD
    speed_factor: float | None = None
    fragment_interval: float = DEFAULT_FRAGMENT_INTERVAL
    seed: int | None = None  # None: a random one (api_v2's -1)
    media_type: str = "wav"
    streaming_mode: int = 0  # 0 whole file, 1 per piece, 2/3 token chunks (see gateway/routes/api_v2.py)
    repetition_penalty: float | None = None
    overlap_length: int | None = None  # None: the stream model's own overlap (api_v2's 2 is not sent for it)
    min_chunk_length: int = DEFAULT_MIN_CHUNK_LENGTH
    # Accepted and without effect here (see gateway/README.md "api_v2 drop-in"): recorded for the log only.
    ignored: dict[str, object] = field(default_factory=dict)


def _given(value: object) -> bool:
    return value is not None and value != ""


def text_value(values: Mapping[str, object], name: str, required: bool = False) -> str | None:
    value = values.get(name)
    if not _given(value):
        if required:
            raise InputError(name, "is required")
        return None
    if not isinstance(value, str):
        raise InputError(name, f"must be a string, got {type(value).__name__}")
    return value


def integer_value(values: Mapping[str, object], name: str, minimum: int | None = None) -> int | None:
    """An integer sent as a number or a string; floats only when integral (api_v2's pydantic does the same)."""
    value = values.get(name)
    if not _given(value):
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise InputError(name, f"must be an integer, got {value!r}")
    if minimum is not None and number < minimum:
        raise InputError(name, f"must be an integer >= {minimum}, got {number}")
    return number


def number_value(values: Mapping[str, object], name: str) -> float | None:
    """A finite number sent as a number or a string."""
    value = values.get(name)
    if not _given(value):
        return None
    number: float | None = None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
    except (ValueError, OverflowError):  # not a number, or an integer beyond any float
        number = None
    if number is None or not math.isfinite(number):
        raise InputError(name, f"must be a finite number, got {value!r}")
    return number


def bool_value(values: Mapping[str, object], name: str) -> bool | None:
    value = values.get(name)
    if not _given(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise InputError(name, f"must be true or false, got {value!r}")


def streaming_mode_value(values: Mapping[str, object]) -> int:
    """api_v2's ``streaming_mode``: false/0, true/1, 2 or 3 (a bool or an integer, a string in a query)."""
    value = values.get("streaming_mode")
    if not _given(value):
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "false"):
            return int(word == "true")
        value = word
    try:
        mode = integer_value({"streaming_mode": value}, "streaming_mode")
    except InputError:
        mode = None
    if mode not in (0, 1, 2, 3):
        raise InputError("streaming_mode", f"must be one of {STREAMING_MODES}, got {values.get('streaming_mode')!r}")
    return mode


def paths_value(values: Mapping[str, object], name: str) -> tuple[str, ...]:
    """A list of paths; empty entries are skipped, as api_v2 skips them."""
    value = values.get(name)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise InputError(name, "must be a list of paths (strings)")
    paths = tuple(item for item in items if item != "")
    if len(paths) > MAX_AUX_REFERENCES:
        raise InputError(name, f"names {len(paths)} references; at most {MAX_AUX_REFERENCES} are allowed")
    return paths


def _v3_only(values: Mapping[str, object], ignored: dict[str, object]) -> None:
    """``sample_steps`` and ``super_sampling`` steer v3/v4's diffusion decoder and upsampler, which the versions
    served here (v1, v2, v2Pro, v2ProPlus) do not have: their defaults pass, any other value is refused."""
    steps = integer_value(values, "sample_steps")
    if steps is not None and steps != DEFAULT_SAMPLE_STEPS:
        raise InputError("sample_steps", f"is used by v3/v4 models only; the model served here (v1/v2/v2Pro) has "
                                         f"no diffusion steps: send {DEFAULT_SAMPLE_STEPS} (the default) or leave it "
                                         f"out, got {steps}")  # fmt: skip
    if bool_value(values, "super_sampling"):
        raise InputError("super_sampling", "is used by v3 models only; the model served here (v1/v2/v2Pro) has no "
                                           "audio super-resolution: send false or leave it out")  # fmt: skip
    for name, value in (("sample_steps", steps), ("super_sampling", bool_value(values, "super_sampling"))):
        if value is not None:
            ignored[name] = value


def parse_tts(values: Mapping[str, object]) -> TtsParams:
    """``/tts``'s parameters (query strings or JSON values) after every rule the gateway owns."""
    text = text_value(values, "text", required=True)
    text_lang = text_value(values, "text_lang", required=True)
    prompt_lang = text_value(values, "prompt_lang", required=True)
    prompt_text = text_value(values, "prompt_text")
    if prompt_text is None or not prompt_text.strip():
        # api_v2's default "" is its reference-free mode; our pipeline always conditions on the transcript.
        raise InputError("prompt_text", "is required: the transcript of ref_audio_path (reference-free synthesis, "
                                        "an empty prompt_text, is not supported by this server)")  # fmt: skip
    method = text_value(values, "text_split_method") or DEFAULT_SPLIT_METHOD
    if method not in CUT_METHODS:
        raise InputError("text_split_method", f"must be one of {', '.join(CUT_METHODS)}, got {method!r}")
    media_type = (text_value(values, "media_type") or "wav").strip().lower()
    if media_type not in API_V2_FORMATS:
        raise InputError("media_type", f"must be one of {', '.join(API_V2_FORMATS)}, got {values.get('media_type')!r}")
    interval = number_value(values, "fragment_interval")
    if interval is not None and not 0.0 <= interval <= MAX_FRAGMENT_INTERVAL:
        raise InputError("fragment_interval", f"must be in [0, {MAX_FRAGMENT_INTERVAL:g}] seconds, got {interval:g}")
    seed = integer_value(values, "seed")
    ignored: dict[str, object] = {}
    # Accepted for compatibility, without effect: Triton batches every piece in one T2S call and keeps the
    # input order, so api_v2's batching knobs have nothing to choose (their types are still checked).
    for name, value in (("batch_size", integer_value(values, "batch_size", minimum=1)),
                        ("batch_threshold", number_value(values, "batch_threshold")),
                        ("split_bucket", bool_value(values, "split_bucket")),
                        ("parallel_infer", bool_value(values, "parallel_infer"))):  # fmt: skip
        if value is not None:
            ignored[name] = value
    _v3_only(values, ignored)
    overlap = integer_value(values, "overlap_length", minimum=0)
    min_chunk = integer_value(values, "min_chunk_length", minimum=1)
    assert text is not None and text_lang is not None and prompt_lang is not None
    return TtsParams(
        text=text,
        text_lang=text_lang.lower(),
        ref_audio_path=text_value(values, "ref_audio_path"),
        prompt_text=prompt_text,
        prompt_lang=prompt_lang.lower(),
        aux_ref_audio_paths=paths_value(values, "aux_ref_audio_paths"),
        top_k=integer_value(values, "top_k"),
        top_p=number_value(values, "top_p"),
        temperature=number_value(values, "temperature"),
        text_split_method=method,
        speed_factor=number_value(values, "speed_factor"),
        fragment_interval=DEFAULT_FRAGMENT_INTERVAL if interval is None else interval,
        seed=None if seed == -1 else seed,
        media_type=media_type,
        streaming_mode=streaming_mode_value(values),
        repetition_penalty=number_value(values, "repetition_penalty"),
        overlap_length=overlap,
        min_chunk_length=DEFAULT_MIN_CHUNK_LENGTH if min_chunk is None else min_chunk,
        ignored=ignored,
    )
