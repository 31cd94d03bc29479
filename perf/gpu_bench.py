"""The GPU path measured through tritonserver: the measuring half of perf/gpu_bench.sh (which prepares the
environment, the demo checkpoints and the ``--target gpu-torch`` repository, then runs this).

Against a running or freshly started tritonserver serving that repository, over gRPC:

* RTF at concurrency 1: the perf/make_inputs.py request (zh, one piece, EOS off, exactly ``--tokens`` tokens;
  250 = 10 s of speech), a reference the server has not seen for every measured request; RTF = latency / speech;
* time to first audio: the benchmark text cut at its commas and full stop (3 pieces of ``--first-tokens`` tokens,
  2 s each) sent to the decoupled ``voice_clone_stream``, time to its first audio response, cached reference
  (without that model in the repository: the latency of a one-piece ``voice_clone`` request);
* tokens/s at each ``--concurrency``: C client threads, ``--per-thread`` requests each, generated tokens of all
  requests / wall time (cached references: T2S and SoVITS dominate);
* GPU memory: nvidia-smi's used memory of the whole GPU while the server is loaded (n/a without nvidia-smi).

Then, with the server stopped, the T2S loop alone in this process (no Triton): tokens/s of the torch runner at
batch 1/4/16, of the T2SEngine with 1/4/16 concurrent requests and, on CUDA, whether the CUDA-graph steps give
the eager steps' greedy tokens.

    python perf/gpu_bench.py --repo REPO [--url 127.0.0.1:8001] [--tokens 250] [--concurrency 1,4,16]
        [--json results.json]

Prints markdown tables (goals of issue 7 beside the H100 figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_inputs import synth_reference, voice_clone_inputs  # noqa: E402

from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SAMPLES_PER_TOKEN  # noqa: E402

GOALS = {"rtf": 0.005, "first_audio_ms": 80.0, "tokens_per_s_c16": 2000.0}
READY_TIMEOUT_S = 300.0  # full-size torch models, ~30 stubs; a device call has 600 s in all
REQUEST_TIMEOUT_S = 300.0
FIRST_REFERENCE_SEED = 1000  # references the server has not cached yet start here
STEP_BENCH_BATCHES = (1, 4, 16)


def log(message: str) -> None:
    print(f"[gpu_bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- one request ---------------------------------------------------------------------------------------------
_clients = threading.local()


def grpc_client(url: str):
    """This thread's gRPC client of ``url``, made on its first request and reused after (its connection set-up
    stays out of the measured latencies)."""
    import tritonclient.grpc as grpcclient

    if not hasattr(_clients, "by_url"):
        _clients.by_url = {}
    clients = _clients.by_url
    if url not in clients:
        clients[url] = grpcclient.InferenceServerClient(url)
    return clients[url]


def grpc_inputs(request: dict[str, np.ndarray]) -> list:
    """The request's tensors as tritonclient gRPC inputs (Triton datatypes from the numpy dtypes)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    inputs = []
    for name, value in request.items():
        tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return inputs


def infer(url: str, request: dict[str, np.ndarray]) -> tuple[float, int, float]:
    """(latency s, generated tokens, seconds of audio) of one voice_clone call over gRPC."""
    inputs, client = grpc_inputs(request), grpc_client(url)
    start = time.perf_counter()
    result = client.infer("voice_clone", inputs, client_timeout=REQUEST_TIMEOUT_S)
    latency = time.perf_counter() - start
    tokens = int(result.as_numpy("segment_tokens").sum())
    return latency, tokens, result.as_numpy("audio").size / OUTPUT_SAMPLE_RATE


def first_audio_streamed(url: str, request: dict[str, np.ndarray]) -> float:
    """Seconds from sending a ``voice_clone_stream`` request to its first audio response (gRPC streaming)."""
    import queue

    inputs, client = grpc_inputs(request), grpc_client(url)
    events: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: events.put((time.perf_counter(), result, error)))
    try:
        start = time.perf_counter()
        client.async_stream_infer("voice_clone_stream", inputs, enable_empty_final_response=True)
        first = None
        while True:
            at, result, error = events.get(timeout=REQUEST_TIMEOUT_S)
            if error is not None:
                raise RuntimeError(f"voice_clone_stream: {error}")
            final = result.get_response().parameters.get("triton_final_response")
            if first is None and result.as_numpy("audio") is not None:
                first = at - start
            if final is not None and final.bool_param:
                break
    finally:
        client.stop_stream()
    if first is None:
        raise RuntimeError("voice_clone_stream sent no audio")
    return first


