"""The ``voice_clone`` request: its tensor contract, parsing and validation (no Triton import).

Every rule failure raises ``InputError`` whose field is the tensor name, so the Triton error a client sees
reads ``<input>: <what is wrong>``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from gsv_triton.contract import BERT_DIM
from gsv_triton.errors import InputError
from gsv_triton.model_sets import MODEL_FIELD, set_or_default
from gsv_triton.settings import EOS_TOKEN, Limits, SamplingDefaults
from gsv_triton.symbols import symbols
from gsv_triton.text.languages import normalize_code
from gsv_triton.text.splitting import SPLITS

REQUIRED_STRINGS = ("text", "text_language")
PROMPT_STRINGS = ("prompt_text", "prompt_language")
# A stored voice (POST /v1/voices) replaces the reference side: prompt phones + BERT replace prompt_text and
# prompt_language, prompt codes + ge replace reference_audio (``voice_encode`` computes all four).
PROMPT_FEATURES = ("prompt_phone_ids", "prompt_bert")
REFERENCE_FEATURES = ("prompt_codes", "ge")
# Rule messages print numbers with 9 significant digits, enough to tell any FP32 from the bound it broke
# (":g" showed top_p = 1.0000001 as "got 1").
# Speed scales the latent length (frames = int(2T / speed) + 1): outside this range the audio is either
# unintelligible or a few tokens expand to minutes. Upstream's webui slider spans 0.6-1.65.
MIN_SPEED = 0.25
MAX_SPEED = 4.0
# Benchmarks may force long generations; more than upstream's cap would only grow the KV cache.
MAX_NEW_TOKENS = SamplingDefaults.max_new_tokens
SEED_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class VoiceCloneRequest:
    """One validated request. Languages are normalised codes; ``prompt_text`` already ends with a mark."""

    text: str
    text_language: str
    prompt_text: str
    prompt_language: str
    reference_audio: bytes
    top_k: int = SamplingDefaults.top_k
    top_p: float = SamplingDefaults.top_p
    temperature: float = SamplingDefaults.temperature
    repetition_penalty: float = SamplingDefaults.repetition_penalty
    speed: float = SamplingDefaults.speed
    seed: int = 0  # in [0, 2^64)
    cut_punc: str = ""
    max_new_tokens: int = SamplingDefaults.max_new_tokens
    ignore_eos: bool = False
    # A stored voice's features (all None on the upload path; then prompt_text and reference_audio are used).
    prompt_phone_ids: np.ndarray | None = None  # int64 [P]
    prompt_bert: np.ndarray | None = None  # float32 [1024, P]
    prompt_codes: np.ndarray | None = None  # int64 [Ty]
    ge: np.ndarray | None = None  # float32 [gin]


@dataclass(frozen=True)
class VoiceEncodeRequest:
    """One ``voice_encode`` request: a reference clip with its transcript, validated like voice_clone's."""

    prompt_text: str
    prompt_language: str
    reference_audio: bytes


def _one(inputs: Mapping[str, np.ndarray], name: str):
    """The single element of input ``name`` (None when the input is absent)."""
    if name not in inputs or inputs[name] is None:
        return None
    values = np.asarray(inputs[name]).ravel()
    if values.size != 1:
        raise InputError(name, f"must hold exactly one element, got {values.size}")
    return values[0]


def _string(inputs: Mapping[str, np.ndarray], name: str) -> str | None:
    value = _one(inputs, name)
    if value is None or isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(name, "is not valid UTF-8 text") from None


def requested_set(inputs: Mapping[str, np.ndarray]) -> str:
    """The model set a request's optional ``model`` input names (absent or empty: the default set)."""
    return set_or_default(_string(inputs, MODEL_FIELD))


def _number(inputs: Mapping[str, np.ndarray], name: str, default: float) -> float:
    value = _one(inputs, name)
    if value is None:
        return float(default)
    number = float(value)
    if not math.isfinite(number):
        raise InputError(name, f"must be a finite number, got {number}")
    return number


def _integer(inputs: Mapping[str, np.ndarray], name: str, default: int) -> int:
    value = _one(inputs, name)
    return int(default) if value is None else int(value)


