"""``gsv-triton export``: upstream checkpoints -> ONNX submodels inside a Triton model repository.

Layout written (one Triton model per network; ``t2s`` holds both graphs of the autoregressive loop):

    REPO/bert/1/bert.onnx (+ vocab.txt)      REPO/ssl/1/ssl.onnx
    REPO/vq_encode/1/vq_encode.onnx          REPO/ref_encoder/1/ref_encoder.onnx
    REPO/t2s/1/t2s_prefill.onnx, t2s_step.onnx
    REPO/sovits_decode/1/sovits_decode.onnx  REPO/gsv_manifest.json
    v2Pro/v2ProPlus also: REPO/speaker_encoder/1/speaker_encoder.onnx (ERes2NetV2, from ``--sv``)
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from gsv_export.checkpoints import load_gpt, load_sovits
from gsv_export.onnx_utils import Stopwatch
from gsv_export.optimize import save_optimized
from gsv_export.pretrained_export import export_bert, export_ssl
from gsv_export.quantize import QUANTIZE_CHOICES, quantize_t2s
from gsv_export.shared_steps import (
    check_compatible,
    load_speaker_encoder,
    load_synthesizer,
    load_t2s,
    report_export,
    speaker_verification,
    write_manifest,
)
from gsv_export.sovits_export import export_sovits
from gsv_export.sv_export import export_speaker_encoder
from gsv_export.t2s_export import export_t2s
from gsv_export.triton_repository import MODEL_VERSION, TORCH_TARGET, install_triton_models
from gsv_triton.errors import UserError
from gsv_triton.networks.pretrained import load_bert, load_hubert


def _model_dir(repo: Path, name: str) -> Path:
    path = repo / name / MODEL_VERSION
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_repository(
    gpt: Path,
    sovits: Path,
    hubert: Path,
    bert: Path,
    out: Path,
    target: str = "cpu",
    fp16: bool = False,
    quantize: str = "none",
    sv: Path | None = None,
) -> dict[str, Path]:
    """Export every network of the pipeline into ``out``; returns {network: onnx path}.

    ``sv``: the speaker-verification checkpoint, required for v2Pro/v2ProPlus SoVITS files.

    ``target="gpu-torch"`` writes torch weights instead of ONNX (:mod:`gsv_export.torch_target`).

    ``quantize="int8"`` stores the T2S graphs with dynamic int8 weights (see :mod:`gsv_export.quantize`).
    """
    if quantize not in QUANTIZE_CHOICES:
        raise UserError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZE_CHOICES)}")
    if quantize != "none" and fp16:
        raise UserError("--quantize int8 and --fp16 exclude each other (int8 applies to the fp32 T2S graphs)")
    if target == TORCH_TARGET:
        if quantize != "none" or fp16:
            raise UserError("--target gpu-torch stores torch weights: --quantize and --fp16 do not apply")
        if sv is not None:
            raise UserError("--target gpu-torch serves v1/v2 models, which take no --sv file")
        from gsv_export.torch_target import export_torch_repository

        return export_torch_repository(gpt, sovits, hubert, bert, out)
    if target == "gpu":
        from gsv_export.tensorrt_build import require_tensorrt

        require_tensorrt()  # stop before an hour of work if engines cannot be built here
    started = time.perf_counter()
    torch.set_grad_enabled(False)
    gpt_ckpt, sovits_ckpt = load_gpt(gpt), load_sovits(sovits)
    check_compatible(gpt_ckpt, sovits_ckpt)
    sv_ckpt = speaker_verification(sovits_ckpt, None if sv is None else Path(sv))
    hubert_net, bert_net = load_hubert(hubert), load_bert(bert)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    paths: dict[str, Path] = {}
    with Stopwatch("ssl (HuBERT)"):
        paths["ssl"] = export_ssl(hubert_net, _model_dir(out, "ssl"))
    del hubert_net
    with Stopwatch("bert (RoBERTa, hidden_states[-3])"):
        paths["bert"] = export_bert(bert_net, _model_dir(out, "bert"))
    del bert_net
    t2s = load_t2s(gpt_ckpt)
    t2s_paths = export_t2s(t2s, _model_dir(out, "t2s"))
    paths.update({f"t2s_{k}": v for k, v in t2s_paths.items()})
    synthesizer = load_synthesizer(sovits_ckpt)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        for name, path in export_sovits(synthesizer, Path(staging)).items():
            paths[name] = Path(shutil.move(str(path), _model_dir(out, name) / path.name))
    if sv_ckpt is not None:
        paths["speaker_encoder"] = export_speaker_encoder(load_speaker_encoder(sv_ckpt),
                                                          _model_dir(out, "speaker_encoder"))  # fmt: skip

    if quantize == "int8":
        with Stopwatch("t2s int8 quantization"):
            quantize_t2s(paths)
    ort_optimized = target == "cpu" and not fp16
    if ort_optimized:
        with Stopwatch("onnxruntime graph optimisations"):
            for path in paths.values():
                save_optimized(path)
    if fp16:
        from gsv_export.precision import convert_to_fp16

        for path in paths.values():
            convert_to_fp16(path)
    if target == "gpu":
        from gsv_export.tensorrt_build import build_repository_engines

        build_repository_engines(out, paths, gin=synthesizer.gin_channels)

    manifest_flags = {"fp16": fp16, "quantize": quantize, "ort_optimized": ort_optimized}
    sources = {"gpt": gpt, "sovits": sovits, "hubert": hubert, "bert": bert, "sv": sv}
    write_manifest(out, target, gpt_ckpt, sovits_ckpt, t2s, synthesizer, sources, paths, manifest_flags)
    install_triton_models(out, target)
    report_export(out, paths, "ONNX files", started)
    return paths
