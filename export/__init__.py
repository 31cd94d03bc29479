"""gsv_export: upstream-compatible GPT-SoVITS networks in PyTorch, checkpoint I/O and ONNX export."""
