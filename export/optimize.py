"""Graph optimisations saved at export (CPU target): onnxruntime's fusions done once, not at every model load.

onnxruntime rewrites a graph when a session is created (constant folding, LayerNorm/GELU/attention and MatMul
fusions). Saving the rewritten graph lets every Triton instance skip that work and load a smaller graph.
The *extended* level is saved, not *all*: the latter adds layout transforms tied to the exporting CPU.
GPU targets keep the plain graphs (TensorRT and the CUDA provider read standard ONNX only).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# ONNX protobufs cannot exceed 2 GB; bigger graphs would need external data (ours are at most 1.2 GB).
PROTOBUF_LIMIT_BYTES = 2**31 - 1


def save_optimized(path: Path) -> Path:
    """Replace the ONNX file at ``path`` by onnxruntime's extended-level optimised graph of it."""
    import onnxruntime as ort

    path = Path(path)
    if path.stat().st_size >= PROTOBUF_LIMIT_BYTES:
        return path  # left as exported: onnxruntime optimises it at load time instead
    with tempfile.TemporaryDirectory(dir=path.parent) as staging:
        staged = Path(staging) / path.name
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(staged)
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        os.replace(staged, path)
    return path
