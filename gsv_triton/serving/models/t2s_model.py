"""The ``t2s`` model: the GPT's whole autoregressive loop (prefill + decode steps + sampling) in one instance.

No per-token round trips: one request = one call of :class:`~gsv_triton.t2s_loop.T2SRunner`, which keeps one
KV-cache buffer per request. The rows of a request (the sentence pieces of one voice_clone request) run as one
batch; requests are never merged with each other, so a request's tokens never depend on another in flight.

Config parameters: ``prefill_file``, ``step_file`` (graphs in the version folder), ``intra_op_threads``,
``device`` (as in ``onnx_model``).
"""

from __future__ import annotations

from pathlib import Path

import triton_python_backend_utils as pb_utils

from gsv_triton.serving.ort_model import create_session, instance_device, model_parameters
from gsv_triton.t2s_loop import T2SRunner

from .pipeline import run_t2s
from .triton_io import guarded, request_inputs, response

INPUTS = (
    "phone_ids", "phone_lengths", "bert", "prompt_codes", "top_k", "top_p", "temperature",
    "repetition_penalty", "seed", "max_new_tokens", "ignore_eos",
)  # fmt: skip


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        threads = int(params.get("intra_op_threads", "1"))
        device, device_id = instance_device(args, params.get("device") or None)
        self.runner = T2SRunner(
            create_session(folder / params.get("prefill_file", "t2s_prefill.onnx"), threads, device, device_id),
            create_session(folder / params.get("step_file", "t2s_step.onnx"), threads, device, device_id),
        )
        self.logger = pb_utils.Logger

    def execute(self, requests: list) -> list:
        return [guarded("t2s", self.logger, self._run, r) for r in requests]

    def _run(self, request):
        return response(run_t2s(self.runner, request_inputs(request, INPUTS)))
