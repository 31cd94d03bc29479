"""T2S decode-step latency on CPU: torch eager vs onnxruntime (fp32 and int8), beside the memory-bandwidth floor.

Full-size v2 GPT with random weights (``demo_init_``; speed does not depend on the values), context 200 (text 80 +
prompt 120), median over >= 200 decode steps, 2 threads. The int8 row is the same step graph after
``export --quantize int8`` (dynamic int8 weights); the floors divide the bytes a step must read by the copy
bandwidth (perf/bench_floors.py). Prints a markdown table.

    .venv/bin/python perf/bench_t2s.py [--steps 250] [--threads 2] [--context 200]

The host may be shared: run it on an idle machine and compare only rows from the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_floors import copy_bandwidth

from gsv_export.onnx_utils import ort_session
from gsv_export.quantize import greedy_agreement, quantize_int8
from gsv_export.t2s_export import export_t2s
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.backend.t2s.sampling import SamplingParams, exponential_noise, sample_rows
from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder, demo_init_
from gsv_triton.networks.t2s_reference import _Eager

TEXT_SHARE = 0.4  # fraction of the context that is text; the rest is prompt audio
WARMUP = 10


def step_weight_bytes(decoder: Text2SemanticDecoder) -> int:
    """Parameters a decode step reads in full (embedding tables: one row; bert_proj: not used)."""
    skip = ("ar_text_embedding", "ar_audio_embedding", "bert_proj")
    return sum(p.numel() * 4 for n, p in decoder.named_parameters() if not n.startswith(skip))


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times[WARMUP:])


@torch.no_grad()
def bench_torch_upstream(decoder, ids, bert, prompt, steps: int) -> list[float]:
    """Upstream-style eager step (KV cache grown by concatenation, SDPA), i.e. what upstream users run."""
    eng = _Eager(decoder)
    xy, mask = eng.prompt(ids, bert, prompt)
    logits, caches = eng.run(xy, mask, None)
    token, times = torch.tensor([[1]]), []
    for i in range(steps):
        t = time.perf_counter()
        logits, caches = eng.run(eng.next_input(token, prompt.shape[1] + i), None, caches)
        token = logits[:, :1024].argmax(-1, keepdim=True)
        times.append(time.perf_counter() - t)
    return times


def bench_ort(runner: T2SRunner, ids, bert, prompt, steps: int) -> tuple[list[float], list[float]]:
    """onnxruntime step alone, and the sampler (numpy) per step, in the runner's own buffers."""
    cfg = runner.config
    feeds = {"phone_ids": ids, "phone_lengths": np.array([ids.shape[1]]), "bert": bert, "prompt_codes": prompt}
    logits, k, v = runner.prefill.run(None, feeds)
    s = k.shape[1]
    kv = np.empty((2, cfg.n_layer, s + steps + 1, 1, cfg.hidden), dtype=np.float32)
    kv[0, :, :s], kv[1, :, :s] = k, v
    valid = np.ones((1, s + steps + 1), dtype=bool)
    seen = np.zeros((1, cfg.vocab_size), dtype=bool)
    params, rng = [SamplingParams()], np.random.default_rng(0)
    tokens, step_times, sample_times = np.array([1]), [], []
    for i in range(steps):
        t = time.perf_counter()
        logits, nk, nv = runner.run_step(kv, s, valid, tokens, prompt.shape[1] + i)
        kv[0, :, s], kv[1, :, s] = nk, nv
        s += 1
        t1 = time.perf_counter()
        tokens, _ = sample_rows(logits, seen, params, exponential_noise(rng, logits.shape[1])[None])
        seen[0, tokens] = True
        step_times.append(t1 - t)
        sample_times.append(time.perf_counter() - t1)
    return step_times, sample_times


