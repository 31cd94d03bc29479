"""Token-chunk streaming of a request: audio while T2S is still generating (``voice_clone_stream`` with
``chunk_tokens > 0``).

Per piece: the GPT loop runs in this process on the ``t2s`` model's own graphs and code
(:func:`~gsv_triton.backend.t2s.stream.stream_tokens`), so the tokens are those of the unstreamed request; the
:class:`~gsv_triton.backend.chunk_join.ChunkJoiner` decodes windows of them through ``sovits_decode`` with the
piece's own noise frames (:meth:`VoiceClonePipeline.piece_noise`) and cross-fades the joins. The text frontend,
BERT and the reference run once up front, as in the per-piece stream; each piece ends with its 0.3 s of silence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gsv_triton.audio.output import SEGMENT_SILENCE_SECONDS
from gsv_triton.backend.cancel import NEVER, StopSignal
from gsv_triton.backend.chunk_join import Chunking, ChunkJoiner
from gsv_triton.backend.pipeline import Reference, TextRow, VoiceClonePipeline
from gsv_triton.backend.requests import VoiceCloneRequest
from gsv_triton.backend.t2s.stream import stream_tokens
from gsv_triton.contract import CODE_UPSAMPLE, frames_for_speed


@dataclass(frozen=True)
class StreamChunk:
    piece: int
    audio: np.ndarray  # float32 [N]
    tokens: np.ndarray | None  # the piece's final semantic tokens, with its last chunk (which ends in silence)


def decode_window(pipeline: VoiceClonePipeline, row: TextRow, tokens: np.ndarray, reference: Reference,
                  request: VoiceCloneRequest, index: int, lo: int, hi: int, stop: StopSignal) -> np.ndarray:  # fmt: skip
    """``sovits_decode`` of tokens ``[lo, hi)`` of piece ``index`` with all its phones and the noise of exactly
    those frames (at speed 1 the frames of the whole piece's decode; otherwise the nearest frame)."""
    frames = frames_for_speed(hi - lo, request.speed)
    start = int(round(CODE_UPSAMPLE * lo / request.speed))
    inputs = {
        "codes": tokens[None, lo:hi].astype(np.int64),
        "phone_ids": row.phone_ids[None, :],
        "ge": reference.ge,
        "noise": pipeline.piece_noise(request.seed, index, start, frames),
        "noise_scale": np.array([pipeline.config.noise_scale], dtype=np.float32),
    }
    return np.ravel(pipeline._infer("sovits_decode", inputs, ["audio"], stop)["audio"])


def synthesize_token_chunks(pipeline: VoiceClonePipeline, request: VoiceCloneRequest, chunking: Chunking, runner,
                            pieces: Sequence[str] | None = None,
                            stop: Callable[[], StopSignal] = lambda: NEVER) -> Iterator[StreamChunk]:  # fmt: skip
    """The request's audio in token chunks; ``runner`` is a T2S runner (``T2SRunner`` over the ``t2s`` graphs).
    ``stop()`` gives each piece's signal, as in :meth:`VoiceClonePipeline.synthesize_pieces`."""
    pieces = pipeline.split(request) if pieces is None else pieces
    budget = pipeline.output_budget(request, len(pieces))
    prompt, rows = pipeline.text_rows(request, pieces, stop())
    reference = pipeline.request_reference(request, stop())
    silence = np.zeros(int(round(pipeline.config.sample_rate * SEGMENT_SILENCE_SECONDS)), dtype=np.float32)
    for index, row in enumerate(rows):
        piece_stop = stop()
        inputs = pipeline.t2s_inputs(prompt, [row], reference, request, first=index)
        # As VoiceClonePipeline.generate: no piece may run past what the output budget has left (+2 to see it).
        cap = min(request.max_new_tokens, budget.tokens_left() + 2)
        inputs["max_new_tokens"] = np.array([cap], dtype=np.int32)
        known = np.zeros(0, dtype=np.int64)  # the tokens the windows decode
        # ignore_eos rows always end at the cap, where upstream's rule drops the first token: drop it up front.
        drop = 1 if request.ignore_eos else 0
        current = [known]  # what the window decoder reads (the loop rebinds known)

        def window(lo: int, hi: int, row: TextRow = row, index: int = index, stop: StopSignal = piece_stop,
                   current: list[np.ndarray] = current) -> np.ndarray:  # fmt: skip
            return decode_window(pipeline, row, current[0], reference, request, index, lo, hi, stop)

        joiner = ChunkJoiner(chunking, window, request.speed)
        final_tokens = known
        for tokens, final in stream_tokens(runner, inputs, piece_stop):
            if final:
                final_tokens = tokens
                # At the max_new_tokens cap upstream drops the FIRST token: audio already sent keeps it, so the
                # rest is decoded from the stream's own sequence (the reported tokens stay the unstreamed ones).
                prefix = len(tokens) >= len(known) and np.array_equal(tokens[: len(known)], known)
                known = current[0] = tokens if prefix else np.concatenate([known, tokens[-1:]])
                break
            known = current[0] = tokens[drop:]
            for audio in joiner.pending(len(known)):
                yield StreamChunk(index, audio, None)
        for audio in joiner.pending(len(known)):  # the chunks the final tokens complete, as if seen one by one
            yield StreamChunk(index, audio, None)
        budget.spend(len(final_tokens))
        yield StreamChunk(index, np.concatenate([joiner.push(len(known), final=True), silence]), final_tokens)
