"""Pydantic models of every JSON body the gateway reads or writes (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VoiceCloneResponse(BaseModel):
    """200 of ``POST /v1/voice-clone``: the seed's contract field by field, plus the seed that was used."""

    task: Literal["voice_clone"] = "voice_clone"
    output_audio_base64: str = Field(description="a complete 16-bit PCM WAV file, base64")
    output_sample_rate: int = Field(description="Hz (32000 for GPT-SoVITS v1/v2)")
    text_length: int = Field(description="characters of `text`")
    output_duration: float = Field(description="seconds of audio in the WAV file")
    processing_time: float = Field(description="seconds the gateway spent on the request")
    service_available: bool = True
    seed: int = Field(description="the sampling seed used; send it back as `seed` to reproduce this audio")


class ErrorResponse(BaseModel):
    """Every error body. ``detail`` suits FastAPI-style clients, ``code``/``message`` suit api.py clients."""

    detail: str = Field(description="'<field>: <rule broken>' for bad inputs, else what went wrong")
    field: str | None = Field(None, description="the request field at fault, when there is one")
    code: int = Field(description="the HTTP status again (api.py's error bodies carry it)")
    message: str
    request_id: str
    service_available: bool = Field(description="false only when Triton is unreachable or not ready (503)")


class ModelState(BaseModel):
    name: str
    version: str = ""
    state: str = ""
    reason: str = ""
    precision: str | None = Field(
        None, description="the loaded network's precision setting (auto: its int8 graph where the CPU has VNNI/AMX "
        "int8 instructions, else fp32; fp32; int8); null for models without one",
    )


class TritonHealth(BaseModel):
    url: str
    live: bool
    ready: bool
    model_ready: bool = Field(description="the voice_clone model answers")
    models: list[ModelState] = []
    error: str | None = None


class SupervisorHealth(BaseModel):
    """What the supervisor of the Triton beside the gateway is doing (``gsv-triton up`` only)."""

    state: str = Field(description="ok, recovering (reloading a model whose stub died), restarting, failed, stopped")
    detail: str = ""
    models: tuple[str, ...] = ()
    stub_deaths: int = 0
    reloads: int = 0
    restarts: int = 0


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="ok; degraded: Triton answers but is replacing a model whose stub died, or requests failed "
        "inside Triton in the last seconds; unavailable: Triton or voice_clone is not ready"
    )
    service_available: bool
    gateway_version: str
    triton: TritonHealth
    supervisor: SupervisorHealth | None = None
    recent_failures: int = Field(0, description="requests that failed inside Triton in the last seconds")


class UpstreamTTSRequest(BaseModel):
    """``POST /`` body of upstream api.py (same names; unknown keys are ignored as upstream does)."""

    model_config = ConfigDict(extra="ignore")

    refer_wav_path: str | None = None
    prompt_text: str | None = None
    prompt_language: str | None = None
    text: str | None = None
    text_language: str | None = Field(None, examples=["zh", "en", "auto"])
    cut_punc: str | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    speed: float | None = None
    # Accepted for compatibility: api.py ignores inp_refs in practice; sample_steps/if_sr are v3/v4 only.
    inp_refs: list[str] | None = None
    sample_steps: int | None = None
    if_sr: bool | None = None
    # Extensions of this gateway: the output format and sample rate (default: 32 kHz WAV, as api.py).
    response_format: str | None = Field(None, description="wav (default), pcm, flac, mp3, opus")
    sample_rate: int | None = Field(None, description="output rate in Hz (default 32000)")


class ChangeReferRequest(BaseModel):
    """``POST /change_refer`` body of upstream api.py."""

    model_config = ConfigDict(extra="ignore")

    refer_wav_path: str | None = None
    prompt_text: str | None = None
    prompt_language: str | None = None


class UpstreamResult(BaseModel):
    """api.py's success body of ``/change_refer``."""

    code: int = 0
    message: str = "Success"


class VoiceResponse(BaseModel):
    """A stored voice (``POST /v1/voices``, ``GET /v1/voices/{id}``)."""

    id: str = Field(description="send it as voice_id (/v1/voice-clone) or voice (/v1/audio/speech)")
    name: str
    prompt_text: str = Field(description="the transcript, as sent")
    prompt_language: str = Field(description="its language, as sent")
    reference_seconds: float
    prompt_phones: int = Field(description="phones of the transcript")
    prompt_tokens: int = Field(description="semantic tokens of the reference clip")
    created_at: float = Field(description="Unix seconds")
    model: str = Field(description="the model set the voice was stored under, and speaks with")


class VoiceList(BaseModel):
    voices: list[VoiceResponse]


class SpeechVoice(BaseModel):
    """OpenAI's custom-voice object: ``{"id": "voice_..."}``."""

    id: str


class SpeechRequest(BaseModel):
    """``POST /v1/audio/speech``: OpenAI's request body (unknown keys such as ``stream_format`` are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="a model set's name (GET /v1/models), or gpt-sovits / OpenAI's tts-1 / tts-1-hd / "
                       "gpt-4o-mini-tts (the default set; a stored voice speaks with its own set)")
    input: str = Field(description="the text to speak")
    voice: str | SpeechVoice = Field(description='a stored voice: its id, its name, or {"id": ...}')
    response_format: str | None = Field(None, description="mp3 (default, as OpenAI), opus, flac, wav, pcm")
    speed: float | None = Field(None, description="0.25 - 4.0, default 1.0")
    instructions: str | None = Field(None, description="accepted and ignored (GPT-SoVITS takes no style prompt)")
    # Extensions of this gateway.
    language: str = Field("auto", description="language of `input` (api.py's codes; default auto)")
    sample_rate: int | None = Field(None, description="output rate in Hz (default 32000; pcm: 24000, as OpenAI)")
    seed: int | None = Field(None, description="sampling seed; the same request and seed give the same audio")


class ModelSetInfo(BaseModel):
    """A model set (one fine-tune: ``gsv-triton export --name``) and what the gateway knows of it."""

    name: str
    state: Literal["loaded", "unloaded", "loading", "unloading"]
    default: bool = Field(description="requests that name no model speak with it")
    in_flight: int = Field(description="this gateway's requests running on it now")
    idle_s: float | None = Field(description="seconds since its last request started (null: none yet)")
    loads: int = Field(description="loads by this gateway")
    last_error: str | None = Field(description="why its last load failed (null: it did not)")
    triton_models: list[str] = Field(description="its networks' Triton models")


class ModelCard(BaseModel):
    """OpenAI's model object: the OpenAI ids (the default set) and one per model set (``model_set`` says which)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "gsv-triton"
    model_set: ModelSetInfo | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LanguageOption(BaseModel):
    code: str = Field(description="the language code the routes take")
    label: str


class PageConfig(BaseModel):
    """What the web page (``/ui/``) needs before its first API call: nothing secret, so it is open."""

    gateway_version: str
    api_keys_required: bool = Field(description="every API call needs 'Authorization: Bearer <key>'")
    default_model: str = Field(description="the model set of requests that name none")
    languages: list[LanguageOption] = Field(description="text and transcript languages, in the page's order")
    default_language: str
    sampling: dict[str, int | float] = Field(description="top_k, top_p, temperature, speed: the defaults")
    cut_punc: str = Field(description="the form's split marks: the gateway's -cp, else sentence ends (so the page "
                          "hears each sentence as it is made)")
    sample_rate: int
    min_reference_seconds: float
    max_reference_seconds: float
    max_text_chars: int
    max_upload_bytes: int