def measure_server(url: str, tokens: int, first_tokens: int, runs: int, concurrency: list[int],
                   per_thread: int, streamed: bool) -> dict:
    speech_s = tokens * SAMPLES_PER_TOKEN / OUTPUT_SAMPLE_RATE
    cached = synth_reference(0)
    log("warm-up (captures the first CUDA graphs, loads the text frontend)")
    for _ in range(2):
        infer(url, voice_clone_inputs(cached, tokens))
        infer(url, voice_clone_inputs(cached, first_tokens))

    rtf = []
    for i in range(runs):
        latency, n, _ = infer(url, voice_clone_inputs(synth_reference(FIRST_REFERENCE_SEED + i), tokens, seed=i))
        if n != tokens:
            raise RuntimeError(f"expected {tokens} tokens, got {n}")
        rtf.append(latency / speech_s)
    log(f"RTF c=1: {[round(x, 4) for x in rtf]}")

    # The benchmark text split at its commas and full stop: pieces of first_tokens tokens each.
    pieces = voice_clone_inputs(cached, first_tokens) | {"cut_punc": np.array(["，。".encode()], dtype=np.object_)}
    if streamed:
        first_audio_streamed(url, pieces)  # warm-up of the streaming model
        first = [first_audio_streamed(url, pieces | {"seed": np.array([i], dtype=np.int64)}) * 1000
                 for i in range(runs)]  # fmt: skip
        how = "voice_clone_stream, first of the pieces"
    else:
        first = [infer(url, voice_clone_inputs(cached, first_tokens, seed=i))[0] * 1000 for i in range(runs)]
        how = "voice_clone, a one-piece request"
    log(f"first audio ({how}, {first_tokens} tokens a piece): {[round(x, 1) for x in first]} ms")

    throughput = {}
    for c in concurrency:
        def worker(thread: int) -> int:
            seeds = range(thread * per_thread, (thread + 1) * per_thread)
            return sum(infer(url, voice_clone_inputs(cached, tokens, seed=seed))[1] for seed in seeds)

        start = time.perf_counter()
        with ThreadPoolExecutor(c) as pool:
            total = sum(pool.map(worker, range(c)))
        wall = time.perf_counter() - start
        throughput[c] = {"tokens": total, "wall_s": wall, "tokens_per_s": total / wall,
                         "requests_per_s": c * per_thread / wall}  # fmt: skip
        log(f"c={c}: {total} tokens in {wall:.2f} s = {total / wall:.0f} tokens/s")
    return {
        "rtf_c1": statistics.median(rtf),
        "rtf_runs": rtf,
        "first_audio_ms": statistics.median(first),
        "first_audio_method": how,
        "first_audio_runs_ms": first,
        "throughput": throughput,
        "gpu_memory": gpu_memory(),
    }


