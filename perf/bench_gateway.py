"""Gateway overhead: latency of the same seeded request through the gateway vs straight to Triton (tritonclient).

The gateway runs as its own process (``python -m gsv_gateway``) in front of a tritonserver: an existing one
(``--triton-grpc host:port``) or one started here on ``--model-repository``. The two paths alternate request by
request, so drift on a shared host hits both alike; the seed fixes the tokens, so Triton does the same work on
both paths, and the difference of the percentiles is what the gateway adds (HTTP, multipart parsing, the early
checks, WAV encoding, base64, JSON). Prints a markdown table; ``--json`` also writes the raw numbers.

Client-side request building is a cost of the client library, not of the gateway: by default both paths build
their request once and resend it (the multipart body as bytes; the tritonclient input tensors), so the
difference is the gateway's own work plus its HTTP leg. ``--client-encoding per-request`` rebuilds both on every
request instead (httpx's pure-Python multipart encoder then adds about 2.4 ms to the gateway path).

    .venv/bin/python perf/bench_gateway.py --model-repository artifacts/repository-tiny [--requests 200]
    .venv/bin/python perf/bench_gateway.py --triton-grpc 127.0.0.1:8001 --triton-http 127.0.0.1:8000 --concurrency 4

Goal (issue 5): at most 5 ms added at p50.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from gsv_export.extra_models import install_extra_models
from gsv_triton.client import build_inputs
from gsv_triton.server import TritonServer, free_port

TEXT = "你好，这是一个语音克隆测试。"
PROMPT = "参考音频文字"
SEED = 7
REFERENCE_SECONDS = 3.5
REFERENCE_RATE = 32_000
WARMUP = 5
READY_TIMEOUT_S = 600.0
GATEWAY_START_S = 60.0
TIMEOUT_S = 600.0


def reference_clip(
    seconds: float = REFERENCE_SECONDS, rate: int = REFERENCE_RATE, seed: int = 0, pitch: float = 160
) -> bytes:
    """A voiced-sounding clip (a tone of ``pitch`` Hz, modulated, plus a little noise drawn with ``seed``) as
    16-bit WAV bytes; different seeds give clips that miss Triton's reference cache."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * pitch * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    buffer = io.BytesIO()
    sf.write(
        buffer, (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32), rate, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; the platform's processor string elsewhere): tables are dated with it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.node()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class Gateway:
    """``python -m gsv_gateway`` on a free port, stopped with SIGTERM."""

    def __init__(
        self, triton_grpc: str, max_new_tokens: int, log_path: Path, env: dict[str, str] | None = None,
        triton_http: str | None = None,
    ) -> None:  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")
        http = ["--triton-http-url", triton_http] if triton_http else []
        command = [sys.executable, "-m", "gsv_gateway", "--triton-url", triton_grpc, *http, "--host", "127.0.0.1",
                   "--port", str(self.port), "--max-new-tokens", str(max_new_tokens), "--log-level", "WARNING"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})  # fmt: skip
        deadline = time.monotonic() + GATEWAY_START_S
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the gateway exited with {self.process.returncode}; see {log_path}")
            try:
                httpx.get(f"{self.url}/metrics", timeout=1.0)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the gateway did not start; see {log_path}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self._log.close()



def add_stack_arguments(parser: argparse.ArgumentParser, serves: str = "") -> None:
    """The flags naming the Triton and the gateway under test (shared by the gateway benchmarks)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-repository", help="start a tritonserver on this exported repository")
    source.add_argument("--triton-grpc", help=f"use a running tritonserver (gRPC host:port){serves}")
    parser.add_argument("--triton-http", help="with --triton-grpc: its HTTP endpoint host:port")
    parser.add_argument(
        "--gateway-transport",
        choices=["http", "grpc"],
        default="http",
        help="how the gateway calls Triton for unary inference (default http, as `gsv-triton up` runs it)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=40, help="semantic tokens per piece (bounds demo models)")


def refer_root(workdir: Path) -> Path:
    """The gateway's reference directory (api.py and api_v2 paths) holding ``ref.wav``, the benchmark clip."""
    root = workdir / "refs"
    root.mkdir(exist_ok=True)
    (root / "ref.wav").write_bytes(reference_clip())
    return root


@contextmanager
def gateway_stack(args: argparse.Namespace, name: str, extra_models: bool = False) -> Iterator[tuple[Gateway, str]]:
    """A tritonserver (started on ``--model-repository``, with the extra models if asked, or the running one
    named) and a gateway process in front of it, both stopped afterwards; yields (gateway, Triton gRPC)."""
    if args.gateway_transport == "http" and not (args.model_repository or args.triton_http):
        raise SystemExit("--gateway-transport http needs --triton-http with --triton-grpc")
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    server = None
    triton_grpc, triton_http = args.triton_grpc, args.triton_http
    try:
        if args.model_repository:
            if extra_models:
                install_extra_models(Path(args.model_repository))
            server = TritonServer().start(Path(args.model_repository), free_port(), free_port(), free_port(),
                                          log_path=workdir / "tritonserver.log")  # fmt: skip
            server.wait_ready(READY_TIMEOUT_S)
            triton_grpc, triton_http = server.grpc_endpoint, server.http_endpoint
        gateway = Gateway(triton_grpc, args.max_new_tokens, workdir / "gateway.log",
                          env={"GSV_VOICE_DIR": str(workdir / "voices"), "GSV_REFER_ROOT": str(refer_root(workdir))},
                          triton_http=triton_http if args.gateway_transport == "http" else None)  # fmt: skip
        try:
            yield gateway, triton_grpc
        finally:
            gateway.stop()
    finally:
        if server is not None:
            server.stop()

