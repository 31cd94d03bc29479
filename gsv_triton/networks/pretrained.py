"""The two pretrained feature networks GPT-SoVITS uses, as exportable wrappers (spec 2.3 and 2.4).

* :class:`HubertSSL`: chinese-hubert-base. Raw 16 kHz samples [B, N] in [-1, 1] (no feature-extractor
  normalisation, no attention mask) -> ``last_hidden_state`` transposed to [B, 768, T50],
  T50 = floor((N - 400) / 320) + 1.
* :class:`BertFeatures`: chinese-roberta-wwm-ext-large. Token ids [B, L] -> ``hidden_states[-3]``
  [B, L, 1024].
  The last two encoder layers (and the MLM head) are never used, so the wrapper drops them: its
  ``last_hidden_state`` *is* the full model's ``hidden_states[-3]``.

Both load with ``transformers`` from a local folder; problems with the folder become one-line UserErrors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from gsv_triton.contract import BERT_DIM, SSL_DIM
from gsv_triton.errors import UserError

HUBERT_DIM = SSL_DIM
# hidden_states[-3]: embeddings count as entry 0, so this is the output of layer (n_layers - 2).
BERT_LAYERS_DROPPED = 2
# The 16 kHz front end: receptive field 400 samples, total stride 320 (spec 2.3).
HUBERT_RECEPTIVE_FIELD = 400
HUBERT_HOP = 320
# Files serving needs to tokenise without the original folder (copied next to bert.onnx).
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "added_tokens.json",
)
WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
# Exact math (no fused kernels) keeps the traced graph and the parity checks simple.
ATTN_IMPLEMENTATION = "eager"


def hubert_frames(n_samples: int) -> int:
    """T50 for N samples at 16 kHz (exact for the 7-layer conv front end)."""
    return (n_samples - HUBERT_RECEPTIVE_FIELD) // HUBERT_HOP + 1


def _check_folder(folder: Path, what: str, model_type: str, width_key: str, width: int) -> dict:
    """Validate a HuggingFace model folder; return its config.json as a dict."""
    if not folder.exists():
        raise UserError(f"{folder}: {what} folder not found")
    if not folder.is_dir():
        raise UserError(f"{folder}: expected the {what} folder, got a file")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserError(f"{folder}: not a {what} model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{config_path}: unreadable config.json ({type(exc).__name__})") from None
    if not isinstance(config, dict) or config.get("model_type") != model_type:
        got = config.get("model_type") if isinstance(config, dict) else None
        raise UserError(f"{folder}: config.json has model_type {got!r}, expected {model_type!r} for {what}")
    if config.get(width_key, width) != width:
        got = config.get(width_key)
        raise UserError(f"{folder}: {what} must have {width_key}={width}, config.json says {got}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise UserError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}) in the {what} folder")
    return config


def _from_pretrained(cls, folder: Path, what: str, **kwargs) -> nn.Module:
    """``cls.from_pretrained`` offline, in fp32, refusing checkpoints that would leave weights random."""
    from transformers.utils import logging as hf_logging

    # transformers reports unused keys and draws a progress bar; we report what matters ourselves.
    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = cls.from_pretrained(
            str(folder),
            local_files_only=True,
            dtype=torch.float32,
            attn_implementation=ATTN_IMPLEMENTATION,
            output_loading_info=True,
            **kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - any failure inside transformers' loader means "bad folder"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {text}"[:160]
        raise UserError(f"{folder}: cannot load the {what} model ({reason})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("masked_spec_embed")]
    mismatched = info.get("mismatched_keys", [])
    if missing:
        raise UserError(f"{folder}: {what} weights lack {missing[0]!r} ({len(missing)} missing keys)")
    if mismatched:
        key = mismatched[0][0] if isinstance(mismatched[0], tuple | list) else mismatched[0]
        raise UserError(f"{folder}: {what} weight {key!r} has the wrong shape")
    return model.eval()


class HubertSSL(nn.Module):
    """wav16k [B, N] float32 -> ssl [B, 768, T50] (``last_hidden_state`` transposed)."""

    def __init__(self, model: nn.Module, source_dir: Path | None = None) -> None:
        super().__init__()
        self.model = model
        self.source_dir = source_dir

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        return self.model(wav16k).last_hidden_state.transpose(1, 2)


def load_hubert(folder: Path | str) -> HubertSSL:
    """Load chinese-hubert-base (``HubertModel``) from a local folder."""
    from transformers import HubertModel

    folder = Path(folder)
    _check_folder(folder, "HuBERT (chinese-hubert-base)", "hubert", "hidden_size", HUBERT_DIM)
    model = _from_pretrained(HubertModel, folder, "HuBERT")
    return HubertSSL(model, folder).eval()


class BertFeatures(nn.Module):
    """input_ids, attention_mask, token_type_ids [B, L] int64 -> hidden [B, L, 1024] = ``hidden_states[-3]``.

    ``bert`` must already be truncated to ``n_layers - 2`` encoder layers (see :func:`truncate_bert`).
    """

    def __init__(self, bert: nn.Module, source_dir: Path | None = None) -> None:
        super().__init__()
        self.bert = bert
        self.source_dir = source_dir

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state


def truncate_bert(bert: nn.Module) -> nn.Module:
    """Keep the first ``n - 2`` encoder layers in place, so ``last_hidden_state`` == ``hidden_states[-3]``."""
    layers = bert.encoder.layer
    keep = len(layers) - BERT_LAYERS_DROPPED
    if keep < 0:
        raise ValueError(f"BERT has {len(layers)} layers, hidden_states[-3] needs {BERT_LAYERS_DROPPED}")
    bert.encoder.layer = nn.ModuleList(list(layers)[:keep])
    bert.config.num_hidden_layers = keep
    return bert


def load_bert(folder: Path | str) -> BertFeatures:
    """Load chinese-roberta-wwm-ext-large from a local folder, truncated to the layers the features need."""
    from transformers import BertModel

    folder = Path(folder)
    _check_folder(folder, "BERT (chinese-roberta-wwm-ext-large)", "bert", "hidden_size", BERT_DIM)
    if not (folder / "vocab.txt").is_file():
        raise UserError(f"{folder}: no vocab.txt in the BERT folder (the tokenizer needs it)")
    # BertModel accepts the BertForMaskedLM checkpoint ("bert." prefix); the MLM head is not needed.
    bert = _from_pretrained(BertModel, folder, "BERT", add_pooling_layer=False)
    return BertFeatures(truncate_bert(bert), folder).eval()
