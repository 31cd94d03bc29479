"""onnxruntime sessions for the Python-backend models: one place that picks providers and thread counts.

Every Triton model instance is its own process, so thread counts are set explicitly per session: left to
onnxruntime, each of a dozen stubs would size its pool to every core of the host. With more than one
intra-op thread, spinning is switched off so idle pools in other stubs do not burn the cores a busy one needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gsv_triton.errors import UserError
from gsv_triton.precision import choose_graph

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
# onnxruntime's element type names -> numpy dtypes (the types our exported graphs use).
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def session_options(intra_op_threads: int = 1, inter_op_threads: int = 1, spinning: bool = False):
    """SessionOptions with explicit thread counts (sequential execution: our graphs are chains).

    ``spinning``: with more than one thread, let the pool's threads spin between the graph's operators instead of
    sleeping. Off by default, so idle pools in other stubs do not take the cores; ``t2s`` and ``sovits_decode``
    turn it on (``allow_spinning`` in their configs): a decode step is hundreds of small operators, and waking
    sleeping threads for each doubled its time; the int8 decoder's quantize steps cost it 1.2x (perf/README.md,
    "CPU precision"). Concurrency-4 throughput did not change."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(intra_op_threads))
    opts.inter_op_num_threads = max(1, int(inter_op_threads))
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if intra_op_threads > 1:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


def providers_for(device: str, device_id: int = 0) -> list:
    """Execution providers for ``device`` ("cpu", "cuda" or "tensorrt"), CPU always last as the fallback.

    Providers this onnxruntime build lacks are dropped (a CPU-only wheel then runs on the CPU).
    """
    import onnxruntime as ort

    wanted: list = []
    if device == "tensorrt":
        wanted.append((TENSORRT_PROVIDER, {"device_id": device_id}))
    if device in ("cuda", "tensorrt"):
        wanted.append((CUDA_PROVIDER, {"device_id": device_id}))
    elif device != "cpu":
        raise UserError(f"unknown onnxruntime device {device!r}; expected cpu, cuda or tensorrt")
    available = set(ort.get_available_providers())
    return [p for p in wanted if p[0] in available] + [CPU_PROVIDER]


def shrinking_run_options():
    """RunOptions that hand the CPU arena's free regions back to the system at the end of each run.

    onnxruntime's arena otherwise keeps the peak of the longest input it ever saw: after one 60 s piece through
    ``sovits_decode`` an instance held ~800 MB (tiny models) that it never used again. The next long run grows
    it again; short runs stay inside the arena's first region (no measurable cost, perf/README.md "Soak").
    """
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def create_session(
    path: Path | str, intra_op_threads: int = 1, device: str = "cpu", device_id: int = 0, spinning: bool = False
):
    """An InferenceSession for ``path``; UserError when the file is missing. ``spinning``: see session_options."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file {path} does not exist (run `gsv-triton export` into this repository)")
    return ort.InferenceSession(
        str(path), session_options(intra_op_threads, spinning=spinning), providers=providers_for(device, device_id)
    )


def select_graph(path: Path, precision: str | None, device: str = "cpu") -> tuple[Path, str]:
    """(graph to load, why): ``path`` or its int8 twin under the ``precision`` parameter; GPUs load ``path``."""
    if device != "cpu":
        return Path(path), f"fp32 graph on {device}"
    return choose_graph(Path(path), precision)


def spinning_parameter(params: Mapping[str, str]) -> bool:
    """The ``allow_spinning`` parameter of a model config (default off)."""
    return (params.get("allow_spinning") or "").strip().lower() in ("1", "true", "yes")


def model_parameters(model_config: Mapping[str, Any] | str) -> dict[str, str]:
    """The ``parameters`` of a Triton model config (dict or its JSON, as in ``args["model_config"]``)."""
    config = json.loads(model_config) if isinstance(model_config, str) else model_config
    return {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}


def instance_device(args: Mapping[str, str], requested: str | None = None) -> tuple[str, int]:
    """(device, device_id) for a model instance: ``requested`` if given, else cuda for KIND_GPU, else cpu."""
    kind = str(args.get("model_instance_kind", "CPU")).upper()
    device_id = int(args.get("model_instance_device_id", 0) or 0)
    if requested:
        return requested, device_id
    return ("cuda" if kind == "GPU" else "cpu"), device_id


def output_dtypes(session) -> dict[str, Any]:
    """{output name: numpy dtype} read from the session."""
    return {o.name: ORT_DTYPES.get(o.type, np.float32) for o in session.get_outputs()}
