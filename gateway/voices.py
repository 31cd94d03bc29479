"""The voice library: a voice's reference side (from Triton's ``voice_encode``), stored once, used by id.

One store, plain files under ``GSV_VOICE_DIR`` (``--voice-dir``), so voices survive gateway restarts and an
operator can back them up or delete them with ordinary tools. Per voice ``<id>``:

* ``<id>.npz``: the features ``voice_clone`` takes instead of a clip (``prompt_phone_ids`` int64 [P],
  ``prompt_bert`` float32 [1024, P], ``prompt_codes`` int64 [Ty], ``ge`` float32 [gin]), stored exactly;
* ``<id>.ref``: the uploaded clip as sent (so voices can be encoded again after the models change);
* ``<id>.json``: the metadata (:class:`VoiceInfo`). It is written last: a voice exists once its JSON does.

Every file is written to a temporary name and renamed, so a crash never leaves a half voice behind. Features
depend on the exported models: after replacing the models, create the voices again (their ``.ref`` clips
and metadata hold everything needed).

Faults of the files are answered, never a bare 500: a directory that is missing, read-only or full is a 507
naming the problem (the gateway keeps serving, and the next request works once it is fixed); a voice whose
files are damaged is a 422 naming the voice when it is read or used, is left out of the list (logged), and
``DELETE`` still removes it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import re
import secrets
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from gsv_triton.errors import InputError, UserError
from gsv_triton.model_sets import DEFAULT_SET, MODEL_FIELD

from .errors import GatewayError

FEATURES = ("prompt_phone_ids", "prompt_bert", "prompt_codes", "ge")
ID_PREFIX = "voice_"
ID_RANDOM_BYTES = 8
_ID = re.compile(r"^voice_[0-9a-f]{16}$")
MAX_NAME_CHARS = 100
# Loaded features kept in memory (a voice is a few hundred kB at full size: BERT rows dominate).
FEATURE_CACHE_SIZE = 64
SUFFIXES = (".json", ".npz", ".ref")  # the metadata first: deleting it first makes the voice gone at once
STATUS_UNREADABLE = 422
STATUS_STORAGE = 507
DIRECTORY = "the voice directory (GSV_VOICE_DIR)"
# What a damaged .npz raises from np.load or from reading one of its arrays.
_FEATURE_READ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)

log = logging.getLogger("gsv_gateway.voices")


class VoiceNotFound(GatewayError):
    status = 404


class VoiceUnreadable(GatewayError):
    """A stored voice whose files are damaged (truncated, edited, not ours): it can only be deleted."""

    status = STATUS_UNREADABLE


class VoiceStorageError(GatewayError):
    """The voice directory cannot be used (missing, read-only, full): the operator must fix it."""

    status = STATUS_STORAGE


def storage_error(exc: OSError, action: str, root: Path) -> VoiceStorageError:
    """The client's 507 for ``exc`` raised while ``action`` (the path goes to the log, not to the client)."""
    if exc.errno == errno.ENOENT:
        problem = "is missing"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem = "is not writable"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        problem = "is full"
    elif exc.errno == errno.ENOTDIR:
        problem = "is not a directory"
    else:
        problem = "cannot be used"
    reason = exc.strerror or type(exc).__name__
    log.error("voice library fault", extra={"fields": {"action": action, "directory": str(root), "error": reason}})
    return VoiceStorageError(f"voice library: cannot {action}: {DIRECTORY} {problem} ({reason}); "
                             "the gateway's operator must fix it")  # fmt: skip


@dataclass(frozen=True)
class VoiceInfo:
    """A stored voice as clients see it."""

    id: str
    name: str
    prompt_text: str
    prompt_language: str
    reference_seconds: float
    prompt_phones: int
    prompt_tokens: int
    created_at: float  # Unix seconds
    # The model set whose SoVITS encoded the voice (its codes and ge belong to it); voices stored before model
    # sets existed were encoded with the default set.
    model: str = DEFAULT_SET


@dataclass(frozen=True)
class Voice:
    info: VoiceInfo
    features: dict[str, np.ndarray]


def voice_model_set(info: VoiceInfo, requested: str | None, field: str = MODEL_FIELD) -> str:
    """The model set a request with this voice speaks with: the voice's own (422 when the request names another,
    since the voice's codes and ge come from its set's SoVITS)."""
    if requested and requested != info.model:
        raise InputError(field, f"voice {info.id!r} was stored under model set {info.model!r}, not {requested!r}: "
                         "send no model with it, or store the voice again under that set", status=422)  # fmt: skip
    return info.model


def check_voice_id(voice_id: str, field: str = "voice_id") -> str:
    """``voice_id`` if it has the shape of an id (404 otherwise: no such voice can exist)."""
    if not _ID.match(voice_id):
        raise VoiceNotFound(f"{field}: no voice {voice_id!r} (ids look like voice_0123456789abcdef)", field)
    return voice_id


_INFO = TypeAdapter(VoiceInfo)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a disk that filled up mid-write leaves no partial file behind
        raise


def unreadable(voice_id: str, field: str, what: str) -> VoiceUnreadable:
    return VoiceUnreadable(f"{field}: voice {voice_id!r} is unreadable ({what} is damaged); "
                           f"DELETE /v1/voices/{voice_id} removes it", field)  # fmt: skip


