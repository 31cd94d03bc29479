"""Small helpers around ``triton_python_backend_utils`` shared by our Python-backend models.

Import this module only inside Triton's Python stub (``triton_python_backend_utils`` exists nowhere else).
"""

from __future__ import annotations

import ctypes
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.cancel import NEVER, RequestCancelled, StopSignal, parse_parameters, signal_from_parameters
from gsv_triton.errors import InputError
from gsv_triton.settings import Limits

if TYPE_CHECKING:
    from gsv_triton.backend.model_set import SetPipelines


class BlsError(RuntimeError):
    """A BLS call to another model failed; the message names the model."""


def request_inputs(request, names: Iterable[str]) -> dict[str, np.ndarray]:
    """``{name: array}`` for the inputs of ``names`` present in ``request`` (optional ones may be absent)."""
    out = {}
    for name in names:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is not None:
            out[name] = tensor.as_numpy()
    return out


def error_response(message: str, invalid_input: bool = False, code: int | None = None):
    """A response that carries only an error: the batch goes on, the server keeps serving.

    ``invalid_input`` marks the client's fault (HTTP 400 / gRPC INVALID_ARGUMENT instead of 500 / INTERNAL);
    ``code`` names another ``pb_utils.TritonError`` code.
    """
    if invalid_input:
        code = pb_utils.TritonError.INVALID_ARG
    if code is not None:
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def request_stop(request) -> StopSignal:
    """The stop signal (deadline, cancel flag) a request carries in its parameters."""
    return signal_from_parameters(parse_parameters(request.parameters()))


def response(outputs: Mapping[str, np.ndarray]):
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in outputs.items()])


def exception_response(model_name: str, logger, exc: Exception, log: bool = True):
    """The error response of ``exc`` (call it inside the ``except`` block): an InputError travels as data
    (:meth:`InputError.to_wire`, INVALID_ARG); anything else is logged (unless ``log`` is False) and reported
    with a generic message."""
    if isinstance(exc, InputError):
        return error_response(exc.to_wire(), invalid_input=True)
    if isinstance(exc, RequestCancelled):  # nobody waits for the answer: nothing to log
        return error_response(f"{model_name}: {exc}", code=pb_utils.TritonError.CANCELLED)
    if isinstance(exc, BlsError):
        return error_response(f"{model_name}: {exc}")
    if log:
        logger.log_error(f"{model_name}: {traceback.format_exc()}")
    return error_response(f"{model_name}: internal error: {type(exc).__name__}: {exc}")


_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only


def release_heap() -> None:
    """Give glibc's free heap pages back to the system (``malloc_trim(0)``; a no-op without glibc).

    The numpy buffers of a long request (t2s's KV caches and token rows) are freed into the heap, and glibc keeps
    them resident: +60 MB per t2s instance after one long request that no idle time gave back.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def guarded(model_name: str, logger, func, *args):
    """``func(*args)`` as a response; any exception becomes its :func:`exception_response`. The heap's free pages
    go back to the system after each request (:func:`release_heap`)."""
    try:
        return func(*args)
    except Exception as exc:  # one bad request must never take the instance (or its batch) down
        return exception_response(model_name, logger, exc)
    finally:
        release_heap()


class BlsBackend:
    """:class:`~gsv_triton.backend.pipeline.Backend` over BLS: each call is an InferenceRequest to the
    named model of the same server."""

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
              stop: StopSignal = NEVER) -> dict[str, np.ndarray]:  # fmt: skip
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=list(outputs),
            inputs=[pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in inputs.items()],
            parameters=stop.parameters(),
        )
        result = request.exec()
        if result.has_error():
            if result.error().code() == pb_utils.TritonError.CANCELLED:
                raise RequestCancelled(result.error().message())
            raise BlsError(f"{model} failed: {result.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(result, name).as_numpy() for name in outputs}


def bls_pipeline(
    args: dict, params: Mapping[str, str], limits: Limits, *, reference_cache: bool = True, prompt_cache: bool = True
) -> SetPipelines:
    """The orchestration of a BLS model (voice_clone and its siblings) over the networks beside it: one pipeline
    per model set a request names (:class:`~gsv_triton.backend.model_set.SetPipelines`), the first warmed up.

    Cache sizes come from the config parameters ``reference_cache_size`` / ``prompt_cache_size`` (0 where the
    model keeps no such cache); ``warmup_languages`` (comma-separated) runs the text frontend once per language
    at load time, so no request pays the dictionary loading.
    """
    # Imported here: the network models use this module too, and need not load the text and audio frontends.
    from gsv_triton.backend.model_set import SetPipelines
    from gsv_triton.backend.pipeline import (
        PROMPT_CACHE_SIZE,
        REFERENCE_CACHE_SIZE,
        WARMUP_LANGUAGES,
        VoiceClonePipeline,
    )
    from gsv_triton.text import BACKGROUND_WARMUP_LANGUAGES

    # args["model_repository"] is this model's folder; the exported networks are its siblings.
    repo = Path(args["model_repository"]).resolve().parent
    caches = {
        "reference_cache_size": int(params.get("reference_cache_size", REFERENCE_CACHE_SIZE)) if reference_cache else 0,
        "prompt_cache_size": int(params.get("prompt_cache_size", PROMPT_CACHE_SIZE)) if prompt_cache else 0,
    }
    pipelines = SetPipelines(repo, BlsBackend(),
                             lambda backend, config: VoiceClonePipeline.from_config(backend, repo, config, limits,
                                                                                     **caches))  # fmt: skip
    pipeline = pipelines.first()
    languages = [x.strip() for x in params.get("warmup_languages", ",".join(WARMUP_LANGUAGES)).split(",")]
    later = [x for x in languages if x in BACKGROUND_WARMUP_LANGUAGES]
    pipeline.warm_up([x for x in languages if x and x not in later])
    if later:
        # Keeps the model's load (and a dead stub's reload) seconds shorter; see BACKGROUND_WARMUP_LANGUAGES.
        threading.Thread(target=pipeline.warm_up, args=(later,), name="warm-up", daemon=True).start()
    return pipelines
