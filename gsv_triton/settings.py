"""Every limit and default of the serving path, and the one settings object of every ``GSV_*`` variable.

:class:`Settings` (pydantic-settings) reads the environment once, for the gateway and for the Triton models
alike: the models take ``Settings().limits``, the gateway the whole object (its CLI flags override it), so one
``GSV_MAX_TEXT_CHARS=2000`` raises the limit everywhere. The audio constants and :class:`SamplingDefaults` are
fixed by the GPT-SoVITS models, not settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Audio constants of GPT-SoVITS v1/v2 (spec sections 0, 2.3 and 3).
SSL_SAMPLE_RATE = 16_000
OUTPUT_SAMPLE_RATE = 32_000
SAMPLES_PER_TOKEN = 1280  # one 25 Hz semantic token = 40 ms at 32 kHz
SSL_ZERO_TAIL = 9600  # 0.6 s of zeros appended to the 16 kHz reference before HuBERT
N_FFT = 2048
HOP_LENGTH = 640
WIN_LENGTH = 2048
SPEC_EPS = 1e-8
EOS_TOKEN = 1024


@dataclass(frozen=True)
class Limits:
    """Input limits; each one is documented in README under "Limits"."""

    max_upload_bytes: int = 20 * 1024 * 1024
    min_reference_seconds: float = 3.0
    max_reference_seconds: float = 10.0
    max_text_chars: int = 1000
    # Audio one request may produce (silences included); over it: 422, before any network runs when the
    # sentence pieces' silences alone exceed it, else as soon as the generated tokens do (before decoding).
    max_output_seconds: float = 300.0
    # Silence (peak below this, in full scale) makes a reference unusable.
    silence_peak: float = 1e-4


@dataclass(frozen=True)
class SamplingDefaults:
    """Upstream api.py defaults (spec 2.1.5)."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    speed: float = 1.0
    noise_scale: float = 0.5
    max_new_tokens: int = 1500
    min_tokens_before_eos: int = 11


ENV_PREFIX = "GSV_"
DEFAULT_TRITON_URL = "127.0.0.1:8001"
DEFAULT_MODEL_NAME = "voice_clone"
# The seed contract's own timeout (voice_cloner.py waited 60 s for the GPT-SoVITS service).
DEFAULT_REQUEST_TIMEOUT_S = 60.0
# /health must answer quickly even when Triton hangs: a probe gives up after this long.
DEFAULT_HEALTH_TIMEOUT_S = 2.0
# Triton's voice_clone runs 2 requests at once and queues 16 (model_repository/voice_clone/config.pbtxt): one
# gateway never meets Triton's limit, and more in flight would only wait longer.
DEFAULT_MAX_IN_FLIGHT = 16
# Model sets (fine-tunes) loaded at once in one Triton: about 2 GiB each at full size in fp32 besides 6.2 GiB for
# the shared part (perf/README.md, "Many model sets"): 4 take about 12.5 GiB, and 24 GiB holds up to 8.
DEFAULT_MAX_LOADED_MODEL_SETS = 4
# How long a request waits for its model set to load (a full-size set loads in about 10 s on 2 cores).
DEFAULT_MODEL_LOAD_TIMEOUT_S = 120.0
# Slow clients (README "Production: reverse proxy and slow clients"): a request's headers must arrive within
# HEADER_READ, its body within BODY_READ of the headers; an idle keep-alive connection is closed after KEEP_ALIVE.
DEFAULT_HEADER_READ_TIMEOUT_S = 10.0
DEFAULT_BODY_READ_TIMEOUT_S = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 5.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
_DEFAULT_LIMITS = Limits()


