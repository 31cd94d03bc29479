"""One generic Python-backend model for every plain network: an onnxruntime session, names read from the graph.

Config parameters (``config.pbtxt``):

* ``onnx_file`` (required): the graph in the version folder;
* ``intra_op_threads`` (default 1): onnxruntime threads of this instance;
* ``precision`` (optional): auto / fp32 / int8: the graph or its int8 twin (:mod:`gsv_triton.precision`);
* ``allow_spinning`` (optional, default off): onnxruntime's threads spin between operators instead of sleeping;
* ``device`` (optional): cpu / cuda / tensorrt; default cuda for KIND_GPU instances, else cpu;
* ``runtime`` (optional): ``onnxruntime`` (default) or ``torch``: our torch module from ``torch_network.json`` +
  ``torch_weights.pt`` (``export --target gpu-torch``), placed by ``device`` (auto / cpu / cuda) and ``dtype``
  (auto / float32 / float16), see :mod:`gsv_triton.backend.torch_networks`. torch is imported only then;
* ``batch_pad_axis`` (optional): with dynamic batching and ``allow_ragged_batch`` inputs, requests of different
  lengths on this axis are right-padded with zeros into one run and every output is cut back to each request's
  own length on the same axis. Only for graphs where zero padding is exact (BERT with its attention mask).

Without ``batch_pad_axis`` each request runs alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from gsv_triton.backend.ort_session import (
    create_session,
    instance_device,
    model_parameters,
    select_graph,
    shrinking_run_options,
    spinning_parameter,
)
from gsv_triton.errors import InputError
from gsv_triton.precision import PRECISION_KEY

from .triton_io import guarded, request_inputs, response

RUNTIME_KEY = "runtime"
TORCH_RUNTIME = "torch"


def uses_torch_runtime(params: dict[str, str]) -> bool:
    """True when a model's parameters select the torch runtime (decided without importing torch)."""
    return (params.get(RUNTIME_KEY) or "").strip().lower() == TORCH_RUNTIME


def torch_placement(params: dict[str, str], threads: int, args: dict):
    """The torch device/dtype of this instance; CPU thread count set like onnxruntime's (one stub per instance)."""
    import torch

    from gsv_triton.backend.torch_device import placement_from_parameters

    torch.set_num_threads(max(1, threads))
    return placement_from_parameters(params, int(args.get("model_instance_device_id", 0) or 0))


def torch_session(folder: Path, params: dict[str, str], threads: int, args: dict):
    """The torch network of ``folder`` behind onnxruntime's session interface."""
    from gsv_triton.backend.torch_networks import load_network

    return load_network(folder, torch_placement(params, threads, args))


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = model_parameters(config)
        self.name = config.get("name", args.get("model_name", "onnx"))
        self.logger = pb_utils.Logger
        folder = Path(args["model_repository"]) / args["model_version"]
        threads = int(params.get("intra_op_threads", "1"))
        self.run_options = None  # torch runtime: no onnxruntime arena to shrink
        if uses_torch_runtime(params):
            self.session = torch_session(folder, params, threads, args)
        else:
            device, device_id = instance_device(args, params.get("device") or None)
            graph, why = select_graph(folder / params["onnx_file"], params.get(PRECISION_KEY), device)
            self.session = create_session(graph, threads, device, device_id, spinning=spinning_parameter(params))
            self.logger.log_info(f"{self.name}: {graph.name}: {why}")
            self.run_options = shrinking_run_options()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        axis = params.get("batch_pad_axis", "")
        self.pad_axis = int(axis) if axis else None

    def execute(self, requests: list) -> list:
        if self.pad_axis is not None and len(requests) > 1:
            batched = self._run_padded(requests)
            if batched is not None:
                return batched
        return [guarded(self.name, self.logger, self._run_one, r) for r in requests]

    def _feeds(self, request) -> dict[str, np.ndarray]:
        return request_inputs(request, self.input_names)

    def _session_run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.run_options is None:
            return self.session.run(None, feeds)
        return self.session.run(None, feeds, self.run_options)

    def _run_one(self, request):
        feeds = self._feeds(request)
        try:
            values = self._session_run(feeds)
        except Exception as exc:  # onnxruntime reports shape/type problems of the request this way
            raise InputError(self.name, f"onnxruntime rejected the inputs: {exc}") from exc
        return response(dict(zip(self.output_names, values, strict=True)))

    def _run_padded(self, requests: list) -> list | None:
        """One run for all requests, padded on ``pad_axis``; None (run them one by one) if anything fails."""
        axis = self.pad_axis
        try:
            feeds = [self._feeds(r) for r in requests]
            lengths = [f[self.input_names[0]].shape[axis] for f in feeds]
            sizes = [f[self.input_names[0]].shape[0] for f in feeds]
            longest = max(lengths)
            stacked = {}
            for name in self.input_names:
                parts = []
                for f in feeds:
                    x = f[name]
                    pad = [(0, 0)] * x.ndim
                    pad[axis] = (0, longest - x.shape[axis])
                    parts.append(np.pad(x, pad))
                stacked[name] = np.concatenate(parts, axis=0)
            values = self._session_run(stacked)
        except Exception:
            return None
        out, start = [], 0
        for size, length in zip(sizes, lengths, strict=True):
            tensors = {}
            for name, value in zip(self.output_names, values, strict=True):
                part = value[start : start + size]
                if part.ndim > axis and part.shape[axis] == longest:
                    part = np.take(part, np.arange(length), axis=axis)
                tensors[name] = part
            out.append(response(tensors))
            start += size
        return out
