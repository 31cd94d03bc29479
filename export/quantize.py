"""``export --quantize int8``: int8 twins of the two networks where int8 pays on CPU, beside their fp32 graphs.

* **T2S decode step** (``t2s_step.int8.onnx``): bound by reading its 305 MB of fp32 weights per token; dynamic
  int8 weights (onnxruntime's ``quantize_dynamic``, per-tensor scales, one DynamicQuantizeMatMul per layer) read
  a quarter of that. The logits layer stays fp32 (2 MB; greedy agreement 0.980 instead of 0.972 on the full
  size). The prefill (hundreds of positions at once) stays fp32: int8 was 1.35x slower there on the
  2026-11-25 host (not re-measured since).
* **SoVITS decoder** (``sovits_decode.int8.onnx``): its HiFi-GAN generator is compute-bound, and onnxruntime's
  int8 convolutions (QLinearConv, uint8 activations, per-channel int8 weights) run at about 3x the fp32 rate on
  CPUs with VNNI. Static quantisation: activation ranges calibrated at export on synthetic inputs (random codes
  and phones, the timbre of a synthetic clip through the model's own reference encoder). Only the generator's
  resblock convolutions are quantised: its first ones (conv_pre and cond, at the 50 Hz frame rate, reading the
  flow's latent and the timbre) stay fp32, which took the full-size SNR from 27.8 to 34.7 dB at no measurable
  cost, and so does its last (conv_post writes the waveform). The text encoder and flow are a few % of the time.

HuBERT is left fp32: its int8 graph was 1.6-1.8x faster, but changed 4.3 % of the semantic codes (the gate is 1 %);
BERT is about 3 % of a request. The fp32 graphs stay, so a CPU without int8 dot-product instructions loads them
(:mod:`gsv_triton.precision`). Quality gates (tests/test_precision_gates.py, perf/README.md "CPU precision"):
greedy token agreement of the step with fp32 >= 0.97 (teacher-forced, full size, 250 steps); decoder audio
within >= 30 dB SNR of fp32 on the same codes.

Dynamic quantisation picks one activation scale per tensor, so with int8 the rows of ONE request's batch (its
sentence pieces) are not bit-independent of each other; requests are never batched together, so a request's
output still depends only on the request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from gsv_triton.audio.spectrogram import spectrogram
from gsv_triton.contract import CODE_UPSAMPLE, SV_DIM
from gsv_triton.precision import int8_twin
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

QUANTIZE_CHOICES = ("none", "int8")
QUANTIZED_OPS = ["MatMul", "Gemm"]
T2S_KEEP_FP32 = "ar_predict_layer"  # the logits projection: its argmax picks the token
# The decoder's quantised part: the generator's convolutions but its first two and its last (see above).
DECODER_SCOPE = "/dec/"
DECODER_KEEP_FP32 = ("/dec/conv_pre/", "/dec/cond/", "/dec/conv_post/")
CALIBRATION_RUNS = 4
CALIBRATION_CODES = 100  # 4 s of speech per run
CALIBRATION_PHONES = 50
CODEBOOK_SIZE = 1024
CALIBRATION_CLIP_S = 4.0


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantizer logs advice on the root logger ("consider pre-processing"): not for our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(path: Path, out: Path | None = None, keep_fp32: str | None = None) -> Path:
    """The dynamically int8-quantised version of the ONNX file ``path`` (weights int8, per tensor), written to
    ``out`` (default: ``path`` itself); nodes whose name contains ``keep_fp32`` stay fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    out = Path(out or path)
    kept = [n.name for n in onnx.load(str(path)).graph.node if keep_fp32 and keep_fp32 in n.name]
    with tempfile.TemporaryDirectory(dir=out.parent) as staging:
        staged = Path(staging) / out.name
        with _quiet_quantizer():
            quantize_dynamic(
                path, staged, weight_type=QuantType.QInt8, per_channel=False,
                op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=kept,
            )  # fmt: skip
        os.replace(staged, out)
    return out


