"""``REPO/gsv_manifest.json``: what an export wrote, in one dataclass that export writes and serving reads.

A repository may hold several model sets (:mod:`gsv_triton.model_sets`): the file's top level describes the
default set (as it did before sets existed), ``model_sets`` maps every other set's name to its own manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gsv_triton.errors import UserError
from gsv_triton.model_sets import DEFAULT_SET
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

MANIFEST_FILE = "gsv_manifest.json"
MANIFEST_FORMAT = 1
MODEL_SETS_KEY = "model_sets"
# SoVITS versions whose timbre vector needs the reference's speaker vector (speaker_encoder, spec 2.2.5).
PRO_VERSIONS = ("v2Pro", "v2ProPlus")


def needs_speaker_vector(sovits_version: str) -> bool:
    return sovits_version in PRO_VERSIONS


@dataclass(frozen=True)
class SovitsShape:
    inter_channels: int
    gin_channels: int


@dataclass(frozen=True)
class Manifest:
    """Versions, configs, sources and files of one export (every target).

    ``flags`` are the target's own keys (fp16, quantize, ort_optimized, runtime...), stored at the top level of
    the JSON file next to the common keys.
    """

    target: str
    symbol_version: str
    sovits_version: str
    sovits: SovitsShape
    sampling_rate: int = OUTPUT_SAMPLE_RATE
    t2s: dict[str, Any] = field(default_factory=dict)  # T2SConfig fields plus max_sec
    sources: dict[str, str] = field(default_factory=dict)  # gpt, sovits, hubert, bert
    files: dict[str, str] = field(default_factory=dict)  # network name -> path relative to the repository
    flags: dict[str, Any] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    @property
    def needs_speaker_vector(self) -> bool:
        return needs_speaker_vector(self.sovits_version)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        flags = data.pop("flags")
        return {"format": data.pop("format"), "target": data.pop("target"), **flags, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k != MODEL_SETS_KEY}
        common = {k: v for k, v in data.items() if k in known}
        sovits = common.pop("sovits")
        return cls(
            **common,
            sovits=SovitsShape(int(sovits["inter_channels"]), int(sovits["gin_channels"])),
            flags={k: v for k, v in data.items() if k not in known},
        )

    def write(self, repo: Path, model_set: str = DEFAULT_SET) -> Path:
        """Record this manifest as ``model_set``'s in ``repo`` (the other sets' entries stay)."""
        data = _read_raw(repo) if (Path(repo) / MANIFEST_FILE).is_file() else {}
        if model_set == DEFAULT_SET:
            data = {**self.to_json(), MODEL_SETS_KEY: data.get(MODEL_SETS_KEY, {})}
        else:
            data.setdefault(MODEL_SETS_KEY, {})[model_set] = self.to_json()
        if not data[MODEL_SETS_KEY]:
            del data[MODEL_SETS_KEY]
        return _write_raw(repo, data)

    @classmethod
    def read(cls, repo: Path, model_set: str = DEFAULT_SET) -> Manifest:
        """``model_set``'s manifest in ``repo`` (UserError naming the sets there when it has none)."""
        sets = cls.read_sets(repo)
        if model_set not in sets:
            raise UserError(f"{Path(repo) / MANIFEST_FILE} has no model set {model_set!r}; it has: "
                            f"{', '.join(sorted(sets)) or 'none'}")  # fmt: skip
        return sets[model_set]

    @classmethod
    def read_sets(cls, repo: Path) -> dict[str, Manifest]:
        """Every model set of ``repo`` by name (the default set first, where there is one)."""
        data = _read_raw(repo)
        try:
            sets = {DEFAULT_SET: cls.from_json(data)} if "target" in data else {}
            sets.update({name: cls.from_json(entry) for name, entry in data.get(MODEL_SETS_KEY, {}).items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read {Path(repo) / MANIFEST_FILE} (written by `gsv-triton export`): "
                            f"{exc!r}") from exc  # fmt: skip
        return sets


def remove_model_set(repo: Path, model_set: str) -> None:
    """Drop ``model_set``'s entry (a named set; the default set is the repository's top level)."""
    data = _read_raw(repo)
    data.get(MODEL_SETS_KEY, {}).pop(model_set, None)
    if not data.get(MODEL_SETS_KEY):
        data.pop(MODEL_SETS_KEY, None)
    _write_raw(repo, data)


def _read_raw(repo: Path) -> dict[str, Any]:
    path = Path(repo) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} (written by `gsv-triton export`): {exc!r}") from exc
    if not isinstance(data, dict):
        raise UserError(f"cannot read {path} (written by `gsv-triton export`): not a JSON object")
    return data


def _write_raw(repo: Path, data: dict[str, Any]) -> Path:
    path = Path(repo) / MANIFEST_FILE
    staged = path.with_suffix(".json.tmp")
    staged.write_text(json.dumps(data, indent=2, default=str))
    staged.replace(path)  # readers (running orchestrators) never see half a file
    return path
