"""The GPT-SoVITS stage-1 network (``Text2SemanticDecoder``, spec 2.1) and its two exportable forward paths.

Parameter names equal the upstream state-dict keys without the ``model.`` prefix, so a real ``.ckpt`` loads
with ``strict=True``. Post-LN blocks, q|k|v rows in ``in_proj_weight``, a learned ``alpha`` scaling a sinusoidal
table that is recomputed (never stored), separate position counters for text and audio, no final norm.

Serving runs two graphs:

* ``T2SPrefill``: ``phone_ids [B,Tx] i64, phone_lengths [B] i64, bert [B,1024,Tx] f32, prompt_codes [B,Ty] i64``
  -> ``logits [B,V]`` (last position), ``k_cache, v_cache [L, S, B, D]`` with ``S = Tx + Ty``. Text rows may be
  right-padded (several sentence segments of one request, same prompt, different text lengths): key columns
  ``phone_lengths[b] <= j < Tx`` are masked for every query of row b. Ty must be >= 1 (no reference-free mode).
* ``T2SStep``: ``token [B] i64, position [B] i64, key_valid [B,S] bool, past_k_0, past_v_0, ..., past_k_{L-1},
  past_v_{L-1}`` (each ``[S, B, H, hd]``, D split into heads) -> ``logits [B,V]``, ``new_k, new_v [L, B, D]``
  (only this token's K/V).

KV-cache layout (time-major). The serving loop owns ONE buffer per request, ``kv = np.empty([2, L, S_max, B, D])``,
allocated once at the largest length it can reach. ``kv[0, l, :S]`` and ``kv[1, l, :S]`` are contiguous, so every
layer's valid prefix goes to onnxruntime as a zero-copy view (``.reshape(S, B, H, hd)`` is free). There is one graph
input per layer and per K/V because a single stacked input would force a per-layer slice copy of the whole cache
inside the graph on every step. The prefill's ``[L, S, B, D]`` output is written with one assignment
``kv[0, :, :S] = k_cache``, a step's ``[L, B, D]`` output with ``kv[0, :, S] = new_k``. Inside the step the new key
is never concatenated to the past: scores over the past and over the new key are computed apart and share one softmax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gsv_triton.contract import BERT_DIM
from gsv_triton.errors import UserError

LN_EPS = 1e-5
PE_BASE = 10000.0
FFN_MULT = 4  # upstream hard-codes dim_feedforward = 4 * hidden_dim (config linear_units is not read)


@dataclass(frozen=True)
class T2SConfig:
    """Hyperparameters of the GPT (upstream ``config["model"]`` plus the few other sections a file carries)."""

    vocab_size: int = 1025
    phoneme_vocab_size: int = 732
    embedding_dim: int = 512
    hidden_dim: int = 512
    head: int = 16
    n_layer: int = 24
    eos: int = 1024
    dropout: float = 0.0
    max_sec: int = 54
    inference_top_k: int = 15

    def __post_init__(self) -> None:
        if self.eos != self.vocab_size - 1:
            raise UserError(f"GPT config: EOS {self.eos} must equal vocab_size - 1 ({self.vocab_size - 1})")
        if self.embedding_dim != self.hidden_dim:
            raise UserError(
                f"GPT config: embedding_dim {self.embedding_dim} != hidden_dim {self.hidden_dim} is not supported"
            )
        if self.head <= 0 or self.hidden_dim % self.head:
            raise UserError(f"GPT config: hidden_dim {self.hidden_dim} is not divisible by head {self.head}")

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.head

    @classmethod
    def from_checkpoint_config(cls, config: Mapping) -> T2SConfig:
        """Read the ``config`` dict stored in an upstream GPT ``.ckpt`` (spec 1.1)."""
        try:
            model = config["model"]
            values = dict(
                vocab_size=int(model["vocab_size"]),
                phoneme_vocab_size=int(model["phoneme_vocab_size"]),
                embedding_dim=int(model["embedding_dim"]),
                hidden_dim=int(model["hidden_dim"]),
                head=int(model["head"]),
                n_layer=int(model["n_layer"]),
                eos=int(model["EOS"]),
                dropout=float(model.get("dropout", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"GPT config: missing or invalid model entry ({exc!r})") from None
        data = config.get("data") or {}
        inference = config.get("inference") or {}
        if "max_sec" in data:
            values["max_sec"] = int(data["max_sec"])
        if "top_k" in inference:
            values["inference_top_k"] = int(inference["top_k"])
        return cls(**values)

    def to_checkpoint_config(self) -> dict:
        """An upstream-shaped config dict (sections as in ``configs/s1longer-v2.yaml``)."""
        return {
            "train": {
                "seed": 1234,
                "epochs": 20,
                "batch_size": 8,
                "save_every_n_epoch": 1,
                "precision": "16-mixed",
                "gradient_clip": 1.0,
            },
            "optimizer": {
                "lr": 0.01,
                "lr_init": 0.00001,
                "lr_end": 0.0001,
                "warmup_steps": 2000,
                "decay_steps": 40000,
            },
            "data": {"max_eval_sample": 8, "max_sec": self.max_sec, "num_workers": 4, "pad_val": self.eos},
            "model": {
                "vocab_size": self.vocab_size,
                "phoneme_vocab_size": self.phoneme_vocab_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "head": self.head,
                "linear_units": FFN_MULT * self.hidden_dim,
                "n_layer": self.n_layer,
                "dropout": self.dropout,
                "EOS": self.eos,
                "random_bert": 0,
            },
            "inference": {"top_k": self.inference_top_k},
        }


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Upstream's sine table rows for integer ``positions`` [...]: [..., dim], sin at even and cos at odd columns."""
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(PE_BASE) / dim))
    angles = positions.to(torch.float32).unsqueeze(-1) * div
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)


