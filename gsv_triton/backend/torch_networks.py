"""Our torch modules (``gsv_triton.networks``) as serving networks: the torch runtime of the Python-backend models.

This module rebuilds each network from the two files ``export --target gpu-torch`` wrote into its model's
version folder (``gsv_triton.networks.saved``), and wraps it with the same tensor names and dtypes as the ONNX
graph of that model, behind onnxruntime's session interface (``get_inputs``, ``get_outputs``, ``run``), so the
Triton models run either runtime through one code path.

Networks: ``ssl`` (HuBERT), ``bert`` (RoBERTa, truncated to hidden_states[-3]), ``vq_encode``, ``ref_encoder``,
``sovits_decode`` (three entry points of the SoVITS synthesizer, each folder holding only its part of the
weights) and ``t2s`` (the GPT, served by :class:`~gsv_triton.backend.t2s.torch_runner.TorchT2SRunner`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsv_triton.backend.torch_device import Placement, keep_float32_exact
from gsv_triton.contract import CONTRACTS
from gsv_triton.errors import UserError
from gsv_triton.networks.saved import SOVITS_PARTS, TORCH_PORT_NETWORKS, read_network

# Input and output tensor names, as in the ONNX graphs and the Triton configs.
PORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (CONTRACTS[name].input_names, CONTRACTS[name].output_names) for name in TORCH_PORT_NETWORKS
}


@dataclass(frozen=True)
class Port:
    """A tensor name, like onnxruntime's NodeArg (the serving code reads ``.name`` only)."""

    name: str


class TorchNetwork:
    """A torch module with onnxruntime's session interface: ``run(None, feeds)`` -> list of numpy outputs.

    Floating inputs are cast to the placement's dtype, floating outputs come back as float32 (the Triton
    configs declare FP32), integer tensors stay int64.
    """

    def __init__(
        self,
        name: str,
        forward: Callable[..., torch.Tensor],
        inputs: Sequence[str],
        outputs: Sequence[str],
        placement: Placement,
    ) -> None:
        self.name = name
        self.placement = placement
        self._forward = forward
        self._inputs = [Port(n) for n in inputs]
        self._outputs = [Port(n) for n in outputs]

    def get_inputs(self) -> list[Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[Port]:
        return list(self._outputs)

    def _tensor(self, value: np.ndarray) -> torch.Tensor:
        array = np.asarray(value)
        tensor = torch.from_numpy(np.array(array, copy=not array.flags.writeable))
        if tensor.is_floating_point():
            return tensor.to(device=self.placement.device, dtype=self.placement.dtype)
        return tensor.to(device=self.placement.device, dtype=torch.int64)

    @torch.no_grad()
    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            args = [self._tensor(feeds[p.name]) for p in self._inputs]
        except KeyError as exc:
            raise ValueError(f"{self.name}: missing input {exc.args[0]!r}") from None
        result = self._forward(*args)
        out = result.float() if result.is_floating_point() else result
        values = {self._outputs[0].name: out.cpu().numpy()}
        return [values[n] for n in (output_names or values)]


def _hf_model(network: str, config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """HuBERT or the truncated BERT rebuilt from its saved transformers config (no files of the original)."""
    from transformers import BertConfig, BertModel, HubertConfig, HubertModel

    # SDPA instead of the exporter's eager attention: the same math with fused kernels on CUDA.
    if network == "ssl":
        model = HubertModel(HubertConfig.from_dict(dict(config), attn_implementation="sdpa"))
    else:
        model = BertModel(BertConfig.from_dict(dict(config), attn_implementation="sdpa"), add_pooling_layer=False)
    model.load_state_dict(state, strict=True)
    return model


def _synthesizer(network: str, config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    from gsv_triton.networks.sovits import SynthesizerTrn

    model = SynthesizerTrn.from_hparams(config["model"], config["version"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    needed = SOVITS_PARTS[network]
    lacking = [k for k in missing if k.startswith(needed)]
    if unexpected or lacking:
        raise UserError(f"{network} weights do not fit the SoVITS model: {(unexpected or lacking)[:3]}")
    return model


def load_network(folder: Path, placement: Placement) -> TorchNetwork:
    """The plain network stored in ``folder`` (ssl, bert, vq_encode, ref_encoder or sovits_decode)."""
    network, config, state = read_network(folder)
    if network not in PORTS:
        raise UserError(f"{folder} holds the {network} network, which is not a plain network")
    if network in ("ssl", "bert"):
        from gsv_triton.networks.pretrained import BertFeatures, HubertSSL

        hf = _hf_model(network, config, state)
        module = HubertSSL(hf) if network == "ssl" else BertFeatures(hf)
        forward = module
    else:
        module = _synthesizer(network, config, state)
        method = {"vq_encode": "extract_codes", "ref_encoder": "reference_embedding", "sovits_decode": "decode"}
        forward = getattr(module, method[network])
    module.to(device=placement.device, dtype=placement.dtype).eval()
    keep_float32_exact(placement)  # float32 on CUDA (vq_encode) means float32, not TF32
    inputs, outputs = PORTS[network]
    # ref_encoder's optional sv is the Pro speaker vector; the torch runtime serves v1/v2 (export refuses Pro there).
    optional = {t.name for t in CONTRACTS[network].inputs if t.optional}
    inputs = tuple(name for name in inputs if name not in optional)
    return TorchNetwork(network, forward, inputs, outputs, placement)


def load_t2s_runner(folder: Path, placement: Placement, max_context: int | None = None):
    """The torch T2S loop for the GPT stored in ``folder``."""
    from gsv_triton.backend.t2s.torch_runner import DEFAULT_MAX_CONTEXT, TorchT2SRunner
    from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder

    network, config, state = read_network(folder)
    if network != "t2s":
        raise UserError(f"{folder} holds the {network} network, not t2s")
    decoder = Text2SemanticDecoder(T2SConfig(**config))
    decoder.load_state_dict(state, strict=True)
    return TorchT2SRunner(decoder.eval(), placement, max_context=max_context or DEFAULT_MAX_CONTEXT)
