"""ERes2NetV2, the speaker-verification network of GPT-SoVITS v2Pro/v2ProPlus (spec 2.5).

Upstream builds it as ``ERes2NetV2(baseWidth=24, scale=4, expansion=4)`` (3D-Speaker's design) and calls
``forward3``: the stem and four residual stages, the attentional fusion of stage 4 with a strided conv of
stage 3 -> [B, 2048, 10, T'], frequency and channels flattened to 20480 and averaged over time. That is
our :meth:`ERes2NetV2.forward`. The pooling + ``seg_1`` embedding head exists only so that the state dict
has upstream's keys (``pretrained_eres2netv2w24s4ep4.ckpt`` loads unchanged); forward3 never uses it.

Two activations, as upstream: the stem uses a plain ReLU, the residual blocks a ReLU clipped at 20
(``Hardtanh(0, 20)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gsv_triton.contract import SV_MEL_BINS

SV_EMBEDDING = 192  # seg_1's output (unused by forward3)
_RELU_CLIP = 20.0


def _clipped_relu(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh(x, 0.0, _RELU_CLIP)


class AFF(nn.Module):
    """Attentional feature fusion: a per-position gate in (0, 2) mixes ``x`` with ``y`` (weights g, 2 - g)."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        inner = channels // r
        # Indices 0..4 are upstream's key names (local_att.0 conv, .1 BN, .2 SiLU, .3 conv, .4 BN).
        self.local_att = nn.Sequential(
            nn.Conv2d(2 * channels, inner, kernel_size=1),
            nn.BatchNorm2d(inner),
            nn.SiLU(),
            nn.Conv2d(inner, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gate = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))
        return x * gate + y * (2.0 - gate)


class Res2Block(nn.Module):
    """One ERes2NetV2 bottleneck: 1x1 conv into ``scale`` groups of ``width`` channels, a hierarchical chain
    of 3x3 convs over the groups (each group first merged with the previous group's output: a sum, or an
    AFF when ``fuse``), 1x1 conv back to ``planes * expansion``, plus the shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, base_width: int, scale: int, expansion: int,
                 fuse: bool) -> None:  # fmt: skip
        super().__init__()
        width = int(math.floor(planes * (base_width / 64.0)))
        self.width = width
        self.scale = scale
        out_planes = planes * expansion
        # Registration order is upstream's, so state_dict() lists keys in the checkpoint's order.
        self.conv1 = nn.Conv2d(in_planes, width * scale, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False) for _ in range(scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AFF(width, r=4) for _ in range(scale - 1))
        else:
            self.fuse_models = None
        self.conv3 = nn.Conv2d(width * scale, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        else:
            self.shortcut = nn.Sequential()  # identity, no keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(_clipped_relu(self.bn1(self.conv1(x))), self.width, dim=1)
        outs: list[torch.Tensor] = []
        sp = groups[0]
        for i in range(self.scale):
            if i > 0:
                sp = sp + groups[i] if self.fuse_models is None else self.fuse_models[i - 1](sp, groups[i])
            sp = _clipped_relu(self.bns[i](self.convs[i](sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        return _clipped_relu(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    """``forward(fbank [B, T, 80]) -> [B, 20480]`` (upstream's ``forward3``).

    The defaults are upstream's w24s4ep4 configuration; smaller ``m_channels`` / ``num_blocks`` give tiny
    variants for tests (their vector has ``self.out_dim`` = (feat_dim // 8) * m_channels * 8 * expansion
    entries).
    """

    def __init__(self, feat_dim: int = SV_MEL_BINS, m_channels: int = 64,
                 num_blocks: tuple[int, int, int, int] = (3, 4, 6, 3), base_width: int = 24, scale: int = 4,
                 expansion: int = 4, embedding_size: int = SV_EMBEDDING) -> None:  # fmt: skip
        super().__init__()
        self.feat_dim = feat_dim
        self.expansion = expansion
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        in_planes = m_channels
        stages = []
        # Stages 1-2 merge the res2 groups by sum, 3-4 by AFF; stages 2-4 halve frequency and time.
        for i, (n, fuse) in enumerate(zip(num_blocks, (False, False, True, True), strict=True)):
            planes = m_channels * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(Res2Block(in_planes, planes, stride, base_width, scale, expansion, fuse))
                in_planes = planes * expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        top = m_channels * 8 * expansion
        self.layer3_ds = nn.Conv2d(m_channels * 4 * expansion, top, kernel_size=3, stride=2, padding=1,
                                   bias=False)  # fmt: skip
        self.fuse34 = AFF(top, r=4)
        self.out_dim = (feat_dim // 8) * top
        # Upstream's TSTP pooling (mean and std, no parameters) + embedding layer; kept for the keys only.
        self.seg_1 = nn.Linear(2 * self.out_dim, embedding_size)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = fbank.transpose(1, 2).unsqueeze(1)  # [B, T, F] -> [B, 1, F, T]: a 1-channel image
        x = F.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(x)))
        fused = self.fuse34(self.layer4(out3), self.layer3_ds(out3))  # [B, C, F/8, T/8]
        return fused.flatten(1, 2).mean(dim=-1)


# ---- demo init ---------------------------------------------------------------------------------------------

_PROBE_SECONDS = 2.0
_PROBE_CLIPS = 4
_GATE_BN_GAIN = 0.5  # AFF's last BN: pre-tanh spread 0.5 keeps the gate away from saturation
_RESIDUAL_BN_GAIN = 0.7  # bn3: each block adds less than unit spread, so the residual stream stays small
_DS_GAIN = 2.0  # layer3_ds after centring (see _center_downsample_)


def speech_like_audio(generator: torch.Generator, seconds: float = _PROBE_SECONDS,
                      rate: int = 16_000) -> torch.Tensor:  # fmt: skip
    """A random voiced-speech-like clip in [-1, 1] (harmonics of a wandering f0 with a syllable envelope,
    plus a little noise): enough like speech for BatchNorm calibration, and different per draw."""
    n = int(seconds * rate)
    t = torch.arange(n, dtype=torch.float64) / rate
    f0 = 90.0 + 160.0 * float(torch.rand((), generator=generator))
    wobble = 1.0 + 0.08 * torch.sin(2 * math.pi * (0.5 + 2 * float(torch.rand((), generator=generator))) * t)
    phase = 2 * math.pi * torch.cumsum(f0 * wobble, 0) / rate
    amps = torch.rand(30, generator=generator, dtype=torch.float64) / torch.arange(1, 31)
    voiced = sum(amps[k] * torch.sin((k + 1) * phase) for k in range(30) if (k + 1) * f0 * 1.1 < rate / 2)
    syllables = 2.0 + 4.0 * float(torch.rand((), generator=generator))
    envelope = 0.5 * (1 - torch.cos(2 * math.pi * syllables * t)).clamp(min=0.0)
    noise = 0.02 * torch.randn(n, generator=generator, dtype=torch.float64)
    wav = voiced * envelope + noise
    return (0.6 * wav / wav.abs().max()).float()


@torch.no_grad()
def sv_demo_init_(model: ERes2NetV2, generator: torch.Generator,
                  probe_fbank: torch.Tensor | None = None) -> None:  # fmt: skip
    """Re-initialise ``model`` in place, deterministically from ``generator`` (no trained weights here).

    Conv and linear weights are N(0, gain^2 / fan_in) (He gain for the ReLU paths), biases 0. Then every
    BatchNorm's running mean and variance are set, in network order, to the statistics of its input on a
    probe (``probe_fbank`` [B, T, 80], default: fbank of a few random speech-like clips), so in eval mode
    each BN outputs unit-scale activations on real fbank input: no dead or clipped ReLUs, no blow-up
    through the 16 blocks. Without trained weights nothing else keeps fbank's large offsets (log-mel
    values around -15..5) from dominating. ``layer3_ds`` is then centred on the probe
    (:func:`_center_downsample_`) so that different clips give clearly different vectors.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            fan_in = module.weight[0].numel()
            gain = math.sqrt(2.0)
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * gain / math.sqrt(fan_in))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.fill_(1.0)
            module.bias.zero_()
    for block in (m for m in model.modules() if isinstance(m, Res2Block)):
        block.bn3.weight.fill_(_RESIDUAL_BN_GAIN)
    for aff in (m for m in model.modules() if isinstance(m, AFF)):
        aff.local_att[4].weight.fill_(_GATE_BN_GAIN)

    if probe_fbank is None:
        probe_fbank = _probe_fbank(model.feat_dim, generator)
    captured: list[torch.Tensor] = []
    hook = model.layer3_ds.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        _calibrate_batchnorm_(model, probe_fbank)
    finally:
        hook.remove()
    _center_downsample_(model.layer3_ds, captured[0].mean(dim=(0, 2, 3)))
    _calibrate_batchnorm_(model, probe_fbank)  # again: fuse34's BNs now see the centred path


