"""Helpers shared by every submodel export: one exporter call and one parity measure."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

OPSET = 17
# Parity tolerance for fp32 exports (tests): max |onnx - torch| / max |torch| over a tensor.
FP32_REL_TOL = 1e-4


def export_onnx(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> Path:
    """Export ``module(*args)`` with the TorchScript-based exporter (no onnxscript needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def relative_error(reference: np.ndarray | torch.Tensor, actual: np.ndarray | torch.Tensor) -> float:
    """max |actual - reference| / max |reference| (the measure every parity test states)."""
    ref = reference.detach().cpu().numpy() if isinstance(reference, torch.Tensor) else np.asarray(reference)
    act = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    if ref.shape != act.shape:
        raise AssertionError(f"shape mismatch: reference {ref.shape} vs actual {act.shape}")
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = float(np.max(np.abs(act.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    return diff / max(scale, 1e-12)


def ort_session(path: Path, threads: int = 2):
    """A CPU onnxruntime session (tests and the exporter's self-check)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class Stopwatch:
    """Prints one progress line per exported submodel with the seconds it took."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        print(f"[export] {self.label} ...", flush=True)
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            print(f"[export] {self.label} done in {time.perf_counter() - self.start:.1f} s", flush=True)
