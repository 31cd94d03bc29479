"""Post-LN transformer encoder with windowed relative positions (spec 2.2.3), as used by ``enc_p``.

Parameter names follow upstream ``attentions.Encoder``: ``attn_layers.i.{conv_q,conv_k,conv_v,conv_o,
emb_rel_k,emb_rel_v}``, ``norm_layers_1.i.{gamma,beta}``, ``ffn_layers.i.{conv_1,conv_2}``,
``norm_layers_2.i``. Dropout is absent (inference only).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

WINDOW_SIZE = 4  # relative offsets -4..4 get learned embeddings; farther ones get zero
LAYER_NORM_EPS = 1e-5
MASK_FILL = -1e4  # upstream's score for masked positions (not -inf, so a fully masked row stays finite)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] (upstream ``modules.LayerNorm``: gamma/beta)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, LAYER_NORM_EPS)
        return x.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """1x1-conv multi-head attention; with ``window_size`` it adds the relative key/value terms."""

    def __init__(self, channels: int, n_heads: int, window_size: int | None = None) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        if window_size is not None:
            # One table shared by all heads; row r belongs to offset (key - query) = r - window_size.
            n_rel = 2 * window_size + 1
            self.emb_rel_k = nn.Parameter(torch.randn(1, n_rel, self.k_channels) * self.k_channels**-0.5)
            self.emb_rel_v = nn.Parameter(torch.randn(1, n_rel, self.k_channels) * self.k_channels**-0.5)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: queries [B, C, Tq]; c: keys/values [B, C, Tk]; attn_mask [B, 1, Tq, Tk] (0 = masked)."""
        b, _, t_q = x.shape
        t_k = c.shape[2]
        q = self.conv_q(x).view(b, self.n_heads, self.k_channels, t_q).transpose(2, 3)
        k = self.conv_k(c).view(b, self.n_heads, self.k_channels, t_k).transpose(2, 3)
        v = self.conv_v(c).view(b, self.n_heads, self.k_channels, t_k).transpose(2, 3)
        q = q / math.sqrt(self.k_channels)
        scores = torch.matmul(q, k.transpose(-2, -1))  # [B, H, Tq, Tk]
        if self.window_size is not None:
            scores = scores + self._relative_key_logits(q)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, MASK_FILL)
        p = F.softmax(scores, dim=-1)
        out = torch.matmul(p, v)  # [B, H, Tq, D]
        if self.window_size is not None:
            out = out + torch.matmul(self._relative_weights(p), self.emb_rel_v[0])
        out = out.transpose(2, 3).reshape(b, self.n_heads * self.k_channels, t_q)
        return self.conv_o(out)

    def _relative_key_logits(self, q: torch.Tensor) -> torch.Tensor:
        """[B,H,T,T] with (q_i . E_k[j-i]) inside the window and 0 outside (self-attention only)."""
        w = self.window_size
        t = q.shape[2]
        per_offset = torch.matmul(q, self.emb_rel_k[0].transpose(0, 1))  # [B, H, T, 2w+1]
        # A zero column at index 2w+1 stands for every offset outside the window.
        per_offset = F.pad(per_offset, (0, 1))
        pos = torch.arange(t, device=q.device)
        rel = pos.unsqueeze(0) - pos.unsqueeze(1)  # [i, j] = j - i
        index = torch.where(rel.abs() <= w, rel + w, torch.full_like(rel, 2 * w + 1))
        index = index.expand(q.shape[0], q.shape[1], t, t)
        return torch.gather(per_offset, 3, index)

    def _relative_weights(self, p: torch.Tensor) -> torch.Tensor:
        """[B,H,T,2w+1]: the attention weight query i gives to key i + r, for r = -w..w (0 off the ends)."""
        w = self.window_size
        t = p.shape[2]
        padded = F.pad(p, (w, w))  # column i + r + w of row i is key i + r
        pos = torch.arange(t, device=p.device).unsqueeze(1)
        index = pos + torch.arange(2 * w + 1, device=p.device).unsqueeze(0)  # [T, 2w+1]
        index = index.expand(p.shape[0], p.shape[1], t, 2 * w + 1)
        return torch.gather(padded, 3, index)


class FFN(nn.Module):
    """Conv1d -> ReLU -> Conv1d with "same" padding; the input is masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self.pad)))
        x = self.conv_2(F.pad(x * x_mask, self.pad))
        return x * x_mask


class Encoder(nn.Module):
    """``n_layers`` post-LN blocks: x = LN(x + MHA(x)); x = LN(x + FFN(x)); masked at entry and exit."""

    def __init__(
        self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, n_heads, window_size=WINDOW_SIZE) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(hidden_channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        for attn, norm1, ffn, norm2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm1(x + attn(x, x, attn_mask))
            x = norm2(x + ffn(x, x_mask))
        return x * x_mask
