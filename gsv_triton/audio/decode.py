"""Decoding uploaded audio bytes with soundfile's bundled libsndfile (no ffmpeg, no network).

Formats that decode offline with soundfile 0.14 / libsndfile 1.2.2 (checked by tests/test_audio.py):
WAV (PCM 8-32 bit, float), FLAC, OGG/Vorbis, OGG/Opus (libsndfile always decodes Opus at 48 kHz) and
MP3 (MPEG layer I-III). AAC/M4A and WebM are not supported by libsndfile and are rejected as "not audio".
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf

from gsv_triton.errors import InputError

# HTTP status for bytes that libsndfile cannot read: "unsupported media type".
STATUS_NOT_AUDIO = 415
# An empty upload is a missing input rather than a wrong media type.
STATUS_EMPTY = 400
# decode_audio(max_seconds=...) reads this much beyond the cap, so a capped result is visibly too long.
DECODE_MARGIN_SECONDS = 0.05
SUPPORTED_FORMATS = "wav, flac, ogg/vorbis, ogg/opus, mp3"
# Integer subtypes read as integers and scaled here: libsndfile's own int->float conversion is ~10x
# slower than numpy's (4 ms vs 0.4 ms for 10 s of 44.1 kHz stereo) and gives the same values
# (x / 2^15 resp. x / 2^31, the torchaudio/librosa scaling).
_INT_READS = {
    "PCM_S8": ("int16", 2.0**-15),
    "PCM_U8": ("int16", 2.0**-15),
    "PCM_16": ("int16", 2.0**-15),
    "PCM_24": ("int32", 2.0**-31),
    "PCM_32": ("int32", 2.0**-31),
}


# The WAV fast path: 16-bit PCM, the common reference format, read without libsndfile (whose per-call cost,
# about 0.3 ms through cffi virtual IO, is most of a short clip's decode). Anything else goes to libsndfile.
_WAVE_PCM = 1
_WAVE_EXTENSIBLE = 0xFFFE
_PCM_SUBFORMAT = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_PCM
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")


def _pcm16_wav(data: bytes) -> tuple[np.ndarray, int] | None:
    """(int16 samples [N, channels], a view of ``data``; rate) of a plain 16-bit PCM WAV, or None to let
    libsndfile decide (any other encoding, or a header this reader does not trust)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, fmt = 12, None
    while offset + _CHUNK.size <= len(data):
        chunk_id, size = _CHUNK.unpack_from(data, offset)
        body = offset + _CHUNK.size
        if chunk_id == b"fmt " and size >= _FMT.size and body + size <= len(data):
            fmt = _FMT.unpack_from(data, body)
            tag = fmt[0]
            if tag == _WAVE_EXTENSIBLE and size >= 40 and data[body + 24 : body + 40] == _PCM_SUBFORMAT:
                tag = _WAVE_PCM
            if tag != _WAVE_PCM or fmt[5] != 16 or fmt[1] < 1 or fmt[2] < 1 or fmt[4] != 2 * fmt[1]:
                return None
        elif chunk_id == b"data":
            if fmt is None or body + size > len(data):  # no format yet, or a truncated/streamed file
                return None
            channels, rate = fmt[1], fmt[2]
            frames = size // (2 * channels)
            samples = np.frombuffer(data, dtype="<i2", count=frames * channels, offset=body)
            return samples.reshape(frames, channels), rate
        offset = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _not_audio(exc: Exception) -> InputError:
    # libsndfile's own words ("Format not recognised."): str(exc) would also name our in-memory file object,
    # an address that means nothing to a client.
    reason = getattr(exc, "error_string", None) or str(exc)
    return InputError(
        "audio",
        f"could not decode the upload as audio (supported: {SUPPORTED_FORMATS}): {reason}",
        STATUS_NOT_AUDIO,
    )


def _open(data: bytes) -> sf.SoundFile:
    if not data:
        raise InputError("audio", "the audio upload is empty (0 bytes)", STATUS_EMPTY)
    try:
        handle = sf.SoundFile(io.BytesIO(data))
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise _not_audio(exc) from exc
    if handle.samplerate <= 0 or handle.channels <= 0:
        handle.close()
        raise InputError("audio", "the audio header has no sample rate or no channels", STATUS_NOT_AUDIO)
    return handle


def decode_audio(data: bytes, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``data`` into float32 samples [channels, N] in full scale and the file's sample rate.

    Integer PCM is divided by its full scale (so it lies in [-1, 1)); float files keep their values.
    ``max_seconds`` caps the decode at that duration plus a margin of ``DECODE_MARGIN_SECONDS`` (a
    guard against small compressed files that expand to hours of audio; headers of streamed WAV or
    Ogg may not give a trustworthy length, so the cap is applied while reading). A result longer
    than ``max_seconds`` therefore means "too long", whatever the true length.
    Raises ``InputError`` with status 400 for empty bytes and 415 for bytes that are not audio.
    """
    def frame_limit(rate: int) -> int:
        return -1 if max_seconds is None else int(np.ceil((max_seconds + DECODE_MARGIN_SECONDS) * rate))

    plain = _pcm16_wav(data)
    if plain is not None:
        frames, rate = plain
        scale = _INT_READS["PCM_16"][1]
        if max_seconds is not None:
            frames = frames[: frame_limit(rate)]
    else:
        with _open(data) as handle:
            rate = handle.samplerate
            dtype, scale = _INT_READS.get(handle.subtype, ("float32", 1.0))
            try:
                frames = handle.read(frames=frame_limit(rate), dtype=dtype, always_2d=True)
            except (sf.SoundFileError, RuntimeError, ValueError) as exc:
                raise _not_audio(exc) from exc
    # libsndfile returns [N, channels]; the rest of the project works channel-first like torchaudio.
    out = np.empty(frames.shape[::-1], dtype=np.float32)
    np.multiply(frames.T, np.float32(scale), out=out)
    return out, rate


def mixdown(samples: np.ndarray) -> np.ndarray:
    """Mono by averaging ALL channels (float32, 1-D).

    This is librosa.load's rule, which upstream uses for the 16 kHz HuBERT input. Upstream's
    spectrogram loader (torchaudio) averages only when there are exactly 2 channels and would pass
    e.g. 5 channels on as 5 rows; we use one mono signal for both paths instead.
    """
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.shape[0] == 1:
        return samples[0].astype(np.float32, copy=False)
    return samples.mean(axis=0, dtype=np.float32)
