"""Offline audio frontend: decode uploads, prepare reference inputs, post-process output audio.

numpy + soundfile + soxr only (it runs inside Triton Python-backend models: no torch, no librosa).
"""

from gsv_triton.audio.decode import decode_audio, mixdown
from gsv_triton.audio.output import (
    float_to_int16,
    float_to_int32,
    join_segments,
    normalize_segment,
    to_wav_bytes,
)
from gsv_triton.audio.reference import (
    ReferenceAudio,
    append_ssl_tail,
    limit_peak,
    prepare_reference,
    validate_reference,
)
from gsv_triton.audio.resample import resample, resampled_length
from gsv_triton.audio.spectrogram import hann_window, num_frames, spectrogram

__all__ = [
    "ReferenceAudio",
    "append_ssl_tail",
    "decode_audio",
    "float_to_int16",
    "float_to_int32",
    "hann_window",
    "join_segments",
    "limit_peak",
    "mixdown",
    "normalize_segment",
    "num_frames",
    "prepare_reference",
    "resample",
    "resampled_length",
    "spectrogram",
    "to_wav_bytes",
    "validate_reference",
]
