"""Triton entry point of `voice_convert`: a clip's content in another voice (code in
gsv_triton.backend.models.voice_convert)."""

from gsv_triton.backend.models.voice_convert import TritonPythonModel

__all__ = ["TritonPythonModel"]
