"""Which precision of a network a Triton model instance loads: the ``precision`` parameter of its ``config.pbtxt``
against the instructions of the CPU it runs on, decided at load time.

``export --quantize int8`` writes an int8 twin beside a network's fp32 graph (``t2s_step.int8.onnx`` beside
``t2s_step.onnx``, ``sovits_decode.int8.onnx`` beside ``sovits_decode.onnx``). The parameter says which to load:

* ``auto`` (the default): the int8 twin where it exists and the CPU has int8 dot-product instructions (AVX-512
  VNNI, AVX-VNNI or AMX-INT8: onnxruntime's int8 kernels use them; without them int8 is slower than fp32), else
  the fp32 graph;
* ``fp32``: always the fp32 graph;
* ``int8``: the int8 twin whatever the CPU (an error when the repository has none).

Why int8 and not a 16-bit format: measured on the project's CPUs (perf/README.md, "CPU precision"), onnxruntime
has no bf16/fp16 kernels on x86, and torch's bf16 and fp16 convolutions ran slower than its fp32 ones, while
onnxruntime's int8 convolutions and matmuls use VNNI at about 3x the fp32 rate.
"""

from __future__ import annotations

from pathlib import Path

from gsv_triton.errors import UserError

PRECISION_KEY = "precision"
AUTO, FP32, INT8 = "auto", "fp32", "int8"
PRECISIONS = (AUTO, FP32, INT8)
INT8_SUFFIX = ".int8.onnx"
# /proc/cpuinfo flags of int8 dot-product instructions onnxruntime's MLAS kernels use.
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
CPUINFO = Path("/proc/cpuinfo")


def int8_twin(path: Path) -> Path:
    """``name.int8.onnx`` beside ``name.onnx``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".onnx") + INT8_SUFFIX)


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of this host's first CPU (empty where /proc/cpuinfo is not readable)."""
    try:
        text = cpuinfo.read_text("utf-8", "replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def int8_dot_instructions(flags: frozenset[str] | None = None) -> list[str]:
    """This CPU's int8 dot-product instruction sets (sorted), from ``flags`` or /proc/cpuinfo."""
    return sorted(INT8_DOT_FLAGS & (cpu_flags() if flags is None else flags))


def choose_graph(path: Path, setting: str | None, flags: frozenset[str] | None = None) -> tuple[Path, str]:
    """(graph to load, why) for the fp32 graph ``path`` under the ``precision`` parameter ``setting``."""
    setting = (setting or AUTO).strip().lower()
    if setting not in PRECISIONS:
        raise UserError(f"precision parameter {setting!r}: expected one of {', '.join(PRECISIONS)}")
    twin = int8_twin(path)
    if setting == FP32:
        return Path(path), "fp32 (precision: fp32)"
    if setting == INT8:
        if not twin.is_file():
            raise UserError(f"precision int8: {twin} does not exist (export with --quantize int8)")
        return twin, "int8 (precision: int8)"
    if not twin.is_file():
        return Path(path), "fp32 (no int8 graph exported)"
    instructions = int8_dot_instructions(flags)
    if instructions:
        return twin, f"int8 (precision: auto; the CPU has {', '.join(instructions)})"
    return Path(path), "fp32 (precision: auto; the CPU has no VNNI/AMX int8 instructions)"
