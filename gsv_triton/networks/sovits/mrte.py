"""MRTE, the multi-reference timbre encoder of ``enc_p`` (spec 2.2.4 step 3).

The content (SSL) frames attend to the text frames; the timbre vector ``ge`` is added to the 512-wide hidden
state, then projected back to the encoder width. Upstream hard-codes 512 channels and 4 heads; the outer
width is 192 upstream and follows ``hidden_channels`` here so tiny configs work (equal at full size).
"""

from __future__ import annotations

import torch
from torch import nn

from .attentions import MultiHeadAttention

MRTE_HIDDEN = 512
MRTE_HEADS = 4


class MRTE(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        # Registration order matches upstream (cross_attention, c_pre, text_pre, c_post).
        self.cross_attention = MultiHeadAttention(MRTE_HIDDEN, MRTE_HEADS)
        self.c_pre = nn.Conv1d(channels, MRTE_HIDDEN, 1)
        self.text_pre = nn.Conv1d(channels, MRTE_HIDDEN, 1)
        self.c_post = nn.Conv1d(MRTE_HIDDEN, channels, 1)

    def forward(
        self,
        ssl_enc: torch.Tensor,
        ssl_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        ge: torch.Tensor,
    ) -> torch.Tensor:
        """ssl_enc [B, C, Ty], text [B, C, Tt], masks [B, 1, T], ge [B, 512, 1] -> [B, C, Ty]."""
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # [B, 1, Ty, Tt]
        c = self.c_pre(ssl_enc * ssl_mask)
        t = self.text_pre(text * text_mask)
        x = self.cross_attention(c * ssl_mask, t * text_mask, attn_mask) + c + ge
        return self.c_post(x * ssl_mask)