def prefill_ms(run, repeats: int = 3) -> float:
    """Median milliseconds of ``run()`` (one prefill at the benchmark's context), after one warm-up."""
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def ort_prefill(runner: T2SRunner, ids, bert, prompt):
    feeds = {"phone_ids": ids, "phone_lengths": np.array([ids.shape[1]]), "bert": bert, "prompt_codes": prompt}
    return lambda: runner.prefill.run(None, feeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    decoder = Text2SemanticDecoder(T2SConfig()).eval()
    demo_init_(decoder, torch.Generator().manual_seed(0))
    tx = int(args.context * TEXT_SHARE)
    ty = args.context - tx
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 732, (1, tx), generator=gen)
    bert = torch.randn(1, 1024, tx, generator=gen) * 0.3
    prompt = torch.randint(0, 1024, (1, ty), generator=gen)

    with tempfile.TemporaryDirectory() as tmp:
        paths = export_t2s(decoder, Path(tmp))
        runner = T2SRunner(ort_session(paths["prefill"], args.threads), ort_session(paths["step"], args.threads))
        ort_step, ort_sample = bench_ort(runner, ids.numpy(), bert.numpy(), prompt.numpy(), args.steps)
        prefills = {"fp32": prefill_ms(ort_prefill(runner, ids.numpy(), bert.numpy(), prompt.numpy()))}
        fp32_runner = runner
        quantize_int8(paths["step"])  # what export --quantize int8 does: the step graph only
        runner = T2SRunner(ort_session(paths["prefill"], args.threads), ort_session(paths["step"], args.threads))
        int8_step, _ = bench_ort(runner, ids.numpy(), bert.numpy(), prompt.numpy(), args.steps)
        agreement, _ = greedy_agreement(fp32_runner, runner, ids.numpy(), bert.numpy(), prompt.numpy(), args.steps)
    torch_up = bench_torch_upstream(decoder, ids, bert, prompt, args.steps)
    with torch.no_grad():
        prefills["torch"] = prefill_ms(lambda: decoder.prefill(ids, torch.tensor([tx]), bert, prompt))

    bw = copy_bandwidth()
    w_bytes = step_weight_bytes(decoder)
    kv_bytes = 2 * decoder.config.n_layer * (args.context + args.steps // 2) * decoder.config.hidden_dim * 4
    print(f"\nT2S decode step, full-size v2 fp32, context {args.context} -> {args.context + args.steps}, "
          f"{args.threads} threads, median of {args.steps - WARMUP} steps; host load average "
          f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end ({os.cpu_count()} CPUs)\n")
    print("| path | median ms/token |")
    print("|---|---|")
    print(f"| torch eager, upstream-style (concat KV cache, SDPA) | {median_ms(torch_up):.1f} |")
    print(f"| onnxruntime CPU step (+ cache write) | {median_ms(ort_step):.1f} |")
    print(f"| onnxruntime CPU step, int8 weights (`--quantize int8`) | {median_ms(int8_step):.1f} |")
    print(f"| numpy sampler (top_k 15, penalty 1.35), per token | {median_ms(ort_sample):.2f} |")
    print(f"| floor: weights {w_bytes / 1e6:.0f} MB / copy bandwidth {bw / 1e9:.1f} GB/s | {1000 * w_bytes / bw:.1f} |")
    print(f"| floor incl. mean KV cache ({kv_bytes / 1e6:.0f} MB) | {1000 * (w_bytes + kv_bytes) / bw:.1f} |")
    print(f"| int8 vs fp32: greedy token agreement, teacher-forced over {args.steps} steps | {agreement:.3f} |")
    print(f"| int8 floor: {w_bytes / 4e6:.0f} MB of int8 weights + KV cache | {1000 * (w_bytes / 4 + kv_bytes) / bw:.1f} |")
    print(f"\n| prefill, context {args.context} (median of 3; `--quantize int8` keeps it fp32) | torch eager | onnxruntime |")
    print("|---|---|---|")
    print(f"| ms | {prefills['torch']:.0f} | {prefills['fp32']:.0f} |")


if __name__ == "__main__":
    main()
