"""The ``t2s`` model: the GPT's whole autoregressive loop (prefill + decode steps + sampling) in one instance.

No per-token round trips: one request = one call of :class:`~gsv_triton.backend.t2s.loop.T2SRunner`, which keeps one
KV-cache buffer per request. The rows of a request (the sentence pieces of one voice_clone request) run as one
batch; requests are never merged with each other, so a request's tokens never depend on another in flight.

Config parameters: ``prefill_file``, ``step_file`` (graphs in the version folder), ``intra_op_threads``,
``device`` (as in ``onnx_model``); ``runtime: torch`` runs the loop on torch instead
(:class:`~gsv_triton.backend.t2s.torch_runner.TorchT2SRunner`: static KV cache, CUDA graphs on a GPU; parameters
``device``, ``dtype``, ``max_context``), with weights written by ``export --target gpu-torch``.

``forward_to: "t2s_engine"`` (gpu-torch repositories): no network here; each request goes unchanged over BLS to
that decoupled model, whose single instance decodes the rows of all concurrent requests together
(:mod:`gsv_triton.backend.models.t2s_engine_model`). These instances only wait, so they are many and cheap.
"""

from __future__ import annotations

from pathlib import Path

import triton_python_backend_utils as pb_utils

from gsv_triton.backend.ort_session import (
    create_session,
    instance_device,
    model_parameters,
    select_graph,
    spinning_parameter,
)
from gsv_triton.backend.t2s.batch import run_t2s
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.contract import T2S
from gsv_triton.precision import PRECISION_KEY

from .onnx_model import torch_placement, uses_torch_runtime
from .triton_io import BlsError, error_response, guarded, request_inputs, request_stop, response


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        threads = int(params.get("intra_op_threads", "1"))
        self.logger = pb_utils.Logger
        self.forward_to = params.get("forward_to") or None
        if self.forward_to:
            return
        if uses_torch_runtime(params):
            from gsv_triton.backend.torch_networks import load_t2s_runner

            placement = torch_placement(params, threads, args)
            self.runner = load_t2s_runner(folder, placement, int(params.get("max_context") or 0) or None)
            self.runner.warm_up()  # capture the first step graph now, not on the first request
            self.logger.log_info(f"t2s: torch runtime on {placement.device} ({placement.dtype})")
            return
        device, device_id = instance_device(args, params.get("device") or None)
        step, why = select_graph(folder / params.get("step_file", "t2s_step.onnx"), params.get(PRECISION_KEY), device)
        spinning = spinning_parameter(params)
        self.runner = T2SRunner(
            create_session(folder / params.get("prefill_file", "t2s_prefill.onnx"), threads, device, device_id,
                           spinning=spinning),  # fmt: skip
            create_session(step, threads, device, device_id, spinning=spinning),
        )
        self.logger.log_info(f"t2s: decode step {step.name}: {why}")

    def execute(self, requests: list) -> list:
        run = self._forward if self.forward_to else self._run
        return [guarded("t2s", self.logger, run, r) for r in requests]

    def _forward(self, request):
        """The request as it came, to ``forward_to``; its single (final) response back."""
        call = pb_utils.InferenceRequest(
            model_name=self.forward_to, requested_output_names=list(T2S.output_names), inputs=request.inputs()
        )
        for reply in call.exec(decoupled=True):
            if reply.has_error():
                message = reply.error().message()
                if reply.error().code() == pb_utils.TritonError.INVALID_ARG:
                    return error_response(message, invalid_input=True)  # the field name stays first
                raise BlsError(message)
            tensors = [pb_utils.get_output_tensor_by_name(reply, name) for name in T2S.output_names]
            if all(t is not None for t in tensors):
                return pb_utils.InferenceResponse(output_tensors=tensors)
        raise BlsError(f"{self.forward_to} sent no tokens")

    def _run(self, request):
        # The orchestrator's deadline and cancel flag (request parameters): checked between tokens.
        return response(run_t2s(self.runner, request_inputs(request, T2S.input_names), request_stop(request)))
