"""Export a SoVITS v1/v2 :class:`SynthesizerTrn` as three ONNX graphs (spec 6.3).

* ``vq_encode.onnx``: ssl [B, 768, T50] f32 -> codes [B, T50 // 2] i64
* ``ref_encoder.onnx``: spec [B, 1025, Tref] f32 (+ v2Pro/v2ProPlus: sv [B, 20480] f32) -> ge [B, gin, 1] f32
* ``sovits_decode.onnx``: codes [B, T] i64, phone_ids [B, Tt] i64, ge [B, 512, 1] f32,
  noise [B, inter, F] f32, noise_scale [1] (or [B]) f32 -> audio [B, 1, 640 * F] f32 (gin: 512 for v1/v2,
  1024 for Pro)
  (with ``with_lengths=True`` also code_lengths [B] i64 and phone_lengths [B] i64 for padded batches).

The host picks F = ``frames_for_speed(T, speed)`` and draws the noise, so speed and sampling need no
data-dependent branch in the graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gsv_export.onnx_utils import Stopwatch, export_onnx
from gsv_triton.contract import SV_DIM
from gsv_triton.networks.sovits import SPEC_CHANNELS, SynthesizerTrn

VQ_ENCODE = "vq_encode.onnx"
REF_ENCODER = "ref_encoder.onnx"
SOVITS_DECODE = "sovits_decode.onnx"

# Example lengths used only to trace; every length axis is dynamic.
_EXAMPLE_CODES = 12
_EXAMPLE_PHONES = 9
_EXAMPLE_SPEC_FRAMES = 40


class MethodGraph(nn.Module):
    """Exposes one inference method of the synthesizer as ``forward`` so it can be traced; the ONNX input
    names given at export time document the positional arguments."""

    def __init__(self, model: SynthesizerTrn, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(*args)


def export_sovits(model: SynthesizerTrn, out_dir: Path, with_lengths: bool = False) -> dict[str, Path]:
    """Write the three graphs into ``out_dir``; returns {"vq_encode"|"ref_encoder"|"sovits_decode": path}."""
    out_dir = Path(out_dir)
    model = model.eval().float()
    gen = torch.Generator().manual_seed(0)
    t = _EXAMPLE_CODES
    paths: dict[str, Path] = {}

    with Stopwatch("sovits vq_encode"):
        ssl = torch.randn(1, 768, 2 * t + 1, generator=gen)
        paths["vq_encode"] = export_onnx(
            MethodGraph(model, "extract_codes"),
            (ssl,),
            out_dir / VQ_ENCODE,
            input_names=["ssl"],
            output_names=["codes"],
            dynamic_axes={"ssl": {0: "batch", 2: "ssl_frames"}, "codes": {0: "batch", 1: "code_frames"}},
        )

    with Stopwatch("sovits ref_encoder"):
        spec = torch.rand(1, SPEC_CHANNELS, _EXAMPLE_SPEC_FRAMES, generator=gen)
        inputs, names, axes = (spec,), ["spec"], {"spec": {0: "batch", 2: "spec_frames"}, "ge": {0: "batch"}}
        if model.is_pro:
            inputs += (torch.rand(1, SV_DIM, generator=gen),)
            names.append("sv")
            axes["sv"] = {0: "batch"}
        paths["ref_encoder"] = export_onnx(
            MethodGraph(model, "reference_embedding"),
            inputs,
            out_dir / REF_ENCODER,
            input_names=names,
            output_names=["ge"],
            dynamic_axes=axes,
        )

    with Stopwatch("sovits decode"):
        codes = torch.randint(0, model.quantizer.embed.shape[0], (1, t), generator=gen)
        phones = torch.randint(0, model.enc_p.text_embedding.num_embeddings, (1, _EXAMPLE_PHONES), generator=gen)
        ge = torch.randn(1, model.gin_channels, 1, generator=gen)
        # An F different from 2T so the resampling is traced as a real resize of dynamic size.
        noise = torch.randn(1, model.inter_channels, 2 * t + 3, generator=gen)
        noise_scale = torch.tensor([0.5])
        args: tuple = (codes, phones, ge, noise, noise_scale)
        names = ["codes", "phone_ids", "ge", "noise", "noise_scale"]
        axes = {
            "codes": {0: "batch", 1: "n_codes"},
            "phone_ids": {0: "batch", 1: "n_phones"},
            "ge": {0: "batch"},
            "noise": {0: "batch", 2: "n_frames"},
            "noise_scale": {0: "noise_scale_n"},
            "audio": {0: "batch", 2: "n_samples"},
        }
        wrapper = MethodGraph(model, "decode")
        if with_lengths:
            args += (torch.tensor([t]), torch.tensor([_EXAMPLE_PHONES]))
            names += ["code_lengths", "phone_lengths"]
            axes.update(code_lengths={0: "batch"}, phone_lengths={0: "batch"})
        paths["sovits_decode"] = export_onnx(
            wrapper, args, out_dir / SOVITS_DECODE, input_names=names, output_names=["audio"], dynamic_axes=axes
        )
    return paths