def decoder_calibration_feeds(synthesizer, runs: int = CALIBRATION_RUNS, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Inputs of ``sovits_decode`` for calibration: random codes and phones, ``ge`` of a synthetic voiced clip
    through the model's own reference encoder, the serving side's noise scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(CALIBRATION_CLIP_S * OUTPUT_SAMPLE_RATE)) / OUTPUT_SAMPLE_RATE
    clip = 0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2 + 0.03 * rng.standard_normal(t.size)
    spec = torch.from_numpy(spectrogram(clip.astype(np.float32)))[None]
    sv = torch.from_numpy(rng.standard_normal((1, SV_DIM)).astype(np.float32)) if synthesizer.is_pro else None
    ge = synthesizer.reference_embedding(spec, sv).numpy()
    n_phones = synthesizer.enc_p.text_embedding.num_embeddings
    return [
        {
            "codes": rng.integers(0, CODEBOOK_SIZE, (1, CALIBRATION_CODES)).astype(np.int64),
            "phone_ids": rng.integers(1, n_phones, (1, CALIBRATION_PHONES)).astype(np.int64),
            "ge": ge,
            "noise": rng.standard_normal((1, synthesizer.inter_channels, CODE_UPSAMPLE * CALIBRATION_CODES)).astype(np.float32),
            "noise_scale": np.array([0.5], dtype=np.float32),
        }
        for _ in range(runs)
    ]


def quantize_decoder_int8(path: Path, feeds: list[dict[str, np.ndarray]], out: Path) -> Path:
    """The static int8 version of the exported ``sovits_decode`` graph ``path`` (see the module docstring),
    calibrated on ``feeds``, written to ``out``."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent) as staging:
        # Constant folding first: the exported convolutions' weights and biases become initializers.
        folded = Path(staging) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        nodes = [
            n.name for n in onnx.load(str(folded)).graph.node
            if n.op_type == "Conv" and n.name.startswith(DECODER_SCOPE) and not n.name.startswith(DECODER_KEEP_FP32)
        ]  # fmt: skip
        staged = Path(staging) / out.name
        with _quiet_quantizer():
            quantize_static(
                folded, staged, Feeds(), quant_format=QuantFormat.QOperator, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                nodes_to_quantize=nodes,
            )  # fmt: skip
        os.replace(staged, out)
    return out


def write_int8_twins(paths: dict[str, Path], synthesizer) -> dict[str, Path]:
    """The int8 twins of an export's T2S step and decoder (``paths`` as built by ``export_repository``), beside
    their fp32 graphs; returns {network key: twin path}."""
    twins = {"t2s_step": quantize_int8(paths["t2s_step"], int8_twin(paths["t2s_step"]), T2S_KEEP_FP32)}
    decoder = paths["sovits_decode"]
    twins["sovits_decode"] = quantize_decoder_int8(decoder, decoder_calibration_feeds(synthesizer), int8_twin(decoder))
    return twins


def greedy_agreement(reference, candidate, phone_ids, bert, prompt_codes, steps: int) -> tuple[float, np.ndarray]:
    """Token agreement of two T2S runners under greedy decoding, teacher-forced on the reference's tokens.

    ``reference`` decodes greedily (EOS column excluded, as with EOS disabled); at every step ``candidate`` sees the
    same context and its argmax is compared. Returns (fraction of equal argmaxes, the reference's tokens).
    ``phone_ids`` [1, Tx], ``bert`` [1, 1024, Tx], ``prompt_codes`` [1, Ty].
    """
    feeds = {"phone_ids": phone_ids, "phone_lengths": np.array([phone_ids.shape[1]]), "bert": bert,
             "prompt_codes": prompt_codes}  # fmt: skip
    picks = []
    for runner in (reference, candidate):
        cfg = runner.config
        logits, k, v = runner.prefill.run(None, feeds)
        s = k.shape[1]
        kv = np.empty((2, cfg.n_layer, s + steps, 1, cfg.hidden), dtype=np.float32)
        kv[0, :, :s], kv[1, :, :s] = k, v
        valid = np.ones((1, s + steps), dtype=bool)
        chosen = [int(logits[0, : cfg.eos].argmax())]
        for i in range(steps):
            token = chosen[i] if not picks else int(picks[0][i])
            logits, new_k, new_v = runner.run_step(kv, s, valid, np.array([token]), prompt_codes.shape[1] + i)
            kv[0, :, s], kv[1, :, s] = new_k, new_v
            s += 1
            chosen.append(int(logits[0, : cfg.eos].argmax()))
        picks.append(np.array(chosen))
    return float((picks[0] == picks[1]).mean()), picks[0]
