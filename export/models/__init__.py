"""Our own PyTorch implementations of the GPT-SoVITS networks (inference paths only)."""
