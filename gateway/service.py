"""One synthesis, whichever route asked for it: tensors, Triton, audio bookkeeping; and output encoding.

Triton's models check every request (their errors name the tensor); the client's name for a tensor can differ
(the reference is ``audio`` on the forms, ``refer_wav_path`` for api.py, ``input`` for OpenAI), so each call
here takes the one rename table of its route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from gsv_triton.audio.formats import FORMATS, AudioFormat, EncodedAudio, encode_audio
from gsv_triton.errors import InputError, renamed
from gsv_triton.settings import Settings

from .metrics import GatewayMetrics
from .offload import INLINE_MAX_SAMPLES, run_cpu
from .triton import StreamPiece, Synthesis, TritonVoiceClone
from .validation import REFERENCE_INPUT, CloneFields, build_tensors, bytes_tensor

# Encoders cheap enough per sample to run inline for short audio (the lossy ones take ~15 ms per second).
INLINE_FORMATS = ("wav", "pcm")


class VoiceCloneService:
    """Shared by the routes through ``Depends``; holds the process's one Triton client."""

    def __init__(self, triton: TritonVoiceClone, settings: Settings, metrics: GatewayMetrics) -> None:
        self.triton = triton
        self.settings = settings
        self.limits = settings.limits
        self.metrics = metrics

    async def synthesize(self, fields: CloneFields, request_id: str, reference_field: str = "audio") -> Synthesis:
        """Run voice_clone on ``fields``; its errors name ``reference_field`` for the reference."""
        with client_names({REFERENCE_INPUT: reference_field}):
            result = await self.triton.synthesize(build_tensors(fields, self.settings), request_id)
        self.metrics.add_audio(result.duration_s)
        return result

    async def stream(
        self, fields: CloneFields, request_id: str, reference_field: str = "audio"
    ) -> AsyncIterator[StreamPiece]:
        """voice_clone_stream's pieces of ``fields`` as they come (errors named like :meth:`synthesize`'s)."""
        with client_names({REFERENCE_INPUT: reference_field}):
            async for piece in self.triton.stream(build_tensors(fields, self.settings), request_id):
                self.metrics.add_audio(len(piece.audio) / piece.sample_rate)
                yield piece

    async def convert(self, tensors: dict[str, np.ndarray], request_id: str, reference_field: str = "audio") -> Synthesis:
        """Run voice_convert on ``tensors``; errors name ``reference_field`` for the target clip."""
        with client_names({REFERENCE_INPUT: reference_field}):
            result = await self.triton.convert(tensors, request_id)
        self.metrics.add_audio(result.duration_s)
        return result

    async def encode_voice(self, audio: bytes, prompt_text: str, prompt_language: str, request_id: str) -> dict[str, np.ndarray]:
        """The stored-voice features of a clip and its transcript (voice_encode; its rules, its errors)."""
        tensors = {
            "reference_audio": bytes_tensor(audio),
            "prompt_text": bytes_tensor(prompt_text),
            "prompt_language": bytes_tensor(prompt_language),
        }
        with client_names({REFERENCE_INPUT: "audio"}):
            return await self.triton.encode_voice(tensors, request_id)


@contextmanager
def client_names(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an InputError from Triton under the client's name of its tensor (``names``: tensor -> field)."""
    try:
        yield
    except InputError as exc:
        raise renamed(exc, names) from None


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
