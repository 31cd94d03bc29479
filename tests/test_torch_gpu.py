"""The torch runtime on CUDA (float16 weights, CUDA-graph decode steps). Skipped without a GPU; perf/gpu_bench.sh
runs this file on a GPU host before it measures anything.

* the captured steps compute what the same steps compute eagerly (same kernels, same windows): identical tokens,
  also for a padded batch and after a longer request left stale K/V in the cache;
* float16 on CUDA follows float32 on the CPU: T2S logits along a forced token path, and every plain network;
* the T2SEngine (t2s_engine's continuous batching) on CUDA graphs gives a lone request the runner's tokens, every
  graph it uses was captured by its warm-up, on the runner's one capture stream.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_gpu_path import PLAIN, _network_inputs, torch_repository  # noqa: F401 (fixture)
from tiny_t2s import tiny_decoder, tiny_rows

from gsv_export.onnx_utils import relative_error
from gsv_triton.backend.t2s.torch_runner import CONTEXT_BUCKET, TorchT2SRunner, batch_bucket
from gsv_triton.backend.torch_device import resolve_placement
from gsv_triton.backend.torch_networks import load_network

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Half precision against float32: the spec's 1e-4 holds for float32 only; fp16 rounding gives ~1e-3 on these sizes.
FP16_REL_TOL = 2e-2
MAX_TOKENS = 300  # crosses a 256-position window boundary, so two graphs per batch bucket are used
FORCED_STEPS = 8


def test_cuda_graph_steps_equal_eager_steps() -> None:
    cuda = resolve_placement("cuda")
    graphs = TorchT2SRunner(tiny_decoder(), cuda)
    eager = TorchT2SRunner(tiny_decoder(), cuda, cuda_graphs=False, bucket_windows=True)
    cases = [
        (tiny_rows(1, [20]), dict(top_k=1, repetition_penalty=1.0, eos_enabled=False)),
        (tiny_rows(2, [9, 14, 5]), dict(top_k=15, seed=[1, 2, 3])),  # 3 rows in the 4-row bucket
        (tiny_rows(3, [4]), dict(top_k=5, seed=9)),  # shorter than the first: stale K/V past its slot
    ]
    for (phones, berts, prompt), kwargs in cases:
        a = graphs.generate(phones, berts, prompt, max_new_tokens=MAX_TOKENS, **kwargs)
        b = eager.generate(phones, berts, prompt, max_new_tokens=MAX_TOKENS, **kwargs)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert graphs.graph_count >= 3 and eager.graph_count == 0
    assert batch_bucket(3) == 4


def test_cuda_engine_serves_requests_like_the_runner() -> None:
    """T2SEngine on CUDA graphs: a request alone gives the runner's tokens; concurrent ones all complete."""
    from concurrent.futures import ThreadPoolExecutor

    from gsv_triton.backend.t2s.engine import T2SEngine

    cuda = resolve_placement("cuda")
    runner = TorchT2SRunner(tiny_decoder(), cuda)
    phones, berts, prompt = tiny_rows(5, [10, 7])
    kwargs = dict(top_k=1, repetition_penalty=1.0, max_new_tokens=60, eos_enabled=False)
    expected = runner.generate(phones, berts, prompt, **kwargs)
    engine = T2SEngine(TorchT2SRunner(tiny_decoder(), cuda), lanes=16)
    windows = engine.runner._max_context // CONTEXT_BUCKET
    assert engine.warm_up() == engine.runner.graph_count == 5 * windows  # buckets 1..16 x every window
    stream = engine.runner.capture_stream()
    try:
        for x, y in zip(expected, engine.generate(phones, berts, prompt, **kwargs), strict=True):
            np.testing.assert_array_equal(x, y)
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: engine.generate(phones[:1], berts[:1], prompt, seed=i, **kwargs), range(16)))
        assert all(len(r[0]) == 59 for r in results)
        assert engine.runner.graph_count == 5 * windows, "no capture after the warm-up"
        assert engine.runner.capture_stream() is stream
    finally:
        engine.close()


def _forced_logits(runner: TorchT2SRunner, phones, berts, prompt, tokens: np.ndarray) -> list[np.ndarray]:
    """Prefill logits and the logits of FORCED_STEPS steps fed ``tokens`` (same path on both devices)."""
    lengths = np.array([len(p) for p in phones], dtype=np.int64)
    rows = batch_bucket(len(phones))
    s = int(lengths.max()) + len(prompt)
    runner._reserve(rows, s + FORCED_STEPS)
    inputs = runner._inputs_for(rows)
    out = [runner._prefill(phones, berts, lengths, np.broadcast_to(prompt, (len(phones), len(prompt))), inputs)]
    feed = np.zeros(rows, dtype=np.int64)
    for i, token in enumerate(tokens):
        feed[: len(phones)] = token
        out.append(runner._step(inputs, rows, feed, position=len(prompt) + i, slot=s + i)[: len(phones)])
    return out


def test_cuda_float16_t2s_follows_cpu_float32() -> None:
    phones, berts, prompt = tiny_rows(4, [16, 11])
    tokens = np.random.default_rng(4).integers(0, 1024, FORCED_STEPS)
    cpu = _forced_logits(TorchT2SRunner(tiny_decoder(), resolve_placement("cpu")), phones, berts, prompt, tokens)
    gpu = _forced_logits(TorchT2SRunner(tiny_decoder(), resolve_placement("cuda")), phones, berts, prompt, tokens)
    for step, (ref, act) in enumerate(zip(cpu, gpu, strict=True)):
        assert relative_error(ref, act) < FP16_REL_TOL, f"step {step}"


@pytest.mark.parametrize("name", PLAIN)
def test_cuda_float16_networks_follow_cpu_float32(torch_repository, name) -> None:  # noqa: F811 (fixture)
    import json

    folder = torch_repository / name / "1"
    dtype = "float32" if name == "vq_encode" else "auto"  # as the gpu-torch configs set it
    cpu = load_network(folder, resolve_placement("cpu"))
    gpu = load_network(folder, resolve_placement("cuda", dtype))
    manifest = json.loads((torch_repository / "gsv_manifest.json").read_text())
    feeds = _network_inputs(name, manifest, np.random.default_rng(6))
    ref, act = cpu.run(None, feeds)[0], gpu.run(None, feeds)[0]
    assert act.shape == ref.shape and act.dtype == ref.dtype
    if name == "vq_encode":
        np.testing.assert_array_equal(act, ref)
    else:
        assert relative_error(ref, act) < FP16_REL_TOL
