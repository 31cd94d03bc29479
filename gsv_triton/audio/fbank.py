"""Kaldi fbank features for the v2Pro speaker-verification network (spec 2.5), without torch.

Upstream (``GPT_SoVITS/sv.py``) calls its vendored copy of torchaudio's ``compliance.kaldi.fbank`` as
``fbank(wav.unsqueeze(0), num_mel_bins=80, sample_frequency=16000, dither=0)`` on the float waveform in
[-1, 1] (not scaled by 32768). Everything else is Kaldi's default: 25 ms frames every 10 ms, snip_edges
(only whole frames), per-frame DC removal, pre-emphasis 0.97, povey window, FFT size rounded up to 512,
power spectrum, 80 triangular mel bins from 20 Hz to Nyquist, log(max(energy, float32 eps)), no energy
column. k2-fsa's ``kaldi_native_fbank`` implements the same definition; its defaults differ only in dither
(3e-5 there), which is set to 0 here.

Agreement with that definition (``tests/test_sv.py`` re-implements it in torch, in float64): max |diff|
of the log-mel values <= 1e-3 absolute. Measured: at most 6e-4 on 10 s clips of speech-like audio and of
white noise, the same size as torchaudio's own float32 result differs from float64 (7e-4): float32
rounding of the FFT and filterbank sums (1e-3 in log is a 0.1 % change of a mel energy).
"""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np

from gsv_triton.contract import SV_MEL_BINS
from gsv_triton.errors import InputError

SV_SAMPLE_RATE = 16_000
FRAME_LENGTH_SAMPLES = 400  # 25 ms at 16 kHz: the shortest input that gives one frame
FRAME_SHIFT_SAMPLES = 160  # 10 ms


def _options() -> knf.FbankOptions:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SV_SAMPLE_RATE
    opts.frame_opts.dither = 0.0  # upstream passes dither=0; deterministic features
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = SV_MEL_BINS
    opts.use_energy = False
    return opts


_OPTIONS = _options()


def num_frames(n_samples: int) -> int:
    """Frames of ``n_samples`` of 16 kHz audio (snip_edges: 1 + (n - 400) // 160, 0 below 400)."""
    return 0 if n_samples < FRAME_LENGTH_SAMPLES else 1 + (n_samples - FRAME_LENGTH_SAMPLES) // FRAME_SHIFT_SAMPLES


def sv_fbank(wav16k: np.ndarray) -> np.ndarray:
    """Log-mel Kaldi fbank, float32 [T, 80], of 1-D 16 kHz float audio in [-1, 1] (T = :func:`num_frames`).

    Raises :class:`InputError` naming ``reference_audio`` when the clip is shorter than one 25 ms frame
    or holds non-finite samples.
    """
    x = np.asarray(wav16k, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"sv_fbank expects 1-D audio, got shape {x.shape}")
    if x.shape[0] < FRAME_LENGTH_SAMPLES:
        raise InputError("reference_audio", f"too short for speaker features: {x.shape[0]} samples at 16 kHz, "
                         f"at least {FRAME_LENGTH_SAMPLES} (25 ms) needed")  # fmt: skip
    if not np.isfinite(x).all():
        raise InputError("reference_audio", "contains NaN or infinite samples")
    # A fresh OnlineFbank per call: it keeps state, and one clip is one utterance.
    fbank = knf.OnlineFbank(_OPTIONS)
    fbank.accept_waveform(SV_SAMPLE_RATE, x)
    fbank.input_finished()
    n = fbank.num_frames_ready
    out = np.empty((n, SV_MEL_BINS), dtype=np.float32)
    for i in range(n):
        out[i] = fbank.get_frame(i)
    return out
