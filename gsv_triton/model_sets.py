"""Model sets: several fine-tunes (a GPT + a SoVITS each) in one Triton model repository.

A model set's own networks are the four its checkpoints decide: ``t2s`` (the GPT), and ``vq_encode``,
``ref_encoder`` and ``sovits_decode`` (the SoVITS file). Every set shares the base networks a fine-tune leaves
unchanged (``ssl``, ``bert``, ``speaker_encoder``) and the orchestrators (``voice_clone`` and its siblings),
which call the networks of the set a request names (the ``model`` input).

Names: the set exported without ``--name`` is :data:`DEFAULT_SET`, and its networks keep their plain names (a
repository exported before sets existed is a one-set repository as it is). Set ``NAME``'s networks are the
Triton models ``NAME__t2s``, ``NAME__vq_encode``, ... (:func:`network_model`). A request that names no set gets
:data:`DEFAULT_SET`.

The repository's ``gsv_manifest.json`` describes the default set at its top level (as before) and the others
under ``model_sets`` (:mod:`gsv_triton.manifest`). Triton loads the shared models and the default set at start
(:func:`startup_models`); the other sets load on demand through Triton's repository API (the gateway's
:mod:`gateway.model_sets`).
"""

from __future__ import annotations

import re
from pathlib import Path

from gsv_triton.errors import InputError

DEFAULT_SET = "default"
# The networks each fine-tune has its own copy of (the rest of the repository is shared).
SET_NETWORKS = ("t2s", "vq_encode", "ref_encoder", "sovits_decode")
# The networks every set of a repository shares (written once, by the export that starts the repository).
SHARED_NETWORKS = ("ssl", "bert", "speaker_encoder")
SEPARATOR = "__"
# Lower-case letters, digits and single hyphens: safe in Triton model names, URLs and file names.
NAME_RULE = re.compile(r"^[a-z0-9](?:-?[a-z0-9])*$")
MAX_NAME_CHARS = 48
MODEL_FIELD = "model"


def check_set_name(name: str, field: str = MODEL_FIELD) -> str:
    """``name`` if it is a valid model-set name (400 naming ``field`` otherwise)."""
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not NAME_RULE.match(name):
        raise InputError(field, f"must be 1-{MAX_NAME_CHARS} lower-case letters, digits and single hyphens "
                         f"(a model set name), got {name!r}")  # fmt: skip
    return name


def set_or_default(name: str | None) -> str:
    """The set a request names (None or empty: :data:`DEFAULT_SET`), checked."""
    return DEFAULT_SET if not name else check_set_name(name)


def network_model(network: str, model_set: str = DEFAULT_SET) -> str:
    """The Triton model that runs ``network`` for ``model_set`` (shared networks have one name for all sets)."""
    if network not in SET_NETWORKS or model_set == DEFAULT_SET:
        return network
    return f"{model_set}{SEPARATOR}{network}"


def set_models(model_set: str) -> tuple[str, ...]:
    """The Triton models of ``model_set``'s own networks."""
    return tuple(network_model(n, model_set) for n in SET_NETWORKS)


def set_of_model(model: str) -> str | None:
    """The set whose ``t2s`` network ``model`` is (``t2s`` -> default, ``NAME__t2s`` -> NAME), else None.

    A set is listed by its ``t2s`` model: every export writes all four networks of a set together."""
    if model == "t2s":
        return DEFAULT_SET
    name, sep, network = model.rpartition(SEPARATOR)
    return name if sep and network == "t2s" and NAME_RULE.match(name) else None


def startup_models(repo: Path, load_sets: str = "") -> list[str]:
    """The models Triton loads when it starts on ``repo``: every model but the named sets' networks (those load
    on demand), except the sets ``load_sets`` names (comma-separated, or ``all``: every set loads at start, as
    several Triton replicas behind one load balancer need, since each loads on its own)."""
    wanted = {s.strip() for s in load_sets.split(",") if s.strip()}

    def loads(name: str) -> bool:
        model_set, sep, _ = name.rpartition(SEPARATOR)
        return not sep or "all" in wanted or model_set in wanted

    return sorted(d.name for d in Path(repo).iterdir() if (d / "config.pbtxt").is_file() and loads(d.name))