class VoiceStore:
    """Voices as files in ``root`` (blocking I/O: call from a worker thread)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"voice directory {self.root} (--voice-dir / GSV_VOICE_DIR): {exc.strerror}") from None
        self._cache: OrderedDict[str, Voice] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, voice_id: str) -> Voice | None:
        """The voice if its features are in memory already (no I/O: safe on the event loop); a hit makes it
        the most recently used."""
        with self._lock:
            voice = self._cache.get(voice_id)
            if voice is not None:
                self._cache.move_to_end(voice_id)
            return voice

    def _path(self, voice_id: str, suffix: str) -> Path:
        return self.root / f"{voice_id}{suffix}"

    def create(
        self, name: str | None, prompt_text: str, prompt_language: str, reference: bytes,
        reference_seconds: float, features: dict[str, np.ndarray], model: str = DEFAULT_SET,
    ) -> VoiceInfo:  # fmt: skip
        if name is not None and len(name) > MAX_NAME_CHARS:
            raise InputError("name", f"is longer than {MAX_NAME_CHARS} characters", 413)
        voice_id = ID_PREFIX + secrets.token_hex(ID_RANDOM_BYTES)
        info = VoiceInfo(
            id=voice_id,
            name=name or voice_id,
            prompt_text=prompt_text,
            prompt_language=prompt_language,
            reference_seconds=round(float(reference_seconds), 3),
            prompt_phones=int(features["prompt_phone_ids"].size),
            prompt_tokens=int(features["prompt_codes"].size),
            created_at=round(time.time(), 3),
            model=model,
        )
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.ascontiguousarray(features[k]) for k in FEATURES})
        files = {
            ".npz": buffer.getvalue(),
            ".ref": reference,
            ".json": json.dumps(asdict(info), ensure_ascii=False).encode("utf-8"),  # last: the voice exists now
        }
        try:
            for suffix, data in files.items():
                _write_atomic(self._path(voice_id, suffix), data)
        except OSError as exc:
            for suffix in files:  # no half voice: what was written goes again
                with contextlib.suppress(OSError):
                    self._path(voice_id, suffix).unlink(missing_ok=True)
            raise storage_error(exc, "store the voice", self.root) from None
        return info

    def check_usable(self) -> None:
        """507 at once when the directory is missing or not a directory (before any work is spent on a voice)."""
        if not self.root.is_dir():
            error = errno.ENOTDIR if self.root.exists() else errno.ENOENT
            raise storage_error(OSError(error, os.strerror(error)), "store the voice", self.root)

    def info(self, voice_id: str, field: str = "voice_id") -> VoiceInfo:
        """The voice's metadata: 404 when there is none, 422 when it is damaged (or names another voice)."""
        check_voice_id(voice_id, field)
        try:
            data = self._path(voice_id, ".json").read_bytes()
        except FileNotFoundError:
            raise VoiceNotFound(f"{field}: no voice {voice_id!r} in the voice library", field) from None
        except OSError as exc:
            raise storage_error(exc, "read the voice", self.root) from None
        try:
            info = _INFO.validate_json(data)
        except ValidationError:
            raise unreadable(voice_id, field, "its metadata file") from None
        if info.id != voice_id:
            raise unreadable(voice_id, field, "its metadata file (it names another voice)")
        return info

    def get(self, voice_id: str, field: str = "voice_id") -> Voice:
        """The voice with its features (cached in memory after the first load)."""
        cached = self.cached(voice_id)
        if cached is not None:
            return cached
        info = self.info(voice_id, field)
        try:
            with np.load(self._path(voice_id, ".npz"), allow_pickle=False) as data:
                features = {k: data[k] for k in FEATURES}
        except _FEATURE_READ_ERRORS as exc:
            log.warning("voice features unreadable", extra={"fields": {"voice_id": voice_id, "error": repr(exc)}})
            raise unreadable(voice_id, field, "its features file") from None
        voice = Voice(info, features)
        with self._lock:
            self._cache[voice_id] = voice
            while len(self._cache) > FEATURE_CACHE_SIZE:
                self._cache.popitem(last=False)
        return voice

    def list(self) -> list[VoiceInfo]:
        """Every readable voice, oldest first; a damaged one is left out and logged (GET or DELETE it by id)."""
        try:
            names = os.listdir(self.root)
        except OSError as exc:
            raise storage_error(exc, "list the voices", self.root) from None
        voices = []
        for name in names:
            voice_id, suffix = os.path.splitext(name)
            if suffix != ".json" or not _ID.match(voice_id):
                continue
            try:
                voices.append(self.info(voice_id))
            except (VoiceNotFound, VoiceUnreadable, VoiceStorageError) as exc:  # deleted meanwhile, or damaged
                log.warning("voice left out of the list", extra={"fields": {"voice_id": voice_id, "error": exc.message}})
        return sorted(voices, key=lambda v: (v.created_at, v.id))

    def delete(self, voice_id: str) -> VoiceInfo | None:
        """Remove every file of ``voice_id``; its metadata, or None when that was damaged (404 when no file
        of it exists)."""
        check_voice_id(voice_id)
        try:
            info: VoiceInfo | None = self.info(voice_id)
        except VoiceUnreadable:
            info = None
        except VoiceNotFound:
            if not any(self._path(voice_id, suffix).exists() for suffix in SUFFIXES):
                raise
            info = None  # the files of a voice whose metadata is gone: not a voice, but removable
        try:
            # The JSON goes first: from then on the voice does not exist, whatever happens to the rest.
            for suffix in SUFFIXES:
                self._path(voice_id, suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(exc, "delete the voice", self.root) from None
        finally:
            with self._lock:
                self._cache.pop(voice_id, None)
        return info


async def load_voice(store: VoiceStore, voice_id: str, field: str = "voice_id") -> Voice:
    """A stored voice for a request: from memory when cached, else read in a worker thread."""
    check_voice_id(voice_id, field)
    return store.cached(voice_id) or await run_in_threadpool(store.get, voice_id, field)
