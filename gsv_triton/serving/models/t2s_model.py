"""The ``t2s`` model: the GPT's whole autoregressive loop (prefill + decode steps + sampling) in one instance.

No per-token round trips: one request = one call of :class:`~gsv_triton.t2s_loop.T2SRunner`, which keeps one
KV-cache buffer per request. The rows of a request (the sentence pieces of one voice_clone request) run as one
batch; requests are never merged with each other, so a request's tokens never depend on another in flight.

Config parameters: ``prefill_file``, ``step_file`` (graphs in the version folder), ``intra_op_threads``,
``device`` (as in ``onnx_model``); ``runtime: torch`` runs the loop on torch instead
(:class:`~gsv_triton.serving.torch_t2s.TorchT2SRunner`: static KV cache, CUDA graphs on a GPU; parameters
``device``, ``dtype``, ``max_context``), with weights written by ``export --target gpu-torch``.
"""

from __future__ import annotations

from pathlib import Path

import triton_python_backend_utils as pb_utils

from gsv_triton.serving.ort_model import create_session, instance_device, model_parameters
from gsv_triton.t2s_loop import T2SRunner

from .onnx_model import torch_placement, uses_torch_runtime
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
        self.logger = pb_utils.Logger
        if uses_torch_runtime(params):
            from gsv_triton.serving.torch_networks import load_t2s_runner

            placement = torch_placement(params, threads, args)
            self.runner = load_t2s_runner(folder, placement, int(params.get("max_context") or 0) or None)
            self.runner.warm_up()  # capture the first step graph now, not on the first request
            self.logger.log_info(f"t2s: torch runtime on {placement.device} ({placement.dtype})")
            return
        device, device_id = instance_device(args, params.get("device") or None)
        self.runner = T2SRunner(
            create_session(folder / params.get("prefill_file", "t2s_prefill.onnx"), threads, device, device_id),
            create_session(folder / params.get("step_file", "t2s_step.onnx"), threads, device, device_id),
        )

    def execute(self, requests: list) -> list:
        return [guarded("t2s", self.logger, self._run, r) for r in requests]

    def _run(self, request):
        return response(run_t2s(self.runner, request_inputs(request, INPUTS)))
