"""``export --quantize int8``: dynamic int8 weights for the T2S graphs (onnxruntime's dynamic quantisation).

Why only T2S: a decode step is bound by reading 305 MB of fp32 weights per token; int8 weights are a quarter of
that, and onnxruntime fuses each quantised MatMul into one DynamicQuantizeMatMul (about 2x faster per step here).
The SoVITS decoder is compute-bound convolutions: measured on this machine, onnxruntime's int8 convolutions are
no faster (QLinearConv) or 2x slower (ConvInteger) than fp32, so it stays fp32.

Per-tensor weight scales: per-channel scales were both slower and, on the demo weights, less accurate.
The accuracy cost (greedy token agreement, logits error) is measured by ``perf/bench_quantize.py``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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


def quantize_t2s(paths: dict[str, Path]) -> list[Path]:
    """Quantise the T2S prefill and step graphs of an export (``paths`` as built by ``export_repository``)."""
    return [quantize_int8(paths[name]) for name in ("t2s_prefill", "t2s_step")]
