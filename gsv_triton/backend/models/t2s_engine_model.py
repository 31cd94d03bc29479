"""The ``t2s_engine`` model (gpu-torch repositories): one instance, every concurrent ``t2s`` request in shared steps.

Triton hands a Python model one request per ``execute`` call when ``max_batch_size`` is 0, and one instance runs
one call at a time, so requests in different instances can never share a decode step. This model is decoupled
with ``async def execute``: tritonserver then starts the calls of ONE instance concurrently, each waits on the
:class:`~gsv_triton.backend.t2s.engine.T2SEngine`, which decodes all of their rows together. The ``t2s``
model in forwarding mode (``forward_to: "t2s_engine"``, several light instances without torch) passes each
request through, so ``voice_clone``'s contract with ``t2s`` is unchanged.

Inputs and outputs are ``t2s``'s; one response per request, flagged final. Parameters: ``weights_from`` (the
model folder holding the torch weights, default ``t2s``), ``lanes`` (rows decoded together, default 16),
``device``, ``dtype``, ``max_context``, ``intra_op_threads`` (as in ``t2s``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import triton_python_backend_utils as pb_utils

from gsv_triton.backend.ort_session import model_parameters
from gsv_triton.backend.t2s.batch import run_t2s
from gsv_triton.contract import T2S

from .onnx_model import torch_placement
from .triton_io import exception_response, request_inputs, response

MODEL = "t2s_engine"


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        from gsv_triton.backend.t2s.engine import DEFAULT_LANES, T2SEngine
        from gsv_triton.backend.torch_networks import load_t2s_runner

        params = model_parameters(args["model_config"])
        folder = Path(args["model_repository"]).resolve().parent / params.get("weights_from", "t2s") / args["model_version"]
        placement = torch_placement(params, int(params.get("intra_op_threads", "1")), args)
        runner = load_t2s_runner(folder, placement, int(params.get("max_context") or 0) or None)
        self.engine = T2SEngine(runner, lanes=int(params.get("lanes") or DEFAULT_LANES))
        self.engine.warm_up()  # CUDA: every batch bucket's first graphs now, not inside the first requests
        # Threads that wait on the engine for one request each: enough for every lane, plus queued requests.
        self.waiters = ThreadPoolExecutor(max_workers=4 * self.engine.lanes, thread_name_prefix="t2s-wait")
        self.logger = pb_utils.Logger
        self.logger.log_info(f"{MODEL}: torch runtime on {placement.device} ({placement.dtype}), "
                             f"{self.engine.lanes} lanes")  # fmt: skip

    async def execute(self, requests: list) -> None:
        await asyncio.gather(*(self._serve(r) for r in requests))
        return None

    async def _serve(self, request) -> None:
        loop = asyncio.get_running_loop()
        try:
            inputs = request_inputs(request, T2S.input_names)
            # run_t2s blocks until the engine has this request's tokens; other requests keep arriving meanwhile.
            outputs = await loop.run_in_executor(self.waiters, run_t2s, self.engine, inputs)
            reply = response(outputs)
        except Exception as exc:  # one bad request must never take the instance down
            reply = exception_response(MODEL, self.logger, exc)
        request.get_response_sender().send(reply, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def finalize(self) -> None:
        self.engine.close()
        self.waiters.shutdown(wait=False)
