"""The offline audio frontend: spectrogram, resampling, decoding, reference policy, output helpers."""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import pytest
import soundfile as sf

from gsv_triton.audio import (
    append_ssl_tail,
    decode_audio,
    float_to_int16,
    join_segments,
    limit_peak,
    mixdown,
    normalize_segment,
    num_frames,
    prepare_reference,
    resample,
    spectrogram,
    to_wav_bytes,
)
from gsv_triton.audio.decode import DECODE_MARGIN_SECONDS, _pcm16_wav
from gsv_triton.audio.output import pcm_wav_header
from gsv_triton.errors import InputError
from gsv_triton.settings import Limits

LIMITS = Limits()


def encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """``samples`` [N] or [N, channels] -> file bytes, written by soundfile."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    """Frequency of the largest bin of a Hann-windowed FFT over exactly one second (1 Hz bins)."""
    segment = x[:rate].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size)))
    return float(np.argmax(spectrum)) * rate / segment.size


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))


# ---------------------------------------------------------------------------------------------------
# spectrogram


def reference_spectrogram(x: np.ndarray) -> np.ndarray:
    """Spec 3 written out independently: explicit reflect indices, a per-frame loop, an explicit
    periodic Hann formula and a DFT as a cos/sin matrix product (no np.pad, no np.fft)."""
    n_fft, hop, pad = 2048, 640, 704
    x = x.astype(np.float64)
    n = x.size
    # reflect without repeating the edge sample: x[704], ..., x[1] | x | x[n-2], ..., x[n-705]
    left = x[[pad - i for i in range(pad)]]
    right = x[[n - 2 - i for i in range(pad)]]
    padded = np.concatenate([left, x, right])
    k = np.arange(n_fft)
    window = 0.5 * (1 - np.cos(2 * np.pi * k / n_fft))
    bins = np.arange(n_fft // 2 + 1)
    angle = 2 * np.pi * np.outer(k, bins) / n_fft
    cos_m, sin_m = np.cos(angle), np.sin(angle)
    columns = []
    start = 0
    while start + n_fft <= padded.size:
        frame = padded[start : start + n_fft] * window
        re, im = frame @ cos_m, -(frame @ sin_m)
        columns.append(np.sqrt(re * re + im * im + 1e-8))
        start += hop
    return np.stack(columns, axis=1)


def test_spectrogram_matches_explicit_dft():
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(32000 + 123)).astype(np.float32)
    ours = spectrogram(x)
    ref = reference_spectrogram(x)
    assert ours.shape == ref.shape == (1025, 50)
    assert ours.dtype == np.float32
    assert np.max(np.abs(ours - ref)) / np.max(ref) <= 1e-5


def test_spectrogram_matches_upstream_torch_stft():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(20000)).astype(np.float32)
    # upstream spectrogram_torch with n_fft 2048, hop 640, win 2048, center False
    y = torch.nn.functional.pad(torch.from_numpy(x)[None, None], (704, 704), mode="reflect")[:, 0]
    spec = torch.stft(y, 2048, hop_length=640, win_length=2048, window=torch.hann_window(2048),
                      center=False, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    ref = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-8)[0].numpy()
    ours = spectrogram(x)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) / np.max(ref) <= 1e-5


def test_spectrogram_frame_count():
    assert spectrogram(np.zeros(160000, dtype=np.float32)).shape == (1025, 250)
    for n in (1000, 32000, 160639, 160640, 320001):
        assert num_frames(n) == n // 640
        assert spectrogram(np.zeros(n, dtype=np.float32)).shape[1] == n // 640


def test_spectrogram_of_silence_is_the_epsilon_floor():
    # sqrt(0 + 1e-8) = 1e-4: the epsilon sits inside the sqrt, not outside
    np.testing.assert_allclose(spectrogram(np.zeros(6400, dtype=np.float32)), 1e-4, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# resampling


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44100, 32000), (48000, 16000), (22050, 16000)])
@pytest.mark.parametrize("freq", [440.0, 3000.0])
def test_resampler_preserves_frequency_and_level(rate_in, rate_out, freq):
    x = sine(freq, rate_in, 3.0)
    y = resample(x, rate_in, rate_out)
    assert y.dtype == np.float32
    assert y.size == math.ceil(x.size * rate_out / rate_in)
    middle = y[rate_out // 2 : rate_out // 2 + rate_out]  # skip the filter's edge transients
    assert abs(peak_frequency(middle, rate_out) - freq) <= 1.0
    assert abs(20 * np.log10(rms(middle) / (0.5 / np.sqrt(2)))) < 0.05  # level within 0.05 dB


def test_resampler_removes_content_above_the_new_nyquist():
    # a 12 kHz tone cannot exist at 16 kHz; a naive (interpolating) resampler would alias it to 4 kHz
    y = resample(sine(12000.0, 44100, 2.0), 44100, 16000)
    assert rms(y[4000:-4000]) < 1e-3 * (0.5 / np.sqrt(2))  # at least 60 dB down


def test_resampled_length_is_ceil_like_librosa_and_torchaudio():
    # soxr alone returns round(1001 * 16000 / 44100) = 363; upstream's resamplers give ceil = 364
    assert resample(np.ones(1001, dtype=np.float32), 44100, 16000).shape == (364,)


def test_resample_same_rate_is_identity():
    x = sine(440.0, 32000, 0.5)
    np.testing.assert_array_equal(resample(x, 32000, 32000), x)


# ---------------------------------------------------------------------------------------------------
# decoding


LOSSLESS = [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24")]
LOSSY = [("OGG", "VORBIS", 44100), ("OGG", "OPUS", 48000), ("MP3", "MPEG_LAYER_III", 44100)]


def stereo(rate: int, seconds: float = 1.5) -> np.ndarray:
    """Different tones left and right, so a swapped channel axis is caught."""
    return np.stack([sine(440.0, rate, seconds, 0.4), sine(1000.0, rate, seconds, 0.2)], axis=1)


@pytest.mark.parametrize(("fmt", "subtype"), LOSSLESS)
def test_lossless_round_trip(fmt, subtype):
    x = stereo(22050)
    samples, rate = decode_audio(encode(x, 22050, fmt, subtype))
    assert rate == 22050 and samples.shape == (2, x.shape[0]) and samples.dtype == np.float32
    quantum = {"PCM_16": 2.0**-15, "PCM_24": 2.0**-23, "FLOAT": 0.0}[subtype]
    assert np.max(np.abs(samples - x.T)) <= quantum


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32"])
def test_integer_fast_path_equals_libsndfile_float_read(subtype):
    data = encode(stereo(16000, 0.5), 16000, "WAV", subtype)
    expected, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    samples, _ = decode_audio(data)
    np.testing.assert_array_equal(samples, expected.T)


def _with_chunk_before_data(wav: bytes, chunk: bytes) -> bytes:
    """``wav`` with an extra chunk (id + odd-length payload + pad byte) inserted before its data chunk."""
    at = wav.index(b"data")
    extra = chunk[:4] + struct.pack("<I", len(chunk) - 4) + chunk[4:] + b"\x00" * (len(chunk[4:]) & 1)
    riff_size = struct.unpack_from("<I", wav, 4)[0] + len(extra)
    return wav[:4] + struct.pack("<I", riff_size) + wav[8:at] + extra + wav[at:]


def _extensible(wav: bytes, subformat: int = 1) -> bytes:
    """``wav`` (16-bit PCM, fmt chunk first) rewritten with a WAVE_FORMAT_EXTENSIBLE fmt chunk."""
    channels, rate, byte_rate, block = struct.unpack_from("<HIIH", wav, 22)
    guid = struct.pack("<H", subformat) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, byte_rate, block, 16, 22, 16, 0) + guid
    rest = wav[36:]  # what follows the 16-byte fmt chunk
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + rest
    return b"RIFF" + struct.pack("<I", len(body)) + body


PCM16_VARIANTS = {
    "mono": lambda: encode(sine(300.0, 32000, 0.7), 32000),
    "stereo": lambda: encode(stereo(44100, 0.5), 44100),
    "six channels": lambda: encode(np.tile(stereo(16000, 0.3), 3), 16000),
    "WAVE_FORMAT_EXTENSIBLE": lambda: _extensible(encode(stereo(16000, 0.3), 16000)),
    "odd-length LIST chunk before data": lambda: _with_chunk_before_data(
        encode(sine(300.0, 24000, 0.4), 24000), b"LISTINFOxyz"
    ),
    "truncated data chunk (libsndfile's path)": lambda: encode(sine(300.0, 16000, 0.5), 16000)[:-1001],
}


@pytest.mark.parametrize("variant", PCM16_VARIANTS)
@pytest.mark.parametrize("max_seconds", [None, 0.2])
def test_pcm16_wav_reader_equals_libsndfile(variant, max_seconds):
    data = PCM16_VARIANTS[variant]()
    with sf.SoundFile(io.BytesIO(data)) as handle:
        rate = handle.samplerate
        expected = handle.read(dtype="int16", always_2d=True).T.astype(np.float32) * np.float32(2.0**-15)
    if max_seconds is not None:
        expected = expected[:, : int(np.ceil((max_seconds + DECODE_MARGIN_SECONDS) * rate))]
    samples, got_rate = decode_audio(data, max_seconds=max_seconds)
    assert got_rate == rate and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, expected)
    assert (_pcm16_wav(data) is None) == variant.startswith("truncated")  # which reader decoded it


def test_pcm16_wav_reader_leaves_other_extensible_subformats_to_libsndfile():
    assert _pcm16_wav(_extensible(encode(sine(300.0, 16000, 0.3), 16000), subformat=3)) is None


@pytest.mark.parametrize(("fmt", "subtype", "rate"), LOSSY)
def test_lossy_round_trip(fmt, subtype, rate):
    x = stereo(rate)
    samples, got_rate = decode_audio(encode(x, rate, fmt, subtype))
    assert got_rate == rate and samples.shape[0] == 2
    assert abs(samples.shape[1] - x.shape[0]) <= 2048  # codec framing may pad a little
    for channel, freq, amplitude in ((0, 440.0, 0.4), (1, 1000.0, 0.2)):
        middle = samples[channel, rate // 4 : rate // 4 + rate]
        assert abs(peak_frequency(middle, rate) - freq) <= 1.0
        assert abs(20 * np.log10(rms(middle) / (amplitude / np.sqrt(2)))) < 1.0


def test_mixdown_averages_all_channels():
    five = np.stack([np.full(10, v, dtype=np.float32) for v in (1, 2, 3, 4, 5)])
    np.testing.assert_allclose(mixdown(five), 3.0)
    np.testing.assert_array_equal(mixdown(five[:1]), five[0])


# ---------------------------------------------------------------------------------------------------
# reference policy and outputs


def test_prepare_reference_outputs():
    rate = 44100
    x = stereo(rate, 4.0)
    ref = prepare_reference(encode(x, rate), LIMITS)
    n16 = math.ceil(x.shape[0] * 16000 / rate)
    n32 = math.ceil(x.shape[0] * 32000 / rate)
    assert ref.wav16k.shape == (n16 + 9600,) and ref.wav16k.dtype == np.float32
    assert not ref.wav16k[n16:].any() and ref.wav16k[n16 - 200 : n16].any()  # tail appended AFTER
    assert ref.wav32k.shape == (n32,)
    assert ref.spectrogram.shape == (1025, n32 // 640)
    np.testing.assert_array_equal(ref.spectrogram, spectrogram(ref.wav32k))
    assert ref.duration_seconds == pytest.approx(4.0)
    assert (ref.source_sample_rate, ref.source_channels) == (rate, 2)
    # mono = mean of both channels: the 440 Hz tone at 0.2 dominates the 32 kHz signal
    assert abs(peak_frequency(ref.wav32k[16000:], 32000) - 440.0) <= 1.0


@pytest.mark.parametrize(("peak", "expected_peak"), [(0.8, 0.8), (1.5, 1.0), (3.0, 1.5)])
def test_peak_limit_applies_to_32k_only(peak, expected_peak):
    x = sine(200.0, 32000, 3.5, peak)  # float WAV keeps values above 1
    ref = prepare_reference(encode(x, 32000, "WAV", "FLOAT"), LIMITS)
    assert np.max(np.abs(ref.wav32k)) == pytest.approx(expected_peak, rel=1e-3)
    assert np.max(np.abs(ref.wav16k)) == pytest.approx(peak, rel=1e-2)  # HuBERT input not limited
    assert np.max(np.abs(limit_peak(x))) == pytest.approx(expected_peak, rel=1e-6)


def test_five_channel_reference_is_mixed_down():
    x = np.zeros((32000 * 4, 5), dtype=np.float32)
    x[:, 0] = sine(300.0, 32000, 4.0, 0.5)
    ref = prepare_reference(encode(x, 32000), LIMITS)
    assert ref.source_channels == 5
    assert rms(ref.wav32k) == pytest.approx(0.5 / 5 / np.sqrt(2), rel=1e-3)


def test_duration_boundaries_follow_upstream_16k_rule():
    rate = 44100
    prepare_reference(encode(sine(300.0, rate, 3.0), rate), LIMITS)
    prepare_reference(encode(sine(300.0, rate, 10.0), rate), LIMITS)
    # one sample more than 10 s gives ceil(441001 * 16000 / 44100) = 160001 > 160000 samples at 16 kHz
    too_long = np.concatenate([sine(300.0, rate, 10.0), np.zeros(1, dtype=np.float32)])
    with pytest.raises(InputError, match="3-10 s"):
        prepare_reference(encode(too_long, rate), LIMITS)


def expect_error(data: bytes, status: int, pattern: str, limits: Limits = LIMITS) -> None:
    with pytest.raises(InputError, match=pattern) as info:
        prepare_reference(data, limits)
    assert info.value.status == status and info.value.field == "audio"


def test_rejects_binary_garbage():
    expect_error(np.random.default_rng(0).bytes(5000), 415, "could not decode")


def test_not_audio_message_names_no_python_object():
    """Issue 20: the 415 message carried "<_io.BytesIO object at 0x...>"; libsndfile's reason stays."""
    with pytest.raises(InputError) as info:
        prepare_reference(b"GIF89a not audio" * 10, LIMITS)
    assert "object at 0x" not in info.value.message and "Format not recognised" in info.value.message


