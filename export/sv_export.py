"""Export the v2Pro speaker-verification network :class:`ERes2NetV2` (forward3) as one ONNX graph (spec 2.5).

* ``speaker_encoder.onnx``: fbank [B, T, 80] f32 (Kaldi log-mel, ``gsv_triton.audio.fbank.sv_fbank``)
  -> sv [B, 20480] f32

The fbank stays on the host (numpy, kaldi-native-fbank), so the graph is convolutions only and every
batch and length axis is dynamic.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gsv_export.onnx_utils import Stopwatch, export_onnx
from gsv_triton.networks.eres2net import ERes2NetV2

SPEAKER_ENCODER = "speaker_encoder.onnx"

# Example length used only to trace (T axis is dynamic). Not a multiple of 8, so the strided convs'
# rounding up is traced on an odd size.
_EXAMPLE_FRAMES = 101


def export_speaker_encoder(model: ERes2NetV2, out_dir: Path) -> Path:
    """Write ``speaker_encoder.onnx`` into ``out_dir`` and return its path."""
    out_dir = Path(out_dir)
    model = model.eval().float()
    gen = torch.Generator().manual_seed(0)
    # Log-mel-like values (fbank is about -16..5); only the shape matters for tracing.
    fbank = torch.randn(1, _EXAMPLE_FRAMES, model.feat_dim, generator=gen) * 3.0 - 6.0
    with Stopwatch("speaker encoder (ERes2NetV2)"):
        return export_onnx(
            model,
            (fbank,),
            out_dir / SPEAKER_ENCODER,
            input_names=["fbank"],
            output_names=["sv"],
            dynamic_axes={"fbank": {0: "batch", 1: "fbank_frames"}, "sv": {0: "batch"}},
        )
