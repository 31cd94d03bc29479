"""The gateway's one settings object, read from ``GSV_*`` environment variables (CLI flags override them).

The input limits use the same variable names and defaults as :class:`gsv_triton.settings.Limits`, so one
``GSV_MAX_TEXT_CHARS=2000`` raises the limit in the gateway and in the Triton models alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gsv_triton.settings import Limits

ENV_PREFIX = "GSV_"
DEFAULT_TRITON_URL = "127.0.0.1:8001"
DEFAULT_MODEL_NAME = "voice_clone"
# The seed contract's own timeout (voice_cloner.py waited 60 s for the GPT-SoVITS service).
DEFAULT_REQUEST_TIMEOUT_S = 60.0
# /health must answer quickly even when Triton hangs: a probe gives up after this long.
DEFAULT_HEALTH_TIMEOUT_S = 2.0
_DEFAULT_LIMITS = Limits()


def default_voice_dir() -> Path:
    """Where stored voices live unless GSV_VOICE_DIR says otherwise (XDG data directory)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gsv-triton" / "voices"


class GatewaySettings(BaseSettings):
    """Everything the gateway reads from its environment; see README "Gateway settings"."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # gRPC endpoint of tritonserver ("host:port"; a leading grpc:// is accepted).
    triton_url: str = DEFAULT_TRITON_URL
    # Its HTTP endpoint ("host:port"; a leading http:// is accepted). When set, unary inference (every route
    # but the streaming one) goes over it: the lean binary client costs a third of gRPC's CPU per call.
    triton_http_url: str | None = None
    model_name: str = DEFAULT_MODEL_NAME
    request_timeout_s: float = Field(DEFAULT_REQUEST_TIMEOUT_S, gt=0)
    health_timeout_s: float = Field(DEFAULT_HEALTH_TIMEOUT_S, gt=0)
    # Upstream api.py compatibility: refer_wav_path is read only inside this directory (None: never).
    refer_root: Path | None = None
    # api.py's -dr / -dt / -dl: the default reference, used when a request lacks a reference field.
    default_refer_path: Path | None = None
    default_refer_text: str | None = None
    default_refer_language: str | None = None
    # api.py's -cp: cut punctuation for requests that send none (None: the Triton model's default).
    default_cut_punc: str | None = None
    # Optional cap on semantic tokens per sentence piece, forwarded to Triton (None: the model's 1500).
    max_new_tokens: int | None = Field(None, ge=1)
    log_level: str = "INFO"
    # The voice library (POST /v1/voices): one directory of files per voice.
    voice_dir: Path = Field(default_factory=default_voice_dir)
    # Bearer API keys, comma-separated; empty: the gateway is open (see README "Access").
    api_keys: str = ""

    # Input limits (same names, same defaults as gsv_triton.settings.Limits).
    max_upload_bytes: int = Field(_DEFAULT_LIMITS.max_upload_bytes, gt=0)
    min_reference_seconds: float = Field(_DEFAULT_LIMITS.min_reference_seconds, ge=0)
    max_reference_seconds: float = Field(_DEFAULT_LIMITS.max_reference_seconds, gt=0)
    max_text_chars: int = Field(_DEFAULT_LIMITS.max_text_chars, gt=0)
    silence_peak: float = Field(_DEFAULT_LIMITS.silence_peak, ge=0)

    @field_validator("triton_url")
    @classmethod
    def _grpc_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(("http://", "https://")):
            raise ValueError(
                "the gateway talks gRPC to Triton: give its gRPC endpoint as host:port (default port 8001)"
            )
        return value.removeprefix("grpc://").rstrip("/")

    @field_validator("triton_http_url")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().removeprefix("http://").rstrip("/")
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or "/" in value:
            raise ValueError("give Triton's HTTP endpoint as host:port (default port 8000)")
        return value

    @model_validator(mode="after")
    def _reference_triple(self) -> GatewaySettings:
        given = [self.default_refer_path, self.default_refer_text, self.default_refer_language]
        if any(v is not None for v in given) and not all(v not in (None, "") for v in given):
            # api.py uses its default only when all three are set; a partial one is a typo worth a clear error.
            raise ValueError("the default reference needs all three: path (-dr), text (-dt) and language (-dl)")
        if self.min_reference_seconds > self.max_reference_seconds:
            raise ValueError("min_reference_seconds must not exceed max_reference_seconds")
        return self

    @property
    def limits(self) -> Limits:
        """The input limits as the shared :class:`Limits` object the frontends take."""
        return Limits(
            max_upload_bytes=self.max_upload_bytes,
            min_reference_seconds=self.min_reference_seconds,
            max_reference_seconds=self.max_reference_seconds,
            max_text_chars=self.max_text_chars,
            silence_peak=self.silence_peak,
        )

    @property
    def has_default_reference(self) -> bool:
        return self.default_refer_path is not None

    @property
    def api_key_set(self) -> frozenset[str]:
        """The configured API keys (empty: no authentication)."""
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
