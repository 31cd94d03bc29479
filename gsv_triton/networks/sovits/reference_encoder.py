"""The timbre (reference) encoder ``ref_enc`` = upstream's MelStyleEncoder (spec 2.2.5).

Linear spectrogram bins -> 2x (Linear + Mish) -> 2x gated conv -> self-attention -> Linear -> mean over time.
Key names match upstream (``spectral.0.fc``, ``spectral.3.fc``, ``temporal.{0,1}.conv1.conv``,
``slf_attn.{w_qs,w_ks,w_vs,fc}``, ``fc.fc``); the Dropout slots of ``spectral`` are Identity here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STYLE_HIDDEN = 128
STYLE_KERNEL = 5
STYLE_HEADS = 2


class _Linear(nn.Module):
    """Upstream ``LinearNorm``: a Linear stored under ``.fc``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class _ConvNorm(nn.Module):
    """Upstream ``ConvNorm``: a "same"-padded Conv1d stored under ``.conv``."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Conv1dGLU(nn.Module):
    """x + a * sigmoid(b), where (a, b) are the halves of a conv of x."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = _ConvNorm(channels, 2 * channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv1(x), self.channels, dim=1)
        return x + a * torch.sigmoid(b)


class _SelfAttention(nn.Module):
    """2-head self-attention scaled by 1/sqrt(model dim) (not d_k, as upstream), residual after ``fc``."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_k = dim // n_heads
        self.temperature = math.sqrt(dim)
        self.w_qs = nn.Linear(dim, dim)
        self.w_ks = nn.Linear(dim, dim)
        self.w_vs = nn.Linear(dim, dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """x [B, T, D]; pad_mask [B, T] True at padded frames (or None)."""
        b, t, _ = x.shape
        q = self.w_qs(x).view(b, t, self.n_heads, self.d_k).transpose(1, 2)
        k = self.w_ks(x).view(b, t, self.n_heads, self.d_k).transpose(1, 2)
        v = self.w_vs(x).view(b, t, self.n_heads, self.d_k).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / self.temperature  # [B, H, T, T]
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        out = torch.matmul(F.softmax(scores, dim=-1), v)
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * self.d_k)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    def __init__(self, in_bins: int, out_dim: int) -> None:
        super().__init__()
        h = STYLE_HIDDEN
        self.spectral = nn.Sequential(
            _Linear(in_bins, h), _Mish(), nn.Identity(), _Linear(h, h), _Mish(), nn.Identity()
        )
        self.temporal = nn.Sequential(_Conv1dGLU(h, STYLE_KERNEL), _Conv1dGLU(h, STYLE_KERNEL))
        self.slf_attn = _SelfAttention(h, STYLE_HEADS)
        self.fc = _Linear(h, out_dim)

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """spec [B, bins, T] -> [B, out_dim, 1]; ``lengths`` [B] excludes padded frames from the mean."""
        t = spec.shape[2]
        pad_mask = None
        if lengths is not None:
            pad_mask = torch.arange(t, device=spec.device).unsqueeze(0) >= lengths.unsqueeze(1)  # [B, T]
            spec = spec.masked_fill(pad_mask.unsqueeze(1), 0.0)
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)  # [B, T, H]
        if pad_mask is not None:
            x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        x = self.fc(self.slf_attn(x, pad_mask))
        if pad_mask is None:
            # Upstream divides by the length, then sums (not torch.mean) even with an all-ones mask.
            return (x / t).sum(dim=1).unsqueeze(-1)
        x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        n = lengths.to(x.dtype).view(-1, 1, 1)
        return (x / n).sum(dim=1).unsqueeze(-1)
