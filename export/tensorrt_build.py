"""TensorRT engines for GPU hosts (``gsv-triton export --target gpu``).

Not exercised on this project's machines: TensorRT cannot be installed here (its wheels come from
NVIDIA's own index). The code uses only TensorRT's documented Python API (Builder, OnnxParser,
optimization profiles) so it runs inside NVIDIA's Triton container. The engines are weakly typed
(``BuilderFlag.FP16`` turns float16 on per layer), which TensorRT 11 removed: TensorRT 10 is required
(``tensorrt>=10,<11``), and a newer one is refused with one clear line instead of an AttributeError mid-export.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from gsv_triton.contract import SV_DIM, SV_MEL_BINS
from gsv_triton.errors import UserError

# The TensorRT major versions with BuilderFlag.FP16 (weak typing); 11 builds strongly typed networks only.
SUPPORTED_MAJOR = 10
# Per input: (min, opt, max) shapes of one optimization profile.
Profile = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def require_tensorrt() -> None:
    """Stop with one clear line when this host cannot build engines."""
    try:
        import tensorrt
    except ImportError as exc:
        raise UserError(
            "--target gpu needs TensorRT and a CUDA GPU: the Python package 'tensorrt' is not importable "
            f"here ({exc}). Run the export inside NVIDIA's Triton container, or use --target cpu."
        ) from None
    check_tensorrt_version(tensorrt.__version__)
    if shutil.which("nvidia-smi") is None:
        raise UserError("--target gpu needs a CUDA GPU: nvidia-smi was not found on this host.")


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT other than 10.x: these builds set BuilderFlag.FP16, which 11 no longer has."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise UserError(f"cannot read the TensorRT version {version!r}") from None
    if major != SUPPORTED_MAJOR:
        raise UserError(
            f"--target gpu needs TensorRT {SUPPORTED_MAJOR}.x (weakly typed fp16 engines), found {version}: "
            f"install 'tensorrt>={SUPPORTED_MAJOR},<{SUPPORTED_MAJOR + 1}' or use --target gpu-torch."
        )


def build_engine(onnx_path: Path, engine_path: Path, profile: Profile, fp16: bool = True) -> Path:
    """Parse ``onnx_path`` and serialise an engine with one optimization profile."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 4 << 30)
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 11: strongly typed networks only
            check_tensorrt_version(trt.__version__)
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT failed to build an engine for {onnx_path}")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    return engine_path


def _profiles(hidden: int = 768, gin: int = 512, pro: bool = False) -> dict[str, Profile]:
    """Shape ranges per network: batch 1..8; lengths cover a 3-10 s reference, 1-510 BERT tokens and
    up to 1500 semantic tokens (60 s) per segment. T2S stays in onnxruntime/torch (a Python loop).
    ``gin``: the timbre width (1024 for v2Pro/v2ProPlus, whose ref_encoder also takes the speaker vector)."""
    ref_encoder: dict = {"spec": ((1, 1025, 10), (1, 1025, 300), (4, 1025, 600))}
    if pro:
        ref_encoder["sv"] = ((1, SV_DIM), (1, SV_DIM), (4, SV_DIM))
    profiles: dict[str, Profile] = {
        "ssl": {"wav16k": ((1, 16_000), (1, 110_000), (4, 170_000))},
        "bert": {
            name: ((1, 2), (4, 64), (8, 512)) for name in ("input_ids", "attention_mask", "token_type_ids")
        },
        "vq_encode": {"ssl": ((1, hidden, 2), (1, hidden, 500), (4, hidden, 1000))},
        "ref_encoder": ref_encoder,
        "sovits_decode": {
            "codes": ((1, 1), (1, 250), (4, 1500)),
            "phone_ids": ((1, 1), (1, 100), (4, 1024)),
            "ge": ((1, gin, 1), (1, gin, 1), (4, gin, 1)),
            "noise": ((1, 192, 2), (1, 192, 500), (4, 192, 3751)),
            "noise_scale": ((1,), (1,), (1,)),
        },
    }
    if pro:  # 3-10 s of 10 ms fbank frames
        profiles["speaker_encoder"] = {"fbank": ((1, 298, SV_MEL_BINS), (1, 500, SV_MEL_BINS), (4, 998, SV_MEL_BINS))}
    return profiles


def build_repository_engines(repo: Path, onnx_paths: Mapping[str, Path], gin: int = 512) -> dict[str, Path]:
    """fp16 engines (``model.plan``) next to the ONNX files of the networks that suit TensorRT."""
    engines = {}
    for name, profile in _profiles(gin=gin, pro="speaker_encoder" in onnx_paths).items():
        if name in onnx_paths:
            print(f"[export] TensorRT engine for {name} ...", flush=True)
            engines[name] = build_engine(onnx_paths[name], onnx_paths[name].with_name("model.plan"), profile)
    return engines
