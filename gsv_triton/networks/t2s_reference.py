"""A plain eager torch twin of upstream's ``infer_panel_naive`` for batch 1 (spec 2.1.3 - 2.1.6).

It exists only to check the serving path (ONNX graphs + numpy sampler + host loop) token for token. It uses the
weights of a :class:`Text2SemanticDecoder` but none of its forward code: the prefill runs full attention with
upstream's boolean mask, the KV cache grows by concatenation, and the positional table is built the upstream way
(a 4000-row table, extended on demand). The exponential noise comes from a caller-supplied source so the same
draws can be fed to the numpy sampler.

One deliberate difference: the top-p sort is stable (upstream's ``torch.sort`` is not), so exactly tied logits
are ordered by index. Ties do not occur with float weights in practice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gsv_triton.networks.t2s import LN_EPS, PE_BASE, Text2SemanticDecoder

PE_TABLE_ROWS = 4000  # upstream precomputes this many rows
MAX_STEPS = 1500  # upstream's hard cap on loop steps
MIN_STEPS_BEFORE_EOS = 11  # EOS column removed for loop steps idx < 11
MIN_TEMPERATURE = 1e-5

NoiseSource = Callable[[int], np.ndarray]


def _pe_table(rows: int, dim: int) -> torch.Tensor:
    pe = torch.zeros(rows, dim)
    position = torch.arange(0, rows, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(PE_BASE) / dim))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def reference_sample(
    logits: torch.Tensor,
    previous_tokens: torch.Tensor,
    *,
    top_k: int,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Twin of upstream ``sample``: penalises ``logits`` IN PLACE, returns the token [B,1] (int64)."""
    if repetition_penalty != 1.0:
        prev = previous_tokens.long()
        score = torch.gather(logits, 1, prev)
        score = torch.where(score < 0, score * repetition_penalty, score / repetition_penalty)
        logits.scatter_(1, prev, score)
    x = logits
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(x, descending=True, stable=True)
        cum = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        drop_sorted = cum > top_p
        drop_sorted[:, 0] = False
        drop = drop_sorted.scatter(1, sorted_idx, drop_sorted)
        x = x.masked_fill(drop, float("-inf"))
    x = x / max(temperature, MIN_TEMPERATURE)
    v, _ = torch.topk(x, min(top_k, x.size(-1)))
    x = torch.where(x < v[:, -1:], float("-inf"), x)
    probs = torch.softmax(x, dim=-1)
    return torch.argmax(probs / noise, dim=-1, keepdim=True).long()