def test_rejects_empty_bytes():
    expect_error(b"", 400, "empty")


def test_rejects_short_reference():
    expect_error(encode(sine(300.0, 16000, 0.1), 16000), 400, r"3-10 s long; this one is 0\.10 s")


def test_rejects_long_reference_without_full_decode():
    # 10 minutes of FLAC: small upload, but only ~10 s are decoded before the rule fires
    data = encode(sine(300.0, 8000, 600.0, 0.1), 8000, "FLAC", "PCM_16")
    expect_error(data, 400, "longer than 10 s")


def test_rejects_silent_reference():
    expect_error(encode(np.zeros(16000 * 4, dtype=np.float32), 16000), 400, "silent")
    quiet = (1e-5 * np.random.default_rng(0).standard_normal(16000 * 4)).astype(np.float32)
    expect_error(encode(quiet, 16000, "WAV", "FLOAT"), 400, "silent")


def test_rejects_non_finite_samples():
    x = sine(300.0, 16000, 4.0)
    x[100] = np.nan
    expect_error(encode(x, 16000, "WAV", "FLOAT"), 400, "NaN")


def test_rejects_oversize_upload():
    data = encode(sine(300.0, 16000, 4.0), 16000)
    expect_error(data, 413, f"{len(data)} bytes; the limit is 1000", Limits(max_upload_bytes=1000))