def _required_strings(
    inputs: Mapping[str, np.ndarray], names: tuple[str, ...], missing: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``{name: text}`` of string inputs that must all be sent, checked in order; ``missing`` words the
    "is required" message of some of them."""
    strings = {}
    for name in names:
        value = _string(inputs, name)
        if value is None:
            raise InputError(name, (missing or {}).get(name, "is required"))
        strings[name] = value
    return strings


def _speed(inputs: Mapping[str, np.ndarray]) -> float:
    speed = _number(inputs, "speed", SamplingDefaults.speed)
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InputError("speed", f"must be in [{MIN_SPEED:g}, {MAX_SPEED:g}], got {speed:.9g}")
    return speed


def _seed(inputs: Mapping[str, np.ndarray], draw_seed: Callable[[], int]) -> int:
    """The request's seed, or a drawn one when it sends none, as an unsigned 64-bit value."""
    value = _one(inputs, "seed")
    return (int(value) if value is not None else int(draw_seed())) & SEED_MASK


def prompt_with_end_mark(prompt_text: str, raw_language: str) -> str:
    """api.py: strip newlines, then append "。" (or "." when the language is literally "en") if the prompt does
    not end with a sentence mark. The test reads the language as sent, before it is mapped (spec 5.1)."""
    prompt = prompt_text.strip("\n")
    if prompt and prompt[-1] not in SPLITS:
        prompt += "." if raw_language == "en" else "。"
    return prompt


def parse_request(
    inputs: Mapping[str, np.ndarray],
    symbol_version: str = "v2",
    limits: Limits | None = None,
    default_cut_punc: str = "",
    draw_seed: Callable[[], int] = lambda: secrets.randbits(63),
) -> VoiceCloneRequest:
    """Validate the raw input tensors of one request (``{name: array}``; absent optional inputs are missing).

    ``default_cut_punc`` plays api.py's ``-cp``: used when the request has no ``cut_punc`` (an empty one
    disables punctuation splitting). Without ``seed`` a random one is drawn (upstream is unseeded).
    """
    limits = limits or Limits()
    prompt_features = _voice_features(inputs, PROMPT_FEATURES)
    reference_features = _voice_features(inputs, REFERENCE_FEATURES)
    strings = _required_strings(inputs, REQUIRED_STRINGS + (() if prompt_features else PROMPT_STRINGS))
    if not strings["text"].strip():
        raise InputError("text", "is empty")
    if len(strings["text"]) > limits.max_text_chars:
        raise InputError("text", f"is longer than {limits.max_text_chars} characters", status=413)
    languages = {"text_language": _language(strings["text_language"], "text_language", symbol_version)}
    prompt_text, prompt_language = "", ""
    if prompt_features:
        phones, bert = prompt_features
        phones = phones.astype(np.int64).ravel()
        bert = np.asarray(bert, dtype=np.float32)
        n_symbols = len(symbols(symbol_version))
        if phones.size == 0 or phones.min() < 0 or phones.max() >= n_symbols:
            raise InputError("prompt_phone_ids", f"must be 1 or more phone ids in [0, {n_symbols})")
        if bert.shape != (BERT_DIM, phones.size):
            raise InputError("prompt_bert", f"must be [{BERT_DIM}, {phones.size}], got {list(bert.shape)}")
        prompt_features = (phones, bert)
    else:
        prompt_text, prompt_language = _prompt(strings, symbol_version, limits)

    if reference_features:
        codes, ge = reference_features
        codes = codes.astype(np.int64).ravel()
        ge = np.asarray(ge, dtype=np.float32).ravel()
        if codes.size == 0 or codes.min() < 0 or codes.max() >= EOS_TOKEN:
            raise InputError("prompt_codes", f"must be 1 or more semantic codes in [0, {EOS_TOKEN})")
        if ge.size == 0 or not np.isfinite(ge).all():
            raise InputError("ge", "must be a non-empty vector of finite numbers")
        reference_features = (codes, ge)
        audio = b""
    else:
        audio = _reference_audio(inputs)

    top_k = _integer(inputs, "top_k", SamplingDefaults.top_k)
    if top_k < 1:
        raise InputError("top_k", f"must be an integer >= 1, got {top_k}")
    top_p = _number(inputs, "top_p", SamplingDefaults.top_p)
    if not 0.0 < top_p <= 1.0:
        raise InputError("top_p", f"must be in (0, 1], got {top_p:.9g}")
    temperature = _number(inputs, "temperature", SamplingDefaults.temperature)
    if not temperature > 0.0:
        raise InputError("temperature", f"must be > 0, got {temperature:.9g}")
    penalty = _number(inputs, "repetition_penalty", SamplingDefaults.repetition_penalty)
    if not penalty > 0.0:
        raise InputError("repetition_penalty", f"must be > 0, got {penalty:.9g}")
    speed = _speed(inputs)
    max_new_tokens = _integer(inputs, "max_new_tokens", SamplingDefaults.max_new_tokens)
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InputError("max_new_tokens", f"must be in [1, {MAX_NEW_TOKENS}], got {max_new_tokens}")
    seed = _seed(inputs, draw_seed)
    cut_punc = _string(inputs, "cut_punc")
    ignore_eos = _one(inputs, "ignore_eos")

    return VoiceCloneRequest(
        text=strings["text"],
        text_language=languages["text_language"],
        prompt_text=prompt_text,
        prompt_language=prompt_language,
        reference_audio=audio,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=penalty,
        speed=speed,
        seed=seed,
        cut_punc=default_cut_punc if cut_punc is None else cut_punc,
        max_new_tokens=max_new_tokens,
        ignore_eos=bool(ignore_eos) if ignore_eos is not None else False,
        prompt_phone_ids=prompt_features[0] if prompt_features else None,
        prompt_bert=prompt_features[1] if prompt_features else None,
        prompt_codes=reference_features[0] if reference_features else None,
        ge=reference_features[1] if reference_features else None,
    )


def parse_voice_request(
    inputs: Mapping[str, np.ndarray], symbol_version: str = "v2", limits: Limits | None = None
) -> VoiceEncodeRequest:
    """Validate the inputs of ``voice_encode`` (reference_audio, prompt_text, prompt_language)."""
    limits = limits or Limits()
    strings = _required_strings(inputs, PROMPT_STRINGS)
    prompt_text, prompt_language = _prompt(strings, symbol_version, limits)
    return VoiceEncodeRequest(prompt_text, prompt_language, _reference_audio(inputs))


def _language(value: str, name: str, symbol_version: str) -> str:
    try:
        return normalize_code(value, symbol_version)
    except InputError as exc:
        raise InputError(name, exc.message, exc.status) from None


def _prompt(strings: Mapping[str, str], symbol_version: str, limits: Limits) -> tuple[str, str]:
    """(prompt text with api.py's end mark, normalised prompt language)."""
    if not strings["prompt_text"].strip():
        raise InputError("prompt_text", "is empty (the transcript of the reference audio is required)")
    if len(strings["prompt_text"]) > limits.max_text_chars:
        raise InputError("prompt_text", f"is longer than {limits.max_text_chars} characters", status=413)
    language = _language(strings["prompt_language"], "prompt_language", symbol_version)
    return prompt_with_end_mark(strings["prompt_text"], strings["prompt_language"]), language


def _reference_audio(inputs: Mapping[str, np.ndarray]) -> bytes:
    audio = _one(inputs, "reference_audio")
    if audio is None:
        raise InputError("reference_audio", "is required")
    audio = audio.encode("latin-1") if isinstance(audio, str) else bytes(audio)
    if not audio:
        raise InputError("reference_audio", "is empty (0 bytes)")
    return audio


def _voice_features(inputs: Mapping[str, np.ndarray], names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Both arrays of a feature pair, or None when neither is sent; one without the other is an error."""
    present = [name for name in names if inputs.get(name) is not None]
    if not present:
        return None
    if len(present) == 1:
        missing = next(name for name in names if name not in present)
        raise InputError(missing, f"is required together with {present[0]}")
    return np.asarray(inputs[names[0]]), np.asarray(inputs[names[1]])


@dataclass(frozen=True)
class VoiceConvertRequest:
    """One ``voice_convert`` request: the source clip with its transcript, and the target voice (a clip or ge)."""

    source_audio: bytes
    text: str
    text_language: str
    reference_audio: bytes  # the target's clip (empty when ``ge`` is given)
    ge: np.ndarray | None = None  # the target's stored timbre vector, float32 [gin]
    speed: float = SamplingDefaults.speed
    seed: int = 0


def parse_convert_request(
    inputs: Mapping[str, np.ndarray],
    symbol_version: str = "v2",
    limits: Limits | None = None,
    draw_seed: Callable[[], int] = lambda: secrets.randbits(63),
) -> VoiceConvertRequest:
    """Validate the inputs of ``voice_convert``: source_audio, text, text_language, and reference_audio or ge."""
    limits = limits or Limits()
    strings = _required_strings(inputs, REQUIRED_STRINGS, {"text": "is required (the transcript of source_audio)"})
    if not strings["text"].strip():
        raise InputError("text", "is empty (the transcript of source_audio is required)")
    if len(strings["text"]) > limits.max_text_chars:
        raise InputError("text", f"is longer than {limits.max_text_chars} characters", status=413)
    language = _language(strings["text_language"], "text_language", symbol_version)
    source = _one(inputs, "source_audio")
    if source is None or not bytes(source):
        raise InputError("source_audio", "is required" if source is None else "is empty (0 bytes)")
    ge = inputs.get("ge")
    if ge is not None:
        ge = np.asarray(ge, dtype=np.float32).ravel()
        if ge.size == 0:
            raise InputError("ge", "must not be empty")
        reference = b""
    else:
        reference = _reference_audio(inputs)
    speed = _speed(inputs)
    seed = _seed(inputs, draw_seed)
    return VoiceConvertRequest(bytes(source), strings["text"], language, reference, ge, speed, seed)
