"""Sample-rate conversion with libsoxr (the library behind librosa's default ``res_type="soxr_hq"``)."""

from __future__ import annotations

import numpy as np
import soxr

# "HQ" is the quality librosa.load uses for upstream's 16 kHz HuBERT input, so that path matches
# upstream's resampler. Upstream's 32 kHz path uses torchaudio's windowed sinc (Hann, width 6,
# rolloff 0.99); soxr HQ has a flatter passband and far less aliasing, so we use it there too and
# accept a tiny difference near Nyquist rather than re-implementing torchaudio's filter.
QUALITY = "HQ"


def resampled_length(n: int, rate_in: int, rate_out: int) -> int:
    """ceil(n * rate_out / rate_in): the length both librosa (fix=True) and torchaudio produce."""
    return -(-n * rate_out // rate_in)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample 1-D float32 ``samples`` from ``rate_in`` to ``rate_out`` Hz.

    soxr alone returns round(n * ratio) samples; like librosa we pad with zeros / trim to
    ceil(n * ratio), because that length decides the number of HuBERT frames and prompt tokens.
    """
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if rate_in == rate_out:
        return samples
    out = soxr.resample(samples, rate_in, rate_out, quality=QUALITY)
    target = resampled_length(samples.shape[0], rate_in, rate_out)
    if out.shape[0] < target:
        out = np.concatenate([out, np.zeros(target - out.shape[0], dtype=np.float32)])
    return out[:target]