def test_append_ssl_tail():
    out = append_ssl_tail(np.ones(5, dtype=np.float32))
    assert out.shape == (9605,) and out[:5].all() and not out[5:].any()


def test_int16_conversion_clips_instead_of_wrapping():
    x = np.array([1.0, -1.0, 0.5, 0.3, -0.3, 1.7], dtype=np.float32)
    # upstream: (x * 32768).astype(int16) -> +1.0 wraps to -32768; we clip it to 32767
    np.testing.assert_array_equal(float_to_int16(x), [32767, -32768, 16384, 9830, -9830, 32767])
    inside = np.random.default_rng(0).uniform(-0.999, 0.999, 1000).astype(np.float32)
    np.testing.assert_array_equal(float_to_int16(inside), (inside * 32768).astype(np.int16))


WAV_SUBTYPES = [("PCM_16", "int16"), ("PCM_32", "int32"), ("FLOAT", "float32")]


@pytest.mark.parametrize(("subtype", "dtype"), WAV_SUBTYPES)
def test_to_wav_bytes(subtype, dtype):
    x = np.array([0.0, 0.25, -0.5, 1.0, -1.0, 2.0], dtype=np.float32)
    data = to_wav_bytes(x, 32000, subtype)
    back, rate = sf.read(io.BytesIO(data), dtype=dtype)
    info = sf.info(io.BytesIO(data))
    assert rate == 32000 and info.subtype == subtype and info.format == "WAV"
    expected = {
        "PCM_16": [0, 8192, -16384, 32767, -32768, 32767],
        "PCM_32": [0, 536870911, -1073741823, 2147483647, -2147483647, 2147483647],
        "FLOAT": [0.0, 0.25, -0.5, 1.0, -1.0, 1.0],
    }[subtype]
    np.testing.assert_array_equal(back, np.array(expected, dtype=dtype))
    with pytest.raises(ValueError, match="unsupported"):
        to_wav_bytes(x, 32000, "ULAW")


