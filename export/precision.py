"""fp16 copies of exported ONNX graphs (for GPU targets; CPU serving stays fp32)."""

from __future__ import annotations

from pathlib import Path


def convert_to_fp16(path: Path) -> None:
    """Rewrite ``path`` with fp16 weights and compute, keeping fp32 inputs/outputs so callers
    need no change. Uses onnxruntime's own converter (ships with the onnxruntime wheel)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    onnx.save(half, str(path))
