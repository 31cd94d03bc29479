"""SoVITS v1/v2/v2Pro/v2ProPlus ``SynthesizerTrn``: inference paths only, with upstream's state-dict names (spec 2.2).

Three entry points, one per exported graph:
* :meth:`SynthesizerTrn.extract_codes`: HuBERT features -> 25 Hz semantic codes (the prompt);
* :meth:`SynthesizerTrn.reference_embedding`: linear spectrogram (+ the speaker vector for Pro) -> timbre
  vector ``ge``;
* :meth:`SynthesizerTrn.decode`: codes + target phones + ge + Gaussian noise -> 32 kHz audio.

Pro versions (spec 2.2.5): ``ge = PReLU(ref_enc(spec) + sv_emb(sv))`` is 1024 wide and conditions the flow and
the decoder; MRTE takes ``ge_to512(ge)``. ``ge`` is the same post-PReLU vector everywhere it is passed around, so
stored voices and averaged references work alike for every version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gsv_triton.contract import CODE_UPSAMPLE, SPEC_BINS, SV_DIM
from gsv_triton.symbols import symbols

from .flow import PosteriorEncoder, ResidualCouplingBlock
from .generator import Generator
from .hparams import SoVITSHparams
from .mrte import MRTE_HIDDEN
from .quantizer import SSL_DIM, ResidualVectorQuantizer
from .reference_encoder import MelStyleEncoder
from .text_encoder import TextEncoder

SPEC_CHANNELS = SPEC_BINS  # 1025 linear-spectrogram bins
REF_BINS_V2 = 704  # v2 feeds only the first 704 bins to ref_enc; v1 feeds all 1025


def _sequence_mask(lengths: torch.Tensor | None, like: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, size] mask in ``dtype`` (the model's float type, so fp16 graphs stay fp16); all ones,
    built from ``like``'s shape so the length stays dynamic in ONNX, when no lengths are given."""
    if lengths is None:
        return torch.ones_like(like[:, :1, :size], dtype=dtype)
    pos = torch.arange(size, device=lengths.device)
    return (pos.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(dtype)


class SynthesizerTrn(nn.Module):
    """Built from upstream's ``model`` hparams; ``load_state_dict(fold_weight_norm(upstream_weight))``."""

    def __init__(self, hp: SoVITSHparams, include_posterior: bool = False) -> None:
        super().__init__()
        self.hp = hp
        self.version = hp.version
        self.inter_channels = hp.inter_channels
        self.gin_channels = hp.gin_channels
        self.ref_bins = SPEC_CHANNELS if hp.version == "v1" else REF_BINS_V2
        # Registration order follows upstream, so state_dict() lists keys in the same order.
        self.enc_p = TextEncoder(
            hp.inter_channels,
            hp.hidden_channels,
            hp.filter_channels,
            hp.n_heads,
            hp.n_layers,
            hp.kernel_size,
            n_symbols=len(symbols(hp.symbol_version)),
        )
        self.dec = Generator(
            hp.inter_channels,
            hp.resblock_kernel_sizes,
            hp.resblock_dilation_sizes,
            hp.upsample_rates,
            hp.upsample_initial_channel,
            hp.upsample_kernel_sizes,
            hp.gin_channels,
        )
        if include_posterior:
            self.enc_q = PosteriorEncoder(SPEC_CHANNELS, hp.inter_channels, hp.hidden_channels, hp.gin_channels)
        self.flow = ResidualCouplingBlock(hp.inter_channels, hp.hidden_channels, hp.gin_channels)
        self.ref_enc = MelStyleEncoder(self.ref_bins, hp.gin_channels)
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, CODE_UPSAMPLE, stride=CODE_UPSAMPLE)  # 50 Hz -> 25 Hz
        self.quantizer = ResidualVectorQuantizer()
        self.is_pro = hp.is_pro
        if self.is_pro:
            self.sv_emb = nn.Linear(SV_DIM, hp.gin_channels)
            self.ge_to512 = nn.Linear(hp.gin_channels, MRTE_HIDDEN)
            self.prelu = nn.PReLU(num_parameters=hp.gin_channels)
        self.eval()

    @classmethod
    def from_hparams(
        cls, model_hps: Mapping[str, Any] | Any, version: str, include_posterior: bool = False
    ) -> SynthesizerTrn:
        """``model_hps``: the ``model`` section of an upstream stage-2 config (dict or attribute object)."""
        return cls(SoVITSHparams.from_model_section(model_hps, version), include_posterior=include_posterior)

    # -- 1. semantic codes ---------------------------------------------------------------------------
    @torch.no_grad()
    def extract_codes(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features [B, 768, T50] -> codes [B, T50 // 2] int64 (nearest codebook row)."""
        return self.quantizer.encode(self.ssl_proj(ssl))

    # -- 2. timbre -----------------------------------------------------------------------------------
    @torch.no_grad()
    def reference_embedding(
        self, spec: torch.Tensor, sv: torch.Tensor | None = None, spec_lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Linear spectrogram [B, 1025, Tref] (+ Pro: speaker vector sv [B, 20480]) -> ge [B, gin, 1]
        (v2+ use bins [:704])."""
        ge = self.ref_enc(spec[:, : self.ref_bins], spec_lengths)
        if not self.is_pro:
            return ge
        if sv is None:
            raise ValueError(f"SoVITS {self.version} needs the reference's speaker vector (sv)")
        return self.prelu(ge + self.sv_emb(sv).unsqueeze(-1))

    def mrte_timbre(self, ge: torch.Tensor) -> torch.Tensor:
        """The timbre vector MRTE adds to its 512-wide state: ge itself, or ``ge_to512(ge)`` for Pro."""
        if not self.is_pro:
            return ge
        return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2)

    # -- 3. audio ------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self,
        codes: torch.Tensor,
        phone_ids: torch.Tensor,
        ge: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor | float = 0.5,
        code_lengths: torch.Tensor | None = None,
        phone_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """codes [B, T] int64, phone_ids [B, Tt] int64 (target phones only), ge [B, gin, 1],
        noise [B, inter, F] standard normal -> audio [B, 1, 640 * F] in (-1, 1).

        F is chosen by the caller (:func:`frames_for_speed`); the 2T latent frames are resampled to F,
        which is exact when F == 2T. ``noise_scale`` is a float or a tensor of shape [] / [1] / [B].
        Lengths (for padded batches) mask like upstream; without them every position is valid.
        """
        latent = self.quantizer.decode(codes)  # [B, 768, T]
        # Nearest x2 in time (25 Hz -> 50 Hz), written as interleaving so it exports without Resize.
        latent = torch.stack([latent, latent], dim=-1).flatten(2)
        y_lengths = None if code_lengths is None else code_lengths * CODE_UPSAMPLE
        y_mask = _sequence_mask(y_lengths, latent, latent.shape[2], latent.dtype)
        text_mask = _sequence_mask(phone_lengths, phone_ids.unsqueeze(1), phone_ids.shape[1], latent.dtype)
        n_frames = noise.shape[2]
        m_p, logs_p, mask = self.enc_p(latent, y_mask, phone_ids, text_mask, self.mrte_timbre(ge), n_frames)
        if isinstance(noise_scale, torch.Tensor):
            noise_scale = noise_scale.to(noise.dtype).reshape(-1, 1, 1)
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        z = self.flow.reverse(z_p, mask, ge)
        return self.dec(z * mask, ge)
