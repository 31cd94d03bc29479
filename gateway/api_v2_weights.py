"""api_v2's ``/set_gpt_weights`` and ``/set_sovits_weights``: choose the model set ``/tts`` speaks with.

Upstream switches its one process's GPT or SoVITS file; here every fine-tune is a model set of the served
repository (``gsv-triton export --name``), and these routes choose the set of the checkpoint a path names. A
set is a GPT + SoVITS pair, so either call switches ``/tts`` to the whole set that checkpoint belongs to (the
usual pair of calls names one set twice). The choice is the gateway's, for every api_v2 client (upstream's is
per process too); our own routes name their set per request (``model``). Requests already running keep their
set: a switch never changes the voice of an answer under way (upstream's race, PR #569).

Where the checkpoints are known: the repository's ``gsv_manifest.json`` (every set's "sources", the paths export
read), found through ``GSV_MODEL_REPOSITORY``; Triton's configs do not carry them. A path resolves inside the
folders holding the sets' checkpoints of its kind (relative paths against each; ``..``, absolute paths
elsewhere, symlinks out and NUL bytes are 403), so a client learns nothing about other files. A set's name is
accepted as ``weights_path`` too.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from gsv_triton.errors import InputError, UserError
from gsv_triton.manifest import Manifest

from .api_v2_refs import confine
from .errors import ForbiddenPath, ServiceUnavailable

FIELD = "weights_path"
KINDS = {"gpt": "GPT (.ckpt)", "sovits": "SoVITS (.pth)"}


def served_checkpoints(repository: Path | None, kind: str) -> dict[Path, str]:
    """``{real path of a set's kind checkpoint: set name}`` of the served repository."""
    if repository is None:
        raise ForbiddenPath(f"{FIELD}: this gateway does not know which checkpoints Triton serves; its operator "
                            "sets GSV_MODEL_REPOSITORY to the exported repository to allow these routes", FIELD)  # fmt: skip
    try:
        sets = Manifest.read_sets(repository)
    except UserError as exc:
        raise ServiceUnavailable(f"{FIELD}: {exc} (GSV_MODEL_REPOSITORY)", FIELD) from None
    checkpoints: dict[Path, str] = {}
    for name, manifest in sets.items():  # two sets from one checkpoint: the first listed (the default first)
        if manifest.sources.get(kind):
            checkpoints.setdefault(Path(manifest.sources[kind]).resolve(), name)
    if not checkpoints:
        raise ServiceUnavailable(f"{FIELD}: the repository's manifest names no {kind} checkpoint", FIELD)
    return checkpoints


def weights_model_set(raw: str | None, kind: str, repository: Path | None) -> str:
    """The model set whose ``kind`` checkpoint ``raw`` names (or whose name ``raw`` is); 400 for a checkpoint
    no set was exported from, 403 outside the checkpoints' folders."""
    if raw is None or raw == "":
        raise InputError(FIELD, f"is required (the {KINDS[kind]} checkpoint to serve)")
    checkpoints = served_checkpoints(repository, kind)
    if raw in checkpoints.values():
        return raw
    where = f"the folders of the served {kind} checkpoints"
    inside = []  # raw's real path inside each checkpoint folder it resolves in
    for folder in sorted({path.parent for path in checkpoints}):
        with contextlib.suppress(ForbiddenPath):
            inside.append(confine(raw, folder, FIELD, where))
    if not inside:
        raise ForbiddenPath(f"{FIELD}: {raw!r} is outside {where}", FIELD)
    found = next((checkpoints[path] for path in inside if path in checkpoints), None)
    if found is not None:
        return found
    served = ", ".join(f"{path.name!r} ({name})" for path, name in sorted(checkpoints.items()))
    raise InputError(FIELD, f"no model set of this server was exported from {raw!r}; its {KINDS[kind]} checkpoints: "
                            f"{served}. Add one with `gsv-triton export --name NAME`")  # fmt: skip
