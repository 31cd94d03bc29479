"""Output formats (gsv_triton.audio.formats): each one decoded by an independent reader (PyAV, i.e. FFmpeg's
decoders, not the libsndfile that wrote it), at the model's rate and at requested rates; the rules."""

from __future__ import annotations

import io

import numpy as np
import pytest

from gsv_triton.audio.formats import FORMATS, OPUS_DEFAULT_RATE, check_output, encode_audio, resolve_format
from gsv_triton.errors import InputError

av = pytest.importorskip("av")

RATE = 32_000
SECONDS = 1.5


def _tone(seconds: float = SECONDS, rate: int = RATE, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def decode_with_av(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float samples and the rate, as FFmpeg decodes the container."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    audio = np.concatenate([f.reshape(-1) if f.shape[0] == 1 else f[0] for f in frames])
    if np.abs(audio).max() > 2:  # integer sample formats
        audio = audio / 32768.0
    return audio, rate


def _dominant_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spectrum) * rate / audio.size)


@pytest.mark.parametrize("name", ["wav", "flac", "mp3", "opus"])
@pytest.mark.parametrize("rate", [None, 24_000, 48_000])
def test_each_container_decodes_elsewhere_with_its_rate_length_and_pitch(name: str, rate: int | None) -> None:
    encoded = encode_audio(_tone(), RATE, resolve_format(name), rate)
    expected_rate = rate or (OPUS_DEFAULT_RATE if name == "opus" else RATE)
    assert encoded.sample_rate == expected_rate and encoded.media_type == FORMATS[name].media_type
    audio, decoded_rate = decode_with_av(encoded.data)
    # An Opus stream always decodes at 48 kHz (the encoder's input rate is only recorded in its header).
    assert decoded_rate == (OPUS_DEFAULT_RATE if name == "opus" else expected_rate)
    # Lossy codecs add encoder delay/padding (tens of ms); the lossless ones are exact in length.
    slack = 0 if name in ("wav", "flac") else int(0.1 * decoded_rate)
    assert abs(audio.size - int(SECONDS * decoded_rate)) <= slack, (audio.size, decoded_rate)
    assert abs(_dominant_hz(audio, decoded_rate) - 440.0) < 5.0
    assert 0.3 < np.abs(audio).max() < 0.7


def test_wav_and_flac_are_bit_exact_16_bit() -> None:
    tone = _tone()
    expected = np.clip(tone * 32768.0, -32768, 32767).astype(np.int16)
    for name in ("wav", "flac"):
        audio, _ = decode_with_av(encode_audio(tone, RATE, FORMATS[name]).data)
        np.testing.assert_array_equal(np.round(audio * 32768.0).astype(np.int16), expected)


def test_pcm_is_headerless_little_endian_int16() -> None:
    tone = _tone()
    encoded = encode_audio(tone, RATE, FORMATS["pcm"], 16_000)
    samples = np.frombuffer(encoded.data, dtype="<i2")
    assert encoded.sample_rate == 16_000 and samples.size == int(SECONDS * 16_000) == encoded.samples
    assert abs(_dominant_hz(samples / 32768.0, 16_000) - 440.0) < 5.0


def test_names_aliases_and_rates_are_checked() -> None:
    assert resolve_format(None).name == "wav" and resolve_format("OGG").name == "opus"
    assert check_output("opus", None, RATE) == (FORMATS["opus"], OPUS_DEFAULT_RATE)
    with pytest.raises(InputError, match="unsupported format 'aac'") as bad_format:
        resolve_format("aac")
    assert bad_format.value.field == "response_format"
    with pytest.raises(InputError, match="opus supports") as bad_opus_rate:
        check_output("opus", 32_000, RATE)
    assert bad_opus_rate.value.field == "sample_rate"
    with pytest.raises(InputError, match="must be one of"):
        check_output("wav", 12_345, RATE)
