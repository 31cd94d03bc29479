"""``export --quantize int8``: dynamic int8 weights for the T2S decode step (onnxruntime's dynamic quantisation).

Why only the step: it is bound by reading 305 MB of fp32 weights per token; int8 weights are a quarter of that,
and onnxruntime fuses each quantised MatMul into one DynamicQuantizeMatMul (about 2x faster per step here).
The prefill (hundreds of positions at once) and the SoVITS decoder's convolutions are compute-bound: measured on
this machine, onnxruntime's int8 paths are no faster there (int8 prefill 1.35x slower; QLinearConv as fast as
fp32 Conv, ConvInteger 2x slower), so they stay fp32, and the prompt's K/V cache keeps full precision.

Per-tensor weight scales: per-channel scales were both slower and, on the demo weights, less accurate.
The accuracy cost (greedy token agreement, :func:`greedy_agreement`) is measured in tests (tiny) and by
``perf/bench_t2s.py`` (full size).
Dynamic quantisation picks one activation scale per tensor, so with int8 the rows of ONE request's batch (its
sentence pieces) are not bit-independent of each other; requests are never batched together, so a request's
output still depends only on the request.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

QUANTIZE_CHOICES = ("none", "int8")
QUANTIZED_OPS = ["MatMul", "Gemm"]


def quantize_int8(path: Path) -> Path:
    """Replace the ONNX file at ``path`` by its dynamically int8-quantised version (weights int8, per tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as staging:
        staged = Path(staging) / path.name
        quantize_dynamic(
            path, staged, weight_type=QuantType.QInt8, per_channel=False, op_types_to_quantize=QUANTIZED_OPS
        )
        os.replace(staged, path)
    return path


def quantize_t2s(paths: dict[str, Path]) -> Path:
    """Quantise the T2S step graph of an export (``paths`` as built by ``export_repository``)."""
    return quantize_int8(paths["t2s_step"])


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
