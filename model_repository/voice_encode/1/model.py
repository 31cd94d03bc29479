"""Triton entry point of `voice_encode`: a voice's reference side, computed once (code in
gsv_triton.backend.models.voice_encode)."""

from gsv_triton.backend.models.voice_encode import TritonPythonModel

__all__ = ["TritonPythonModel"]