def default_voice_dir() -> Path:
    """Where stored voices live unless GSV_VOICE_DIR says otherwise (XDG data directory)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gsv-triton" / "voices"


class Settings(BaseSettings):
    """Every ``GSV_*`` environment variable (field ``x`` is ``GSV_X``); see README "Settings"."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # -- the host's tritonserver ------------------------------------------------------------------------------
    # A tritonserver binary to run instead of the container's or the nvidia-pytriton wheel's.
    tritonserver: str | None = None

    # -- the gateway's connection to Triton ---------------------------------------------------------------
    # gRPC endpoint of tritonserver ("host:port"; a leading grpc:// is accepted): streaming and /health.
    triton_url: str = DEFAULT_TRITON_URL
    # Its HTTP endpoint ("host:port"; a leading http:// is accepted). When set, unary inference (every route
    # but the streaming one) goes over it (tritonclient.http.aio) instead of gRPC.
    triton_http_url: str | None = None
    model_name: str = DEFAULT_MODEL_NAME
    request_timeout_s: float = Field(DEFAULT_REQUEST_TIMEOUT_S, gt=0)
    health_timeout_s: float = Field(DEFAULT_HEALTH_TIMEOUT_S, gt=0)
    # Requests the gateway sends to Triton at once; more get 503 with Retry-After at once (README "Limits").
    max_in_flight: int = Field(DEFAULT_MAX_IN_FLIGHT, ge=1)
    # -- slow clients: bounds on reading a request (408/431 beyond them) and on idle connections ---------------
    header_read_timeout_s: float = Field(DEFAULT_HEADER_READ_TIMEOUT_S, gt=0)
    body_read_timeout_s: float = Field(DEFAULT_BODY_READ_TIMEOUT_S, gt=0)
    keep_alive_timeout_s: float = Field(DEFAULT_KEEP_ALIVE_TIMEOUT_S, gt=0)
    max_header_bytes: int = Field(DEFAULT_MAX_HEADER_BYTES, gt=0)
    # -- the gateway's routes -----------------------------------------------------------------------------
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
    # api_v2's GET /control?command=exit stops the gateway only when the operator allows it (else 403).
    allow_control_exit: bool = False
    # The exported repository Triton serves (its gsv_manifest.json): api_v2's /set_gpt_weights and
    # /set_sovits_weights compare a path with the checkpoints it was exported from (None: they answer 403).
    model_repository: Path | None = None
    # -- model sets (gsv_triton.model_sets): several fine-tunes in one Triton, loaded on demand -------------------
    # The set a request that names none gets.
    default_model: str = "default"
    # Sets loaded at once; loading one more unloads the least recently used set that has no request in flight.
    max_loaded_model_sets: int = Field(DEFAULT_MAX_LOADED_MODEL_SETS, ge=1)
    model_load_timeout_s: float = Field(DEFAULT_MODEL_LOAD_TIMEOUT_S, gt=0)
    # tritonserver (gsv-triton serve/up): named sets loaded at start besides the default one, comma-separated, or
    # "all". Several Triton replicas behind one load balancer each load on their own: give them "all".
    load_model_sets: str = ""

    # -- input limits (the gateway's body cap; every rule inside Triton) ----------------------------------
    max_upload_bytes: int = Field(_DEFAULT_LIMITS.max_upload_bytes, gt=0)
    min_reference_seconds: float = Field(_DEFAULT_LIMITS.min_reference_seconds, ge=0)
    max_reference_seconds: float = Field(_DEFAULT_LIMITS.max_reference_seconds, gt=0)
    max_text_chars: int = Field(_DEFAULT_LIMITS.max_text_chars, gt=0)
    max_output_seconds: float = Field(_DEFAULT_LIMITS.max_output_seconds, gt=0)
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

    @field_validator("default_model")
    @classmethod
    def _model_set_name(cls, value: str) -> str:
        from gsv_triton.model_sets import NAME_RULE

        if not NAME_RULE.match(value):
            raise ValueError("a model set name: lower-case letters, digits and single hyphens")
        return value

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
    def _reference_triple(self) -> Settings:
        given = [self.default_refer_path, self.default_refer_text, self.default_refer_language]
        if any(v is not None for v in given) and not all(v not in (None, "") for v in given):
            # api.py uses its default only when all three are set; a partial one is a typo worth a clear error.
            raise ValueError("the default reference needs all three: path (-dr), text (-dt) and language (-dl)")
        if self.min_reference_seconds > self.max_reference_seconds:
            raise ValueError("min_reference_seconds must not exceed max_reference_seconds")
        return self

    @property
    def limits(self) -> Limits:
        """The input limits as the shared :class:`Limits` object the frontends and Triton models take."""
        return Limits(
            max_upload_bytes=self.max_upload_bytes,
            min_reference_seconds=self.min_reference_seconds,
            max_reference_seconds=self.max_reference_seconds,
            max_text_chars=self.max_text_chars,
            max_output_seconds=self.max_output_seconds,
            silence_peak=self.silence_peak,
        )

    @property
    def api_key_set(self) -> frozenset[str]:
        """The configured API keys (empty: no authentication)."""
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
