"""The torch T2S runner (torch runtime of the ``t2s`` model) against the onnxruntime loop, on the CPU.

Both loops share the numpy sampler and its per-row random streams, so on the CPU (float32) they must give the
SAME tokens: greedily (top_k=1) and sampled with the same seed. The CUDA-graph path needs a GPU and is run by
perf/gpu_bench.sh; here the same step function runs eagerly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_t2s import tiny_decoder, tiny_rows

from gsv_export.onnx_utils import ort_session
from gsv_export.t2s_export import export_t2s
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.backend.t2s.torch_runner import (
    CONTEXT_BUCKET,
    TorchT2SRunner,
    attention_window,
    batch_bucket,
    batch_buckets,
    capture_plan,
)
from gsv_triton.backend.torch_device import Placement, keep_float32_exact, resolve_placement
from gsv_triton.errors import InputError, UserError

MAX_TOKENS = 40


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    """(onnxruntime runner, torch runner) over the same tiny demo-initialised GPT."""
    torch.set_num_threads(1)
    decoder = tiny_decoder()
    paths = export_t2s(decoder, tmp_path_factory.mktemp("t2s"))
    ort_runner = T2SRunner(ort_session(paths["prefill"], threads=1), ort_session(paths["step"], threads=1))
    torch_runner = TorchT2SRunner(decoder, resolve_placement("cpu", "auto"), max_context=64)
    return ort_runner, torch_runner


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_greedy_tokens_equal_the_onnxruntime_loop(runners) -> None:
    ort_runner, torch_runner = runners
    phones, berts, prompt = tiny_rows(1, [9, 5, 7])
    kwargs = dict(top_k=1, repetition_penalty=1.0, max_new_tokens=MAX_TOKENS)
    expected = ort_runner.generate(phones, berts, prompt, **kwargs)
    got = torch_runner.generate(phones, berts, prompt, **kwargs)
    _assert_same(expected, got)
    assert sum(len(t) for t in got) > 0


@pytest.mark.parametrize("seed", [0, 7])
def test_sampled_tokens_with_the_same_seed_equal_the_onnxruntime_loop(runners, seed) -> None:
    """Same numpy sampler, same per-row generators: identical tokens are expected on the CPU (float32)."""
    ort_runner, torch_runner = runners
    phones, berts, prompt = tiny_rows(10 + seed, [8, 4])
    kwargs = dict(top_k=15, top_p=0.9, temperature=0.8, repetition_penalty=1.35, max_new_tokens=MAX_TOKENS)
    expected = ort_runner.generate(phones, berts, prompt, seed=[seed, seed + 1], **kwargs)
    got = torch_runner.generate(phones, berts, prompt, seed=[seed, seed + 1], **kwargs)
    _assert_same(expected, got)
    other = torch_runner.generate(phones, berts, prompt, seed=[seed + 100, seed + 101], **kwargs)
    assert any(not np.array_equal(x, y) for x, y in zip(got, other, strict=True)), "the seed must matter"


def test_rows_are_independent_and_a_batch_reuses_the_cache(runners) -> None:
    _, torch_runner = runners
    phones, berts, prompt = tiny_rows(3, [6, 11, 3])
    kwargs = dict(top_k=5, max_new_tokens=MAX_TOKENS, seed=[4, 5, 6])
    together = torch_runner.generate(phones, berts, prompt, **kwargs)
    storage = torch_runner._storage
    alone = [
        torch_runner.generate([phones[r]], [berts[r]], prompt, top_k=5, max_new_tokens=MAX_TOKENS, seed=4 + r)[0]
        for r in range(3)
    ]
    _assert_same(together, alone)
    assert torch_runner._storage is storage, "a smaller request must reuse the static cache"


def test_cap_and_ignore_eos_match_the_onnxruntime_loop(runners) -> None:
    ort_runner, torch_runner = runners
    phones, berts, prompt = tiny_rows(5, [7])
    kwargs = dict(top_k=3, max_new_tokens=70, eos_enabled=False, seed=2)  # grows past the 64-position cache
    expected = ort_runner.generate(phones, berts, prompt, **kwargs)
    got = torch_runner.generate(phones, berts, prompt, **kwargs)
    _assert_same(expected, got)
    assert len(got[0]) == 69  # upstream's slice at the cap keeps max_new_tokens - 1
    assert torch_runner._context >= 7 + 6 + 70


def test_bucketed_windows_mask_stale_and_unwritten_positions(runners) -> None:
    """The CUDA-graph steps attend over whole 256-position windows: positions past the slot (zeros, or K/V left
    by an earlier, longer request) must not leak in. Checked eagerly on the CPU against the onnxruntime loop."""
    ort_runner, torch_runner = runners
    bucketed = TorchT2SRunner(torch_runner.decoder, resolve_placement("cpu"), max_context=64, bucket_windows=True)
    long_rows = tiny_rows(8, [12, 9])
    bucketed.generate(*long_rows, top_k=1, max_new_tokens=MAX_TOKENS, eos_enabled=False)  # leaves stale K/V
    phones, berts, prompt = tiny_rows(9, [5, 3, 4])
    kwargs = dict(top_k=10, max_new_tokens=MAX_TOKENS, seed=[1, 2, 3])
    _assert_same(ort_runner.generate(phones, berts, prompt, **kwargs), bucketed.generate(phones, berts, prompt, **kwargs))
    assert bucketed._context == CONTEXT_BUCKET


def test_bad_inputs_name_the_field(runners) -> None:
    _, torch_runner = runners
    phones, berts, prompt = tiny_rows(6, [4])
    with pytest.raises(InputError, match="prompt_codes"):
        torch_runner.generate(phones, berts, np.zeros(0, dtype=np.int64))
    with pytest.raises(InputError, match="bert"):
        torch_runner.generate(phones, [berts[0][:, :2]], prompt)
    with pytest.raises(InputError, match="seed"):
        torch_runner.generate(phones, berts, prompt, seed=[1, 2])


def test_buckets_and_placement_rules() -> None:
    assert [batch_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, 16]
    assert CONTEXT_BUCKET % 16 == 0  # SDPA's memory-efficient kernel wants aligned mask widths
    cpu = resolve_placement("auto", "auto") if not torch.cuda.is_available() else resolve_placement("cpu")
    assert cpu.dtype == torch.float32
    with pytest.raises(UserError):
        resolve_placement("cpu", "float16")
    with pytest.raises(UserError):
        resolve_placement("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_placement("cuda")


def test_engine_merges_requests_and_gives_each_its_tokens_alone(runners) -> None:
    """Concurrent requests share steps (more requests than lanes: queued ones join mid-flight); each request's
    tokens equal the runner's for it alone, and one that needs a larger cache waits for the running rows."""
    from concurrent.futures import ThreadPoolExecutor

    from gsv_triton.backend.t2s.engine import T2SEngine

    _, torch_runner = runners
    requests = []
    for i, lengths in enumerate([[7], [5, 9], [12], [4], [6, 3], [8]]):
        phones, berts, prompt = tiny_rows(40 + i, lengths, ty=4 + i)
        kwargs = dict(top_k=3 + i, seed=[i * 10 + r for r in range(len(lengths))], max_new_tokens=MAX_TOKENS + 5 * i)
        requests.append((phones, berts, prompt, kwargs))
    phones, berts, prompt = tiny_rows(99, [5])
    requests.append((phones, berts, prompt, dict(top_k=2, seed=5, max_new_tokens=300, eos_enabled=False)))
    expected = [torch_runner.generate(p, b, pr, **kw) for p, b, pr, kw in requests]

    engine_runner = TorchT2SRunner(torch_runner.decoder, resolve_placement("cpu"), max_context=64)
    engine = T2SEngine(engine_runner, lanes=4)
    try:
        with ThreadPoolExecutor(len(requests)) as pool:
            got = list(pool.map(lambda r: engine.generate(r[0], r[1], r[2], **r[3]), requests))
        assert engine.busy_lanes == 0
    finally:
        engine.close()
    for want, have in zip(expected, got, strict=True):
        _assert_same(want, have)
    assert len(got[-1][0]) == 299


