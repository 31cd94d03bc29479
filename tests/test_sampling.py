"""The numpy sampler (serving) against the torch twin of upstream's ``sample`` and against its own rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsv_triton.backend.t2s.sampling import (
    SamplingParams,
    apply_repetition_penalty,
    exponential_noise,
    sample_rows,
)
from gsv_triton.errors import InputError
from gsv_triton.networks.t2s_reference import reference_sample

VOCAB = 1025


def _random_case(rng: np.random.Generator, vocab: int):
    logits = (rng.standard_normal(vocab) * rng.uniform(0.5, 4.0)).astype(np.float32)
    previous = rng.integers(0, 1024, size=rng.integers(1, 300))
    params = SamplingParams(
        top_k=int(rng.choice([1, 3, 15, 50, 1024, 2000])),
        top_p=float(rng.choice([1.0, 0.95, 0.8, 0.5, 0.1])),
        temperature=float(rng.choice([1.0, 0.7, 1.3, 1e-6])),
        repetition_penalty=float(rng.choice([1.0, 1.35, 1.1, 2.0])),
    )
    return logits, previous, params


def test_numpy_sampler_equals_torch_twin_on_random_cases():
    rng = np.random.default_rng(1234)
    mismatches = 0
    cases = 400
    for case in range(cases):
        vocab = VOCAB if case % 2 else VOCAB - 1  # EOS column removed for the first 11 steps
        logits, previous, p = _random_case(rng, vocab)
        noise = exponential_noise(rng, vocab)
        seen = np.zeros((1, VOCAB), dtype=bool)
        seen[0, previous] = True
        tokens, penalised = sample_rows(logits[None], seen, [p], noise[None])

        t_logits = torch.from_numpy(logits.copy())[None]
        t_token = reference_sample(
            t_logits,
            torch.from_numpy(previous)[None],
            top_k=p.top_k,
            top_p=p.top_p,
            temperature=p.temperature,
            repetition_penalty=p.repetition_penalty,
            noise=torch.from_numpy(noise)[None],
        )
        np.testing.assert_array_equal(penalised[0], t_logits[0].numpy())  # the twin penalised in place
        mismatches += int(tokens[0] != int(t_token[0, 0]))
    assert mismatches == 0, f"{mismatches} of {cases} draws differ"


def test_rows_are_independent_of_their_batch():
    rng = np.random.default_rng(7)
    rows = [_random_case(rng, VOCAB) for _ in range(6)]
    noise = np.stack([exponential_noise(rng, VOCAB) for _ in rows])
    seen = np.zeros((len(rows), VOCAB), dtype=bool)
    for i, (_, prev, _) in enumerate(rows):
        seen[i, prev] = True
    logits = np.stack([r[0] for r in rows])
    params = [r[2] for r in rows]
    batch_tokens, _ = sample_rows(logits, seen, params, noise)
    for i in range(len(rows)):
        alone, _ = sample_rows(logits[i : i + 1], seen[i : i + 1], [params[i]], noise[i : i + 1])
        assert alone[0] == batch_tokens[i]


def test_repetition_penalty_rules():
    logits = np.array([[2.0, -2.0, 2.0, -2.0, 0.0]], dtype=np.float32)
    seen = np.array([[True, True, False, False, True]])
    out = apply_repetition_penalty(logits, seen, np.array([2.0]))
    np.testing.assert_array_equal(out, [[1.0, -4.0, 2.0, -2.0, 0.0]])
    np.testing.assert_array_equal(logits, [[2.0, -2.0, 2.0, -2.0, 0.0]])  # the caller's array is untouched


def test_top_k_keeps_ties_at_the_pivot():
    # top_k=2 with a tie for second place: three tokens stay drawable, the fourth never.
    logits = np.array([[3.0, 1.0, 1.0, 0.5]], dtype=np.float32)
    seen = np.zeros((1, 4), dtype=bool)
    p = SamplingParams(top_k=2, repetition_penalty=1.0)
    rng = np.random.default_rng(0)
    drawn = {int(sample_rows(logits, seen, [p], exponential_noise(rng, 4)[None])[0][0]) for _ in range(400)}
    assert drawn == {0, 1, 2}


def test_top_p_always_keeps_the_best_token():
    logits = np.array([[0.1, 0.3, 0.2]], dtype=np.float32)
    seen = np.zeros((1, 3), dtype=bool)
    p = SamplingParams(top_k=3, top_p=0.01, repetition_penalty=1.0)
    rng = np.random.default_rng(0)
    drawn = {int(sample_rows(logits, seen, [p], exponential_noise(rng, 3)[None])[0][0]) for _ in range(50)}
    assert drawn == {1}


def test_exponential_race_follows_softmax():
    logits = np.array([1.0, 0.0, -1.0, 0.5, 2.0], dtype=np.float32)
    n = 20000
    rng = np.random.default_rng(3)
    noise = np.stack([exponential_noise(rng, 5) for _ in range(n)])
    p = SamplingParams(top_k=5, repetition_penalty=1.0)
    tokens, _ = sample_rows(np.tile(logits, (n, 1)), np.zeros((n, 5), dtype=bool), [p] * n, noise)
    freq = np.bincount(tokens, minlength=5) / n
    expected = np.exp(logits) / np.exp(logits).sum()
    assert np.abs(freq - expected).max() < 0.015


def test_noise_is_positive_float32_and_seeded():
    a = exponential_noise(np.random.default_rng(5), 10000)
    b = exponential_noise(np.random.default_rng(5), 10000)
    assert a.dtype == np.float32 and (a > 0).all()
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean() - 1.0) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": 0.0}, "temperature"),
        ({"repetition_penalty": -1.0}, "repetition_penalty"),
    ],
)
def test_invalid_parameters_name_their_field(kwargs, field):
    with pytest.raises(InputError) as err:
        SamplingParams(**kwargs)
    assert err.value.field == field


def test_serving_modules_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, gsv_triton.backend.t2s.sampling, gsv_triton.backend.t2s.loop; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
