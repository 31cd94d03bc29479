"""Random-initialised checkpoints in the exact upstream layouts, so the whole pipeline runs without downloads.

``write_demo_checkpoints(out)`` writes ``gpt.ckpt``, ``sovits.pth`` (pretrained-like: with ``enc_q.*``),
``chinese-hubert-base/`` and ``chinese-roberta-wwm-ext-large/`` (the real folders' file sets); for v2Pro/v2ProPlus
also ``sv/pretrained_eres2netv2w24s4ep4.ckpt``, and the SoVITS file is written as upstream writes those fine-tunes
(the version code over ``PK``, no ``enc_q.*``). ``size="full"``
uses the real configurations; ``"tiny"`` keeps every interface width (768 / 1024 features, vocabularies, the
HuBERT front-end geometry, upsampling to 640) but few, narrow layers, for fast tests.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path

import torch

from gsv_triton.errors import UserError
from gsv_triton.networks.pretrained import BERT_DIM, HUBERT_DIM

from .checkpoints import PRO_HEADERS, SV_FILE_NAME, save_gpt, save_sovits, save_sv

SIZES = ("tiny", "full")
VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
GPT_FILE = "gpt.ckpt"
SOVITS_FILE = "sovits.pth"
SV_FILE = f"sv/{SV_FILE_NAME}"
HUBERT_DIR = "chinese-hubert-base"
BERT_DIR = "chinese-roberta-wwm-ext-large"
WEIGHTS_FILE = "pytorch_model.bin"

# Tiny T2S: narrow and shallow, but the real vocabularies (phonemes per version, 1025 semantic tokens).
GPT_TINY = {"embedding_dim": 128, "hidden_dim": 128, "head": 4, "n_layer": 2}
# Pro versions pair with s1v3-family GPT files: v2's class and vocabulary.
GPT_PHONEME_VOCAB = {"v1": 512, "v2": 732, "v2Pro": 732, "v2ProPlus": 732}

# chinese-hubert-base (TencentGameMate): HuBERT base with a group-norm conv front end.
HUBERT_FULL = {
    "hidden_size": HUBERT_DIM,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "conv_dim": [512] * 7,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
}
HUBERT_TINY = {
    **HUBERT_FULL,
    "num_hidden_layers": 2,
    "intermediate_size": 256,
    "conv_dim": [64] * 7,
    "num_conv_pos_embeddings": 16,
}
HUBERT_COMMON = {
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "layer_norm_eps": 1e-5,
    "vocab_size": 32,
    "architectures": ["HubertModel"],
}
HUBERT_PREPROCESSOR = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0,
    "return_attention_mask": False,
    "sampling_rate": 16000,
}

# chinese-roberta-wwm-ext-large (hfl): a BERT-large with the bert-base-chinese vocabulary.
BERT_VOCAB_SIZE = 21128
BERT_FULL = {
    "hidden_size": BERT_DIM,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
# 3 layers: hidden_states[-3] is then the output of layer 1, so truncation is still exercised.
BERT_TINY = {**BERT_FULL, "num_hidden_layers": 3, "intermediate_size": 256}
BERT_COMMON = {
    "vocab_size": BERT_VOCAB_SIZE,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": 0,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "directionality": "bidi",
    "architectures": ["BertForMaskedLM"],
}
BERT_SPECIAL = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
BERT_UNUSED = 99  # [unused1] .. [unused99] sit between [PAD] and [UNK] (ids 1..99)
BERT_TOKENIZER_CONFIG = {
    "do_lower_case": True,
    "tokenize_chinese_chars": True,
    "model_max_length": 512,
    "tokenizer_class": "BertTokenizer",
}
CJK_FIRST, CJK_LAST = 0x4E00, 0x9FA5
CJK_PUNCTUATION = "，。！？、；：“”‘’（）《》【】「」『』…—～·"


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def _check(size: str, version: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")


# ----------------------------------------------------------------------------------------------------
# GPT and SoVITS


def gpt_demo_config(size: str, version: str):
    """The T2SConfig of a demo GPT (full = s1longer(-v2).yaml; tiny = narrow)."""
    from gsv_triton.networks.t2s import T2SConfig

    _check(size, version)
    fields = {"phoneme_vocab_size": GPT_PHONEME_VOCAB[version]}
    if size == "tiny":
        fields.update(GPT_TINY)
    return T2SConfig(**fields)


def write_demo_gpt(path: Path, size: str = "tiny", version: str = "v2", seed: int = 0) -> Path:
    """A GPT ``.ckpt`` with ``demo_init_`` weights, stored fp16 like a fine-tune."""
    from gsv_triton.networks.t2s import Text2SemanticDecoder, demo_init_

    config = gpt_demo_config(size, version)
    model = Text2SemanticDecoder(config)
    demo_init_(model, torch.Generator().manual_seed(seed))
    return save_gpt(path, config.to_checkpoint_config(), model.state_dict(), fp16=True)


def write_demo_sovits(path: Path, size: str = "tiny", version: str = "v2", seed: int = 0) -> Path:
    """A SoVITS ``.pth`` with weight norm unfolded, fp16. v1/v2: pretrained-like (the full key set incl.
    ``enc_q.*``); Pro: a fine-tune as ``savee`` writes it (header "05"/"06", ``enc_q.*`` dropped)."""
    from gsv_triton.networks.sovits import SynthesizerTrn, default_hparams, demo_init_, unfold_weight_norm

    _check(size, version)
    hparams = default_hparams(size, version)
    pro = version in PRO_HEADERS
    model = SynthesizerTrn.from_hparams(hparams["model"], version, include_posterior=not pro)
    demo_init_(model, torch.Generator().manual_seed(seed + 1))
    upstream = unfold_weight_norm(model.state_dict())
    return save_sovits(path, hparams, upstream, fp16=True, header=PRO_HEADERS.get(version), drop_posterior=pro)


def write_demo_sv(path: Path, seed: int = 0) -> Path:
    """The speaker-verification file of Pro versions (ERes2NetV2 w24 s4 ep4, always full size: one network for
    every model), with a well-conditioned random init."""
    from gsv_triton.networks.eres2net import ERes2NetV2, sv_demo_init_

    model = ERes2NetV2()
    sv_demo_init_(model, torch.Generator().manual_seed(seed + 4))
    return save_sv(path, model.state_dict())


# ----------------------------------------------------------------------------------------------------
# HuBERT and BERT folders


def _legacy_weight_norm_names(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Name weight-norm tensors as the released (transformers 4.x) files do: ``weight_g`` / ``weight_v``."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        out[key] = value.detach().clone().contiguous()
    return out


def write_demo_hubert(folder: Path, size: str = "tiny", seed: int = 0) -> Path:
    """``config.json``, ``preprocessor_config.json`` and ``pytorch_model.bin`` of a HubertModel."""
    from transformers import HubertConfig, HubertModel

    folder.mkdir(parents=True, exist_ok=True)
    config = HubertConfig(**HUBERT_COMMON, **(HUBERT_FULL if size == "full" else HUBERT_TINY))
    torch.manual_seed(seed + 2)  # transformers' own init draws from the global generator
    model = HubertModel(config).eval()
    config.to_json_file(str(folder / "config.json"))
    (folder / "preprocessor_config.json").write_text(json.dumps(HUBERT_PREPROCESSOR, indent=2) + "\n")
    torch.save(_legacy_weight_norm_names(model.state_dict()), str(folder / WEIGHTS_FILE))
    return folder


def bert_vocab() -> list[str]:
    """A 21128-entry vocabulary laid out like bert-base-chinese's: [PAD], [unused1..99], [UNK], [CLS], [SEP],
    [MASK], then ASCII and punctuation, the CJK block U+4E00..U+9FA5, then ``##`` word pieces."""
    tokens = [BERT_SPECIAL["pad"]] + [f"[unused{i}]" for i in range(1, BERT_UNUSED + 1)]
    tokens += [BERT_SPECIAL[k] for k in ("unk", "cls", "sep", "mask")] + ["<S>", "<T>"]
    tokens += [chr(c) for c in range(0x21, 0x7F) if not chr(c).isupper()]  # the tokenizer lower-cases
    tokens += list(CJK_PUNCTUATION)
    tokens += [chr(c) for c in range(CJK_FIRST, CJK_LAST + 1)]
    # The real vocabulary ends with many "##x" continuations; the letters and digits come first here.
    filler = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    filler += [f"##{chr(c)}" for c in range(CJK_FIRST, CJK_LAST + 1)]
    seen = set(tokens)
    tokens += [t for t in filler if t not in seen][: BERT_VOCAB_SIZE - len(tokens)]
    if len(tokens) != BERT_VOCAB_SIZE or len(set(tokens)) != BERT_VOCAB_SIZE:
        raise AssertionError("demo BERT vocabulary must have 21128 distinct entries")
    return tokens


