"""Triton entry point of `t2s`: the autoregressive GPT loop (code in gsv_triton.backend.models.t2s_model)."""

from gsv_triton.backend.models.t2s_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
