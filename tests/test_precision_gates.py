"""The quality gates of ``export --quantize int8`` on full-size networks (random demo weights; speed and
rounding do not depend on the values), each against its own fp32 graph:

* T2S decode step: greedy token agreement >= 0.97, teacher-forced over 250 steps (context 200 -> 450);
* SoVITS decoder: audio SNR >= 30 dB on the same codes, phones, timbre and noise (10 s of speech).

perf/README.md ("CPU precision") gives the measured values and the speed of each twin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_reference

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
from gsv_triton.precision import int8_twin
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

pytestmark = pytest.mark.slow

THREADS = 2
MIN_AGREEMENT = 0.97
MIN_SNR_DB = 30.0
STEPS = 250
TEXT_PHONES, PROMPT_CODES = 80, 120  # context 200, as perf/bench_t2s.py
SPEECH_CODES = 250  # 10 s
SPEECH_PHONES = 100



def test_int8_t2s_step_agrees_with_fp32_on_at_least_97_percent_of_greedy_tokens(tmp_path) -> None:
    torch.set_num_threads(THREADS)
    decoder = Text2SemanticDecoder(T2SConfig()).eval()
    demo_init_(decoder, torch.Generator().manual_seed(0))
    paths = export_t2s(decoder, tmp_path)
    twin = quantize_int8(paths["step"], int8_twin(paths["step"]), T2S_KEEP_FP32)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 732, (1, TEXT_PHONES), generator=gen).numpy()
    bert = (torch.randn(1, 1024, TEXT_PHONES, generator=gen) * 0.3).numpy()
    prompt = torch.randint(0, 1024, (1, PROMPT_CODES), generator=gen).numpy()

    def runner(step) -> T2SRunner:
        return T2SRunner(ort_session(paths["prefill"], THREADS), ort_session(step, THREADS))

    agreement, _ = greedy_agreement(runner(paths["step"]), runner(twin), ids, bert, prompt, STEPS)
    assert agreement >= MIN_AGREEMENT, agreement  # measured 0.980 (2026-12-06)


def test_int8_decoder_audio_is_within_30_db_snr_of_fp32(tmp_path) -> None:
    torch.set_num_threads(THREADS)
    model = SynthesizerTrn.from_hparams(default_hparams("full", "v2")["model"], "v2")
    sovits_demo_init_(model, torch.Generator().manual_seed(0))
    model.eval()
    decoder = export_sovits(model, tmp_path)["sovits_decode"]
    twin = quantize_decoder_int8(decoder, decoder_calibration_feeds(model), int8_twin(decoder))
    rng = np.random.default_rng(7)  # not the calibration's inputs
    clip = np.frombuffer(make_reference(3, seconds=5.0, rate=OUTPUT_SAMPLE_RATE)[44:], "<i2") / 32768.0
    with torch.no_grad():
        ge = model.reference_embedding(torch.from_numpy(spectrogram(clip.astype(np.float32)))[None]).numpy()
    feeds = {
        "codes": rng.integers(0, 1024, (1, SPEECH_CODES)).astype(np.int64),
        "phone_ids": rng.integers(1, 732, (1, SPEECH_PHONES)).astype(np.int64),
        "ge": ge,
        "noise": rng.standard_normal((1, model.inter_channels, 2 * SPEECH_CODES)).astype(np.float32),
        "noise_scale": np.array([0.5], dtype=np.float32),
    }
    reference = ort_session(decoder, THREADS).run(None, feeds)[0]
    quantized = ort_session(twin, THREADS).run(None, feeds)[0]
    assert quantized.shape == reference.shape
    assert snr_db(reference, quantized) >= MIN_SNR_DB, snr_db(reference, quantized)  # measured 34.7 dB
