"""The EXECUTION_ENV_PATH parameter that gives Triton's Python stub our venv.

The stub ignores PYTHONPATH; it only sees packages of the environment named by the model's
``EXECUTION_ENV_PATH`` parameter. For an unpacked directory the Python backend sources
``<env>/bin/activate`` before it starts the stub, so the environment must be a venv (or conda env)
with an activate script, built for the same Python version as the stub, and with numpy<2
(tritonserver 2.51 silently corrupts Python-backend tensors under numpy 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gsv_triton.errors import UserError

EXECUTION_ENV_KEY = "EXECUTION_ENV_PATH"


def python_env_parameter(prefix: Path | str | None = None) -> str:
    """The config.pbtxt fragment pointing a Python-backend model at ``prefix`` (default ``sys.prefix``).

    ``prefix`` may also be a ``$$TRITON_MODEL_DIRECTORY/...`` path, which Triton resolves per model;
    such a path is not checked here.
    """
    env = str(sys.prefix if prefix is None else prefix)
    if not env.startswith("$$"):
        if not (Path(env) / "bin" / "activate").is_file():
            raise UserError(
                f"{env} is not a virtual environment (no bin/activate); "
                "Triton's Python backend needs one: run from a venv"
            )
        _check_numpy_below_2(Path(env) if prefix is not None else None)
    return (
        "parameters: {\n"
        f'  key: "{EXECUTION_ENV_KEY}"\n'
        f"  value: {{ string_value: {_pbtxt_string(env)} }}\n"
        "}\n"
    )


def _check_numpy_below_2(env: Path | None) -> None:
    """Refuse numpy 2 in the current interpreter (we can only cheaply inspect our own env)."""
    if env is not None and env.resolve() != Path(sys.prefix).resolve():
        return
    try:
        import numpy
    except ImportError:
        return  # the model load will fail with a clear ModuleNotFoundError instead
    if int(numpy.__version__.split(".")[0]) >= 2:
        raise UserError(
            f"numpy {numpy.__version__} in {sys.prefix}: Triton's Python backend needs numpy<2 "
            "(numpy 2 silently corrupts tensors)"
        )


def _pbtxt_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
