"""Export the GPT to ``t2s_prefill.onnx`` and ``t2s_step.onnx`` (I/O documented in ``gsv_triton.networks.t2s``)."""

from __future__ import annotations

from pathlib import Path

import torch

from gsv_export.onnx_utils import Stopwatch, export_onnx
from gsv_triton.networks.t2s import BERT_DIM, T2SPrefill, T2SStep, Text2SemanticDecoder

PREFILL_FILE = "t2s_prefill.onnx"
STEP_FILE = "t2s_step.onnx"
# Example sizes for tracing only; every one of these axes is dynamic in the graphs.
_TRACE_BATCH, _TRACE_TX, _TRACE_TY, _TRACE_S = 2, 7, 5, 12


def step_input_names(n_layer: int) -> list[str]:
    return ["token", "position", "key_valid"] + [f"past_{kv}_{i}" for i in range(n_layer) for kv in ("k", "v")]


def export_t2s(decoder: Text2SemanticDecoder, out_dir: Path) -> dict[str, Path]:
    """Write both graphs into ``out_dir``; returns {"prefill": path, "step": path}."""
    out_dir = Path(out_dir)
    cfg = decoder.config
    decoder = decoder.eval()
    b, tx, ty, s = _TRACE_BATCH, _TRACE_TX, _TRACE_TY, _TRACE_S

    prefill_args = (
        torch.zeros(b, tx, dtype=torch.int64),
        torch.tensor([tx, tx - 2], dtype=torch.int64),
        torch.zeros(b, BERT_DIM, tx),
        torch.zeros(b, ty, dtype=torch.int64),
    )
    with Stopwatch(f"t2s prefill ({cfg.n_layer} layers)"):
        prefill = export_onnx(
            T2SPrefill(decoder),
            prefill_args,
            out_dir / PREFILL_FILE,
            input_names=["phone_ids", "phone_lengths", "bert", "prompt_codes"],
            output_names=["logits", "k_cache", "v_cache"],
            dynamic_axes={
                "phone_ids": {0: "batch", 1: "text_len"},
                "phone_lengths": {0: "batch"},
                "bert": {0: "batch", 2: "text_len"},
                "prompt_codes": {0: "batch", 1: "prompt_len"},
                "logits": {0: "batch"},
                "k_cache": {1: "seq_len", 2: "batch"},
                "v_cache": {1: "seq_len", 2: "batch"},
            },
        )

    past = [torch.zeros(s, b, cfg.head, cfg.head_dim) for _ in range(2 * cfg.n_layer)]
    step_args = (
        torch.zeros(b, dtype=torch.int64),
        torch.full((b,), ty, dtype=torch.int64),
        torch.ones(b, s, dtype=torch.bool),
        *past,
    )
    names = step_input_names(cfg.n_layer)
    dynamic = {"token": {0: "batch"}, "position": {0: "batch"}, "key_valid": {0: "batch", 1: "past_len"}}
    dynamic.update({n: {0: "past_len", 1: "batch"} for n in names[3:]})
    dynamic.update({"logits": {0: "batch"}, "new_k": {1: "batch"}, "new_v": {1: "batch"}})
    with Stopwatch(f"t2s step ({cfg.n_layer} layers)"):
        step = export_onnx(
            T2SStep(decoder),
            step_args,
            out_dir / STEP_FILE,
            input_names=names,
            output_names=["logits", "new_k", "new_v"],
            dynamic_axes=dynamic,
        )
    return {"prefill": prefill, "step": step}
