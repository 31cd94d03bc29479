"""api_v2's reference paths: confined reads, the ``/set_refer_audio`` reference, and ``aux_ref_audio_paths``.

Every path a client sends is confined exactly as api.py's ``refer_wav_path`` is (:func:`gateway.references.
confined_path`: relative to the reference directory, ``..``, absolute paths outside and symlinks out refused
before the file system is asked), and answered with 403 naming the api_v2 field. A NUL byte is a 403 here too:
such a path can name no file inside the directory.

Auxiliary references average their timbre as upstream does (``SynthesizerTrn.decode`` stacks one ``ge`` per
reference and takes the mean): the main reference's features come from Triton's ``voice_encode`` (prompt phones,
BERT, codes and ``ge``), each auxiliary reference gives its ``ge`` the same way, and ``voice_clone`` gets the main
reference's prompt with the mean ``ge``. Every ``ge`` Triton returns is already the post-PReLU vector of v2Pro
(the one upstream averages), so the mean is the same for every version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool

from gsv_triton.audio import validate_reference
from gsv_triton.errors import InputError, renamed
from gsv_triton.settings import Limits

from .errors import ForbiddenPath
from .references import PATH_FIELD, confined_path, read_confined
from .service import VoiceCloneService
from .voices import FEATURES

NO_ROOT = ("reading files named by clients is disabled on this gateway; start it with --refer-root DIR "
           "(or GSV_REFER_ROOT) to allow files inside DIR")  # fmt: skip


def confine(raw: str, root: Path | None, field: str, where: str = "the reference directory") -> Path:
    """``raw``'s real path inside ``root`` (403 naming ``field`` otherwise; ``where`` names ``root`` to clients)."""
    if root is None:
        raise ForbiddenPath(f"{field}: {NO_ROOT}", field)
    if "\x00" in raw:
        raise ForbiddenPath(f"{field}: {raw!r} contains a NUL character", field)
    try:
        return confined_path(raw, root)
    except ForbiddenPath:
        raise ForbiddenPath(f"{field}: {raw!r} is outside {where}", field) from None


def read_reference(raw: str, root: Path | None, limits: Limits, field: str) -> bytes:
    """The bytes of the confined file ``raw`` (blocking: call from a worker thread); 400/413 naming ``field``."""
    confine(raw, root, field)
    try:
        return read_confined(raw, root, limits)
    except InputError as exc:
        raise renamed(exc, {PATH_FIELD: field}) from None


def checked_reference(raw: str, root: Path | None, limits: Limits, field: str) -> bytes:
    """:func:`read_reference`, then every reference rule (decodable, 3-10 s, not silent; blocking)."""
    audio = read_reference(raw, root, limits, field)
    try:
        validate_reference(audio, limits)
    except InputError as exc:
        raise InputError(field, exc.message, exc.status) from None
    return audio


@dataclass(frozen=True)
class StoredReference:
    """The reference ``/set_refer_audio`` chose: used by ``/tts`` requests that send no ``ref_audio_path``."""

    path: str
    audio: bytes


class ApiV2State:
    """api_v2's per-process state (upstream keeps it in its TTS pipeline): the reference set by path and the
    model set ``/set_*_weights`` chose (None: the gateway's default)."""

    def __init__(self) -> None:
        self.reference: StoredReference | None = None
        self.model: str | None = None


def state_of(app_state: object) -> ApiV2State:
    """The app's :class:`ApiV2State`, created on first use (the lifespan need not know about api_v2)."""
    state = getattr(app_state, "api_v2", None)
    if state is None:
        state = ApiV2State()
        setattr(app_state, "api_v2", state)  # noqa: B010 - app.state is a plain attribute bag
    return state


def mean_ge(ges: list[np.ndarray]) -> np.ndarray:
    """Upstream's average of several references' timbre vectors (float32 [gin])."""
    return np.mean(np.stack([np.ravel(g).astype(np.float32) for g in ges]), axis=0).astype(np.float32)


def with_mean_ge(main: Mapping[str, np.ndarray], ges: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``main``'s stored-voice features with ``ge`` replaced by the mean of ``ges``."""
    return {name: main[name] for name in FEATURES if name != "ge"} | {"ge": mean_ge(ges)}


async def averaged_voice(
    service: VoiceCloneService, main: bytes, aux: list[bytes], prompt_text: str, prompt_lang: str,
    request_id: str, model: str | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """voice_clone's stored-voice inputs for ``main`` with ``ge`` averaged over ``main`` and every ``aux``.

    ``voice_encode`` needs a transcript, so each auxiliary clip is sent with the main prompt; only its ``ge`` is
    kept (the prompt side costs a cached text frontend and one BERT call).
    """
    names = {"reference_audio": "ref_audio_path", "prompt_language": "prompt_lang"}
    _, features = await service.encode_voice(main, prompt_text, prompt_lang, request_id, names, model)
    ges = [features["ge"]]
    for index, clip in enumerate(aux):
        aux_names = {**names, "reference_audio": f"aux_ref_audio_paths[{index}]"}
        _, aux_features = await service.encode_voice(clip, prompt_text, prompt_lang, request_id, aux_names, model)
        ges.append(aux_features["ge"])
    return with_mean_ge(features, ges)


async def load_references(
    paths: tuple[str, ...], root: Path | None, limits: Limits, field: str = "aux_ref_audio_paths"
) -> list[bytes]:
    """The clips named by ``paths`` (each confined; errors name ``field[i]``)."""
    clips = []
    for index, raw in enumerate(paths):
        clips.append(await run_in_threadpool(read_reference, raw, root, limits, f"{field}[{index}]"))
    return clips
