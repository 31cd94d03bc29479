"""The T2S token sampler for serving (numpy only), upstream ``AR/models/utils.py::sample`` (spec 2.1.5).

Order per row: repetition penalty over every id seen so far (prompt + generated; each id once; logit < 0 is
multiplied, otherwise divided) -> top-p (only when top_p < 1; sorted descending, drop tokens whose cumulative
probability is > top_p, always keep the first) -> temperature (divide by max(t, 1e-5)) -> top-k (keep logits >=
the k-th largest, ties kept) -> softmax -> exponential race ``argmax(probs / q)``, q ~ Exp(1).

Every row has its own parameters and its own noise, so a row gives the same tokens alone or in a batch. The
arithmetic is float32 like upstream's; the cumulative sum accumulates in float64 because torch's CPU cumsum does.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from gsv_triton.errors import InputError
from gsv_triton.settings import SamplingDefaults

MIN_TEMPERATURE = 1e-5  # upstream clamps the divisor to this
_TINY = np.finfo(np.float32).tiny


@dataclass(frozen=True)
class SamplingParams:
    """One row's sampling settings (validated on construction; errors name the request field)."""

    top_k: int = SamplingDefaults.top_k
    top_p: float = SamplingDefaults.top_p
    temperature: float = SamplingDefaults.temperature
    repetition_penalty: float = SamplingDefaults.repetition_penalty

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral) or self.top_k < 1:
            raise InputError("top_k", f"must be an integer >= 1, got {self.top_k!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise InputError("top_p", f"must be in (0, 1], got {self.top_p!r}")
        if not float(self.temperature) > 0.0:
            raise InputError("temperature", f"must be > 0, got {self.temperature!r}")
        if not float(self.repetition_penalty) > 0.0:
            raise InputError("repetition_penalty", f"must be > 0, got {self.repetition_penalty!r}")


def exponential_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of Exp(1) as float32, floored at the smallest normal float so ``p / q`` is never 0/0 (NaN)."""
    return np.maximum(rng.standard_exponential(n, dtype=np.float32), _TINY)


def apply_repetition_penalty(logits: np.ndarray, seen: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """logits [B,V] f32, seen [B,V] bool, penalty [B] -> penalised copy (upstream does this in place)."""
    pen = np.asarray(penalty, dtype=np.float32)[:, None]
    return np.where(seen, np.where(logits < 0, logits * pen, logits / pen), logits).astype(np.float32, copy=False)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _top_p(x: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    order = np.argsort(-x, axis=1, kind="stable")
    probs = _softmax(np.take_along_axis(x, order, axis=1))
    cum = np.cumsum(probs.astype(np.float64), axis=1).astype(np.float32)
    drop_sorted = cum > top_p.astype(np.float32)[:, None]
    drop_sorted[:, 0] = False
    drop = np.empty_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=1)
    return np.where(drop, np.float32(-np.inf), x)


def sample_rows(
    logits: np.ndarray,
    seen: np.ndarray,
    params: list[SamplingParams],
    noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one token per row.

    logits [B,V] float32 (V may be 1024 when EOS is suppressed), seen [B,>=V] bool (ids already in y),
    noise [B,V] float32 Exp(1) draws. Returns (tokens [B] int64, penalised logits [B,V]); the caller's stop test
    reads the penalised logits, as upstream's in-place penalty makes it do.
    """
    logits = np.asarray(logits, dtype=np.float32)
    b, v = logits.shape
    if len(params) != b or noise.shape != (b, v) or seen.shape[0] != b:
        raise ValueError(f"{b} rows of logits need as many params, seen rows and noise rows")
    penalty = np.array([p.repetition_penalty for p in params], dtype=np.float64)
    top_p = np.array([p.top_p for p in params], dtype=np.float64)
    temperature = np.array([max(p.temperature, MIN_TEMPERATURE) for p in params], dtype=np.float32)
    top_k = np.array([min(p.top_k, v) for p in params], dtype=np.int64)

    penalised = apply_repetition_penalty(logits, seen[:, :v], penalty)
    x = penalised
    nucleus = top_p < 1.0
    if nucleus.any():
        x = x.copy()
        x[nucleus] = _top_p(x[nucleus], top_p[nucleus])
    x = x / temperature[:, None]
    pivot = -np.sort(-x, axis=1)[np.arange(b), top_k - 1]
    x = np.where(x < pivot[:, None], np.float32(-np.inf), x)
    probs = _softmax(x)
    tokens = np.argmax(probs / noise, axis=1).astype(np.int64)
    return tokens, penalised