def _center_downsample_(conv: nn.Conv2d, mean_input: torch.Tensor) -> None:
    """Make ``layer3_ds`` blind to the probe's mean input, then scale it up.

    forward3 averages post-ReLU features (all >= 0) over time, so with random weights every clip's vector
    shares one large common part and different clips come out at cosine 0.97. Removing, from every 3x3
    filter tap, its component along the probe's mean channel vector leaves the downsampled path only what
    differs from an average clip; the gain lets that part weigh as much as stage 4's. Measured on 8
    speech-like clips (full size): largest cosine between different clips 0.97 -> 0.89, smallest relative
    distance |a - b| / |a| 0.25 -> 0.46.
    """
    u = mean_input / mean_input.norm().clamp(min=1e-12)
    w = conv.weight  # [out, in, kh, kw]
    w.sub_(torch.einsum("oikl,i->okl", w, u)[:, None] * u[None, :, None, None])
    w.mul_(_DS_GAIN)


def _probe_fbank(feat_dim: int, generator: torch.Generator) -> torch.Tensor:
    # Import here: the audio frontend is numpy-only and optional for users of the bare network.
    from gsv_triton.audio.fbank import sv_fbank

    feats = []
    for _ in range(_PROBE_CLIPS):
        fb = torch.from_numpy(sv_fbank(speech_like_audio(generator).numpy()))
        feats.append(fb[:, :feat_dim] if fb.shape[1] >= feat_dim else F.pad(fb, (0, feat_dim - fb.shape[1])))
    return torch.stack(feats)


def _calibrate_batchnorm_(model: nn.Module, probe: torch.Tensor) -> None:
    """Set each BN's running stats to its input statistics on ``probe``, in order: a train-mode pass with
    cumulative averaging (momentum None) over a fresh reset makes running = this batch's stats exactly, and
    each later BN sees inputs already normalised by the earlier ones, as in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    was_training = model.training
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        model(probe)
    finally:
        for bn, momentum in zip(bns, saved, strict=True):
            bn.momentum = momentum
        model.train(was_training)
