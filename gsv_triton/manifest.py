"""``REPO/gsv_manifest.json``: what an export wrote, in one dataclass that export writes and serving reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gsv_triton.errors import UserError
from gsv_triton.settings import OUTPUT_SAMPLE_RATE

MANIFEST_FILE = "gsv_manifest.json"
MANIFEST_FORMAT = 1
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
        common = {k: v for k, v in data.items() if k in known}
        sovits = common.pop("sovits")
        return cls(
            **common,
            sovits=SovitsShape(int(sovits["inter_channels"]), int(sovits["gin_channels"])),
            flags={k: v for k, v in data.items() if k not in known},
        )

    def write(self, repo: Path) -> Path:
        path = Path(repo) / MANIFEST_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, default=str))
        return path

    @classmethod
    def read(cls, repo: Path) -> Manifest:
        path = Path(repo) / MANIFEST_FILE
        try:
            return cls.from_json(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read {path} (written by `gsv-triton export`): {exc!r}") from exc
