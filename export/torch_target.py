"""``gsv-triton export --target gpu-torch``: a model repository served by our torch modules (the GPU path).

The check machines with GPUs can run PyTorch on CUDA and pytriton's tritonserver, but neither onnxruntime-gpu
nor TensorRT; this target is the GPU path that runs there. Instead of ONNX graphs every network folder gets
``torch_network.json`` + ``torch_weights.pt`` (see :mod:`gsv_triton.backend.torch_networks`), and the configs
select the torch runtime (``runtime: torch``, ``device: auto``, ``dtype: auto``): float16 on CUDA, float32 on a
CPU host, where the same repository is the CPU fallback of perf/gpu_bench.sh. No ONNX file is written (a full-size
ONNX export costs minutes and these models would never read it).

Layout: REPO/<model>/1/torch_network.json + torch_weights.pt for ssl, bert (+ tokenizer files), vq_encode,
ref_encoder, sovits_decode and t2s; REPO/gsv_manifest.json; the Triton configs and entry points.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from gsv_export.checkpoints import load_gpt, load_sovits
from gsv_export.onnx_utils import Stopwatch
from gsv_export.pretrained_export import copy_tokenizer_files
from gsv_export.shared_steps import check_compatible, load_synthesizer, load_t2s, report_export, write_manifest
from gsv_export.triton_repository import MODEL_VERSION, TORCH_TARGET, install_triton_models
from gsv_triton.errors import UserError
from gsv_triton.manifest import PRO_VERSIONS
from gsv_triton.networks.pretrained import load_bert, load_hubert
from gsv_triton.networks.saved import SOVITS_PARTS, write_network


def export_torch_repository(gpt: Path, sovits: Path, hubert: Path, bert: Path, out: Path) -> dict[str, Path]:
    """Write every network's torch weights into ``out`` and install the gpu-torch Triton configs.

    Returns {network: weights path}.
    """
    started = time.perf_counter()
    torch.set_grad_enabled(False)
    gpt_ckpt, sovits_ckpt = load_gpt(gpt), load_sovits(sovits)
    check_compatible(gpt_ckpt, sovits_ckpt)
    if sovits_ckpt.model_version in PRO_VERSIONS:
        raise UserError(f"--target {TORCH_TARGET} serves v1/v2 models; {sovits} is a SoVITS "
                        f"{sovits_ckpt.model_version} model: export it with --target cpu (or gpu)")  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def folder(model: str) -> Path:
        return out / model / MODEL_VERSION

    paths: dict[str, Path] = {}
    with Stopwatch("ssl (HuBERT) weights"):
        hubert_net = load_hubert(hubert)
        paths["ssl"] = write_network(
            folder("ssl"), "ssl", hubert_net.model.config.to_dict(), hubert_net.model.state_dict()
        )
        del hubert_net
    with Stopwatch("bert (RoBERTa, truncated to hidden_states[-3]) weights"):
        bert_net = load_bert(bert)
        paths["bert"] = write_network(folder("bert"), "bert", bert_net.bert.config.to_dict(), bert_net.bert.state_dict())
        copy_tokenizer_files(bert_net.source_dir, folder("bert"))
        del bert_net
    t2s = load_t2s(gpt_ckpt)
    with Stopwatch("t2s weights"):
        paths["t2s"] = write_network(folder("t2s"), "t2s", dict(t2s.config.__dict__), t2s.state_dict())
    synthesizer = load_synthesizer(sovits_ckpt)
    sovits_config = {"version": sovits_ckpt.model_version, "model": dict(sovits_ckpt.hparams["model"])}
    state = synthesizer.state_dict()
    with Stopwatch("sovits weights (vq_encode, ref_encoder, sovits_decode)"):
        for network, prefixes in SOVITS_PARTS.items():
            part = {k: v for k, v in state.items() if k.startswith(prefixes)}
            paths[network] = write_network(folder(network), network, sovits_config, part)

    flags = {"runtime": "torch", "fp16": False, "quantize": "none"}  # float32 weights; the runtime casts (dtype)
    write_manifest(out, TORCH_TARGET, gpt_ckpt, sovits_ckpt, t2s, synthesizer, {"gpt": gpt, "sovits": sovits, "hubert": hubert, "bert": bert}, paths, flags)
    install_triton_models(out, TORCH_TARGET)
    report_export(out, paths, "torch networks", started)
    return paths
