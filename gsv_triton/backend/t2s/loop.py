"""The T2S autoregressive loop for serving (numpy + onnxruntime): prefill once, then one step per token.

Upstream rules (spec 2.1.5 / 2.1.6) per row: the EOS column is removed for loop steps idx < 11; after sampling,
the row stops when the argmax of the *penalised* logits is EOS or the sample is EOS, and the last sampled token is
then dropped whatever it is; at the cap (loop step max_new_tokens - 1, upstream 1500) the row stops and, like
upstream's ``y[:, -idx:]`` slice, its FIRST generated token is dropped.

Batch rows are independent: each row has its own ``np.random.Generator(seed)`` drawing exactly the noise it would
draw alone, and a finished row leaves the batch. The KV cache is ONE buffer per call, ``[2, L, S_max, B, D]``
allocated once with ``np.empty`` (pages are only touched as they are written), in the time-major layout documented
in ``gsv_triton.networks.t2s``: every layer's valid prefix goes to onnxruntime as a contiguous view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gsv_triton.backend.cancel import NEVER
from gsv_triton.backend.t2s.sampling import SamplingParams, exponential_noise, sample_rows
from gsv_triton.contract import BERT_DIM
from gsv_triton.errors import InputError
from gsv_triton.settings import EOS_TOKEN, SamplingDefaults


@dataclass(frozen=True)
class T2SRunnerConfig:
    """What the loop needs to know about the exported graphs."""

    n_layer: int
    heads: int
    head_dim: int
    vocab_size: int = EOS_TOKEN + 1
    eos: int = EOS_TOKEN
    min_tokens_before_eos: int = SamplingDefaults.min_tokens_before_eos

    @classmethod
    def from_step_session(cls, step_session) -> T2SRunnerConfig:
        """Read the sizes from the step graph's inputs (past_k_i: [S, B, H, hd]) and outputs (logits: [B, V])."""
        inputs = {i.name: i for i in step_session.get_inputs()}
        n_layer = sum(1 for name in inputs if name.startswith("past_k_"))
        heads, head_dim = inputs["past_k_0"].shape[-2:]
        vocab = int(step_session.get_outputs()[0].shape[-1])
        return cls(n_layer=n_layer, heads=int(heads), head_dim=int(head_dim), vocab_size=vocab, eos=vocab - 1)

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim


def _as_rows(value, ndim: int, name: str) -> list[np.ndarray]:
    """A batch given as one array (leading batch axis) or as a list of per-row arrays."""
    if isinstance(value, np.ndarray) and value.ndim == ndim + 1:
        return list(value)
    if isinstance(value, Sequence) and not isinstance(value, np.ndarray):
        rows = [np.asarray(v) for v in value]
        if all(r.ndim == ndim for r in rows):
            return rows
    raise InputError(name, f"expected a list of {ndim}-D arrays or one {ndim + 1}-D array")


@dataclass(frozen=True)
class T2SBatch:
    """The validated inputs of one ``generate`` call; shared by every T2S loop (onnxruntime, torch, engine)."""

    phones: list[np.ndarray]  # int64 [Tx_b] per row
    berts: list[np.ndarray]  # float32 [1024, Tx_b] per row
    prompts: np.ndarray  # int64 [B, Ty]
    seeds: list[int]  # one per row
    params: SamplingParams
    max_new_tokens: int
    eos_enabled: bool

    @property
    def rows(self) -> int:
        return len(self.phones)

    @classmethod
    def from_inputs(
        cls,
        phone_ids,
        bert,
        prompt_codes,
        *,
        eos: int,
        phoneme_vocab: int | None = None,
        top_k: int = SamplingDefaults.top_k,
        top_p: float = SamplingDefaults.top_p,
        temperature: float = SamplingDefaults.temperature,
        repetition_penalty: float = SamplingDefaults.repetition_penalty,
        seed: int | Sequence[int] = 0,
        max_new_tokens: int = SamplingDefaults.max_new_tokens,
        eos_enabled: bool = True,
    ) -> T2SBatch:
        """phone_ids: [B,Tx] or a list of [Tx_b]; bert: [B,1024,Tx] or a list of [1024,Tx_b]; prompt_codes: [Ty]
        (shared by every row) or [B,Ty], Ty >= 1; ``seed`` one int for every row or one per row.
        ``phoneme_vocab``, when known, bounds the phone ids. InputError names the first bad field."""
        phones = _as_rows(phone_ids, 1, "phone_ids")
        berts = _as_rows(bert, 2, "bert")
        prompts = np.asarray(prompt_codes, dtype=np.int64)
        if prompts.ndim == 1:
            prompts = np.broadcast_to(prompts, (len(phones), prompts.shape[0]))
        _check(phones, berts, prompts, max_new_tokens, eos, phoneme_vocab)
        seeds = [int(seed)] * len(phones) if isinstance(seed, int | np.integer) else [int(s) for s in seed]
        if len(seeds) != len(phones):
            raise InputError("seed", f"got {len(seeds)} seeds for {len(phones)} rows")
        params = SamplingParams(top_k, top_p, temperature, repetition_penalty)
        return cls(phones, berts, np.array(prompts), seeds, params, int(max_new_tokens), bool(eos_enabled))

    def seen_tokens(self, vocab_size: int) -> np.ndarray:
        """[B, V] bool: the tokens each row has seen so far (its prompt), for the repetition penalty."""
        seen = np.zeros((self.rows, vocab_size), dtype=bool)
        for r in range(self.rows):
            seen[r, self.prompts[r]] = True
        return seen


