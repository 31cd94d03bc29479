"""Running Triton: locate the tritonserver binary, launch and stop it."""

from gsv_triton.server.locate import TritonInstall, locate_tritonserver
from gsv_triton.server.tritonserver import (
    TritonServer,
    TritonServerError,
    check_model_repository,
    free_port,
    serve_main,
)

__all__ = [
    "TritonInstall",
    "TritonServer",
    "TritonServerError",
    "check_model_repository",
    "free_port",
    "locate_tritonserver",
    "serve_main",
]
