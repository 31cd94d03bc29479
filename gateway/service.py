"""One synthesis, whichever route asked for it: tensors, Triton, audio bookkeeping; and output encoding.

Triton's models check every request (their errors name the tensor); the client's name for a tensor can differ
(the reference is ``audio`` on the forms, ``refer_wav_path`` for api.py, ``input`` for OpenAI), so each call
here takes the one rename table of its route. Every call holds one of the gateway's in-flight slots
(:mod:`gsv_gateway.admission`) while it waits on Triton.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from gsv_triton.audio.formats import FORMATS, AudioFormat, EncodedAudio, encode_audio
from gsv_triton.contract import DEFAULT_CHUNK_TOKENS, MODEL_SET, VOICE_CLONE_STREAM, VOICE_CONVERT, VOICE_ENCODE
from gsv_triton.errors import InputError, renamed
from gsv_triton.settings import Settings

from .admission import Admission
from .metrics import GatewayMetrics
from .model_sets import ModelSets
from .offload import INLINE_MAX_SAMPLES, run_cpu
from .triton import StreamPiece, Synthesis, TritonVoiceClone
from .validation import CloneFields, build_tensors, contract_tensors

# Token-chunk streams' default chunk: 1 s of speech (GSV-TTS-Lite's 25 tokens; perf/README.md measures it).
# Encoders cheap enough per sample to run inline for short audio (the lossy ones take ~15 ms per second).
INLINE_FORMATS = ("wav", "pcm")


@dataclass(frozen=True)
class StreamChunking:
    """Token-chunk streaming settings of a stream (``voice_clone_stream``'s ``chunk_tokens``/``overlap_tokens``).

    ``chunk_tokens`` 0 streams per sentence piece; ``overlap_tokens`` None takes the model's default (4).
    Semantic tokens are 25 per second of speech."""

    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int | None = None

    def tensors(self) -> dict[str, np.ndarray]:
        values = {"chunk_tokens": self.chunk_tokens, "overlap_tokens": self.overlap_tokens}
        return contract_tensors(VOICE_CLONE_STREAM, values)


class VoiceCloneService:
    """Shared by the routes through ``Depends``; holds the process's one Triton client.

    Every call takes ``names``, the calling route's table of client field names (``gateway.validation``): the
    one place where an InputError, from Triton or from the wire checks, gets the name the client sent.
    """

    def __init__(self, triton: TritonVoiceClone, settings: Settings, metrics: GatewayMetrics) -> None:
        self.triton = triton
        self.settings = settings
        self.limits = settings.limits
        self.metrics = metrics
        self.admission = Admission(settings.max_in_flight)
        self.model_sets = ModelSets(triton, settings.default_model, settings.max_loaded_model_sets,
                                    settings.model_load_timeout_s)  # fmt: skip

    async def synthesize(self, fields: CloneFields, request_id: str, names: Mapping[str, str]) -> Synthesis:
        """Run voice_clone on ``fields`` with the model set they name (loaded first where it is not)."""
        async with self.admission.slot():
            with client_names(names):
                tensors = build_tensors(fields, self.settings)  # the wire checks come before any Triton call
                async with self.model_sets.use(fields.model) as model_set:
                    tensors.update(model_tensor(model_set))
                    result = await self.triton.synthesize(tensors, request_id)
        self.metrics.add_audio(result.duration_s)
        return result

    async def stream(
        self, fields: CloneFields, request_id: str, names: Mapping[str, str], chunking: StreamChunking | None = None
    ) -> AsyncIterator[StreamPiece]:
        """voice_clone_stream's responses for ``fields`` as they come: one per sentence piece, or with
        ``chunking.chunk_tokens > 0`` one per chunk of a piece's semantic tokens while T2S still runs (the
        concatenated audio equals the unstreamed answer's within the quality rule of perf/README.md, the
        tokens exactly). The entry point of every streaming route (``/v1/voice-clone/stream``, OpenAI
        ``stream=true``, api_v2 ``streaming_mode``): the model checks the chunk settings and its InputError
        names ``chunk_tokens`` / ``overlap_tokens`` under the route's names. Closing the iterator (the client
        went away) cancels the gRPC call, which stops the generation."""
        async with self.admission.slot():
            with client_names(names):
                tensors = build_tensors(fields, self.settings)
                if chunking is not None:
                    tensors.update(chunking.tensors())
                async with self.model_sets.use(fields.model) as model_set:
                    tensors.update(model_tensor(model_set))
                    async for piece in self.triton.stream(tensors, request_id):
                        self.metrics.add_audio(len(piece.audio) / piece.sample_rate)
                        yield piece

    async def convert(self, values: Mapping[str, object], request_id: str, names: Mapping[str, str]) -> Synthesis:
        """Run voice_convert on ``values`` (its input names; None: not sent; ``model`` names the set)."""
        async with self.admission.slot():
            with client_names(names):
                tensors = contract_tensors(VOICE_CONVERT, values)
                async with self.model_sets.use(values.get("model")) as model_set:
                    tensors.update(model_tensor(model_set))
                    result = await self.triton.convert(tensors, request_id)
        self.metrics.add_audio(result.duration_s)
        return result

    async def encode_voice(
        self, audio: bytes, prompt_text: str, prompt_language: str, request_id: str, names: Mapping[str, str],
        model: str | None = None,
    ) -> tuple[str, dict[str, np.ndarray]]:  # fmt: skip
        """The stored-voice features of a clip and its transcript (voice_encode) under model set ``model``
        (None: the default), with the set's name: the features belong to that set's SoVITS."""
        async with self.admission.slot():
            with client_names(names):
                values = {"reference_audio": audio, "prompt_text": prompt_text, "prompt_language": prompt_language}
                tensors = contract_tensors(VOICE_ENCODE, values)
                async with self.model_sets.use(model) as model_set:
                    tensors.update(model_tensor(model_set))
                    return model_set, await self.triton.encode_voice(tensors, request_id)


def model_tensor(model_set: str) -> dict[str, np.ndarray]:
    """The ``model`` input naming ``model_set`` (the same tensor for every orchestrator)."""
    return {MODEL_SET.name: MODEL_SET.array(model_set)}


@contextmanager
def client_names(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an InputError under the client's name of its tensor (``names``: tensor -> field)."""
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