class TokenEmbedding(nn.Module):
    """Holds ``word_embeddings`` under upstream's name."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


class ScaledSinePosition(nn.Module):
    """``x + alpha * PE[positions]`` (upstream ``SinePositionalEmbedding`` with scale=False, alpha=True)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * sinusoid(positions, self.dim)


class SelfAttention(nn.Module):
    """Packed q|k|v projection with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)


class Block(nn.Module):
    """One post-LN transformer layer: ``x = LN1(x + attn(x)); x = LN2(x + FFN(x))``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.self_attn = SelfAttention(dim)
        self.linear1 = nn.Linear(dim, FFN_MULT * dim)
        self.linear2 = nn.Linear(FFN_MULT * dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)

    def _finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn.out_proj(attn))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))

    def prefill(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,S,D], bias [B,1,S,S] (0 = may attend, -inf = blocked) -> x, k [B,S,D], v [B,S,D]."""
        b, s, d = x.shape
        q, k, v = F.linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias).chunk(3, dim=-1)
        qh = q.reshape(b, s, self.heads, self.head_dim).transpose(1, 2) * (self.head_dim**-0.5)
        kh = k.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)
        vh = v.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(qh, kh.transpose(-1, -2)) + bias
        attn = torch.matmul(torch.softmax(scores, dim=-1), vh).transpose(1, 2).reshape(b, s, d)
        return self._finish(x, attn), k, v

    def step(
        self, x: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,D], past [S,B,H,hd] (time-major), bias [B,1,1,S] (0 or -inf) -> x, k_new [B,D], v_new [B,D].

        The single query sees every valid past key and itself (upstream's step has no mask; the bias only hides
        right-padded text columns of a batched prefill). Written for a small ONNX graph: constant reshapes only,
        q|k|v as three GEMMs on row slices of in_proj (folded at export, with the 1/sqrt(hd) scale in q), no
        concatenation of the cache.
        """
        h, hd = self.heads, self.head_dim
        d = h * hd
        w, wb = self.self_attn.in_proj_weight, self.self_attn.in_proj_bias
        scale = hd**-0.5
        q = F.linear(x, w[:d] * scale, wb[:d] * scale).reshape(-1, h, 1, hd)
        k = F.linear(x, w[d : 2 * d], wb[d : 2 * d])
        v = F.linear(x, w[2 * d :], wb[2 * d :])
        # The permutes of the time-major cache fold into onnxruntime's FusedMatMul (transBatchB), so the cache
        # is read in place; measured 7x faster than a multiply + reduce over the same layout.
        past_scores = torch.matmul(q, past_k.permute(1, 2, 3, 0)) + bias  # [B,H,1,S]
        new_score = (q * k.reshape(-1, h, 1, hd)).sum(-1, keepdim=True)  # [B,H,1,1]
        probs = torch.softmax(torch.cat([past_scores, new_score], dim=-1), dim=-1)
        attn = torch.matmul(probs[..., :-1], past_v.permute(1, 2, 0, 3))  # [B,H,1,hd]
        attn = attn + probs[..., -1:] * v.reshape(-1, h, 1, hd)
        return self._finish(x, attn.reshape(-1, d)), k, v