def write_demo_bert(folder: Path, size: str = "tiny", seed: int = 0) -> Path:
    """``config.json``, ``pytorch_model.bin`` (BertForMaskedLM), ``vocab.txt`` and the tokenizer configs."""
    from transformers import BertConfig, BertForMaskedLM

    folder.mkdir(parents=True, exist_ok=True)
    config = BertConfig(**BERT_COMMON, **(BERT_FULL if size == "full" else BERT_TINY))
    torch.manual_seed(seed + 3)
    model = BertForMaskedLM(config).eval()
    config.to_json_file(str(folder / "config.json"))
    # The MLM decoder shares the word-embedding tensor; torch.save stores it once.
    torch.save(OrderedDict(model.state_dict()), str(folder / WEIGHTS_FILE))
    (folder / "vocab.txt").write_text("\n".join(bert_vocab()) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(BERT_TOKENIZER_CONFIG, indent=2) + "\n")
    special = {f"{k}_token": v for k, v in BERT_SPECIAL.items()}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    return folder


# ----------------------------------------------------------------------------------------------------


def write_demo_checkpoints(out: Path, size: str = "tiny", version: str = "v2", seed: int = 0) -> None:
    """Write the four demo inputs of ``gsv-triton export`` into ``out`` and print what was written."""
    _check(size, version)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output path exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output directory ({exc.strerror})") from None
    start = time.perf_counter()
    steps = (
        ("GPT", lambda: write_demo_gpt(out / GPT_FILE, size, version, seed)),
        ("SoVITS", lambda: write_demo_sovits(out / SOVITS_FILE, size, version, seed)),
        ("HuBERT", lambda: write_demo_hubert(out / HUBERT_DIR, size, seed)),
        ("BERT", lambda: write_demo_bert(out / BERT_DIR, size, seed)),
    )
    if version in PRO_HEADERS:
        steps += (("SV", lambda: write_demo_sv(out / SV_FILE, seed)),)
    for label, write in steps:
        t0 = time.perf_counter()
        path = write()
        _log(f"{label:<7} {path}  ({_size_mb(path):.1f} MB, {time.perf_counter() - t0:.1f} s)")
    total = time.perf_counter() - start
    _log(f"{size} {version} demo checkpoints (seed {seed}) written to {out} in {total:.1f} s")
