"""api_v2's ``/set_gpt_weights`` and ``/set_sovits_weights`` before model switching exists.

Triton serves one exported repository; switching checkpoints belongs to the multi-model issue. Until then a
path naming the checkpoint the served models were exported from answers success (a client that sets the
weights it already runs keeps working), and any other path a clear 400.

Where the loaded checkpoints are known: the repository's ``gsv_manifest.json`` ("sources": the paths export
read), found through ``GSV_MODEL_REPOSITORY``. Triton's model configs do not carry them. A path is confined
to the folder holding the loaded checkpoint of its kind (relative paths resolve there; ``..``, absolute paths
elsewhere, symlinks out and NUL bytes are 403), so a client learns nothing about other files.
"""

from __future__ import annotations

from pathlib import Path

from gsv_triton.errors import InputError, UserError
from gsv_triton.manifest import Manifest

from .api_v2_refs import confine
from .errors import ForbiddenPath, ServiceUnavailable

FIELD = "weights_path"
KINDS = {"gpt": "GPT (.ckpt)", "sovits": "SoVITS (.pth)"}


def loaded_checkpoint(repository: Path | None, kind: str) -> Path:
    """The real path of the ``kind`` checkpoint the served repository was exported from."""
    if repository is None:
        raise ForbiddenPath(f"{FIELD}: this gateway does not know which checkpoints Triton serves; its operator "
                            "sets GSV_MODEL_REPOSITORY to the exported repository to allow these routes", FIELD)  # fmt: skip
    try:
        manifest = Manifest.read(repository)
    except UserError as exc:
        raise ServiceUnavailable(f"{FIELD}: {exc} (GSV_MODEL_REPOSITORY)", FIELD) from None
    source = manifest.sources.get(kind)
    if not source:
        raise ServiceUnavailable(f"{FIELD}: the repository's manifest names no {kind} checkpoint", FIELD)
    return Path(source).resolve()


def check_weights(raw: str | None, kind: str, repository: Path | None) -> Path:
    """The loaded checkpoint when ``raw`` names it; 400 for another checkpoint, 403 outside its folder."""
    if raw is None or raw == "":
        raise InputError(FIELD, f"is required (the {KINDS[kind]} checkpoint to serve)")
    loaded = loaded_checkpoint(repository, kind)
    real = confine(raw, loaded.parent, FIELD, f"the folder of the served {kind} checkpoint")
    if real != loaded:
        raise InputError(FIELD, f"switching models is not supported yet: Triton serves the {KINDS[kind]} checkpoint "
                                f"{loaded.name!r}; send its path, or export {raw!r} and serve that repository")  # fmt: skip
    return loaded