def test_engine_reports_bad_requests_at_submit(runners) -> None:
    from gsv_triton.backend.t2s.engine import T2SEngine

    _, torch_runner = runners
    engine = T2SEngine(TorchT2SRunner(torch_runner.decoder, resolve_placement("cpu"), max_context=64), lanes=2)
    try:
        phones, berts, prompt = tiny_rows(1, [4, 4, 4])
        with pytest.raises(InputError, match="lanes"):
            engine.submit(phones, berts, prompt)
        with pytest.raises(InputError, match="prompt_codes"):
            engine.submit(phones[:1], berts[:1], np.zeros(0, dtype=np.int64))
        assert len(engine.generate(phones[:1], berts[:1], prompt, top_k=1, max_new_tokens=5, eos_enabled=False)[0]) == 4
    finally:
        engine.close()


def test_engine_fails_requests_in_flight_and_keeps_serving(runners, monkeypatch) -> None:
    from gsv_triton.backend.t2s.engine import T2SEngine

    _, torch_runner = runners
    runner = TorchT2SRunner(torch_runner.decoder, resolve_placement("cpu"), max_context=64)
    engine = T2SEngine(runner, lanes=2)
    phones, berts, prompt = tiny_rows(3, [5])
    try:
        with monkeypatch.context() as patch:
            patch.setattr(runner, "_step", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("device lost")))
            with pytest.raises(RuntimeError, match="device lost"):
                engine.generate(phones, berts, prompt, top_k=1, max_new_tokens=5)
        assert len(engine.generate(phones, berts, prompt, top_k=1, max_new_tokens=5, eos_enabled=False)[0]) == 4
    finally:
        engine.close()


