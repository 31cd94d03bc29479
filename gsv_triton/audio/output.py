"""Post-processing of synthesized audio (spec 3, "Output post-processing")."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import numpy as np
import soundfile as sf

from gsv_triton.settings import OUTPUT_SAMPLE_RATE

# Integer scales used upstream: int16 = x * 32768 (api.py, api_v2), int32 = x * 2147483647 (api.py -st int32).
INT16_SCALE = 32768.0
INT32_SCALE = 2147483647.0
SEGMENT_SILENCE_SECONDS = 0.3
# RIFF and data sizes of a WAV whose length is not known yet (a stream): what players and FFmpeg expect.
UNKNOWN_SIZE = 0xFFFFFFFF
_WAVE_PCM = 1


def normalize_segment(audio: np.ndarray) -> np.ndarray:
    """If the peak exceeds 1, divide by the peak (float32 copy; upstream does it in place)."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > 1.0 else audio.copy()


def join_segments(
    segments: Sequence[np.ndarray],
    silence_seconds: float = SEGMENT_SILENCE_SECONDS,
    sample_rate: int = OUTPUT_SAMPLE_RATE,
) -> np.ndarray:
    """Normalise each segment and append ``silence_seconds`` of zeros after EACH one (the last too),
    as api.py does; returns float32 1-D."""
    silence = np.zeros(int(round(sample_rate * silence_seconds)), dtype=np.float32)
    parts: list[np.ndarray] = []
    for segment in segments:
        parts += [normalize_segment(np.ravel(segment)), silence]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """x * 32768 truncated toward zero like upstream, but CLIPPED to [-32768, 32767].

    Upstream casts without clipping, so a sample of exactly +1.0 (reachable: the decoder ends in
    tanh) becomes 32768 and wraps to -32768, a full-scale click. Every other in-range value gives
    the same integer as upstream.
    """
    scaled = np.asarray(audio, dtype=np.float32) * np.float32(INT16_SCALE)
    return np.clip(scaled, -32768.0, 32767.0).astype(np.int16)


def pcm16_bytes(audio: np.ndarray) -> bytes:
    """``audio`` as little-endian 16-bit PCM samples (``float_to_int16``'s rounding and clipping)."""
    return float_to_int16(audio).astype("<i2", copy=False).tobytes()


def float_to_int32(audio: np.ndarray) -> np.ndarray:
    """x * 2147483647 (api.py's int32 scale), computed in float64 and clipped to the int32 range."""
    scaled = np.asarray(audio, dtype=np.float64) * INT32_SCALE
    return np.clip(scaled, -2147483648.0, 2147483647.0).astype(np.int32)


def pcm_wav_header(sample_rate: int, bits: int, data_bytes: int | None, channels: int = 1) -> bytes:
    """The 44-byte header of an integer PCM WAV; ``data_bytes`` None: a stream of unknown length."""
    block = channels * bits // 8
    data_size = UNKNOWN_SIZE if data_bytes is None else data_bytes
    riff_size = UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    return b"".join((
        b"RIFF", struct.pack("<I", riff_size), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, _WAVE_PCM, channels, sample_rate, sample_rate * block, block, bits),
        b"data", struct.pack("<I", data_size),
    ))  # fmt: skip


def to_wav_bytes(audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """A complete WAV file of 1-D float audio in [-1, 1]; ``subtype`` is PCM_16, PCM_32 or FLOAT.

    The integer conversion is ours (see ``float_to_int16``), not libsndfile's, so it is explicit; integer
    files are written here too (a header and the samples: a tenth of libsndfile's cost for a short clip).
    """
    audio = np.ravel(np.asarray(audio, dtype=np.float32))
    if subtype == "PCM_16":
        return pcm_wav_header(sample_rate, 16, 2 * audio.size) + pcm16_bytes(audio)
    if subtype == "PCM_32":
        return pcm_wav_header(sample_rate, 32, 4 * audio.size) + float_to_int32(audio).astype("<i4", copy=False).tobytes()
    if subtype != "FLOAT":
        raise ValueError(f"unsupported WAV subtype {subtype!r}; use PCM_16, PCM_32 or FLOAT")
    data = np.clip(audio, -1.0, 1.0)  # libsndfile writes float files with the fact chunk they need
    buffer = io.BytesIO()
    sf.write(buffer, data, sample_rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


AAC_BITRATE = 192_000  # api_v2's ffmpeg call (-b:a 192k)


def aac_adts_bytes(audio: np.ndarray, sample_rate: int, bitrate: int = AAC_BITRATE) -> bytes:
    """``audio`` (1-D float in [-1, 1]) as AAC-LC in an ADTS stream (``audio/aac``), the bytes api_v2's
    ``media_type=aac`` answers with. FFmpeg's native AAC encoder through PyAV (the libraries ship inside the
    ``av`` wheel), so no ``ffmpeg`` binary is needed. ADTS frames carry their own headers: streamed pieces
    concatenate into a valid stream."""
    import av  # imported here: only the aac output needs it

    samples = np.ascontiguousarray(np.clip(np.ravel(audio), -1.0, 1.0), dtype=np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="adts") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.bit_rate = bitrate
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):  # flush the encoder's delay
            container.mux(packet)
    return buffer.getvalue()
