"""One synthesis, whichever route asked for it: early checks, Triton, audio bookkeeping; and output encoding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import numpy as np

from gsv_triton.audio import to_wav_bytes
from gsv_triton.audio.formats import FORMATS, AudioFormat, EncodedAudio, encode_audio
from gsv_triton.errors import InputError

from .metrics import GatewayMetrics
from .offload import INLINE_MAX_SAMPLES, run_cpu, small_wav
from .settings import GatewaySettings
from .triton import StreamPiece, Synthesis, TritonVoiceClone
from .validation import REFERENCE_INPUT, CloneFields, build_tensors, check_reference, check_tensors

# api.py's default sample type (-st int16) and the seed contract's "16-bit PCM WAV file".
WAV_SUBTYPE = "PCM_16"
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
        tensors = build_tensors(fields, self.settings)
        # Decoding a compressed or long reference is CPU work: then it runs off the event loop.
        reference = fields.reference_audio
        await run_cpu(reference is None or small_wav(reference), check_tensors, tensors, self.limits, reference_field)
        try:
            result = await self.triton.synthesize(tensors, request_id)
        except InputError as exc:
            if exc.field != REFERENCE_INPUT:
                raise
            raise InputError(reference_field, exc.message, exc.status) from None
        self.metrics.add_audio(result.duration_s)
        return result

    async def stream(self, fields: CloneFields, request_id: str) -> AsyncIterator[StreamPiece]:
        """Check ``fields`` like :meth:`synthesize`, then voice_clone_stream's pieces as they come."""
        tensors = build_tensors(fields, self.settings)
        reference = fields.reference_audio
        await run_cpu(reference is None or small_wav(reference), check_tensors, tensors, self.limits, "audio")
        try:
            async for piece in self.triton.stream(tensors, request_id):
                self.metrics.add_audio(len(piece.audio) / piece.sample_rate)
                yield piece
        except InputError as exc:
            if exc.field != REFERENCE_INPUT:
                raise
            raise InputError("audio", exc.message, exc.status) from None

    async def encode_voice(self, audio: bytes, prompt_text: str, prompt_language: str, request_id: str,
                           reference_field: str = "audio") -> dict[str, np.ndarray]:  # fmt: skip
        """The stored-voice features of a clip and its transcript (voice_encode), checked like a synthesis."""
        await run_cpu(small_wav(audio), check_reference, audio, self.limits, reference_field)
        tensors = {
            "reference_audio": object_tensor(audio),
            "prompt_text": object_tensor(prompt_text.encode("utf-8")),
            "prompt_language": object_tensor(prompt_language.encode("utf-8")),
        }
        try:
            return await self.triton.encode_voice(tensors, request_id)
        except InputError as exc:
            if exc.field != REFERENCE_INPUT:
                raise
            raise InputError(reference_field, exc.message, exc.status) from None


def object_tensor(value: bytes) -> np.ndarray:
    """A BYTES tensor of one element."""
    return np.array([value], dtype=np.object_)


def wav_bytes(result: Synthesis) -> bytes:
    """The result as a complete 16-bit WAV file (blocking: call from a worker thread for long audio)."""
    return to_wav_bytes(result.audio, result.sample_rate, WAV_SUBTYPE)


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
