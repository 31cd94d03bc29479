"""Triton entry point of `voice_clone_stream`: voice_clone, one response per sentence piece (code in
gsv_triton.backend.models.voice_clone_stream)."""

from gsv_triton.backend.models.voice_clone_stream import TritonPythonModel

__all__ = ["TritonPythonModel"]
