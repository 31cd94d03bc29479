"""The normalising flow run in reverse at inference (spec 2.2.6), and the params-only posterior encoder.

Weights are plain (weight norm folded); see ``weight_norm.py`` for the upstream key pairs.
"""

from __future__ import annotations

import torch
from torch import nn

FLOW_KERNEL = 5  # upstream: ResidualCouplingBlock(inter, hidden, 5, 1, 4, gin)
FLOW_WN_LAYERS = 4
N_FLOWS = 4
POSTERIOR_KERNEL = 5  # upstream: PosteriorEncoder(spec, inter, hidden, 5, 1, 16, gin)
POSTERIOR_WN_LAYERS = 16


class WN(nn.Module):
    """WaveNet-style stack: gated tanh*sigmoid units conditioned on g, residual + skip 1x1 convs."""

    def __init__(self, hidden: int, kernel_size: int, n_layers: int, gin_channels: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        # Registration order matches upstream (in_layers, res_skip_layers, then cond_layer).
        self.in_layers = nn.ModuleList(
            nn.Conv1d(hidden, 2 * hidden, kernel_size, padding=(kernel_size - 1) // 2) for _ in range(n_layers)
        )
        self.res_skip_layers = nn.ModuleList(
            nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1) for i in range(n_layers)
        )
        self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        h = self.hidden
        g_all = self.cond_layer(g)
        output = torch.zeros_like(x)
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            z = in_layer(x) + g_all[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(z[:, :h]) * torch.sigmoid(z[:, h:])
            rs = res_skip(acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * x_mask
                output = output + rs[:, h:]
            else:
                output = output + rs
        return output * x_mask


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: x1 -= post(WN(pre(x0))) in reverse."""

    def __init__(self, channels: int, hidden: int, gin_channels: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, FLOW_KERNEL, FLOW_WN_LAYERS, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        h = self.pre(x0) * x_mask
        m = self.post(self.enc(h, x_mask, g)) * x_mask
        return torch.cat([x0, (x1 - m) * x_mask], dim=1)


class Flip(nn.Module):
    """Reverses the channel order (no parameters; it keeps upstream's odd module indices)."""

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, gin_channels: int) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(N_FLOWS):
            self.flows.append(ResidualCouplingLayer(channels, hidden, gin_channels))
            self.flows.append(Flip())

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        for flow in reversed(self.flows):
            x = flow.reverse(x, x_mask, g)
        return x


class PosteriorEncoder(nn.Module):
    """Training-only encoder (spectrogram -> z). Held only so full "pretrained-like" files carry ``enc_q``."""

    def __init__(self, spec_channels: int, out_channels: int, hidden: int, gin_channels: int) -> None:
        super().__init__()
        self.pre = nn.Conv1d(spec_channels, hidden, 1)
        self.enc = WN(hidden, POSTERIOR_KERNEL, POSTERIOR_WN_LAYERS, gin_channels)
        self.proj = nn.Conv1d(hidden, 2 * out_channels, 1)
