"""One synthesis, whichever route asked for it: early checks, Triton, audio bookkeeping; and output encoding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import numpy as np

from gsv_triton.audio.formats import FORMATS, AudioFormat, EncodedAudio, encode_audio
from gsv_triton.backend.requests import parse_voice_request
from gsv_triton.errors import InputError, renamed

from .metrics import GatewayMetrics
from .offload import INLINE_MAX_SAMPLES, run_cpu, small_wav
from .settings import GatewaySettings
from .triton import StreamPiece, Synthesis, TritonVoiceClone
from .validation import REFERENCE_INPUT, CloneFields, build_tensors, bytes_tensor, check_reference, check_tensors

# Encoders cheap enough per sample to run inline for short audio (the lossy ones take ~15 ms per second).
INLINE_FORMATS = ("wav", "pcm")


class VoiceCloneService:
    """Shared by the routes through ``Depends``; holds the process's one Triton client."""

    def __init__(self, triton: TritonVoiceClone, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.triton = triton
        self.settings = settings
        self.limits = settings.limits
        self.metrics = metrics

    async def synthesize(self, fields: CloneFields, request_id: str, reference_field: str = "audio") -> Synthesis:
        """Check ``fields`` (4xx naming ``reference_field`` for the reference), then run voice_clone."""
        tensors = await self._checked_tensors(fields, reference_field)
        try:
            result = await self.triton.synthesize(tensors, request_id)
        except InputError as exc:
            raise renamed(exc, {REFERENCE_INPUT: reference_field}) from None
        self.metrics.add_audio(result.duration_s)
        return result

    async def stream(
        self, fields: CloneFields, request_id: str, reference_field: str = "audio"
    ) -> AsyncIterator[StreamPiece]:
        """Check ``fields`` like :meth:`synthesize`, then voice_clone_stream's pieces as they come."""
        tensors = await self._checked_tensors(fields, reference_field)
        try:
            async for piece in self.triton.stream(tensors, request_id):
                self.metrics.add_audio(len(piece.audio) / piece.sample_rate)
                yield piece
        except InputError as exc:
            raise renamed(exc, {REFERENCE_INPUT: reference_field}) from None

    async def _checked_tensors(self, fields: CloneFields, reference_field: str) -> dict[str, np.ndarray]:
        """voice_clone's input tensors of ``fields``, after its own rules and the reference rules."""
        tensors = build_tensors(fields, self.settings)
        # Decoding a compressed or long reference is CPU work: then it runs off the event loop.
        reference = fields.reference_audio
        await run_cpu(reference is None or small_wav(reference), check_tensors, tensors, self.limits, reference_field)
        return tensors

    async def convert(self, tensors: dict[str, np.ndarray], request_id: str, reference_field: str = "audio") -> Synthesis:
        """Run voice_convert on ``tensors`` (checked by the caller); errors name ``reference_field``."""
        try:
            result = await self.triton.convert(tensors, request_id)
        except InputError as exc:
            raise renamed(exc, {REFERENCE_INPUT: reference_field}) from None
        self.metrics.add_audio(result.duration_s)
        return result

    async def encode_voice(self, audio: bytes, prompt_text: str, prompt_language: str, request_id: str) -> dict[str, np.ndarray]:
        """The stored-voice features of a clip and its transcript (voice_encode), checked like a synthesis:
        voice_encode's own rules (prompt text, language) first, then the reference rules."""
        tensors = {
            "reference_audio": bytes_tensor(audio),
            "prompt_text": bytes_tensor(prompt_text),
            "prompt_language": bytes_tensor(prompt_language),
        }
        # An empty upload is the reference rules' error (400 "empty"), not a missing input: check a stand-in.
        parse_voice_request({**tensors, "reference_audio": bytes_tensor(audio or b"\0")}, limits=self.limits)
        await run_cpu(small_wav(audio), check_reference, audio, self.limits, "audio")
        try:
            return await self.triton.encode_voice(tensors, request_id)
        except InputError as exc:
            raise renamed(exc, {REFERENCE_INPUT: "audio"}) from None


def cheap_to_encode(audio: np.ndarray, fmt: AudioFormat, rate: int | None, source_rate: int) -> bool:
    """True when encoding takes about a millisecond or less (short audio, no resampling, wav or pcm)."""
    return fmt.name in INLINE_FORMATS and (rate is None or rate == source_rate) and len(audio) <= INLINE_MAX_SAMPLES


async def encode_result(result: Synthesis, fmt: AudioFormat = FORMATS["wav"], rate: int | None = None) -> EncodedAudio:
    """``result`` encoded as ``fmt`` at ``rate`` (None: the model's), off the event loop unless it is cheap."""
    inline = cheap_to_encode(result.audio, fmt, rate, result.sample_rate)
    return await run_cpu(inline, encode_audio, result.audio, result.sample_rate, fmt, rate)


def audio_headers(encoded: EncodedAudio) -> Mapping[str, str]:
    """Headers of a raw audio response: the rate and length a pcm client cannot read from the bytes."""
    return {"X-Sample-Rate": str(encoded.sample_rate), "X-Audio-Duration": f"{encoded.duration_s:.4f}"}
