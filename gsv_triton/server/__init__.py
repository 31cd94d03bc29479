"""Host-side control of a real tritonserver: locate the binary and its libraries, launch, wait, drain, stop."""

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
