"""Reference audio named by path (upstream api.py's ``refer_wav_path``) and the default reference (``-dr -dt -dl``).

A client-supplied path is read only if its real location (symlinks and ``..`` resolved) lies inside the
configured reference directory; every other path is refused with 403 before the file system is asked whether
it exists, so the answer reveals nothing about files outside. Relative paths are taken relative to that
directory. Without a configured directory no path is ever read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gsv_triton.audio import validate_reference
from gsv_triton.errors import InputError, UserError
from gsv_triton.settings import Limits, Settings

from .errors import ForbiddenPath

PATH_FIELD = "refer_wav_path"
NO_ROOT_MESSAGE = (
    "refer_wav_path: reading reference files is disabled on this gateway; "
    "start it with --refer-root DIR (or GSV_REFER_ROOT) to allow files inside DIR"
)


@dataclass(frozen=True)
class Reference:
    """A reference clip with its transcript and language (the default one, or one named by a request)."""

    audio: bytes
    prompt_text: str
    prompt_language: str
    path: str = ""


def confined_path(raw: str, root: Path | None) -> Path:
    """The real path of ``raw`` if it lies inside ``root``; ForbiddenPath (403) otherwise."""
    if root is None:
        raise ForbiddenPath(NO_ROOT_MESSAGE, PATH_FIELD)
    if "\x00" in raw:
        raise InputError(PATH_FIELD, "contains a NUL character")
    real_root = root.resolve()
    candidate = Path(raw) if os.path.isabs(raw) else real_root / raw
    # strict=False: a missing file still resolves, so inside-or-outside is decided before existence.
    real = candidate.resolve(strict=False)
    if not real.is_relative_to(real_root):
        raise ForbiddenPath(f"refer_wav_path: {raw!r} is outside the reference directory", PATH_FIELD)
    return real


def read_confined(raw: str, root: Path | None, limits: Limits) -> bytes:
    """Read a reference file named by a client (blocking: call from a worker thread)."""
    path = confined_path(raw, root)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(PATH_FIELD, f"{raw!r} is not a file")
        if size > limits.max_upload_bytes:
            raise InputError(
                PATH_FIELD, f"the file is {size} bytes; the limit is {limits.max_upload_bytes} bytes", 413
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(PATH_FIELD, f"{raw!r} does not exist in the reference directory") from None
    except OSError as exc:
        raise InputError(PATH_FIELD, f"cannot read {raw!r}: {exc.strerror}") from None


def load_reference(raw: str, prompt_text: str, prompt_language: str, root: Path | None, limits: Limits) -> Reference:
    """A client-named reference, read (blocking); voice_clone checks the clip when it is used."""
    audio = read_confined(raw, root, limits)
    return Reference(audio=audio, prompt_text=prompt_text, prompt_language=prompt_language, path=raw)


def load_default_reference(settings: Settings) -> Reference | None:
    """The operator's ``-dr/-dt/-dl`` reference (any readable path; the operator is trusted), or None.

    Raises UserError (one line at start-up) when the file is missing or is not a usable reference.
    """
    if settings.default_refer_path is None:
        return None
    path = Path(settings.default_refer_path)
    try:
        audio = path.read_bytes()
    except OSError as exc:
        raise UserError(f"default reference {path}: {exc.strerror}") from None
    try:
        validate_reference(audio, settings.limits)  # once, at start-up: a bad file stops the gateway there
    except InputError as exc:
        raise UserError(f"default reference {path}: {exc.message}") from None
    assert settings.default_refer_text is not None and settings.default_refer_language is not None
    return Reference(
        audio=audio,
        prompt_text=settings.default_refer_text,
        prompt_language=settings.default_refer_language,
        path=str(path),
    )


def check_startup_paths(settings: Settings) -> Reference | None:
    """Start-up checks of the configured paths (UserError, one line); returns the default reference."""
    root = settings.refer_root
    if root is not None and not Path(root).is_dir():
        raise UserError(f"reference directory {root} (--refer-root / GSV_REFER_ROOT) is not a directory")
    return load_default_reference(settings)


class ReferenceStore:
    """The current default reference. Replaced whole (one attribute store), so readers never see a mix."""

    def __init__(self, default: Reference | None) -> None:
        self.current = default
