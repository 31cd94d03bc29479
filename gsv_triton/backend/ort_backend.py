"""The networks of an exported repository run in-process with onnxruntime (no Triton): tests and benchmarks
drive :class:`~gsv_triton.backend.pipeline.VoiceClonePipeline` over it with the same results as through Triton."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gsv_triton.backend.cancel import NEVER, StopSignal
from gsv_triton.backend.ort_session import create_session, select_graph, spinning_parameter
from gsv_triton.backend.t2s.batch import run_t2s
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.manifest import Manifest
from gsv_triton.precision import PRECISION_KEY


def configured_parameters(config_path: Path) -> dict[str, str]:
    """The ``parameters`` of an installed ``config.pbtxt`` ({} without one), read with Triton's own model-config
    schema (``tritonclient``'s protobuf classes)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        text = Path(config_path).read_text("utf-8")
    except OSError:
        return {}
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    return {key: value.string_value for key, value in config.parameters.items()}


def configured_session(repo: Path, model: str, graph: Path, intra_op_threads: int | None = None):
    """A CPU session of ``graph`` set up as ``model``'s config says, read once: its int8 twin where ``precision``
    chooses it on this CPU, ``intra_op_threads`` (1 when absent; the argument overrides it), ``allow_spinning``."""
    params = configured_parameters(Path(repo) / model / "config.pbtxt")
    threads = params.get("intra_op_threads", "")
    chosen, _ = select_graph(graph, params.get(PRECISION_KEY))
    return create_session(chosen, intra_op_threads or (int(threads) if threads.isdigit() else 1),
                          spinning=spinning_parameter(params))  # fmt: skip


class OrtBackend:
    """The networks of an exported repository run in-process with onnxruntime (no Triton)."""

    FILES = {
        "ssl": "ssl/1/ssl.onnx",
        "bert": "bert/1/bert.onnx",
        "vq_encode": "vq_encode/1/vq_encode.onnx",
        "ref_encoder": "ref_encoder/1/ref_encoder.onnx",
        "sovits_decode": "sovits_decode/1/sovits_decode.onnx",
    }

    def __init__(self, repo: Path, intra_op_threads: int | None = None) -> None:
        """``intra_op_threads`` None: each network gets the thread count of its ``config.pbtxt`` (1 without
        one), so results match the Triton models bit for bit (some kernels split work by thread count). Each
        network loads the graph its ``precision`` parameter chooses, as the Triton model does."""
        repo = Path(repo)
        files = dict(self.FILES)
        if Manifest.read(repo).needs_speaker_vector:
            files["speaker_encoder"] = "speaker_encoder/1/speaker_encoder.onnx"
        self.sessions = {
            name: configured_session(repo, name, repo / f, intra_op_threads) for name, f in files.items()
        }
        self.t2s = T2SRunner(
            configured_session(repo, "t2s", repo / "t2s/1/t2s_prefill.onnx", intra_op_threads),
            configured_session(repo, "t2s", repo / "t2s/1/t2s_step.onnx", intra_op_threads),
        )

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
              stop: StopSignal = NEVER) -> dict[str, np.ndarray]:  # fmt: skip
        if model == "t2s":
            return run_t2s(self.t2s, inputs, stop)
        session = self.sessions[model]
        names = [o.name for o in session.get_outputs()]
        values = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
        return {n: v for n, v in zip(names, values, strict=True) if n in outputs}
