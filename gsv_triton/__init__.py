"""gsv-triton: GPT-SoVITS voice cloning served by Triton.

The package's parts, each importing only the parts before it (``tests/test_import_direction.py``):
ground (``settings``, ``errors``, ``symbols``, ``contract``, ``manifest``) <- frontends (``text``, ``audio``) <-
``networks`` (torch) <- ``backend`` (inside Triton) and ``server`` (tritonserver on the host), beside the
exporter (``gsv_export``) <- ``client`` and the gateway (``gsv_gateway``) <- the CLI (``gsv_cli``, the top-level
``cli/`` folder), the only code that composes them all.
"""

__version__ = "0.1.0"
