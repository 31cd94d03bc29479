"""One synthesis, whichever route asked for it: early checks (in a worker thread), Triton, audio bookkeeping."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from gsv_triton.audio import to_wav_bytes
from gsv_triton.errors import InputError

from .metrics import GatewayMetrics
from .settings import GatewaySettings
from .triton import Synthesis, TritonVoiceClone
from .validation import REFERENCE_INPUT, CloneFields, build_tensors, check_tensors

# api.py's default sample type (-st int16) and the seed contract's "16-bit PCM WAV file".
WAV_SUBTYPE = "PCM_16"


class VoiceCloneService:
    """Shared by the routes through ``Depends``; holds the process's one Triton client."""

    def __init__(self, triton: TritonVoiceClone, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.triton = triton
        self.settings = settings
        self.limits = settings.limits
        self.metrics = metrics

    async def synthesize(self, fields: CloneFields, request_id: str, reference_field: str = "audio") -> Synthesis:
        """Check ``fields`` (4xx naming ``reference_field`` for the reference), then run voice_clone."""
        tensors = build_tensors(fields, self.settings)
        # Decoding the reference is CPU work: keep it off the event loop.
        await run_in_threadpool(check_tensors, tensors, self.limits, reference_field)
        try:
            result = await self.triton.synthesize(tensors, request_id)
        except InputError as exc:
            if exc.field != REFERENCE_INPUT:
                raise
            raise InputError(reference_field, exc.message, exc.status) from None
        self.metrics.add_audio(result.duration_s)
        return result


def wav_bytes(result: Synthesis) -> bytes:
    """The result as a complete 16-bit WAV file (blocking: call from a worker thread for long audio)."""
    return to_wav_bytes(result.audio, result.sample_rate, WAV_SUBTYPE)
