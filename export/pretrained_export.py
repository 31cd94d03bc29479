"""ONNX export of the HuBERT and BERT feature networks (spec 2.3, 2.4, 6.3).

* ``ssl.onnx``: ``wav16k`` [B, N] float32 -> ``ssl`` [B, 768, T50].
* ``bert.onnx``: ``input_ids``, ``attention_mask``, ``token_type_ids`` [B, L] int64 -> ``hidden``
  [B, L, 1024]; the tokenizer files are copied beside it so serving tokenises without the original folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from gsv_triton.networks.pretrained import TOKENIZER_FILES, BertFeatures, HubertSSL

from .onnx_utils import export_onnx

SSL_FILE = "ssl.onnx"
BERT_FILE = "bert.onnx"
# Example sizes for tracing only; every axis below is dynamic.
TRACE_SAMPLES = 16_000
TRACE_TOKENS = 8
# Token ids used in the trace example (any valid id works; [CLS] and [SEP] of the bert-base-chinese vocab).
CLS_ID, SEP_ID = 101, 102


def export_ssl(wrapper: HubertSSL, out_dir: Path) -> Path:
    """Write ``out_dir/ssl.onnx`` (dynamic batch and sample count)."""
    wav = torch.zeros(1, TRACE_SAMPLES)
    wav.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(0))
    return export_onnx(
        wrapper.eval(),
        (wav,),
        Path(out_dir) / SSL_FILE,
        input_names=["wav16k"],
        output_names=["ssl"],
        dynamic_axes={"wav16k": {0: "batch", 1: "samples"}, "ssl": {0: "batch", 2: "frames"}},
    )


def export_bert(wrapper: BertFeatures, out_dir: Path) -> Path:
    """Write ``out_dir/bert.onnx`` (dynamic batch and length) and copy the tokenizer files next to it."""
    out_dir = Path(out_dir)
    ids = torch.full((2, TRACE_TOKENS), CLS_ID + 1000, dtype=torch.long)
    ids[:, 0] = CLS_ID
    ids[:, -1] = SEP_ID
    mask = torch.ones_like(ids)
    mask[1, TRACE_TOKENS // 2 :] = 0  # a padded row, so the traced graph keeps the mask path
    path = export_onnx(
        wrapper.eval(),
        (ids, mask, torch.zeros_like(ids)),
        out_dir / BERT_FILE,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["hidden"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"},
            "hidden": {0: "batch", 1: "tokens"},
        },
    )
    copy_tokenizer_files(wrapper.source_dir, out_dir)
    return path


def copy_tokenizer_files(source_dir: Path | None, out_dir: Path) -> list[Path]:
    """Copy vocab.txt and the tokenizer configs present in ``source_dir`` to ``out_dir``."""
    if source_dir is None:
        return []
    copied = []
    for name in TOKENIZER_FILES:
        src = Path(source_dir) / name
        if src.is_file():
            copied.append(Path(shutil.copy2(src, Path(out_dir) / name)))
    return copied
