"""Add the models of the voice library, voice conversion and streaming to an exported repository.

The models: ``voice_encode``, ``voice_convert``, ``voice_clone_stream``.

``gsv-triton export`` (``gsv_export.triton_repository.install_triton_models``) installs these with the core
models. This module adds them to a repository exported before they existed, without exporting again:
``python -m gsv_export.extra_models REPO`` (the test fixtures and the perf scripts call
:func:`install_extra_models` too). Models already in the repository are left as they are, so a GPU
target's configs are never replaced by these CPU ones.
Without them the gateway's voice library, streaming and voice conversion answer 503 with that command.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gsv_export.python_env import python_env_parameter
from gsv_export.triton_repository import MODEL_VERSION, TEMPLATES, default_threads, fill_template
from gsv_triton.errors import UserError

EXTRA_MODELS = ("voice_encode", "voice_convert", "voice_clone_stream")


def install_extra_models(repo: Path, force: bool = False) -> list[str]:
    """Write ``config.pbtxt`` and ``1/model.py`` of each extra model ``repo`` lacks (all with ``force``);
    returns the names written. The templates and placeholders are ``gsv-triton export``'s (CPU target)."""
    repo = Path(repo)
    if not repo.is_dir():
        raise UserError(f"model repository {repo} does not exist")
    env = python_env_parameter()
    threads = default_threads()
    written = []
    for model in EXTRA_MODELS:
        source, dest = TEMPLATES / model, repo / model
        if (dest / "config.pbtxt").is_file() and not force:
            continue
        written.append(model)
        (dest / MODEL_VERSION).mkdir(parents=True, exist_ok=True)
        config = fill_template((source / "config.pbtxt").read_text("utf-8"), env, threads)
        (dest / "config.pbtxt").write_text(config, "utf-8")
        shutil.copyfile(source / MODEL_VERSION / "model.py", dest / MODEL_VERSION / "model.py")
    return written


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gsv_export.extra_models REPO", file=sys.stderr)
        return 2
    try:
        names = install_extra_models(Path(args[0]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if names:
        print(f"installed {', '.join(names)} into {args[0]} (restart Triton to load them)")
    else:
        print(f"{args[0]} has {', '.join(EXTRA_MODELS)} already")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
