"""Turning an uploaded reference clip into the three inputs the networks need (spec 2.3 and 3).

Reference policy (limits from ``gsv_triton.settings.Limits``), checked in this order:
1. upload size > ``max_upload_bytes``              -> 413
2. empty bytes                                      -> 400; not decodable audio -> 415
3. duration outside [min, max]_reference_seconds   -> 400. Long references are REJECTED, not trimmed,
   like upstream's webui and api_v2 (api.py does not check): the prompt text the user sends
   transcribes the whole clip, so cutting the audio would misalign audio and prompt phones.
   The test is upstream's exact one, on the 16 kHz length: min*16000 <= ceil(N*16000/sr) <= max*16000.
4. non-finite samples (float files)                 -> 400
5. peak of the mono mixdown < ``silence_peak``      -> 400 (silent)
The decode is capped just past the maximum duration, so a long upload is never fully decoded.

Any channel count is accepted and mixed to mono by averaging all channels (``decode.mixdown``);
upstream averages all channels for HuBERT but only exactly 2 for the spectrogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsv_triton.audio.decode import decode_audio, mixdown
from gsv_triton.audio.resample import resample, resampled_length
from gsv_triton.audio.spectrogram import spectrogram
from gsv_triton.errors import InputError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SSL_SAMPLE_RATE, SSL_ZERO_TAIL, Limits

STATUS_TOO_LARGE = 413
STATUS_RULE = 400
# Peak limiting of the 32 kHz path: if peak > 1, divide by min(PEAK_DIVISOR_CAP, peak) (upstream get_spepc).
PEAK_DIVISOR_CAP = 2.0


@dataclass(frozen=True, eq=False)
class ReferenceAudio:
    """Everything derived from one reference clip."""

    wav16k: np.ndarray  # float32 [N16 + 9600]: HuBERT input, zero tail already appended
    wav32k: np.ndarray  # float32 [N32]: peak-limited mono audio at 32 kHz
    spectrogram: np.ndarray  # float32 [1025, floor(N32 / 640)]
    duration_seconds: float  # of the decoded clip
    source_sample_rate: int
    source_channels: int


def append_ssl_tail(wav16k: np.ndarray) -> np.ndarray:
    """Append the 9600 zero samples (0.6 s at 16 kHz) that upstream puts AFTER the HuBERT input."""
    return np.concatenate([np.asarray(wav16k, dtype=np.float32), np.zeros(SSL_ZERO_TAIL, dtype=np.float32)])


def limit_peak(samples: np.ndarray) -> np.ndarray:
    """If the peak exceeds 1, divide by min(2, peak) (so a peak above 2 stays above 1, as upstream)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        return (samples / min(PEAK_DIVISOR_CAP, peak)).astype(np.float32)
    return samples


def _check_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_upload_bytes:
        raise InputError(
            "audio",
            f"the upload is {len(data)} bytes; the limit is {limits.max_upload_bytes} bytes",
            STATUS_TOO_LARGE,
        )


def _check_duration(frames: int, rate: int, limits: Limits) -> None:
    n16 = resampled_length(frames, rate, SSL_SAMPLE_RATE)
    lowest = limits.min_reference_seconds * SSL_SAMPLE_RATE
    highest = limits.max_reference_seconds * SSL_SAMPLE_RATE
    if lowest <= n16 <= highest:
        return
    # A capped decode stops just past the maximum, so for long clips we only know a lower bound.
    got = f"{frames / rate:.2f} s" if n16 < lowest else f"longer than {limits.max_reference_seconds:g} s"
    raise InputError(
        "audio",
        f"the reference must be {limits.min_reference_seconds:g}-{limits.max_reference_seconds:g} s long; "
        f"this one is {got}",
        STATUS_RULE,
    )


def _check_content(mono: np.ndarray, limits: Limits) -> None:
    peak = float(np.max(np.abs(mono)))  # NaN or inf anywhere makes the peak non-finite: one pass
    if not np.isfinite(peak):
        raise InputError("audio", "the reference contains NaN or infinite samples", STATUS_RULE)
    if peak < limits.silence_peak:
        raise InputError(
            "audio",
            f"the reference is silent (peak {peak:.2g} is below {limits.silence_peak:g} of full scale)",
            STATUS_RULE,
        )


def validate_reference(data: bytes, limits: Limits) -> tuple[np.ndarray, int, int]:
    """Apply every reference rule (size, decodable, duration, content); returns (mono, rate, channels).

    Cheap enough for a gateway to reject bad uploads before any network runs."""
    _check_size(data, limits)
    # The capped decode means an upload that expands to hours costs no more than a valid reference.
    samples, rate = decode_audio(data, max_seconds=limits.max_reference_seconds)
    _check_duration(samples.shape[1], rate, limits)
    mono = mixdown(samples)
    _check_content(mono, limits)
    return mono, rate, samples.shape[0]


def prepare_reference(data: bytes, limits: Limits) -> ReferenceAudio:
    """Validate an uploaded clip and compute the HuBERT input, the 32 kHz audio and the spectrogram."""
    mono, rate, channels = validate_reference(data, limits)
    # Both rates come from the original mono signal, as upstream (librosa -> 16 k, torchaudio -> 32 k).
    # The 16 kHz HuBERT input is not peak-limited, as upstream.
    wav16k = append_ssl_tail(resample(mono, rate, SSL_SAMPLE_RATE))
    wav32k = limit_peak(resample(mono, rate, OUTPUT_SAMPLE_RATE))
    return ReferenceAudio(
        wav16k=wav16k,
        wav32k=wav32k,
        spectrogram=spectrogram(wav32k),
        duration_seconds=mono.shape[-1] / rate,
        source_sample_rate=rate,
        source_channels=channels,
    )