def gpu_memory() -> dict | None:
    """Used/total MiB of GPU 0 and per-process use, from nvidia-smi (None without it)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = subprocess.run([smi, "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    apps = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    if query.returncode != 0:
        return {"error": query.stderr.strip()[:200]}
    name, used, total = (x.strip() for x in query.stdout.splitlines()[0].split(","))
    processes = [line.split(",") for line in apps.stdout.splitlines() if line.strip()]
    return {"gpu": name, "used_mib": int(used), "total_mib": int(total),
            "processes_mib": sorted(int(p[1]) for p in processes if len(p) == 2)}  # fmt: skip


# -- the T2S loop alone ----------------------------------------------------------------------------------------
def measure_t2s(repo: Path, tokens: int, batches: tuple[int, ...]) -> dict:
    """tokens/s of the torch runner in this process; on CUDA also graph vs eager greedy agreement."""
    import torch

    from gsv_triton.backend.torch_device import resolve_placement
    from gsv_triton.backend.torch_networks import load_t2s_runner

    placement = resolve_placement()
    if not placement.is_cuda:
        torch.set_num_threads(1)  # like the serving instances; more threads only contend on a shared CPU host
    runner = load_t2s_runner(repo / "t2s" / "1", placement)
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 300, 60).astype(np.int64)
    bert = (0.1 * rng.standard_normal((1024, 60))).astype(np.float32)
    prompt = rng.integers(0, 1024, 140).astype(np.int64)
    out: dict = {"device": str(placement.device), "dtype": str(placement.dtype).replace("torch.", "")}
    for b in batches:
        kwargs = dict(top_k=15, max_new_tokens=tokens + 1, eos_enabled=False, seed=list(range(b)))
        runner.generate([phones] * b, [bert] * b, prompt, **kwargs)  # warm-up: captures this bucket's graphs
        if placement.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = runner.generate([phones] * b, [bert] * b, prompt, **kwargs)
        wall = time.perf_counter() - start
        n = sum(len(r) for r in result)
        out[f"batch{b}"] = {"tokens_per_s": n / wall, "ms_per_step": 1000 * wall / (tokens + 1)}
        log(f"t2s alone, batch {b}: {n / wall:.0f} tokens/s, {1000 * wall / (tokens + 1):.2f} ms/step")
    out["graphs"] = runner.graph_count
    out["engine"] = measure_engine(runner, phones, bert, prompt, tokens, batches)
    if placement.is_cuda:
        # Same windows as the graphs, so the only difference is capture vs eager launch: tokens must be identical.
        eager = type(runner)(runner.decoder, placement, cuda_graphs=False, bucket_windows=True)
        kwargs = dict(top_k=1, repetition_penalty=1.0, max_new_tokens=tokens + 1, eos_enabled=False)
        a = runner.generate([phones], [bert], prompt, **kwargs)[0]
        e = eager.generate([phones], [bert], prompt, **kwargs)[0]
        agree = int(np.argmax(np.append(a != e, True)))  # tokens before the first difference
        out["graph_vs_eager_greedy_agreeing_prefix"] = agree
        out["graph_vs_eager_greedy_tokens"] = len(a)
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        log(f"graph vs eager greedy: first {agree} of {len(a)} tokens agree")
    return out


def measure_engine(runner, phones: np.ndarray, bert: np.ndarray, prompt: np.ndarray, tokens: int,
                   concurrency: tuple[int, ...]) -> dict:
    """tokens/s of T2SEngine (what t2s_engine serves) with C threads submitting one-row requests at once."""
    from gsv_triton.backend.t2s.engine import T2SEngine

    engine = T2SEngine(runner, lanes=max(concurrency))
    engine.warm_up()  # as t2s_engine does at load
    out = {}
    try:
        for c in concurrency:
            def one(seed: int) -> int:
                result = engine.generate([phones], [bert], prompt, top_k=15, seed=seed, max_new_tokens=tokens + 1,
                                         eos_enabled=False)  # fmt: skip
                return len(result[0])

            with ThreadPoolExecutor(c) as pool:
                list(pool.map(one, range(c)))  # warm-up: this concurrency's buckets and windows
                start = time.perf_counter()
                n = sum(pool.map(one, range(c, 2 * c)))
            wall = time.perf_counter() - start
            out[f"c{c}"] = {"tokens_per_s": n / wall, "wall_s": wall}
            log(f"t2s engine alone, {c} concurrent requests: {n / wall:.0f} tokens/s")
    finally:
        engine.close()
    return out


# -- report ------------------------------------------------------------------------------------------------------
def environment() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "cuda": torch.cuda.is_available(), "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    if torch.cuda.is_available():
        # The name from nvidia-smi: asking torch would create a CUDA context here and count in the memory figure.
        memory = gpu_memory() or {}
        info["gpu"] = memory.get("gpu", "CUDA GPU")
        info["cuda_runtime"] = torch.version.cuda
    return info


def report(results: dict) -> str:
    env, server, t2s = results["environment"], results.get("server"), results.get("t2s")
    where = env.get("gpu") or "CPU fallback (no CUDA)"
    lines = [f"## GPU path, {where}, {env['date']} (torch {env['torch']}, {results['size']} models)", ""]
    if server:
        tp = server["throughput"]
        mem = server["gpu_memory"]
        lines += ["| metric | measured | goal (H100) |", "|---|---|---|",
                  f"| RTF at c=1 ({results['tokens']} tokens, new reference) | {server['rtf_c1']:.4f} | "
                  f"<= {GOALS['rtf']} |",
                  f"| time to first audio ({server['first_audio_method']}, {results['first_tokens']} tokens a piece) | "
                  f"{server['first_audio_ms']:.1f} ms"
                  f" | <= {GOALS['first_audio_ms']:.0f} ms |"]  # fmt: skip
        for c, row in tp.items():
            goal = f">= {GOALS['tokens_per_s_c16']:.0f}" if int(c) == 16 else ""
            lines.append(f"| tokens/s at c={c} ({row['requests_per_s']:.2f} requests/s) | "
                         f"{row['tokens_per_s']:.0f} | {goal} |")  # fmt: skip
        mem_text = "n/a (no nvidia-smi)" if mem is None else f"{mem.get('used_mib', '?')} / {mem.get('total_mib', '?')} MiB"
        lines.append(f"| GPU memory used while serving | {mem_text} | |")
    if t2s:
        lines += ["", f"T2S loop alone (no Triton), {t2s['device']} {t2s['dtype']}:", "",
                  "| batch | tokens/s | ms/step |", "|---|---|---|"]  # fmt: skip
        for key, row in t2s.items():
            if key.startswith("batch"):
                lines.append(f"| {key[5:]} | {row['tokens_per_s']:.0f} | {row['ms_per_step']:.2f} |")
        if t2s.get("engine"):
            lines += ["", "T2SEngine (what t2s_engine serves), one-row requests submitted at once:", "",
                      "| concurrent requests | tokens/s |", "|---|---|"]  # fmt: skip
            lines += [f"| {key[1:]} | {row['tokens_per_s']:.0f} |" for key, row in t2s["engine"].items()]
        if "graph_vs_eager_greedy_agreeing_prefix" in t2s:
            lines.append(f"\nCUDA graphs vs eager, greedy: first {t2s['graph_vs_eager_greedy_agreeing_prefix']} of "
                         f"{t2s['graph_vs_eager_greedy_tokens']} tokens agree; peak {t2s['peak_cuda_mib']:.0f} MiB")
    return "\n".join(lines)


def start_server(repo: Path, log_dir: Path):
    from gsv_triton.server import TritonServer, free_port, locate_tritonserver

    install = locate_tritonserver()
    server = TritonServer(install)
    server.start(repo, free_port(), free_port(), free_port(), log_path=log_dir / "tritonserver.log")
    log(f"tritonserver ({install.kind}) starting, log {log_dir / 'tritonserver.log'}")
    try:
        ready = server.wait_ready(READY_TIMEOUT_S)
    except BaseException:  # not ready, or Ctrl-C while loading: do not leave the server behind
        server.kill()
        raise
    log(f"ready after {ready:.1f} s")
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="repository from export --target gpu-torch")
    parser.add_argument("--url", help="gRPC host:port of a running server (default: start one)")
    parser.add_argument("--size", default="full", help="label of the checkpoints, for the report")
    parser.add_argument("--tokens", type=int, default=250, help="generated tokens per request (250 = 10 s)")
    parser.add_argument("--first-tokens", type=int, default=50, help="tokens of the first-audio piece (50 = 2 s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--per-thread", type=int, default=2, help="requests per client thread")
    parser.add_argument("--t2s-batches", default="1,4,16", help="batch sizes of the in-process T2S measurement")
    parser.add_argument("--skip-t2s", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict = {"environment": environment(), "size": args.size, "tokens": args.tokens,
                     "first_tokens": args.first_tokens}  # fmt: skip
    log(f"environment: {results['environment']}")
    concurrency = [int(c) for c in args.concurrency.split(",") if c]
    server = None
    log_dir = Path(tempfile.mkdtemp(prefix="gsv_gpu_bench_"))
    try:
        url = args.url
        if url is None:
            server = start_server(args.repo, log_dir)
            url = server.grpc_endpoint
        streamed = (args.repo / "voice_clone_stream" / "config.pbtxt").is_file()
        results["server"] = measure_server(url, args.tokens, args.first_tokens, args.runs, concurrency,
                                           args.per_thread, streamed)
    except Exception:
        if server is not None:
            print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        if server is not None:
            server.stop()
    if not args.skip_t2s:
        batches = tuple(int(b) for b in args.t2s_batches.split(",") if b)
        results["t2s"] = measure_t2s(args.repo, args.tokens, batches)
    text = report(results)
    print("\n" + text, flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    out = os.environ.get("OUT")
    if out and Path(out).is_dir():
        (Path(out) / "gpu_bench.md").write_text(text + "\n")
        (Path(out) / "gpu_bench.json").write_text(json.dumps(results, indent=2, default=str))
        if (log_dir / "tritonserver.log").is_file():
            shutil.copy(log_dir / "tritonserver.log", Path(out) / "tritonserver.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
