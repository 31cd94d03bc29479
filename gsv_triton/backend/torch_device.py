"""Where and in which precision the torch runtime runs a network (config parameters ``device`` and ``dtype``).

The torch runtime (``runtime: "torch"`` in a model's ``config.pbtxt``) is the measurable GPU path on hosts where
onnxruntime-gpu and TensorRT cannot be installed: our own torch modules on CUDA. ``auto`` is the default of both
parameters, so one repository serves on a GPU host (cuda, float16) and on a CPU host (cpu, float32) unchanged.
Importing this module imports torch: serving code imports it only when a model selects the torch runtime
(:func:`gsv_triton.backend.models.onnx_model.uses_torch_runtime`). A float32 network on CUDA also turns TF32 off
(:func:`keep_float32_exact`): float32 is only ever chosen where float16 rounding is too coarse (``vq_encode``'s
argmin), and TF32 would round the inputs of its convolutions and matmuls to 10 mantissa bits all the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from gsv_triton.errors import UserError

AUTO = "auto"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# CPU kernels for half precision are slow or missing; the CPU fallback always computes in float32.
CUDA_DEFAULT_DTYPE = "float16"
CPU_DTYPE = "float32"


@dataclass(frozen=True)
class Placement:
    """A torch device plus the floating-point dtype of the weights and activations."""

    device: torch.device
    dtype: torch.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def resolve_placement(device: str = AUTO, dtype: str = AUTO, device_id: int = 0) -> Placement:
    """``device``: auto / cpu / cuda / cuda:N; ``dtype``: auto / float32 / float16 / bfloat16.

    ``auto`` picks CUDA (``device_id``, the Triton instance's GPU) when torch sees one, else the CPU; the dtype
    ``auto`` is float16 on CUDA and float32 on the CPU. Asking for CUDA where there is none is an error, not a
    silent fallback: a benchmark must never measure the CPU while believing it measures the GPU.
    """
    device = (device or AUTO).strip().lower()
    dtype = (dtype or AUTO).strip().lower()
    if device == AUTO:
        device = f"cuda:{device_id}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{device_id}"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"unknown torch device {device!r}: {exc}") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"torch runtime device must be cpu or cuda, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but torch {torch.__version__} sees no CUDA GPU")
    if dtype == AUTO:
        dtype = CUDA_DEFAULT_DTYPE if dev.type == "cuda" else CPU_DTYPE
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; expected auto or one of {', '.join(DTYPES)}")
    if dev.type == "cpu" and dtype != CPU_DTYPE:
        raise UserError(f"dtype {dtype} is not supported on the CPU (use float32 or auto)")
    return Placement(dev, DTYPES[dtype])


def keep_float32_exact(placement: Placement) -> bool:
    """Turn TF32 off for float32 matmuls and cuDNN convolutions when ``placement`` is float32 on CUDA (cuDNN
    convolutions default to TF32). The flags are per process: a Triton instance is its own stub process, so this
    reaches only the models that asked for float32. Returns whether it changed anything."""
    if not (placement.is_cuda and placement.dtype == torch.float32):
        return False
    # The legacy flags: every torch version has them, and torch >= 2.9 maps them onto its per-operator
    # fp32_precision settings (setting those instead makes reading the legacy flags raise there).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return True


def placement_from_parameters(params: Mapping[str, str], device_id: int = 0, dtype_default: str = AUTO) -> Placement:
    """The placement named by a model's config parameters (``device``, ``dtype``)."""
    return resolve_placement(params.get("device") or AUTO, params.get("dtype") or dtype_default, device_id)
