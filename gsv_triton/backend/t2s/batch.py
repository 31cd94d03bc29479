"""The ``t2s`` model's tensor contract over a T2S runner: padded rows in, tokens padded with -1 plus lengths
out (shared by the Triton models and the in-process :class:`~gsv_triton.backend.ort_backend.OrtBackend`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gsv_triton.backend.cancel import NEVER, StopSignal
from gsv_triton.errors import InputError
from gsv_triton.settings import SamplingDefaults

TOKEN_PAD = -1  # t2s pads its token matrix with this (never a valid token)


def _scalar(inputs: Mapping[str, np.ndarray], name: str, default: Any) -> Any:
    value = inputs.get(name)
    return default if value is None else np.asarray(value).ravel()[0].item()


def run_t2s(runner, inputs: Mapping[str, np.ndarray], stop: StopSignal = NEVER, **hooks) -> dict[str, np.ndarray]:
    """The ``t2s`` model's contract over a :class:`~gsv_triton.backend.t2s.loop.T2SRunner` or the
    torch runner: padded rows in, tokens padded with -1 plus lengths out. ``stop`` is checked between tokens;
    ``hooks`` (``on_step``) go to the runner's ``generate``."""
    phones = np.asarray(inputs["phone_ids"], dtype=np.int64)
    bert = np.asarray(inputs["bert"], dtype=np.float32)
    prompt = np.asarray(inputs["prompt_codes"], dtype=np.int64)
    b, tx = phones.shape
    lengths = np.asarray(inputs.get("phone_lengths", np.full(b, tx)), dtype=np.int64).ravel()
    if lengths.shape != (b,) or lengths.min(initial=1) < 1 or lengths.max(initial=0) > tx:
        raise InputError("phone_lengths", f"needs {b} lengths in [1, {tx}]")
    if bert.ndim != 3 or bert.shape[0] != b or bert.shape[2] != tx:
        raise InputError("bert", f"must be [{b}, 1024, {tx}], got {list(bert.shape)}")
    if prompt.ndim != 2 or prompt.shape[0] not in (1, b):
        raise InputError("prompt_codes", f"must be [1, Ty] or [{b}, Ty], got {list(prompt.shape)}")
    seeds = np.asarray(inputs.get("seed", np.zeros(1)), dtype=np.int64).ravel()
    if seeds.size not in (1, b):
        raise InputError("seed", f"needs 1 or {b} values, got {seeds.size}")
    tokens = runner.generate(
        [phones[r, : lengths[r]] for r in range(b)],
        [bert[r, :, : lengths[r]] for r in range(b)],
        prompt[0] if prompt.shape[0] == 1 else prompt,
        top_k=int(_scalar(inputs, "top_k", SamplingDefaults.top_k)),
        top_p=float(_scalar(inputs, "top_p", SamplingDefaults.top_p)),
        temperature=float(_scalar(inputs, "temperature", SamplingDefaults.temperature)),
        repetition_penalty=float(_scalar(inputs, "repetition_penalty", SamplingDefaults.repetition_penalty)),
        seed=[int(s) for s in seeds] if seeds.size == b else int(seeds[0]),
        max_new_tokens=int(_scalar(inputs, "max_new_tokens", SamplingDefaults.max_new_tokens)),
        eos_enabled=not bool(_scalar(inputs, "ignore_eos", False)),
        should_stop=stop.check,
        **hooks,
    )
    counts = np.array([len(t) for t in tokens], dtype=np.int64)
    out = np.full((b, int(counts.max(initial=0))), TOKEN_PAD, dtype=np.int64)
    for r, t in enumerate(tokens):
        out[r, : len(t)] = t
    return {"tokens": out, "lengths": counts}
