"""The ``voice_clone_stream`` model: ``voice_clone`` as a decoupled model, one response per sentence piece, or
with ``chunk_tokens`` one response per chunk of a piece's semantic tokens while T2S still runs
(:mod:`gsv_triton.backend.token_stream`).

Boundaries are the sentence pieces (api.py's ``cut_punc`` split): each response is a complete piece followed
by its 0.3 s of silence, so the audio needs no overlap or cross-fade and the concatenation equals
``voice_clone``'s answer. The first piece leaves after its own ``t2s`` and ``sovits_decode``; the text
frontend, BERT and the reference run once, up front, for the whole request. A stream has no total deadline:
each piece must be ready within the request's ``gsv_piece_timeout`` parameter (the gateway's idle timeout), and
a cancelled stream (the client went away) stops between steps, in ``t2s`` between tokens.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.cache import LruCache
from gsv_triton.backend.cancel import StopSignal, cancel_watch, parse_parameters, piece_timeout, signal_from_parameters
from gsv_triton.backend.chunk_join import Chunking
from gsv_triton.errors import InputError, UserError
from gsv_triton.model_sets import network_model
from gsv_triton.settings import Settings

from .triton_io import exception_response, release_heap, request_inputs, response
from .voice_clone import TritonPythonModel as VoiceCloneModel

MODEL = "voice_clone_stream"


class TritonPythonModel(VoiceCloneModel):
    """``voice_clone``'s inputs, parameters and pipeline (its ``initialize``), answered through a response sender."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.repo = Path(args["model_repository"]).resolve().parent
        # The GPT graphs of token-chunk streams, per model set, loaded on a set's first one; the fewest recently
        # used go when more sets streamed than the gateway keeps loaded (their t2s models are unloaded too).
        self._t2s = LruCache(Settings().max_loaded_model_sets)
        self._t2s_lock = threading.Lock()

    def _t2s_runner(self, model_set: str):
        """``model_set``'s ``t2s`` ONNX graphs and loop in this process (the loop must hand out tokens before it
        ends)."""
        with self._t2s_lock:
            runner = self._t2s.get(model_set)
            if runner is None:
                from gsv_triton.backend.ort_backend import configured_session
                from gsv_triton.backend.t2s.loop import T2SRunner

                model = network_model("t2s", model_set)
                folder = self.repo / model / "1"
                try:
                    runner = T2SRunner(configured_session(self.repo, model, folder / "t2s_prefill.onnx"),
                                       configured_session(self.repo, model, folder / "t2s_step.onnx"))  # fmt: skip
                except UserError as exc:
                    raise InputError("chunk_tokens", f"token-chunk streaming needs the t2s ONNX graphs, which this "
                                     f"repository lacks ({exc}); send 0 for one response per piece",
                                     status=422) from None  # fmt: skip
                self._t2s.put(model_set, runner)
                self.logger.log_info(f"{MODEL}: {model} graphs loaded for token-chunk streaming, as {model}'s "
                                     "config sets them up (threads, precision, spinning)")  # fmt: skip
            return runner

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            error = None
            try:
                self._stream(request, sender)
            except Exception as exc:  # one bad request must never take the instance down
                error = exception_response(MODEL, self.logger, exc, log=not request.is_cancelled())
            try:
                final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                if error is None:
                    sender.send(flags=final)
                else:
                    sender.send(error, flags=final)
            except Exception:  # the client has gone (cancelled stream): nobody to tell
                pass
            release_heap()
        return None

    def _stream(self, request, sender) -> None:
        pipeline, parsed = self._parse(request)
        extra = request_inputs(request, ("chunk_tokens", "overlap_tokens"))
        chunking = Chunking.from_request(*(int(extra[n].ravel()[0]) if n in extra else None
                                           for n in ("chunk_tokens", "overlap_tokens")))  # fmt: skip
        pieces = pipeline.split(parsed)
        if not pieces:  # (the client ends its stream after the last piece it was told about)
            raise InputError("text", "has nothing to read aloud")
        common = {
            "pieces": np.array([len(pieces)], dtype=np.int32),
            "sample_rate": np.array([pipeline.config.sample_rate], dtype=np.int32),
            "used_seed": np.array([parsed.seed], dtype=np.uint64).view(np.int64),
        }
        parameters = parse_parameters(request.parameters())
        timeout = piece_timeout(parameters)

        with cancel_watch(signal_from_parameters(parameters), request.is_cancelled) as stop:
            def piece_stop() -> StopSignal:  # each piece gets the idle timeout from when it starts
                return stop.with_deadline(time.time() + timeout if timeout else None)

            if chunking.enabled:
                from gsv_triton.backend.token_stream import synthesize_token_chunks

                runner = self._t2s_runner(pipeline.backend.model_set)
                for chunk in synthesize_token_chunks(pipeline, parsed, chunking, runner, pieces, piece_stop):
                    outputs = {"audio": chunk.audio.astype(np.float32),
                               "piece": np.array([chunk.piece], dtype=np.int32), **common}  # fmt: skip
                    if chunk.tokens is not None:
                        outputs["semantic_tokens"] = chunk.tokens.astype(np.int32)
                    sender.send(response(outputs))
                return
            for index, audio in enumerate(pipeline.synthesize_pieces(parsed, pieces, piece_stop)):
                outputs = {"audio": audio.astype(np.float32), "piece": np.array([index], dtype=np.int32), **common}
                sender.send(response(outputs))
