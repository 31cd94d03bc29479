"""SoVITS (stage 2) hyper-parameters: the upstream-shaped config dict and its typed ``model`` section.

``default_hparams`` writes what upstream's ``configs/s2.json`` holds plus the fields the webui adds before
training (``version``, ``s2_ckpt_dir``, ``name``, ``save_weight_dir``, ``train.pretrained_s2G`` ...), so demo
checkpoints carry a realistic ``config``. ``SoVITSHparams`` is the part :class:`SynthesizerTrn` reads.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gsv_triton.manifest import PRO_VERSIONS
from gsv_triton.settings import HOP_LENGTH

from .mrte import MRTE_HIDDEN

SUPPORTED_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
SIZES = ("tiny", "full")

# Upstream's configs/s2.json "model" section (v1 and v2 share it).
_FULL_MODEL: dict[str, Any] = {
    "inter_channels": 192,
    "hidden_channels": 192,
    "filter_channels": 768,
    "n_heads": 2,
    "n_layers": 6,
    "kernel_size": 3,
    "p_dropout": 0.1,
    "resblock": "1",
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "upsample_rates": [10, 8, 2, 2, 2],
    "upsample_initial_channel": 512,
    "upsample_kernel_sizes": [16, 16, 8, 2, 2],
    "n_layers_q": 3,
    "use_spectral_norm": False,
    "gin_channels": 512,
    "semantic_frame_rate": "25hz",
    "freeze_quantizer": True,
}

# Tiny: same structure (5 upsample stages, product 640 = hop; 3 ResBlock1 kernels), narrow widths.
# gin_channels stays 512: in v1/v2 the timbre vector is added to MRTE's fixed 512-wide hidden state.
_TINY_OVERRIDES: dict[str, Any] = {
    "inter_channels": 16,
    "hidden_channels": 32,
    "filter_channels": 64,
    "n_layers": 2,
    "upsample_initial_channel": 64,
}

# configs/s2v2Pro.json and s2v2ProPlus.json: a 1024-wide timbre vector (ref_enc + sv_emb -> PReLU), no dropout;
# ProPlus widens the decoder by 1.5 and its first upsampling kernel to 20.
_PRO_OVERRIDES: dict[str, dict[str, Any]] = {
    "v2Pro": {"gin_channels": 1024, "p_dropout": 0.0},
    "v2ProPlus": {
        "gin_channels": 1024,
        "p_dropout": 0.0,
        "upsample_initial_channel": 768,
        "upsample_kernel_sizes": [20, 16, 8, 2, 2],
    },
}
# Tiny Pro: the timbre width is free (ge_to512 feeds MRTE), so it stays narrow; ProPlus keeps its 1.5x decoder.
_TINY_PRO_OVERRIDES: dict[str, dict[str, Any]] = {
    "v2Pro": {"gin_channels": 64},
    "v2ProPlus": {"gin_channels": 64, "upsample_initial_channel": 96},
}

_TRAIN: dict[str, Any] = {
    "log_interval": 100,
    "eval_interval": 500,
    "seed": 1234,
    "epochs": 100,
    "learning_rate": 0.0001,
    "betas": [0.8, 0.99],
    "eps": 1e-09,
    "batch_size": 32,
    "fp16_run": True,
    "lr_decay": 0.999875,
    "segment_size": 20480,
    "init_lr_ratio": 1,
    "warmup_epochs": 0,
    "c_mel": 45,
    "c_kl": 1.0,
    "text_low_lr_rate": 0.4,
    "grad_ckpt": False,
}

_DATA: dict[str, Any] = {
    "max_wav_value": 32768.0,
    "sampling_rate": 32000,
    "filter_length": 2048,
    "hop_length": 640,
    "win_length": 2048,
    "n_mel_channels": 128,
    "mel_fmin": 0.0,
    "mel_fmax": None,
    "add_blank": True,
    "n_speakers": 300,
    "cleaned_text": True,
}

# Paths the webui writes into the config (config.py's pretrained names and SoVITS_weight_version2root).
_PRETRAINED_G = {
    "v1": "GPT_SoVITS/pretrained_models/s2G488k.pth",
    "v2": "GPT_SoVITS/pretrained_models/gsv-v2final-pretrained/s2G2333k.pth",
    "v2Pro": "GPT_SoVITS/pretrained_models/v2Pro/s2Gv2Pro.pth",
    "v2ProPlus": "GPT_SoVITS/pretrained_models/v2Pro/s2Gv2ProPlus.pth",
}
_PRETRAINED_D = {
    "v1": "GPT_SoVITS/pretrained_models/s2D488k.pth",
    "v2": "GPT_SoVITS/pretrained_models/gsv-v2final-pretrained/s2D2333k.pth",
    "v2Pro": "GPT_SoVITS/pretrained_models/v2Pro/s2Dv2Pro.pth",
    "v2ProPlus": "GPT_SoVITS/pretrained_models/v2Pro/s2Dv2ProPlus.pth",
}
_WEIGHT_DIR = {
    "v1": "SoVITS_weights",
    "v2": "SoVITS_weights_v2",
    "v2Pro": "SoVITS_weights_v2Pro",
    "v2ProPlus": "SoVITS_weights_v2ProPlus",
}


def _check_version(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"SoVITS version {version!r} is not supported here; expected one of {SUPPORTED_VERSIONS} "
            "(v3/v4 need other networks)"
        )


def default_hparams(size: str = "full", version: str = "v2", name: str = "demo") -> dict[str, Any]:
    """An upstream-shaped stage-2 config (``train``/``data``/``model`` + webui fields) as a plain dict."""
    _check_version(version)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    model = copy.deepcopy(_FULL_MODEL)
    model.update(copy.deepcopy(_PRO_OVERRIDES.get(version, {})))
    if size == "tiny":
        model.update(copy.deepcopy(_TINY_OVERRIDES))
        model.update(copy.deepcopy(_TINY_PRO_OVERRIDES.get(version, {})))
    model["version"] = version
    s2_dir = f"logs/{name}"
    train = copy.deepcopy(_TRAIN)
    train.update(
        {
            "pretrained_s2G": _PRETRAINED_G[version],
            "pretrained_s2D": _PRETRAINED_D[version],
            "if_save_latest": True,
            "if_save_every_weights": True,
            "save_every_epoch": 4,
            "gpu_numbers": "0",
            "lora_rank": "32",
        }
    )
    data = copy.deepcopy(_DATA)
    data["exp_dir"] = s2_dir
    return {
        "train": train,
        "data": data,
        "model": model,
        "s2_ckpt_dir": s2_dir,
        "content_module": "cnhubert",
        "save_weight_dir": _WEIGHT_DIR[version],
        "name": name,
        "version": version,
    }


def _as_mapping(section: Any) -> Mapping[str, Any]:
    """Accept a dict or an attribute object (upstream's pickled ``utils.HParams``)."""
    if isinstance(section, Mapping):
        return section
    return vars(section)


@dataclass(frozen=True)
class SoVITSHparams:
    """The fields of the ``model`` section that shape :class:`SynthesizerTrn` (everything else is fixed)."""

    version: str
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    gin_channels: int

    @classmethod
    def from_model_section(cls, model_hps: Any, version: str) -> SoVITSHparams:
        """Read the ``model`` section (dict or attribute object); ``version`` wins over ``model.version``,
        as upstream's loaders overwrite it from the weights."""
        _check_version(version)
        m = _as_mapping(model_hps)
        try:
            hp = cls(
                version=version,
                inter_channels=int(m["inter_channels"]),
                hidden_channels=int(m["hidden_channels"]),
                filter_channels=int(m["filter_channels"]),
                n_heads=int(m["n_heads"]),
                n_layers=int(m["n_layers"]),
                kernel_size=int(m["kernel_size"]),
                resblock=str(m["resblock"]),
                resblock_kernel_sizes=tuple(int(k) for k in m["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in m["resblock_dilation_sizes"]),
                upsample_rates=tuple(int(u) for u in m["upsample_rates"]),
                upsample_initial_channel=int(m["upsample_initial_channel"]),
                upsample_kernel_sizes=tuple(int(k) for k in m["upsample_kernel_sizes"]),
                gin_channels=int(m["gin_channels"]),
            )
        except KeyError as exc:
            raise ValueError(f"SoVITS model hparams lack {exc.args[0]!r}") from None
        hp.validate()
        return hp

    def validate(self) -> None:
        if self.hidden_channels % self.n_heads:
            raise ValueError(f"hidden_channels {self.hidden_channels} not divisible by n_heads {self.n_heads}")
        if self.inter_channels % 2:
            raise ValueError(f"inter_channels must be even (flow halves), got {self.inter_channels}")
        if self.resblock != "1":
            raise ValueError(f"only resblock '1' (ResBlock1) is used by v1/v2, got {self.resblock!r}")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise ValueError("upsample_initial_channel must halve cleanly at every upsample stage")
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True):
            if (k - u) % 2:
                raise ValueError(f"upsample kernel {k} and rate {u} give a fractional padding")
        if math.prod(self.upsample_rates) != HOP_LENGTH:
            raise ValueError(f"upsample_rates must multiply to the hop {HOP_LENGTH}, got {self.upsample_rates}")
        if self.gin_channels != MRTE_HIDDEN and not self.is_pro:
            # v1/v2 add the timbre vector straight onto MRTE's hidden state (v2Pro has ge_to512 instead).
            raise ValueError(f"gin_channels must be {MRTE_HIDDEN} for v1/v2, got {self.gin_channels}")

    @property
    def is_pro(self) -> bool:
        return self.version in PRO_VERSIONS

    @property
    def symbol_version(self) -> str:
        """v1 keeps its 322-symbol table; every later version uses v2's 732 symbols."""
        return "v1" if self.version == "v1" else "v2"
