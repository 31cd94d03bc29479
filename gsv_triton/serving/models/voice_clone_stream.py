"""The ``voice_clone_stream`` model: ``voice_clone`` as a decoupled model, one response per sentence piece.

Boundaries are the sentence pieces (api.py's ``cut_punc`` split): each response is a complete piece followed
by its 0.3 s of silence, so the audio needs no overlap or cross-fade and the concatenation equals
``voice_clone``'s answer. The first piece leaves after its own ``t2s`` and ``sovits_decode``; the text
frontend, BERT and the reference run once, up front, for the whole request.
"""

from __future__ import annotations

import traceback

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.errors import InputError
from gsv_triton.serving.ort_model import model_parameters
from gsv_triton.settings import limits_from_env

from .request import parse_request
from .triton_io import BlsError, bls_pipeline, request_inputs
from .voice_clone import INPUTS

MODEL = "voice_clone_stream"


def _tensors(outputs: dict[str, np.ndarray]) -> list:
    return [pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in outputs.items()]


def _cancelled(request) -> bool:
    """Whether the client cancelled the request (``is_cancelled`` exists in Triton 23.10+)."""
    is_cancelled = getattr(request, "is_cancelled", None)
    return bool(is_cancelled and is_cancelled())


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(args["model_config"])
        self.limits = limits_from_env()
        self.default_cut_punc = params.get("default_cut_punc", "")
        self.pipeline = bls_pipeline(args, params, self.limits)
        self.logger = pb_utils.Logger

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            error = None
            try:
                self._stream(request, sender)
            except InputError as exc:
                error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            except BlsError as exc:
                error = pb_utils.TritonError(f"{MODEL}: {exc}")
            except Exception as exc:  # one bad request must never take the instance down
                if not _cancelled(request):
                    self.logger.log_error(f"{MODEL}: {traceback.format_exc()}")
                error = pb_utils.TritonError(f"{MODEL}: internal error: {type(exc).__name__}: {exc}")
            try:
                final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                if error is None:
                    sender.send(flags=final)
                else:
                    sender.send(pb_utils.InferenceResponse(output_tensors=[], error=error), flags=final)
            except Exception:  # the client has gone (cancelled stream): nobody to tell
                pass
        return None

    def _stream(self, request, sender) -> None:
        parsed = parse_request(
            request_inputs(request, INPUTS), self.pipeline.config.symbol_version, self.limits, self.default_cut_punc
        )
        pieces = len(self.pipeline.split(parsed))
        if pieces == 0:  # (the client ends its stream after the last piece it was told about)
            raise InputError("text", "has nothing to read aloud")
        common = {
            "pieces": np.array([pieces], dtype=np.int32),
            "sample_rate": np.array([self.pipeline.config.sample_rate], dtype=np.int32),
            "used_seed": np.array([parsed.seed], dtype=np.uint64).view(np.int64),
        }
        for index, audio in enumerate(self.pipeline.synthesize_pieces(parsed)):
            if _cancelled(request):  # the client went away: stop instead of synthesising the rest
                return
            outputs = {"audio": audio.astype(np.float32), "piece": np.array([index], dtype=np.int32), **common}
            sender.send(pb_utils.InferenceResponse(output_tensors=_tensors(outputs)))
