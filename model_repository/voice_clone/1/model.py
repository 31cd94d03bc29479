"""Triton entry point of `voice_clone`: the BLS orchestrator (code in gsv_triton.backend.models.voice_clone)."""

from gsv_triton.backend.models.voice_clone import TritonPythonModel

__all__ = ["TritonPythonModel"]
