"""A well-conditioned random init for demo checkpoints (no trained weights are available here).

Upstream's own init leaves the audio almost independent of the inputs: the flow's ``post`` layers start
at zero, the decoder's weight-normed convs start at N(0, 0.01), and the codebook is uniform noise. Here
every weight is drawn with a variance-preserving scale (std = gain / sqrt(fan_in)) and a few gains are
chosen so that codes, phones and the timbre vector all visibly change the audio, then the last conv is
scaled so the pre-tanh signal has a fixed spread (audio in (-1, 1) without saturating).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attentions import ChannelLayerNorm, MultiHeadAttention
from .synthesizer import SynthesizerTrn

# Gains (std * sqrt(fan_in)) by module path; the first matching rule wins, the default is 1.
_LRELU_GAIN = math.sqrt(2.0)
_GAIN_RULES: tuple[tuple[str, float], ...] = (
    ("enc_p.mrte.cross_attention.conv_q", 2.0),  # sharper text attention: one phone moves its frames
    ("enc_p.mrte.cross_attention.conv_k", 2.0),
    ("enc_p.mrte.cross_attention.conv_o", 2.0),
    ("ffn_layers", _LRELU_GAIN),
    ("flow.flows", 0.7),  # a flow that mixes channels but stays close to the prior
    ("dec.ups", _LRELU_GAIN),
    ("convs1", _LRELU_GAIN),
    ("convs2", 0.5),  # keeps the three residual updates of each ResBlock from compounding
    ("ref_enc.spectral.0", 0.1),  # linear spectrogram magnitudes of speech are ~1-100, not ~1
    ("ref_enc.fc", 4.0),  # ge of unit-ish spread, like the calibration probe
    ("sv_emb", 4.0),  # Pro: the speaker vector moves ge as much as the spectrogram does
)
_PRELU_SLOPE = 0.25  # torch's (and upstream's) PReLU init
_LOGS_BIAS = math.log(0.5)  # prior std e^logs ~ 0.5 before noise_scale
_LOGS_GAIN = 0.1
_PRE_TANH_STD = 0.35  # spread of conv_post's output on the calibration probe
_PROBE_CODES = 16
_PROBE_PHONES = 10


def _gain(path: str) -> float:
    for pattern, gain in _GAIN_RULES:
        if pattern in path:
            return gain
    return 1.0


def _fan_in(module: nn.Module) -> float:
    w = module.weight
    if isinstance(module, nn.ConvTranspose1d):
        # Each output sample sums in_channels * kernel / stride taps.
        return w.shape[0] * w.shape[2] / module.stride[0]
    return w[0].numel()


def _normal_(t: torch.Tensor, std: float, generator: torch.Generator) -> None:
    t.copy_(torch.randn(t.shape, generator=generator) * std)


@torch.no_grad()
def demo_init_(model: SynthesizerTrn, generator: torch.Generator) -> None:
    """Re-initialise every parameter and buffer of ``model`` in place, deterministically from ``generator``."""
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv1d | nn.ConvTranspose1d | nn.Linear):
            _normal_(module.weight, _gain(path) / math.sqrt(_fan_in(module)), generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            _normal_(module.weight, 1.0, generator)  # phones as distinct unit-scale vectors
        elif isinstance(module, ChannelLayerNorm):
            module.gamma.fill_(1.0)
            module.beta.zero_()
        if isinstance(module, MultiHeadAttention) and module.window_size is not None:
            _normal_(module.emb_rel_k, module.k_channels**-0.5, generator)
            _normal_(module.emb_rel_v, module.k_channels**-0.5, generator)

    # Prior log-std: small weights, negative bias, so the noise perturbs rather than drowns the mean.
    proj = model.enc_p.proj
    n = model.inter_channels
    _normal_(proj.weight[n:], _LOGS_GAIN / math.sqrt(_fan_in(proj)), generator)
    proj.bias[n:] = _LOGS_BIAS

    # Codebook: distinct unit-scale rows (ssl_proj keeps unit scale), so nearest-row search is meaningful.
    book = model.quantizer.vq.layers[0]._codebook
    _normal_(book.embed, 1.0, generator)
    book.embed_avg.copy_(book.embed)
    book.cluster_size.fill_(1.0)
    book.inited.fill_(1.0)

    if model.is_pro:
        model.prelu.weight.fill_(_PRELU_SLOPE)
    _calibrate_output_(model, generator)


def _calibrate_output_(model: SynthesizerTrn, generator: torch.Generator) -> None:
    """Scale ``dec.conv_post`` (bias-free, so linear) to give the pre-tanh signal a fixed spread."""
    codes = torch.randint(0, model.quantizer.embed.shape[0], (1, _PROBE_CODES), generator=generator)
    phones = torch.randint(0, model.enc_p.text_embedding.num_embeddings, (1, _PROBE_PHONES), generator=generator)
    ge = torch.randn(1, model.gin_channels, 1, generator=generator)
    noise = torch.randn(1, model.inter_channels, 2 * _PROBE_CODES, generator=generator)
    captured: list[torch.Tensor] = []
    handle = model.dec.conv_post.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model.decode(codes, phones, ge, noise, 0.5)
    finally:
        handle.remove()
    std = float(captured[0].std())
    if std > 0:
        model.dec.conv_post.weight.mul_(_PRE_TANH_STD / std)
