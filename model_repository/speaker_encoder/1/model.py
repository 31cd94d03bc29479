"""Triton entry point of `speaker_encoder`: the shared onnxruntime model (code in gsv_triton.backend.models.onnx_model)."""

from gsv_triton.backend.models.onnx_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
