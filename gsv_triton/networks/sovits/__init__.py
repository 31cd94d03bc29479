"""SoVITS v1/v2 (GPT-SoVITS stage 2) in PyTorch with upstream key names, for inference and ONNX export."""

from gsv_triton.contract import frames_for_speed

from .demo_init import demo_init_
from .hparams import SUPPORTED_VERSIONS, SoVITSHparams, default_hparams
from .synthesizer import REF_BINS_V2, SPEC_CHANNELS, SynthesizerTrn
from .weight_norm import WEIGHT_NORM_PATTERNS, fold_weight_norm, is_weight_normed, unfold_weight_norm

__all__ = [
    "REF_BINS_V2",
    "SPEC_CHANNELS",
    "SUPPORTED_VERSIONS",
    "WEIGHT_NORM_PATTERNS",
    "SoVITSHparams",
    "SynthesizerTrn",
    "default_hparams",
    "demo_init_",
    "fold_weight_norm",
    "frames_for_speed",
    "is_weight_normed",
    "unfold_weight_norm",
]
