"""Reference-audio frontend time: decode + mixdown + resample (16 k and 32 k) + spectrogram.

Input: a 10 s, 44.1 kHz, stereo, 16-bit WAV held in memory (a synthetic voice-like signal).
Prints a markdown table row per stage (median of --runs after --warmup runs). Goal: total <= 30 ms.

    .venv/bin/python perf/bench_audio.py [--runs 50] [--warmup 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
import soundfile as sf

from gsv_triton.audio import decode_audio, mixdown, prepare_reference, resample, spectrogram
from gsv_triton.audio.reference import limit_peak
from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SSL_SAMPLE_RATE, Limits

SOURCE_RATE = 44_100
SECONDS = 10.0
GOAL_MS = 30.0


def make_wav(seed: int = 0) -> bytes:
    """Harmonics of a gliding 120-220 Hz pitch plus a little noise, different in each channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SOURCE_RATE * SECONDS)) / SOURCE_RATE
    f0 = 170 + 50 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SOURCE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * 0.2
    channels = [voice + 0.01 * rng.standard_normal(t.size) for _ in range(2)]
    buffer = io.BytesIO()
    stereo = np.stack(channels, axis=1).astype(np.float32)
    sf.write(buffer, stereo, SOURCE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def time_ms(fn: Callable[[], object], runs: int, warmup: int) -> tuple[float, float]:
    """(median, min) in ms; the min shows the unloaded cost when other jobs share the cores."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    data = make_wav()
    limits = Limits()
    samples, rate = decode_audio(data)
    mono = mixdown(samples)
    wav32k = limit_peak(resample(mono, rate, OUTPUT_SAMPLE_RATE))
    stages = {
        "decode": lambda: decode_audio(data),
        "mixdown": lambda: mixdown(samples),
        "resample 16 k": lambda: resample(mono, rate, SSL_SAMPLE_RATE),
        "resample 32 k": lambda: resample(mono, rate, OUTPUT_SAMPLE_RATE),
        "spectrogram": lambda: spectrogram(wav32k),
        "total (prepare_reference)": lambda: prepare_reference(data, limits),
    }
    times = {name: time_ms(fn, args.runs, args.warmup) for name, fn in stages.items()}
    total = times["total (prepare_reference)"][0]
    print(f"| stage ({SECONDS:g} s {SOURCE_RATE / 1000:g} kHz stereo WAV, {len(data)} bytes) | median ms | min ms |")
    print("|---|---|---|")
    for name, (median, fastest) in times.items():
        print(f"| {name} | {median:.1f} | {fastest:.1f} |")
    verdict = "meets" if total <= GOAL_MS else "misses"
    print(f"\nreference frontend: {total:.1f} ms (median of {args.runs}; {verdict} the {GOAL_MS:g} ms goal)")


if __name__ == "__main__":
    main()
