"""The ``voice_clone_stream`` model: ``voice_clone`` as a decoupled model, one response per sentence piece.

Boundaries are the sentence pieces (api.py's ``cut_punc`` split): each response is a complete piece followed
by its 0.3 s of silence, so the audio needs no overlap or cross-fade and the concatenation equals
``voice_clone``'s answer. The first piece leaves after its own ``t2s`` and ``sovits_decode``; the text
frontend, BERT and the reference run once, up front, for the whole request. A stream has no total deadline:
each piece must be ready within the request's ``gsv_piece_timeout`` parameter (the gateway's idle timeout), and
a cancelled stream (the client went away) stops between steps, in ``t2s`` between tokens.
"""

from __future__ import annotations

import time

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.cancel import StopSignal, cancel_watch, parse_parameters, piece_timeout, signal_from_parameters
from gsv_triton.errors import InputError

from .triton_io import exception_response, release_heap, response
from .voice_clone import TritonPythonModel as VoiceCloneModel

MODEL = "voice_clone_stream"


class TritonPythonModel(VoiceCloneModel):
    """``voice_clone``'s inputs, parameters and pipeline (its ``initialize``), answered through a response sender."""

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
        parsed = self._parse(request)
        pieces = self.pipeline.split(parsed)
        if not pieces:  # (the client ends its stream after the last piece it was told about)
            raise InputError("text", "has nothing to read aloud")
        common = {
            "pieces": np.array([len(pieces)], dtype=np.int32),
            "sample_rate": np.array([self.pipeline.config.sample_rate], dtype=np.int32),
            "used_seed": np.array([parsed.seed], dtype=np.uint64).view(np.int64),
        }
        parameters = parse_parameters(request.parameters())
        timeout = piece_timeout(parameters)

        with cancel_watch(signal_from_parameters(parameters), request.is_cancelled) as stop:
            def piece_stop() -> StopSignal:  # each piece gets the idle timeout from when it starts
                return stop.with_deadline(time.time() + timeout if timeout else None)

            for index, audio in enumerate(self.pipeline.synthesize_pieces(parsed, pieces, piece_stop)):
                outputs = {"audio": audio.astype(np.float32), "piece": np.array([index], dtype=np.int32), **common}
                sender.send(response(outputs))
