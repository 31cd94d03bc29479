"""CPU precision (``export --quantize int8``): each int8 twin against its fp32 graph, speed and quality side by
side, beside the host's floors.

* T2S decode step, full-size v2 GPT (demo weights), context 200 -> 450: median ms/token of fp32 and of the int8
  twin, their bandwidth floors (bytes a step reads / copy bandwidth), greedy token agreement over 250 steps;
* SoVITS decoder, full size, 10 s of speech (250 codes): seconds for fp32 and the int8 twin, audio SNR;
* HuBERT (5 s reference), from ``--checkpoints``: fp32 vs dynamic int8, and how many semantic codes stay equal
  (why it is not shipped in int8).

    .venv/bin/python perf/bench_precision.py [--checkpoints artifacts/demo-full-v2] [--threads 2]

Run it on an idle machine; the table is dated with the CPU model and the load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_floors import copy_bandwidth, ort_gemm_flops, ort_int8_gemm_ops
from bench_gateway import cpu_model
from bench_t2s import bench_ort, median_ms, step_weight_bytes

from gsv_export.onnx_utils import ort_session
from gsv_export.quantize import (
    T2S_KEEP_FP32,
    decoder_calibration_feeds,
    greedy_agreement,
    quantize_decoder_int8,
    quantize_int8,
)
from gsv_export.sovits_export import export_sovits
from gsv_export.t2s_export import export_t2s
from gsv_triton.audio.quality import snr_db
from gsv_triton.audio.spectrogram import spectrogram
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.networks.sovits.demo_init import demo_init_ as sovits_demo_init_
from gsv_triton.networks.sovits.hparams import default_hparams
from gsv_triton.networks.sovits.synthesizer import SynthesizerTrn
from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder, demo_init_
from gsv_triton.precision import int8_dot_instructions, int8_twin
from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SSL_SAMPLE_RATE, SSL_ZERO_TAIL

STEPS = 250
TIMED_STEPS = 120
SPEECH_CODES = 250
REFERENCE_S = 5.0
REPEATS = 3


def best_s(run, repeats: int = REPEATS) -> tuple[float, object]:
    """(best seconds of ``repeats`` calls after a warm-up, the last output)."""
    out = run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out



def voiced(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 130 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return (tone + 0.04 * rng.standard_normal(t.size)).astype(np.float32)


def t2s_rows(tmp: Path, threads: int, bandwidth: float) -> list[str]:
    decoder = Text2SemanticDecoder(T2SConfig()).eval()
    demo_init_(decoder, torch.Generator().manual_seed(0))
    paths = export_t2s(decoder, tmp)
    twin = quantize_int8(paths["step"], int8_twin(paths["step"]), T2S_KEEP_FP32)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 732, (1, 80), generator=gen).numpy()
    bert = (torch.randn(1, 1024, 80, generator=gen) * 0.3).numpy()
    prompt = torch.randint(0, 1024, (1, 120), generator=gen).numpy()
    runners = {p: T2SRunner(ort_session(paths["prefill"], threads), ort_session(s, threads))
               for p, s in (("fp32", paths["step"]), ("int8", twin))}  # fmt: skip
    ms = {p: median_ms(bench_ort(r, ids, bert, prompt, TIMED_STEPS)[0]) for p, r in runners.items()}
    agreement, _ = greedy_agreement(runners["fp32"], runners["int8"], ids, bert, prompt, STEPS)
    fp32_bytes = step_weight_bytes(decoder)
    logits_bytes = decoder.ar_predict_layer.weight.numel() * 4
    int8_bytes = (fp32_bytes - logits_bytes) / 4 + logits_bytes
    return [
        f"| T2S decode step, ms/token (context 200 -> 320) | {ms['fp32']:.1f} | {ms['int8']:.1f} | "
        f"{ms['fp32'] / ms['int8']:.2f}x |",
        f"| its floor: weights read / copy bandwidth, ms | {1000 * fp32_bytes / bandwidth:.1f} "
        f"({fp32_bytes / 1e6:.0f} MB) | {1000 * int8_bytes / bandwidth:.1f} ({int8_bytes / 1e6:.0f} MB) | |",
        f"| T2S greedy token agreement with fp32, teacher-forced, {STEPS} steps (gate >= 0.97) | 1 | "
        f"{agreement:.3f} | |",
    ]


def decoder_rows(tmp: Path, threads: int) -> list[str]:
    model = SynthesizerTrn.from_hparams(default_hparams("full", "v2")["model"], "v2")
    sovits_demo_init_(model, torch.Generator().manual_seed(0))
    model.eval()
    decoder = export_sovits(model, tmp)["sovits_decode"]
    twin = quantize_decoder_int8(decoder, decoder_calibration_feeds(model), int8_twin(decoder))
    rng = np.random.default_rng(7)
    with torch.no_grad():
        spec = torch.from_numpy(spectrogram(voiced(REFERENCE_S, OUTPUT_SAMPLE_RATE, 3)))[None]
        ge = model.reference_embedding(spec).numpy()
    feeds = {
        "codes": rng.integers(0, 1024, (1, SPEECH_CODES)).astype(np.int64),
        "phone_ids": rng.integers(1, 732, (1, 100)).astype(np.int64),
        "ge": ge,
        "noise": rng.standard_normal((1, model.inter_channels, 2 * SPEECH_CODES)).astype(np.float32),
        "noise_scale": np.array([0.5], dtype=np.float32),
    }
    times, outputs = {}, {}
    for precision, path in (("fp32", decoder), ("int8", twin)):
        session = ort_session(path, threads)
        times[precision], outputs[precision] = best_s(lambda s=session: s.run(None, feeds)[0])
    return [
        f"| SoVITS decoder, 10 s of speech, s | {times['fp32']:.2f} | {times['int8']:.2f} | "
        f"{times['fp32'] / times['int8']:.2f}x |",
        f"| decoder audio SNR against fp32, same inputs (gate >= 30 dB) | | "
        f"{snr_db(outputs['fp32'], outputs['int8']):.1f} dB | |",
    ]


def hubert_rows(tmp: Path, threads: int, checkpoints: Path) -> list[str]:
    from gsv_export.pretrained_export import export_ssl
    from gsv_triton.networks.pretrained import load_hubert

    ssl = export_ssl(load_hubert(checkpoints / "chinese-hubert-base"), tmp)
    twin = quantize_int8(ssl, int8_twin(ssl))
    model = SynthesizerTrn.from_hparams(default_hparams("full", "v2")["model"], "v2")
    sovits_demo_init_(model, torch.Generator().manual_seed(0))
    wav = np.concatenate([voiced(REFERENCE_S, SSL_SAMPLE_RATE, 5), np.zeros(SSL_ZERO_TAIL, np.float32)])[None]
    times, codes = {}, {}
    for precision, path in (("fp32", ssl), ("int8", twin)):
        session = ort_session(path, threads)
        times[precision], features = best_s(lambda s=session: s.run(None, {"wav16k": wav})[0])
        with torch.no_grad():
            codes[precision] = model.extract_codes(torch.from_numpy(features)).numpy()
    equal = float((codes["fp32"] == codes["int8"]).mean())
    return [
        f"| HuBERT, {REFERENCE_S:g} s reference, s (not shipped in int8) | {times['fp32']:.3f} | {times['int8']:.3f} "
        f"| {times['fp32'] / times['int8']:.2f}x |",
        f"| HuBERT semantic codes equal to fp32's (gate >= 0.99) | 1 | {equal:.3f} | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, default=Path("artifacts/demo-full-v2"),
                        help="demo checkpoints with chinese-hubert-base/ (the HuBERT rows; skipped without)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    bandwidth = copy_bandwidth()
    rows = [
        f"| floors: copy bandwidth {bandwidth / 1e9:.1f} GB/s; GEMM 2048^3 in onnxruntime | "
        f"{ort_gemm_flops(args.threads) / 1e9:.0f} GFLOP/s | {ort_int8_gemm_ops(args.threads) / 1e9:.0f} GOP/s | |"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "t2s").mkdir()
        (tmp / "sovits").mkdir()
        rows += t2s_rows(tmp / "t2s", args.threads, bandwidth)
        rows += decoder_rows(tmp / "sovits", args.threads)
        if (args.checkpoints / "chinese-hubert-base").is_dir():
            (tmp / "ssl").mkdir()
            rows += hubert_rows(tmp / "ssl", args.threads, args.checkpoints)
    instructions = ", ".join(int8_dot_instructions()) or "none"
    print(f"\nCPU precision, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, {os.cpu_count()} "
          f"CPUs (int8 dot-product instructions: {instructions}), {args.threads} threads; load average "
          f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end\n")
    print("| | fp32 | int8 twin | speed-up |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
