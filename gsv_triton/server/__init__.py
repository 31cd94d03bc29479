"""Host-side control of a real tritonserver: locate the binary and its libraries, launch, wait, drain, stop,
and supervise (reload a model whose stub died, restart a server that died)."""

from gsv_triton.server.locate import TritonInstall, locate_tritonserver
from gsv_triton.server.serve import serve_main
from gsv_triton.server.supervisor import Launch, Supervisor, SupervisorStatus
from gsv_triton.server.tritonserver import (
    TritonServer,
    TritonServerError,
    check_model_repository,
    free_port,
)

__all__ = [
    "Launch",
    "Supervisor",
    "SupervisorStatus",
    "TritonInstall",
    "TritonServer",
    "TritonServerError",
    "check_model_repository",
    "free_port",
    "locate_tritonserver",
    "serve_main",
]