class Layers(nn.Module):
    """Container named like upstream's ``TransformerEncoder`` (keys ``h.layers.N.*``)."""

    def __init__(self, dim: int, heads: int, n_layer: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(dim, heads) for _ in range(n_layer))


class Text2SemanticDecoder(nn.Module):
    """Upstream-compatible GPT; see the module docstring for the two forward paths."""

    def __init__(self, config: T2SConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embedding_dim
        self.bert_proj = nn.Linear(BERT_DIM, dim)
        self.ar_text_embedding = TokenEmbedding(config.phoneme_vocab_size, dim)
        self.ar_text_position = ScaledSinePosition(dim)
        self.ar_audio_embedding = TokenEmbedding(config.vocab_size, dim)
        self.ar_audio_position = ScaledSinePosition(dim)
        self.h = Layers(config.hidden_dim, config.head, config.n_layer)
        self.ar_predict_layer = nn.Linear(config.hidden_dim, config.vocab_size, bias=False)

    def embed_text(self, phone_ids: torch.Tensor, bert: torch.Tensor) -> torch.Tensor:
        """phone_ids [B,Tx], bert [B,1024,Tx] -> [B,Tx,D] (BERT projection added before the positions)."""
        x = self.ar_text_embedding(phone_ids) + self.bert_proj(bert.transpose(1, 2))
        positions = torch.arange(phone_ids.shape[1], dtype=torch.int64, device=phone_ids.device)
        return self.ar_text_position(x, positions)

    def embed_audio(self, codes: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """codes [...] with audio positions broadcastable to it -> [..., D]."""
        return self.ar_audio_position(self.ar_audio_embedding(codes), positions)

    def prefill(
        self,
        phone_ids: torch.Tensor,
        phone_lengths: torch.Tensor,
        bert: torch.Tensor,
        prompt_codes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spec 2.1.3 for a right-padded batch -> logits [B,V], k_cache, v_cache [L,S,B,D]."""
        tx, ty = phone_ids.shape[1], prompt_codes.shape[1]
        x = self.embed_text(phone_ids, bert)
        y = self.embed_audio(prompt_codes, torch.arange(ty, dtype=torch.int64, device=prompt_codes.device))
        xy = torch.cat([x, y], dim=1)
        bias = torch.where(prefill_mask(phone_lengths, tx, ty).unsqueeze(1), 0.0, float("-inf"))  # once, not per layer
        ks, vs = [], []
        for block in self.h.layers:
            xy, k, v = block.prefill(xy, bias)
            ks.append(k.transpose(0, 1))
            vs.append(v.transpose(0, 1))
        logits = self.ar_predict_layer(xy[:, -1])
        return logits, torch.stack(ks), torch.stack(vs)

    def step(
        self,
        token: torch.Tensor,
        position: torch.Tensor,
        key_valid: torch.Tensor,
        past: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """token, position [B], key_valid [B,S]; past = [k_0, v_0, k_1, v_1, ...] each [S,B,H,hd]
        -> logits [B,V], new_k, new_v [L,B,D]."""
        x = self.embed_audio(token, position)
        bias = torch.where(key_valid.unsqueeze(1).unsqueeze(1), 0.0, float("-inf"))  # [B,1,1,S], once per step
        ks, vs = [], []
        for i, block in enumerate(self.h.layers):
            x, k, v = block.step(x, past[2 * i], past[2 * i + 1], bias)
            ks.append(k)
            vs.append(v)
        return self.ar_predict_layer(x), torch.stack(ks), torch.stack(vs)


def prefill_mask(phone_lengths: torch.Tensor, tx: int, ty: int) -> torch.Tensor:
    """[B,S,S], True where query i may attend key j.

    Text rows see the row's valid text; audio rows see the valid text plus the audio up to themselves.
    """
    s = tx + ty
    idx = torch.arange(s, dtype=torch.int64, device=phone_lengths.device)
    row, col = idx.unsqueeze(1), idx.unsqueeze(0)
    is_text_col = col < tx
    structural = is_text_col | ((row >= tx) & (col <= row))
    key_ok = (col >= tx) | (col < phone_lengths.view(-1, 1, 1))  # [B,1,S]
    return structural.unsqueeze(0) & key_ok


class T2SPrefill(nn.Module):
    """Export wrapper: the prefill graph."""

    def __init__(self, decoder: Text2SemanticDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self, phone_ids: torch.Tensor, phone_lengths: torch.Tensor, bert: torch.Tensor, prompt_codes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.decoder.prefill(phone_ids, phone_lengths, bert, prompt_codes)


class T2SStep(nn.Module):
    """Export wrapper: one decode step; ``past`` arrives as 2*L separate inputs (k_0, v_0, k_1, v_1, ...)."""

    def __init__(self, decoder: Text2SemanticDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self, token: torch.Tensor, position: torch.Tensor, key_valid: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.decoder.step(token, position, key_valid, list(past))


# demo_init_ scales, chosen by measuring the tiny and full configs (see tests/test_t2s.py conditioning checks).
DEMO_EMB_STD = 1.0  # token embeddings comparable to the alpha * PE term (|PE row| ~ sqrt(D/2))
DEMO_BERT_STD = 0.02
# Residual branch gains (relative to a unit-variance branch) summed over depth: each layer gets gain/sqrt(n_layer),
# so a 24-layer stack mixes as much as a shallow one instead of smoothing every position to the same vector.
DEMO_ATTN_OUT_GAIN = 1.0
DEMO_FFN_OUT_GAIN = 0.5
DEMO_LOGIT_STD = 2.0  # std of ordinary logits: peaked enough that top-k sampling is not uniform noise
DEMO_EOS_OFFSET = 1.0  # EOS logit mean, in logit-stds above the ordinary mean: reachable, not dominant
DEMO_EOS_CARRIER = 10.0  # norm of the last LayerNorm bias that carries the EOS offset


@torch.no_grad()
def demo_init_(model: Text2SemanticDecoder, generator: torch.Generator) -> None:
    """A well-conditioned random init for demos and tests (no real weights exist on this machine).

    The default init gives a 24-layer post-LN stack whose output barely depends on its input, so the sampler
    cycles over a few tokens. Here every residual branch adds a fixed, modest fraction of a unit-variance signal,
    token embeddings are as large as the positional term, and the EOS row is a copy of a random row direction
    shifted by a constant carried by the last LayerNorm's bias, which puts EOS below the typical logit.
    """
    cfg = model.config
    dim = cfg.hidden_dim

    def normal_(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=generator) * std)

    normal_(model.ar_text_embedding.word_embeddings.weight, DEMO_EMB_STD)
    normal_(model.ar_audio_embedding.word_embeddings.weight, DEMO_EMB_STD)
    normal_(model.bert_proj.weight, DEMO_BERT_STD / math.sqrt(BERT_DIM) * math.sqrt(dim))
    model.bert_proj.bias.zero_()
    model.ar_text_position.alpha.fill_(1.0)
    model.ar_audio_position.alpha.fill_(1.0)
    depth = math.sqrt(cfg.n_layer)
    for block in model.h.layers:
        # q/k with unit-ish scores so attention is neither uniform nor one-hot; v unit variance.
        normal_(block.self_attn.in_proj_weight, 1.0 / math.sqrt(dim))
        block.self_attn.in_proj_bias.zero_()
        normal_(block.self_attn.out_proj.weight, DEMO_ATTN_OUT_GAIN / depth / math.sqrt(dim))
        block.self_attn.out_proj.bias.zero_()
        normal_(block.linear1.weight, math.sqrt(2.0 / dim))
        block.linear1.bias.zero_()
        normal_(block.linear2.weight, DEMO_FFN_OUT_GAIN / depth / math.sqrt(FFN_MULT * dim))
        block.linear2.bias.zero_()
        for norm in (block.norm1, block.norm2):
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    # The last LayerNorm output has unit variance per feature; a bias along a fixed direction u gives every
    # position the same component, and the EOS row reads it as a constant logit offset.
    u = torch.randn(dim, generator=generator)
    u /= u.norm()
    last_norm = model.h.layers[-1].norm2
    last_norm.bias.copy_(DEMO_EOS_CARRIER * u)
    head = model.ar_predict_layer.weight
    normal_(head, DEMO_LOGIT_STD / math.sqrt(dim))
    head -= torch.outer(head @ u, u)  # ordinary logits ignore the constant component
    head[cfg.eos] += (DEMO_EOS_OFFSET * DEMO_LOGIT_STD / DEMO_EOS_CARRIER) * u