def test_capture_plan_covers_every_window_a_step_can_use() -> None:
    """Every window _step can pick for a cache of that size is in the plan, for every bucket (a window missing
    from the warm-up would be captured mid-flight, stalling every lane)."""
    context = 4 * CONTEXT_BUCKET
    plan = capture_plan(batch_buckets(16), context)
    assert batch_buckets(16) == (1, 2, 4, 8, 16) and batch_buckets(5) == (1, 2, 4, 8) and batch_buckets(1) == (1,)
    windows = [CONTEXT_BUCKET * k for k in range(1, 5)]
    assert plan == [(rows, w) for rows in (1, 2, 4, 8, 16) for w in windows]
    used = {attention_window(top, context) for top in range(1, context + 1)}
    assert used == set(windows)
    assert capture_plan((4, 1, 4), CONTEXT_BUCKET) == [(1, CONTEXT_BUCKET), (4, CONTEXT_BUCKET)]


class _RecordingGraphs:
    """Stands in for the CUDA capture of a runner on the CPU: records what would be captured, and the step
    inputs' shapes, so the engine's warm-up plan can be checked without a GPU."""

    def __init__(self, runner: TorchT2SRunner) -> None:
        self.captured: list[tuple[int, int, int]] = []
        self.graphs: dict = {}
        runner.use_graphs = True  # the capture itself is replaced below; nothing here needs CUDA
        runner._graphs = self.graphs

        def graph(inputs, window):
            key = (inputs.kv.data_ptr(), tuple(inputs.kv.shape), window)
            if key not in self.graphs:
                self.captured.append((inputs.kv.shape[2], window, inputs.kv.shape[4]))
                self.graphs[key] = (None, None)
            return self.graphs[key]

        runner._graph = graph


def test_engine_warm_up_captures_every_bucket_and_window_and_again_after_growth() -> None:
    from gsv_triton.backend.t2s.engine import T2SEngine

    runner = TorchT2SRunner(tiny_decoder(), resolve_placement("cpu"), max_context=2 * CONTEXT_BUCKET)
    fake = _RecordingGraphs(runner)
    engine = T2SEngine(runner, lanes=4)
    try:
        assert engine.warm_up() == 3 * 2  # buckets 1, 2, 4 x windows 256, 512
        assert sorted(fake.captured) == [(r, w, 2 * CONTEXT_BUCKET) for r in (1, 2, 4) for w in (256, 512)]
        fake.captured.clear()
        engine._ensure_cache(3 * CONTEXT_BUCKET)  # what _admit does for a longer request, with no lane busy
        engine._capture()
        assert sorted(fake.captured) == [(r, w, 3 * CONTEXT_BUCKET) for r in (1, 2, 4) for w in (256, 512, 768)]
        assert runner.graph_count == 9  # the grown cache dropped the old graphs
    finally:
        engine.close()
    only_first = TorchT2SRunner(tiny_decoder(), resolve_placement("cpu"), max_context=2 * CONTEXT_BUCKET)
    fake = _RecordingGraphs(only_first)
    assert only_first.warm_up((1, 2), windows=1) == 2 and all(w == CONTEXT_BUCKET for _, w, _ in fake.captured)


def test_every_capture_uses_the_runners_one_stream(monkeypatch) -> None:
    made = []

    class FakeStream:
        def __init__(self, device=None) -> None:
            made.append(device)

    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    runner = TorchT2SRunner(tiny_decoder(), resolve_placement("cpu"))
    streams = {id(runner.capture_stream()) for _ in range(5)}
    assert len(streams) == 1 and made == [torch.device("cpu")]


@pytest.fixture
def tf32_flags():
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_float32_on_cuda_turns_tf32_off(tf32_flags) -> None:
    """The placement a float32 network gets on CUDA (vq_encode) turns TF32 off for convolutions and matmuls;
    float16 or CPU placements leave the process flags alone. (Placement objects need no GPU to exist.)"""
    cuda = torch.device("cuda:0")
    torch.backends.cudnn.allow_tf32 = True  # cuDNN convolutions' default
    assert not keep_float32_exact(Placement(cuda, torch.float16))
    assert not keep_float32_exact(Placement(torch.device("cpu"), torch.float32))
    assert torch.backends.cudnn.allow_tf32 is True
    assert keep_float32_exact(Placement(cuda, torch.float32))
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    if hasattr(torch.backends.cudnn, "conv"):  # torch >= 2.9: the per-operator view agrees
        assert torch.backends.cudnn.conv.fp32_precision != "tf32"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