def run_paths(
    gateway_url: str,
    triton_grpc: str,
    reference: bytes,
    requests: int,
    concurrency: int,
    max_new_tokens: int,
    encode_per_request: bool = False,
):
    """Alternate gateway and direct requests; returns ({path: [seconds]}, audio seconds per request)."""
    import tritonclient.grpc as grpcclient

    url = f"{gateway_url}/v1/voice-clone"
    form = {"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh", "seed": str(SEED)}
    files = {"audio": ("ref.wav", reference)}
    encoded = httpx.Request("POST", url, data=form, files=files)
    body, content_type = encoded.read(), encoded.headers["content-type"]

    def direct_inputs():
        return build_inputs("grpc", TEXT, reference, PROMPT, "zh", "zh", seed=SEED, max_new_tokens=max_new_tokens)

    prebuilt_inputs = direct_inputs()
    # "paired": gateway minus direct of the two requests made back to back (same moment, same host load).
    times: dict[str, list[float]] = {"gateway": [], "direct": [], "paired": []}
    durations: list[float] = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        http = httpx.Client(timeout=TIMEOUT_S)
        grpc = grpcclient.InferenceServerClient(triton_grpc)
        try:
            for i in range(count + WARMUP):
                order = ("gateway", "direct") if i % 2 == 0 else ("direct", "gateway")
                pair = {}
                for path in order:
                    start = time.perf_counter()
                    if path == "gateway":
                        if encode_per_request:
                            response = http.post(url, data=form, files=files)
                        else:
                            response = http.post(url, content=body, headers={"content-type": content_type})
                        response.raise_for_status()
                        duration = response.json()["output_duration"]
                    else:
                        inputs = direct_inputs() if encode_per_request else prebuilt_inputs
                        result = grpc.infer("voice_clone", inputs, client_timeout=TIMEOUT_S)
                        duration = len(result.as_numpy("audio")) / int(result.as_numpy("sample_rate")[0])
                    elapsed = pair[path] = time.perf_counter() - start
                    if i >= WARMUP:
                        with lock:
                            times[path].append(elapsed)
                            durations.append(duration)
                if i >= WARMUP:
                    with lock:
                        times["paired"].append(pair["gateway"] - pair["direct"])
        finally:
            http.close()
            grpc.close()

    per_worker = max(1, requests // concurrency)
    threads = [threading.Thread(target=worker, args=(per_worker,)) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, durations


def report(
    times: dict[str, list[float]], durations: list[float], concurrency: int, triton_grpc: str, cpu_ms: float | None
) -> str:
    rows = []
    for path in ("direct", "gateway"):
        values = [1000 * t for t in times[path]]
        rows.append((path, len(values), statistics.median(values), percentile(values, 99), statistics.mean(values)))
    (_, _, d50, d99, dmean), (_, _, g50, g99, gmean) = rows
    lines = [
        f"Gateway overhead, {time.strftime('%Y-%m-%d')}, {platform.node()} ({os.cpu_count()} cores), "
        f"concurrency {concurrency}, Triton gRPC {triton_grpc}; audio {statistics.median(durations):.2f} s per request",
        "",
        "| path | requests | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|---|",
        *[f"| {p} | {n} | {a:.1f} | {b:.1f} | {c:.1f} |" for p, n, a, b, c in rows],
        f"| **added by the gateway** | | **{g50 - d50:+.1f}** | {g99 - d99:+.1f} | {gmean - dmean:+.1f} |",
    ]
    paired = [1000 * t for t in times["paired"]]
    if paired:
        # The two p50s each carry Triton's own jitter (a few ms at these sizes); the difference of each
        # back-to-back pair cancels most of it, so its median is the steadier estimate of the same quantity.
        lines += ["", f"Back-to-back pairs (gateway minus direct, {len(paired)} pairs): median "
                      f"{statistics.median(paired):+.1f} ms, quartiles {percentile(paired, 25):+.1f} / "
                      f"{percentile(paired, 75):+.1f} ms."]  # fmt: skip
    if cpu_ms is not None:
        # Independent of how busy the host is: what one request costs the gateway process.
        lines += ["", f"Gateway process CPU per request: {cpu_ms:.1f} ms (user + system)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(parser)
    parser.add_argument("--requests", type=int, default=100, help="measured requests per path (default 100)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--client-encoding",
        choices=["once", "per-request"],
        default="once",
        help="build each path's request once and resend it (default), or rebuild it for every request",
    )
    parser.add_argument("--json", help="also write the raw latencies here")
    args = parser.parse_args(argv)

    with gateway_stack(args, "bench_gateway") as (gateway, triton_grpc):
        cpu_before = cpu_seconds(gateway.process.pid)
        times, durations = run_paths(gateway.url, triton_grpc, reference_clip(), args.requests, args.concurrency,
                                     args.max_new_tokens, args.client_encoding == "per-request")  # fmt: skip
        cpu_after = cpu_seconds(gateway.process.pid)
    # The warm-up requests are in the CPU total too; spread it over every gateway request made.
    served = len(times["gateway"]) + WARMUP * args.concurrency
    cpu_ms = None if cpu_before is None or cpu_after is None else 1000 * (cpu_after - cpu_before) / served
    print(report(times, durations, args.concurrency, triton_grpc, cpu_ms))
    print(f"Client requests built: {args.client_encoding}; gateway to Triton: {args.gateway_transport}; "
          f"load average {os.getloadavg()[0]:.1f} at end.")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"ms": {k: [1000 * t for t in v] for k, v in times.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