def _check(phones, berts, prompts, max_new_tokens: int, eos: int, phoneme_vocab: int | None) -> None:
    if not phones or len(berts) != len(phones) or prompts.shape[0] != len(phones):
        raise InputError("phone_ids", "phone_ids, bert and prompt_codes must have the same number of rows")
    for p, f in zip(phones, berts, strict=True):
        if len(p) == 0 or f.shape != (BERT_DIM, len(p)):
            raise InputError("bert", f"row with {len(p)} phones needs bert [1024,{len(p)}], got {f.shape}")
        if p.min() < 0:
            raise InputError("phone_ids", "phone ids must be >= 0")
        if phoneme_vocab is not None and p.max() >= phoneme_vocab:
            raise InputError("phone_ids", f"phone ids must lie in [0, {phoneme_vocab})")
    if prompts.shape[1] == 0:
        raise InputError("prompt_codes", "at least one prompt token is required (no reference-free mode)")
    if prompts.min() < 0 or prompts.max() >= eos:
        raise InputError("prompt_codes", f"prompt codes must lie in [0, {eos})")
    if max_new_tokens < 1:
        raise InputError("max_new_tokens", "must be >= 1")


def sample_step(
    logits: np.ndarray,
    seen: np.ndarray,
    params: Sequence[SamplingParams],
    rngs: Sequence,
    *,
    eos: int,
    suppress_eos: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One token per row from ``logits`` [B, V], and whether each row stops on EOS (upstream's rule: the argmax of
    the *penalised* logits or the sample is EOS). ``suppress_eos`` removes the EOS column first."""
    if suppress_eos:
        logits = logits[:, :eos]
    noise = np.stack([exponential_noise(rng, logits.shape[1]) for rng in rngs])
    tokens, penalised = sample_rows(logits, seen, params, noise)
    return tokens, (np.argmax(penalised, axis=1) == eos) | (tokens == eos)


def finished_row(generated: list[int], token: int, stops_on_eos: bool, at_cap: bool) -> np.ndarray | None:
    """A row's final tokens if it ends at this step, else None (then ``token`` is appended by the caller).

    On EOS the sampled token is dropped, whatever it is; at the cap, like upstream's caller slicing
    ``y[:, -idx:]`` with idx = cap - 1, the FIRST generated token is lost and the last sample kept."""
    if stops_on_eos:
        return np.array(generated, dtype=np.int64)
    if at_cap:
        return np.array(generated[1:] + [token], dtype=np.int64)
    return None


def record_step(
    tokens: np.ndarray, stops: np.ndarray, alive: np.ndarray, generated: list[list[int]],
    results: list[np.ndarray | None], at_cap: bool,
) -> np.ndarray:  # fmt: skip
    """Apply one sampled step to the rows ``alive`` (each batch slot's original row): a row that ends gets its
    final tokens in ``results``, the others their token appended to ``generated``; returns the slots that go on."""
    keep = np.ones(len(alive), dtype=bool)
    for slot, row in enumerate(alive):
        token = int(tokens[slot])
        results[row] = finished_row(generated[row], token, bool(stops[slot]), at_cap)
        if results[row] is None:
            generated[row].append(token)
        else:
            keep[slot] = False
    return keep


class T2SRunner:
    """Runs ``t2s_prefill.onnx`` and ``t2s_step.onnx`` with the numpy sampler."""

    def __init__(self, prefill_session, step_session, config: T2SRunnerConfig | None = None) -> None:
        self.prefill = prefill_session
        self.step = step_session
        self.config = config or T2SRunnerConfig.from_step_session(step_session)
        n = self.config.n_layer
        self._past_names = [f"past_{kv}_{i}" for i in range(n) for kv in ("k", "v")]
        missing = set(self._past_names) - {i.name for i in step_session.get_inputs()}
        if missing:
            raise ValueError(f"step graph lacks inputs {sorted(missing)[:3]}... for n_layer={n}")

    def generate(self, phone_ids, bert, prompt_codes, **settings) -> list[np.ndarray]:
        """Generated semantic tokens per row (int64, EOS and the dropped token removed).

        Inputs and ``settings`` (top_k, top_p, temperature, repetition_penalty, seed, max_new_tokens,
        eos_enabled) as in :meth:`T2SBatch.from_inputs`; sampling settings apply to every row.
        ``eos_enabled=False`` never stops early (fixed token counts for benchmarks). ``should_stop``, called
        before every step, raises to abandon the request (its deadline passed, its client went away).
        ``on_step(generated)``, called after every step with each row's tokens so far (rows that ended keep
        their last list), lets a stream see tokens before the loop ends; it must not change them.
        """
        cfg = self.config
        should_stop = settings.pop("should_stop", None) or NEVER.check
        on_step = settings.pop("on_step", None)
        batch = T2SBatch.from_inputs(phone_ids, bert, prompt_codes, eos=cfg.eos, **settings)
        max_new_tokens, eos_enabled = batch.max_new_tokens, batch.eos_enabled
        b, prompts = batch.rows, batch.prompts
        ids, lengths, feats = _pad_text(batch.phones, batch.berts)
        tx, ty = ids.shape[1], prompts.shape[1]
        feeds = {"phone_ids": ids, "phone_lengths": lengths, "bert": feats, "prompt_codes": prompts}
        logits, k_cache, v_cache = self.prefill.run(None, feeds)
        s = tx + ty
        s_max = s + max_new_tokens
        kv = np.empty((2, cfg.n_layer, s_max, b, cfg.hidden), dtype=np.float32)
        kv[0, :, :s] = k_cache
        kv[1, :, :s] = v_cache
        key_valid = np.ones((b, s_max), dtype=bool)
        key_valid[:, :tx] = np.arange(tx)[None, :] < lengths[:, None]

        rngs = [np.random.default_rng(x) for x in batch.seeds]
        seen = batch.seen_tokens(cfg.vocab_size)
        generated: list[list[int]] = [[] for _ in range(b)]
        results: list[np.ndarray | None] = [None] * b
        alive = np.arange(b)  # original row index of each batch slot

        for idx in range(max_new_tokens):
            should_stop()
            suppress = idx < cfg.min_tokens_before_eos or not eos_enabled
            tokens, stops = sample_step(logits, seen, [batch.params] * len(alive), [rngs[r] for r in alive],
                                        eos=cfg.eos, suppress_eos=suppress)  # fmt: skip
            keep = record_step(tokens, stops, alive, generated, results, at_cap=idx == max_new_tokens - 1)
            seen[np.flatnonzero(keep), tokens[keep]] = True
            if on_step is not None:
                on_step(generated)
            if not keep.any():
                break
            if not keep.all():
                alive, tokens, seen = alive[keep], tokens[keep], seen[keep]
                kv = _compact(kv, s, keep)
                key_valid = np.ascontiguousarray(key_valid[keep])
            logits, new_k, new_v = self.run_step(kv, s, key_valid, tokens, ty + idx)
            kv[0, :, s] = new_k
            kv[1, :, s] = new_v
            s += 1
        return [r if r is not None else np.zeros(0, dtype=np.int64) for r in results]

    def run_step(self, kv: np.ndarray, s: int, key_valid: np.ndarray, tokens: np.ndarray, position: int):
        """One decode step over the first ``s`` cache entries of ``kv`` ([2, L, S_max, B, D]) -> logits, new K, V."""
        b = tokens.shape[0]
        heads, head_dim = self.config.heads, self.config.head_dim
        feeds = {
            "token": tokens.astype(np.int64),
            "position": np.full(b, position, dtype=np.int64),
            "key_valid": np.ascontiguousarray(key_valid[:, :s]),
        }
        for i in range(self.config.n_layer):
            feeds[f"past_k_{i}"] = kv[0, i, :s].reshape(s, b, heads, head_dim)  # a view, no copy
            feeds[f"past_v_{i}"] = kv[1, i, :s].reshape(s, b, heads, head_dim)
        return self.step.run(None, feeds)


def _pad_text(phones: list[np.ndarray], berts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-pad every row's phones and BERT features to the longest row (the prefill masks the padding)."""
    lengths = np.array([len(p) for p in phones], dtype=np.int64)
    tx = int(lengths.max())
    ids = np.zeros((len(phones), tx), dtype=np.int64)
    feats = np.zeros((len(phones), BERT_DIM, tx), dtype=np.float32)
    for r, (p, f) in enumerate(zip(phones, berts, strict=True)):
        ids[r, : len(p)] = p
        feats[r, :, : len(p)] = f
    return ids, lengths, feats


def _compact(kv: np.ndarray, s: int, keep: np.ndarray) -> np.ndarray:
    """A new buffer holding only the surviving rows (one copy of the valid prefix per finished row event)."""
    out = np.empty(kv.shape[:3] + (int(keep.sum()), kv.shape[4]), dtype=kv.dtype)
    out[:, :, :s] = kv[:, :, :s][:, :, :, keep]
    return out
