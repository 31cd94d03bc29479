"""``enc_p``: codes' latent + phones + timbre -> prior mean and log-std per 50 Hz frame (spec 2.2.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attentions import Encoder
from .mrte import MRTE
from .quantizer import SSL_DIM


class TextEncoder(nn.Module):
    def __init__(
        self,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        n_symbols: int,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.ssl_proj = nn.Conv1d(SSL_DIM, hidden_channels, 1)
        # Upstream: the SSL and second encoders have half the layers of the text encoder.
        self.encoder_ssl = Encoder(hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size)
        self.encoder_text = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size)
        self.text_embedding = nn.Embedding(n_symbols, hidden_channels)
        self.mrte = MRTE(hidden_channels)
        self.encoder2 = Encoder(hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        latent: torch.Tensor,
        y_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        ge: torch.Tensor,
        n_frames: torch.Tensor | int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """latent [B, 768, Ty] (50 Hz), text [B, Tt], ge [B, 512, 1] -> (m, logs, mask), each on
        ``n_frames`` frames: the hidden state is resampled linearly (half-pixel, i.e. align_corners False)
        to ``n_frames`` before the projection, which is the identity when n_frames == Ty (speed 1)."""
        y = self.ssl_proj(latent * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        t = self.text_embedding(text).transpose(1, 2)
        t = self.encoder_text(t * text_mask, text_mask)
        y = self.mrte(y, y_mask, t, text_mask, ge)
        y = self.encoder2(y * y_mask, y_mask)
        y = F.interpolate(y, size=n_frames, mode="linear", align_corners=False)
        y_mask = F.interpolate(y_mask, size=n_frames, mode="nearest")
        stats = self.proj(y) * y_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs, y_mask
