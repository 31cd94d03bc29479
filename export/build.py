"""``gsv-triton export``: upstream checkpoints -> ONNX submodels inside a Triton model repository.

Layout written (one Triton model per network; ``t2s`` holds both graphs of the autoregressive loop):

    REPO/bert/1/bert.onnx (+ vocab.txt)      REPO/ssl/1/ssl.onnx
    REPO/vq_encode/1/vq_encode.onnx          REPO/ref_encoder/1/ref_encoder.onnx
    REPO/t2s/1/t2s_prefill.onnx, t2s_step.onnx
    REPO/sovits_decode/1/sovits_decode.onnx  REPO/gsv_manifest.json
    v2Pro/v2ProPlus also: REPO/speaker_encoder/1/speaker_encoder.onnx (ERes2NetV2, from ``--sv``)

``--name NAME`` adds a model set (one more fine-tune) to a repository, or starts one with it: the set's own
networks go to ``REPO/NAME__t2s``, ``NAME__vq_encode``, ``NAME__ref_encoder``, ``NAME__sovits_decode``; the
shared ones (ssl, bert, speaker_encoder) are written only where the repository lacks them
(:mod:`gsv_triton.model_sets`). :func:`remove_model_set` takes a set out again.
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
from gsv_export.quantize import QUANTIZE_CHOICES, write_int8_twins
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
from gsv_triton.errors import InputError, UserError
from gsv_triton.manifest import MANIFEST_FILE, Manifest
from gsv_triton.manifest import remove_model_set as remove_manifest_entry
from gsv_triton.model_sets import DEFAULT_SET, SET_NETWORKS, SHARED_NETWORKS, check_set_name, network_model
from gsv_triton.networks.pretrained import load_bert, load_hubert


def _model_dir(repo: Path, name: str, model_set: str = DEFAULT_SET) -> Path:
    path = repo / network_model(name, model_set) / MODEL_VERSION
    path.mkdir(parents=True, exist_ok=True)
    return path


def _model_set(name: str | None) -> str:
    try:
        return DEFAULT_SET if name is None else check_set_name(name, "--name")
    except InputError as exc:
        raise UserError(str(exc)) from None


def _existing_sets(out: Path, model_set: str, target: str) -> dict[str, Manifest]:
    """The sets ``out`` holds already; refuses a second set of one name and a mix of targets."""
    sets = Manifest.read_sets(out) if (out / MANIFEST_FILE).is_file() else {}
    if model_set != DEFAULT_SET and model_set in sets:
        raise UserError(f"{out} already has a model set named {model_set!r}; remove it first "
                        f"(gsv-triton remove-model --model-repository {out} {model_set})")  # fmt: skip
    targets = {m.target for name, m in sets.items() if name != model_set}
    if targets and targets != {target}:
        raise UserError(f"{out} holds {'/'.join(sorted(targets))} model sets; a {target} set cannot join them")
    return sets


def _shared_present(out: Path, network: str) -> bool:
    return (out / network / MODEL_VERSION / f"{network}.onnx").is_file()


def export_repository(
    gpt: Path,
    sovits: Path,
    hubert: Path | None,
    bert: Path | None,
    out: Path,
    target: str = "cpu",
    fp16: bool = False,
    quantize: str = "none",
    sv: Path | None = None,
    name: str | None = None,
) -> dict[str, Path]:
    """Export every network of the pipeline into ``out``; returns {network: onnx path}.

    ``sv``: the speaker-verification checkpoint, required for v2Pro/v2ProPlus SoVITS files.

    ``name``: the model set to add (None: the default set, whose export rewrites the shared networks too).

    ``target="gpu-torch"`` writes torch weights instead of ONNX (:mod:`gsv_export.torch_target`).

    ``quantize="int8"`` also writes int8 twins of the T2S step and the decoder beside their fp32 graphs, which the
    Triton models load on CPUs with int8 dot-product instructions (see :mod:`gsv_export.quantize`).
    """
    if quantize not in QUANTIZE_CHOICES:
        raise UserError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZE_CHOICES)}")
    if quantize != "none" and fp16:
        raise UserError("--quantize int8 and --fp16 exclude each other (int8 twins are made from the fp32 graphs)")
    model_set = _model_set(name)
    if target == TORCH_TARGET:
        if model_set != DEFAULT_SET:
            raise UserError("--target gpu-torch repositories hold one model: --name needs --target cpu or gpu")
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
    out = Path(out)
    existing = _existing_sets(out, model_set, target)
    # A named set joining a repository uses its shared networks as they are; the default set rewrites them.
    write_shared = model_set == DEFAULT_SET or not existing
    if write_shared and (hubert is None or bert is None):
        raise UserError(f"--hubert and --bert are needed: {out} has no shared networks yet")
    reuse_sv = not write_shared and _shared_present(out, "speaker_encoder")
    sv_ckpt = None if reuse_sv else speaker_verification(sovits_ckpt, None if sv is None else Path(sv))
    out.mkdir(parents=True, exist_ok=True)

    paths: dict[str, Path] = {}
    if write_shared:
        hubert_net, bert_net = load_hubert(hubert), load_bert(bert)
        with Stopwatch("ssl (HuBERT)"):
            paths["ssl"] = export_ssl(hubert_net, _model_dir(out, "ssl"))
        del hubert_net
        with Stopwatch("bert (RoBERTa, hidden_states[-3])"):
            paths["bert"] = export_bert(bert_net, _model_dir(out, "bert"))
        del bert_net
    t2s = load_t2s(gpt_ckpt)
    t2s_paths = export_t2s(t2s, _model_dir(out, "t2s", model_set))
    paths.update({f"t2s_{k}": v for k, v in t2s_paths.items()})
    synthesizer = load_synthesizer(sovits_ckpt)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        for network, path in export_sovits(synthesizer, Path(staging)).items():
            paths[network] = Path(shutil.move(str(path), _model_dir(out, network, model_set) / path.name))
    if sv_ckpt is not None:
        paths["speaker_encoder"] = export_speaker_encoder(load_speaker_encoder(sv_ckpt),
                                                          _model_dir(out, "speaker_encoder"))  # fmt: skip

    twins: dict[str, Path] = {}
    if quantize == "int8":
        with Stopwatch("int8 twins of the t2s step and the decoder (calibrated)"):
            twins = write_int8_twins(paths, synthesizer)
    ort_optimized = target == "cpu" and not fp16
    if ort_optimized:
        with Stopwatch("onnxruntime graph optimisations"):
            for path in [*paths.values(), *twins.values()]:
                save_optimized(path)
    if fp16:
        from gsv_export.precision import convert_to_fp16

        for path in paths.values():
            convert_to_fp16(path)
    if target == "gpu":
        from gsv_export.tensorrt_build import build_repository_engines

        build_repository_engines(out, paths, gin=synthesizer.gin_channels)

    manifest_flags = {"fp16": fp16, "quantize": quantize, "ort_optimized": ort_optimized,
                      "int8_files": {name: str(path.relative_to(out)) for name, path in twins.items()}}  # fmt: skip
    sources = {"gpt": gpt, "sovits": sovits, "hubert": hubert, "bert": bert, "sv": sv}
    shared_files = {n: f for n, f in _shared_files(existing).items() if n not in paths}
    write_manifest(out, target, gpt_ckpt, sovits_ckpt, t2s, synthesizer, sources, paths, manifest_flags,
                   model_set, shared_files)  # fmt: skip
    install_triton_models(out, target)
    report_export(out, {**paths, **{f"{n}_int8": p for n, p in twins.items()}}, "ONNX files", started)
    return paths


def _shared_files(sets: dict[str, Manifest]) -> dict[str, str]:
    """The shared networks' files the repository's sets name (a new set's manifest names them too)."""
    return {n: f for m in sets.values() for n, f in m.files.items() if n in SHARED_NETWORKS}


def remove_model_set(repo: Path, name: str) -> None:
    """Take the named set ``name`` out of ``repo``: its four network folders and its manifest entry."""
    repo, model_set = Path(repo), _model_set(name)
    if model_set == DEFAULT_SET:
        raise UserError("the default model set holds the repository's shared networks and cannot be removed; "
                        "export a new repository instead")  # fmt: skip
    sets = Manifest.read_sets(repo)
    if model_set not in sets:
        raise UserError(f"{repo} has no model set {model_set!r}; it has: {', '.join(sorted(sets)) or 'none'}")
    remove_manifest_entry(repo, model_set)
    for network in SET_NETWORKS:
        shutil.rmtree(repo / network_model(network, model_set), ignore_errors=True)
    print(f"[export] removed model set {model_set!r} from {repo}", flush=True)