def test_stream_wav_header_says_unknown_length_and_is_readable():
    header = pcm_wav_header(32000, 16, None)
    assert len(header) == 44 and struct.unpack_from("<I", header, 4)[0] == struct.unpack_from("<I", header, 40)[0]
    assert struct.unpack_from("<I", header, 40)[0] == 0xFFFFFFFF
    samples = float_to_int16(np.array([0.0, 0.5, -0.5], dtype=np.float32))
    back, rate = sf.read(io.BytesIO(header + samples.tobytes()), dtype="int16")  # players read to the end
    assert rate == 32000
    np.testing.assert_array_equal(back, samples)


def test_normalize_and_join_segments():
    loud = np.array([2.0, -1.0], dtype=np.float32)
    quiet = np.array([0.5, -0.25], dtype=np.float32)
    np.testing.assert_array_equal(normalize_segment(loud), [1.0, -0.5])
    np.testing.assert_array_equal(normalize_segment(quiet), quiet)
    assert loud[0] == 2.0  # input untouched
    joined = join_segments([loud, quiet], silence_seconds=0.3, sample_rate=32000)
    assert joined.dtype == np.float32 and joined.shape == (2 + 9600 + 2 + 9600,)
    np.testing.assert_array_equal(joined[:2], [1.0, -0.5])
    np.testing.assert_array_equal(joined[9602:9604], quiet)
    assert not joined[2:9602].any() and not joined[9604:].any()
    assert join_segments([]).shape == (0,)
