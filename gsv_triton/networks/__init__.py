"""Our own PyTorch definitions of the GPT-SoVITS networks (inference paths only), one of each.

The exporter (``gsv_export``) traces them to ONNX and the torch runtime inside Triton
(``gsv_triton.backend.torch_networks``) runs them; both import them from here.
"""
