"""Every limit and default of the serving path, in one place.

The gateway reads overrides from ``GSV_*`` environment variables (see README); the Triton models
and the frontends take the same object so a limit is enforced with one number everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

# Audio constants of GPT-SoVITS v1/v2 (spec sections 0, 2.3 and 3).
SSL_SAMPLE_RATE = 16_000
OUTPUT_SAMPLE_RATE = 32_000
SAMPLES_PER_TOKEN = 1280  # one 25 Hz semantic token = 40 ms at 32 kHz
SSL_ZERO_TAIL = 9600  # 0.6 s of zeros appended to the 16 kHz reference before HuBERT
N_FFT = 2048
HOP_LENGTH = 640
WIN_LENGTH = 2048
SPEC_EPS = 1e-8
EOS_TOKEN = 1024


@dataclass(frozen=True)
class Limits:
    """Input limits; each one is documented in README under "Limits"."""

    max_upload_bytes: int = 20 * 1024 * 1024
    min_reference_seconds: float = 3.0
    max_reference_seconds: float = 10.0
    max_text_chars: int = 1000
    # Silence (peak below this, in full scale) makes a reference unusable.
    silence_peak: float = 1e-4


@dataclass(frozen=True)
class SamplingDefaults:
    """Upstream api.py defaults (spec 2.1.5)."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    speed: float = 1.0
    noise_scale: float = 0.5
    max_new_tokens: int = 1500
    min_tokens_before_eos: int = 11


def limits_from_env(prefix: str = "GSV_") -> Limits:
    """Limits with overrides such as ``GSV_MAX_TEXT_CHARS=2000`` applied."""
    values = {}
    for f in fields(Limits):
        raw = os.environ.get(prefix + f.name.upper())
        if raw is not None:
            values[f.name] = type(f.default)(raw)
    return Limits(**values)
