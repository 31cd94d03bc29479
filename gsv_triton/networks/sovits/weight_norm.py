"""Upstream's legacy weight norm (``weight_g`` + ``weight_v``) <-> the plain ``weight`` our modules hold.

Upstream wraps some convolutions in ``torch.nn.utils.weight_norm(dim=0)``; its state dict then stores
``X.weight_g`` [dim0, 1, 1] and ``X.weight_v`` (same shape as the weight), with
``weight = g * v / ||v||`` and the norm taken over every axis except 0 (for ConvTranspose1d axis 0 is the
*input* channel). Inference needs only the folded weight, so our modules have no weight-norm hooks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# Module paths (state-dict key minus ".weight") that upstream wraps in weight_norm: decoder upsamplers and
# ResBlock convs, and the WaveNet layers (plus their condition layer) of the flow and the posterior encoder.
WEIGHT_NORM_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"dec\.ups\.\d+"),
    re.compile(r"dec\.resblocks\.\d+\.convs[12]\.\d+"),
    re.compile(r"(flow\.flows\.\d+|enc_q)\.enc\.(in_layers|res_skip_layers)\.\d+"),
    re.compile(r"(flow\.flows\.\d+|enc_q)\.enc\.cond_layer"),
)

_G = ".weight_g"
_V = ".weight_v"
_W = ".weight"
_B = ".bias"


def is_weight_normed(module_path: str) -> bool:
    """True when upstream stores the weight of ``module_path`` (e.g. ``dec.ups.0``) as weight_g/weight_v."""
    return any(p.fullmatch(module_path) for p in WEIGHT_NORM_PATTERNS)


def _norm_except_dim0(t: torch.Tensor) -> torch.Tensor:
    """||t|| over every axis but 0, shaped [dim0, 1, ..., 1] like upstream's weight_g."""
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1).reshape(-1, *([1] * (t.dim() - 1)))


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    # fp16 files are folded in fp32: the fold divides by a norm that fp16 would round coarsely.
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every ``X.weight_g`` / ``X.weight_v`` pair by ``X.weight = v * (g / ||v||)``.

    Other entries pass through unchanged (same order). A pair with one half missing is an error.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(_V):
            continue  # emitted together with its weight_g
        if key.endswith(_G):
            stem = key[: -len(_G)]
            if stem + _V not in state_dict:
                raise KeyError(f"{key} has no matching {stem + _V}")
            v = state_dict[stem + _V]
            dtype = _compute_dtype(v)
            v = v.to(dtype)
            g = value.to(dtype).reshape(-1, *([1] * (v.dim() - 1)))
            # v * (g / ||v||) (not g * v / ||v||) so that fold(unfold(w)) == w bit for bit.
            out[stem + _W] = v * (g / _norm_except_dim0(v))
            continue
        out[key] = value
    orphans = [k for k in state_dict if k.endswith(_V) and k[: -len(_V)] + _G not in state_dict]
    if orphans:
        raise KeyError(f"weight_v without weight_g: {orphans[:3]}")
    return out


def unfold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`fold_weight_norm` for the upstream weight-normed layers.

    ``X.weight`` becomes ``X.weight_g = ||w||`` (over all axes but 0, shape [dim0, 1, 1]) and
    ``X.weight_v = w``. Keys come out in upstream's order: ``X.bias`` first, then ``weight_g``, ``weight_v``.
    """
    out: dict[str, torch.Tensor] = {}

    def emit_pair(stem: str) -> None:
        w = state_dict[stem + _W]
        out[stem + _G] = _norm_except_dim0(w.to(_compute_dtype(w))).to(w.dtype)
        out[stem + _V] = w.clone()

    for key, value in state_dict.items():
        if key.endswith(_W) and is_weight_normed(key[: -len(_W)]):
            stem = key[: -len(_W)]
            if stem + _B not in state_dict:
                emit_pair(stem)  # no bias to wait for
            continue
        out[key] = value
        if key.endswith(_B):
            stem = key[: -len(_B)]
            if is_weight_normed(stem) and stem + _W in state_dict:
                emit_pair(stem)
    return out
