"""The torch weights that ``export --target gpu-torch`` writes and the torch runtime inside Triton reads.

Into each model's version folder: ``torch_network.json`` (which network, its hyperparameters) and
``torch_weights.pt`` (a plain state dict, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gsv_triton.errors import UserError

NETWORK_FILE = "torch_network.json"
WEIGHTS_FILE = "torch_weights.pt"
FORMAT = 1
# The state-dict prefixes of SynthesizerTrn each SoVITS entry point needs (the export stores only these).
SOVITS_PARTS: dict[str, tuple[str, ...]] = {
    "vq_encode": ("ssl_proj.", "quantizer."),
    "ref_encoder": ("ref_enc.",),
    "sovits_decode": ("enc_p.", "flow.", "dec.", "quantizer."),
}
TORCH_PORT_NETWORKS = ("ssl", "bert", "vq_encode", "ref_encoder", "sovits_decode")  # served by one module each
NETWORKS = (*TORCH_PORT_NETWORKS, "t2s")


def write_network(folder: Path, network: str, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write ``torch_network.json`` and ``torch_weights.pt`` into ``folder``; returns the weights path."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NETWORK_FILE).write_text(json.dumps({"format": FORMAT, "network": network, "config": config}, indent=1))
    weights = folder / WEIGHTS_FILE
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, weights)
    return weights


def read_network(folder: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """(network, config, state dict) of a folder written by :func:`write_network`."""
    folder = Path(folder)
    meta_path, weights = folder / NETWORK_FILE, folder / WEIGHTS_FILE
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(
            f"{folder} has no {NETWORK_FILE} + {WEIGHTS_FILE}: export this repository with --target gpu-torch"
        )
    meta = json.loads(meta_path.read_text("utf-8"))
    if meta.get("format") != FORMAT or meta.get("network") not in NETWORKS:
        raise UserError(f"{meta_path}: unsupported torch network description")
    return meta["network"], meta["config"], torch.load(weights, map_location="cpu", weights_only=True)
