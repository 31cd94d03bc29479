"""Install the Triton models added after the core pipeline (``voice_encode``, ``voice_convert``, ``voice_clone_stream``) into an exported repository.

``gsv_export.triton_repository.install_triton_models`` installs the core models from its fixed list; until
that list names these too, call :func:`install_extra_models` after it (the test fixtures and the perf scripts
do), or run ``python -m gsv_triton.serving.extra_models REPO``. Same templates, same placeholders, same result.
Without them the gateway's voice library, streaming and voice conversion answer 503 with that command.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gsv_triton.errors import UserError
from gsv_triton.serving import python_env_parameter

EXTRA_MODELS = ("voice_encode", "voice_convert", "voice_clone_stream")
TEMPLATES = Path(__file__).resolve().parents[2] / "model_repository"
MODEL_VERSION = "1"
ENV_PLACEHOLDER = "@EXECUTION_ENV@"
NO_ENV = "# no EXECUTION_ENV_PATH: the Python stub uses the container's own Python environment"


def install_extra_models(repo: Path, target: str = "cpu") -> list[str]:
    """Write ``config.pbtxt`` and ``1/model.py`` of every extra model into ``repo``; returns their names."""
    repo = Path(repo)
    if not repo.is_dir():
        raise UserError(f"model repository {repo} does not exist")
    try:
        env = python_env_parameter()
    except UserError:
        if target == "cpu":
            raise
        env = NO_ENV
    for model in EXTRA_MODELS:
        source, dest = TEMPLATES / model, repo / model
        (dest / MODEL_VERSION).mkdir(parents=True, exist_ok=True)
        config = (source / "config.pbtxt").read_text("utf-8").replace(ENV_PLACEHOLDER, env.rstrip("\n"))
        (dest / "config.pbtxt").write_text(config, "utf-8")
        shutil.copyfile(source / MODEL_VERSION / "model.py", dest / MODEL_VERSION / "model.py")
    return list(EXTRA_MODELS)


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gsv_triton.serving.extra_models REPO", file=sys.stderr)
        return 2
    try:
        names = install_extra_models(Path(args[0]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"installed {', '.join(names)} into {args[0]} (restart Triton to load them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