class _Eager:
    """Upstream-style forward math over a decoder's parameters."""

    def __init__(self, decoder: Text2SemanticDecoder) -> None:
        self.d = decoder
        cfg = decoder.config
        self.heads = cfg.head
        self.dim = cfg.hidden_dim
        self.pe = _pe_table(PE_TABLE_ROWS, cfg.embedding_dim)

    def _pe(self, rows: int) -> torch.Tensor:
        if self.pe.shape[0] < rows:
            self.pe = _pe_table(rows, self.dim)
        return self.pe[:rows]

    def _attend(self, x, layer, k_cache, v_cache, mask):
        b, t, _ = x.shape
        q, k, v = F.linear(x, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias).chunk(3, dim=-1)
        if k_cache is not None:
            k = torch.cat([k_cache, k], dim=1)
            v = torch.cat([v_cache, v], dim=1)
        s = k.shape[1]
        qh = q.view(b, t, self.heads, -1).transpose(1, 2)
        kh = k.view(b, s, self.heads, -1).transpose(1, 2)
        vh = v.view(b, s, self.heads, -1).transpose(1, 2)
        attn = F.scaled_dot_product_attention(qh, kh, vh, None if mask is None else ~mask)
        attn = attn.transpose(1, 2).reshape(b, t, -1)
        x = F.layer_norm(x + F.linear(attn, layer.self_attn.out_proj.weight, layer.self_attn.out_proj.bias),
                         [self.dim], layer.norm1.weight, layer.norm1.bias, LN_EPS)
        ffn = F.linear(F.relu(F.linear(x, layer.linear1.weight, layer.linear1.bias)),
                       layer.linear2.weight, layer.linear2.bias)
        x = F.layer_norm(x + ffn, [self.dim], layer.norm2.weight, layer.norm2.bias, LN_EPS)
        return x, k, v

    def run(self, xy, mask, caches):
        new = []
        for i, layer in enumerate(self.d.h.layers):
            kc, vc = caches[i] if caches is not None else (None, None)
            xy, k, v = self._attend(xy, layer, kc, vc, mask)
            new.append((k, v))
        return F.linear(xy[:, -1], self.d.ar_predict_layer.weight), new

    def prompt(self, phone_ids, bert, prompts):
        d = self.d
        x = d.ar_text_embedding.word_embeddings(phone_ids) + F.linear(
            bert.transpose(1, 2), d.bert_proj.weight, d.bert_proj.bias)
        tx, ty = x.shape[1], prompts.shape[1]
        x = x + d.ar_text_position.alpha * self._pe(tx)
        y = d.ar_audio_embedding.word_embeddings(prompts) + d.ar_audio_position.alpha * self._pe(ty)
        # Upstream's mask: True = blocked. Text rows see only text; audio rows see text + causal audio.
        x_mask = F.pad(torch.zeros(tx, tx, dtype=torch.bool), (0, ty), value=True)
        y_mask = F.pad(torch.triu(torch.ones(ty, ty, dtype=torch.bool), diagonal=1), (tx, 0), value=False)
        return torch.cat([x, y], dim=1), torch.cat([x_mask, y_mask], dim=0).view(1, 1, tx + ty, tx + ty)

    def next_input(self, token, position):
        d = self.d
        return d.ar_audio_embedding.word_embeddings(token) + d.ar_audio_position.alpha * self._pe(
            position + 1)[position]


@torch.no_grad()
def reference_generate(
    decoder: Text2SemanticDecoder,
    phone_ids: torch.Tensor,
    bert: torch.Tensor,
    prompt_codes: torch.Tensor,
    *,
    top_k: int,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
    noise: NoiseSource,
    max_new_tokens: int = MAX_STEPS,
    eos_enabled: bool = True,
) -> torch.Tensor:
    """Generated tokens [N] (int64) of ``infer_panel_naive`` + the caller's ``y[:, -idx:]`` slice.

    phone_ids [1,Tx], bert [1,1024,Tx], prompt_codes [1,Ty] (Ty >= 1). ``noise(n)`` returns n float32 Exp(1)
    draws for a step over n logits. ``max_new_tokens`` generalises the 1500 cap (the slice quirk included: a run
    stopped by the cap returns max_new_tokens - 1 tokens); ``eos_enabled=False`` removes the EOS column at every
    step, so only the cap stops.
    """
    eng = _Eager(decoder)
    eos = decoder.config.eos
    xy, mask = eng.prompt(phone_ids, bert, prompt_codes)
    y = prompt_codes.clone()
    ty = prompt_codes.shape[1]
    caches = None
    idx = 0
    for idx in range(max_new_tokens):
        logits, caches = eng.run(xy, mask, caches)
        mask = None  # the step attends to everything
        if idx < MIN_STEPS_BEFORE_EOS or not eos_enabled:
            logits = logits[:, :-1]
        q = torch.from_numpy(np.asarray(noise(logits.shape[-1]), dtype=np.float32)).view(1, -1)
        sample = reference_sample(logits, y, top_k=top_k, top_p=top_p, temperature=temperature,
                                  repetition_penalty=repetition_penalty, noise=q)
        y = torch.cat([y, sample], dim=1)
        if torch.argmax(logits, dim=-1)[0] == eos or sample[0, 0] == eos:
            y = y[:, :-1]
            break
        if idx == max_new_tokens - 1:
            break
        xy = eng.next_input(y[:, -1:], ty + idx)
    return y[0, -idx:] if idx > 0 else y[0, ty:]
