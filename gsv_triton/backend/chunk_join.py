"""Token-chunk streaming of one piece: decode windows of the tokens so far, emit the new samples, cross-fade joins.

Rule (measured on full-size v2 weights, perf/README.md "Token-chunk streaming"): when a chunk's tokens
(``chunk_tokens`` for the first, doubling up to 4x for later ones) plus ``overlap_tokens`` exist past the last
emitted boundary ``e``, ``sovits_decode`` runs on the window
``[e - context, n)`` (``context`` = :data:`CONTEXT_TOKENS` of left context for its attention and convolutions)
with the piece's noise for exactly those frames. Samples up to ``n - overlap`` are emitted; the last
``overlap_tokens`` lack right context, so they are held back and cross-faded (linear) into the next window's
decode of the same tokens. The last window runs to the end of the piece. Each window costs
``context + chunk + overlap`` tokens of decoder, instead of re-decoding everything so far (quadratic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from gsv_triton.audio.quality import snr_db
from gsv_triton.contract import CODE_UPSAMPLE
from gsv_triton.errors import InputError
from gsv_triton.settings import HOP_LENGTH

DEFAULT_OVERLAP_TOKENS = 4
MAX_CHUNK_TOKENS = 1500  # the T2S cap: a larger chunk is the whole piece
MAX_GROWTH = 4  # chunks grow 1x, 2x, 4x chunk_tokens (then stay): see ChunkJoiner.next_chunk
CONTEXT_TOKENS = 12  # left context of each window (measured: more buys < 1 dB, costs decoder time)

# decode(lo, hi) -> the audio of tokens [lo, hi) of the piece, decoded as one window.
DecodeWindow = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Chunking:
    """A request's token-chunk settings; ``chunk_tokens == 0`` means per-piece streaming."""

    chunk_tokens: int = 0
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    context_tokens: int = CONTEXT_TOKENS

    @classmethod
    def from_request(cls, chunk_tokens: int | None, overlap_tokens: int | None) -> Chunking:
        """Validated settings (InputError names the field and the rule); absent values take the defaults."""
        chunk = 0 if chunk_tokens is None else int(chunk_tokens)
        overlap = DEFAULT_OVERLAP_TOKENS if overlap_tokens is None else int(overlap_tokens)
        if not 0 <= chunk <= MAX_CHUNK_TOKENS:
            raise InputError("chunk_tokens", f"must lie in [0, {MAX_CHUNK_TOKENS}] (0: one response per piece), "
                             f"got {chunk}")  # fmt: skip
        if chunk and not 0 <= overlap < chunk:
            raise InputError("overlap_tokens", f"must lie in [0, chunk_tokens) = [0, {chunk}), got {overlap}")
        return cls(chunk, overlap if chunk else DEFAULT_OVERLAP_TOKENS)

    @property
    def enabled(self) -> bool:
        return self.chunk_tokens > 0


class ChunkJoiner:
    """The audio of one piece, chunk by chunk, from its growing token count."""

    def __init__(self, chunking: Chunking, decode: DecodeWindow, speed: float = 1.0) -> None:
        if not chunking.enabled:
            raise ValueError("ChunkJoiner needs chunk_tokens > 0")
        self.chunking = chunking
        self.decode = decode
        self.samples_per_token = CODE_UPSAMPLE * HOP_LENGTH / speed
        self.emitted = 0  # tokens whose audio is out (the held tail starts here)
        self.chunks = 0
        self.tail = np.zeros(0, dtype=np.float32)  # held samples of tokens [emitted, emitted + overlap)

    def next_chunk(self) -> int:
        """Tokens of the next chunk: ``chunk_tokens`` first, then doubling up to :data:`MAX_GROWTH` times it.
        The first chunk sets the latency; later ones only need to stay ahead of playback, and each join costs
        ``context + overlap`` tokens of decoder work, so fewer joins bring the total time near the unstreamed one."""
        return self.chunking.chunk_tokens * min(1 << self.chunks, MAX_GROWTH)

    def ready(self, n_tokens: int) -> bool:
        return n_tokens - self.emitted >= self.next_chunk() + self.chunking.overlap_tokens

    def pending(self, n_tokens: int) -> Iterator[np.ndarray]:
        """The chunks that ``n_tokens`` tokens complete. Windows end at fixed token counts (``emitted + chunk +
        overlap``), never at however many tokens happen to exist when the caller looks: the audio depends
        only on the tokens, not on how fast T2S ran against the decoder."""
        while self.ready(n_tokens):
            yield self.push(self.emitted + self.next_chunk() + self.chunking.overlap_tokens)

    def push(self, n_tokens: int, final: bool = False) -> np.ndarray:
        """The next samples for ``n_tokens`` tokens so far (``final``: all of them, the piece is complete)."""
        c = self.chunking
        end = n_tokens if final else n_tokens - c.overlap_tokens
        if end <= self.emitted and not final:
            return np.zeros(0, dtype=np.float32)
        lo = max(0, self.emitted - c.context_tokens)
        audio = np.ravel(self.decode(lo, n_tokens)).astype(np.float32, copy=False) if n_tokens > lo else np.zeros(0, np.float32)
        start = self._sample(self.emitted - lo)
        stop = len(audio) if final else self._sample(end - lo)
        fresh = audio[start:stop]
        if self.tail.size:  # cross-fade the held tail into the new window's decode of the same tokens
            k = min(self.tail.size, fresh.size)
            ramp = (np.arange(1, k + 1, dtype=np.float32) / (k + 1))
            fresh = fresh.copy()
            fresh[:k] = self.tail[:k] * (1 - ramp) + fresh[:k] * ramp
        self.tail = np.zeros(0, np.float32) if final else audio[stop : self._sample(n_tokens - lo)].copy()
        self.emitted = end
        self.chunks += 1
        return fresh

    def _sample(self, tokens: int) -> int:
        return int(round(tokens * self.samples_per_token))


@dataclass(frozen=True)
class JoinQuality:
    """A joined stream against the unstreamed audio of the same request (the quality rule's numbers)."""

    snr_db: float  # over the whole clip
    max_join_step: float  # largest |x[j] - x[j-1]| of the stream at a chunk join
    normal_step: float  # 99.9th percentile of |x[n+1] - x[n]| of the unstreamed audio

    @property
    def passes(self) -> bool:
        return self.snr_db >= MIN_SNR_DB and self.max_join_step <= self.normal_step


MIN_SNR_DB = 25.0
NORMAL_STEP_PERCENTILE = 99.9


def join_quality(streamed: np.ndarray, reference: np.ndarray, joins: list[int]) -> JoinQuality:
    """``joins``: sample indices where a chunk starts (after the first). Same length required."""
    streamed, reference = np.asarray(streamed, np.float64), np.asarray(reference, np.float64)
    if streamed.shape != reference.shape:
        raise ValueError(f"stream has {streamed.size} samples, the unstreamed audio {reference.size}")
    snr = snr_db(reference, streamed)
    steps = [abs(streamed[j] - streamed[j - 1]) for j in joins if 0 < j < streamed.size]
    normal = float(np.percentile(np.abs(np.diff(reference)), NORMAL_STEP_PERCENTILE)) if reference.size > 1 else 0.0
    return JoinQuality(snr, max(steps, default=0.0), normal)
