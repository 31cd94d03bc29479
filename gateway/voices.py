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
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool

from gsv_triton.errors import InputError, UserError

from .errors import GatewayError

FEATURES = ("prompt_phone_ids", "prompt_bert", "prompt_codes", "ge")
ID_PREFIX = "voice_"
ID_RANDOM_BYTES = 8
_ID = re.compile(r"^voice_[0-9a-f]{16}$")
MAX_NAME_CHARS = 100
# Loaded features kept in memory (a voice is a few hundred kB at full size: BERT rows dominate).
FEATURE_CACHE_SIZE = 64


class VoiceNotFound(GatewayError):
    status = 404


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


@dataclass(frozen=True)
class Voice:
    info: VoiceInfo
    features: dict[str, np.ndarray]


def check_voice_id(voice_id: str, field: str = "voice_id") -> str:
    """``voice_id`` if it has the shape of an id (404 otherwise: no such voice can exist)."""
    if not _ID.match(voice_id):
        raise VoiceNotFound(f"{field}: no voice {voice_id!r} (ids look like voice_0123456789abcdef)", field)
    return voice_id


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
        reference_seconds: float, features: dict[str, np.ndarray],
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
        )
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.ascontiguousarray(features[k]) for k in FEATURES})
        _write_atomic(self._path(voice_id, ".npz"), buffer.getvalue())
        _write_atomic(self._path(voice_id, ".ref"), reference)
        _write_atomic(self._path(voice_id, ".json"), json.dumps(asdict(info), ensure_ascii=False).encode("utf-8"))
        return info

    def info(self, voice_id: str, field: str = "voice_id") -> VoiceInfo:
        check_voice_id(voice_id, field)
        try:
            return VoiceInfo(**json.loads(self._path(voice_id, ".json").read_text("utf-8")))
        except FileNotFoundError:
            raise VoiceNotFound(f"{field}: no voice {voice_id!r} in the voice library", field) from None

    def get(self, voice_id: str, field: str = "voice_id") -> Voice:
        """The voice with its features (cached in memory after the first load)."""
        cached = self.cached(voice_id)
        if cached is not None:
            return cached
        info = self.info(voice_id, field)
        try:
            with np.load(self._path(voice_id, ".npz")) as data:
                features = {k: data[k] for k in FEATURES}
        except (OSError, KeyError, ValueError) as exc:
            raise VoiceNotFound(f"{field}: the features of voice {voice_id!r} are unreadable ({exc})", field) from None
        voice = Voice(info, features)
        with self._lock:
            self._cache[voice_id] = voice
            while len(self._cache) > FEATURE_CACHE_SIZE:
                self._cache.popitem(last=False)
        return voice

    def list(self) -> list[VoiceInfo]:
        voices = []
        for path in self.root.glob(f"{ID_PREFIX}*.json"):
            try:
                voices.append(VoiceInfo(**json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                continue  # a file being replaced or edited by hand: not a voice
        return sorted(voices, key=lambda v: (v.created_at, v.id))

    def delete(self, voice_id: str) -> VoiceInfo:
        info = self.info(voice_id)
        # The JSON goes first: from then on the voice does not exist, whatever happens to the rest.
        for suffix in (".json", ".npz", ".ref"):
            self._path(voice_id, suffix).unlink(missing_ok=True)
        with self._lock:
            self._cache.pop(voice_id, None)
        return info


async def load_voice(store: VoiceStore, voice_id: str, field: str = "voice_id") -> Voice:
    """A stored voice for a request: from memory when cached, else read in a worker thread."""
    check_voice_id(voice_id, field)
    return store.cached(voice_id) or await run_in_threadpool(store.get, voice_id, field)
