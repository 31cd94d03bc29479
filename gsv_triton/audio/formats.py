"""Encoded output audio: wav, pcm, flac, mp3, opus (ogg), at the model's rate or a requested one.

Every encoder is libsndfile's (the copy bundled with the ``soundfile`` wheel: 1.2.x writes MP3 through LAME
and Ogg/Opus through libopus), so no external tool is needed. The float -> int16 step is ours
(:func:`~gsv_triton.audio.output.float_to_int16`, clipped) for wav and pcm; the lossy encoders take the floats.

Opus only runs at 8, 12, 16, 24 or 48 kHz: without a requested rate opus output is resampled to 48 kHz.
MP3 runs at the MPEG-1/2/2.5 rates only (8 - 48 kHz, see :data:`MP3_RATES`).

Two more formats serve upstream api_v2's ``media_type`` only (:data:`API_V2_FORMATS`): ``aac`` (AAC-LC in ADTS,
FFmpeg's encoder through PyAV, as api_v2 pipes to ffmpeg) and ``ogg`` as api_v2 writes it, Ogg/Vorbis at the
model's rate. They stay out of :data:`FORMATS`, so the other routes' ``response_format`` keeps its documented set.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from gsv_triton.audio.output import aac_adts_bytes, float_to_int16, pcm16_bytes, to_wav_bytes
from gsv_triton.audio.resample import resample
from gsv_triton.errors import InputError


@dataclass(frozen=True)
class AudioFormat:
    name: str
    media_type: str
    container: str  # libsndfile major format
    subtype: str  # libsndfile subtype


FORMATS = {
    "wav": AudioFormat("wav", "audio/wav", "WAV", "PCM_16"),
    # 16-bit signed little-endian mono samples, no header (the rate is in the X-Sample-Rate header).
    "pcm": AudioFormat("pcm", "audio/pcm", "RAW", "PCM_16"),
    "flac": AudioFormat("flac", "audio/flac", "FLAC", "PCM_16"),
    "mp3": AudioFormat("mp3", "audio/mpeg", "MP3", "MPEG_LAYER_III"),
    "opus": AudioFormat("opus", "audio/ogg", "OGG", "OPUS"),
}
MEDIA_TYPES = tuple(f.media_type for f in FORMATS.values())
AAC = AudioFormat("aac", "audio/aac", "ADTS", "AAC")  # encoded by PyAV, not libsndfile (which has no AAC)
VORBIS = AudioFormat("vorbis", "audio/ogg", "OGG", "VORBIS")
# api_v2's media_type -> format; "raw" is our headerless 16-bit pcm.
API_V2_FORMATS = {"wav": FORMATS["wav"], "raw": FORMATS["pcm"], "ogg": VORBIS, "aac": AAC}
# Other names clients use for the same formats.
ALIASES = {"ogg": "opus", "wave": "wav", "raw": "pcm", "mpeg": "mp3"}
DEFAULT_FORMAT = "wav"
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
OPUS_DEFAULT_RATE = 48000
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Output rates a client may ask for: those some encoder here supports.
OUTPUT_RATES = tuple(sorted(set(OPUS_RATES) | set(MP3_RATES)))


@dataclass(frozen=True)
class EncodedAudio:
    data: bytes
    format: AudioFormat
    sample_rate: int
    samples: int

    @property
    def media_type(self) -> str:
        return self.format.media_type

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def resolve_format(name: str | None, field: str = "response_format") -> AudioFormat:
    """The format called ``name`` (case-insensitive, aliases allowed; None: wav); 400 naming ``field`` else."""
    if name is None or name == "":
        return FORMATS[DEFAULT_FORMAT]
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise InputError(field, f"unsupported format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[key]


def output_rate(fmt: AudioFormat, source_rate: int, requested: int | None, field: str = "sample_rate") -> int:
    """The rate ``fmt`` is written at: ``requested`` if the format allows it, else the format's default."""
    if requested is None:
        if fmt.name == "opus" and source_rate not in OPUS_RATES:
            return OPUS_DEFAULT_RATE
        return source_rate
    if requested not in OUTPUT_RATES:
        raise InputError(field, f"must be one of {', '.join(map(str, OUTPUT_RATES))} Hz, got {requested}")
    if fmt.name == "opus" and requested not in OPUS_RATES:
        raise InputError(field, f"opus supports {', '.join(map(str, OPUS_RATES))} Hz only, got {requested}")
    return requested


def check_output(name: str | None, requested_rate: int | None, source_rate: int) -> tuple[AudioFormat, int]:
    """Validate a request's format and rate before any synthesis runs."""
    fmt = resolve_format(name)
    return fmt, output_rate(fmt, source_rate, requested_rate)


def encode_audio(audio: np.ndarray, sample_rate: int, fmt: AudioFormat, rate: int | None = None) -> EncodedAudio:
    """``audio`` (1-D float in [-1, 1] at ``sample_rate``) encoded as ``fmt`` at ``rate`` (None: as given).

    CPU work that grows with the audio (the lossy encoders take ~15 ms per second of audio): call it from a
    worker thread for anything but short clips.
    """
    rate = output_rate(fmt, sample_rate, rate)
    samples = np.ascontiguousarray(np.ravel(audio), dtype=np.float32)
    if rate != sample_rate:
        samples = np.clip(resample(samples, sample_rate, rate), -1.0, 1.0)
    if fmt.name == "wav":
        data = to_wav_bytes(samples, rate, fmt.subtype)
    elif fmt.name == "pcm":
        data = pcm16_bytes(samples)
    elif fmt.name == "aac":
        data = aac_adts_bytes(samples, rate)
    else:
        buffer = io.BytesIO()
        source = float_to_int16(samples) if fmt.subtype == "PCM_16" else samples
        sf.write(buffer, source, rate, format=fmt.container, subtype=fmt.subtype)
        data = buffer.getvalue()
    return EncodedAudio(data=data, format=fmt, sample_rate=rate, samples=int(samples.shape[0]))
