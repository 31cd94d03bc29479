"""Running Triton: locate the tritonserver binary, launch and stop it, and the stub's venv."""

from gsv_triton.serving.locate import TritonInstall, locate_tritonserver
from gsv_triton.serving.python_env import python_env_parameter
from gsv_triton.serving.tritonserver import (
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
    "python_env_parameter",
    "serve_main",
]
