"""Voice library: latency of the same seeded request with ``voice_id`` vs with an uploaded reference.

Three paths through one gateway process, alternating request by request (drift on a shared host hits all
alike):

* ``voice_id``: a stored voice (POST /v1/voices once); Triton skips the prompt frontend, ssl, vq_encode and
  ref_encoder, and the upload is not sent at all;
* ``upload, same clip``: the clip every time; voice_clone's reference cache (SHA-256 of the bytes) hits after
  the first request, so this path pays the upload, its checks and the prompt-cache lookups only;
* ``upload, new clip``: a different clip every time (a cache miss: ssl + vq_encode + ref_encoder run), which
  is what a client that re-uploads its voice to several servers or after a restart pays.

    .venv/bin/python perf/bench_voices.py --model-repository artifacts/repository-tiny [--requests 60]
    .venv/bin/python perf/bench_voices.py --triton-grpc 127.0.0.1:8001 --triton-http 127.0.0.1:8000

``--model-repository`` installs the ``voice_encode`` model into that repository first (idempotent).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import httpx
import numpy as np
from bench_gateway import PROMPT, SEED, TEXT, TIMEOUT_S, add_stack_arguments, gateway_stack, reference_clip

WARMUP = 3
PATHS = ("voice_id", "upload, same clip", "upload, new clip")


def clip(seed: int) -> bytes:
    """A reference clip, different per seed (so each one misses Triton's reference cache)."""
    return reference_clip(seed=seed, pitch=140 + seed % 60)


def run(url: str, requests: int) -> dict[str, list[float]]:
    http = httpx.Client(timeout=TIMEOUT_S)
    same = clip(0)
    created = http.post(f"{url}/v1/voices", data={"prompt_text": PROMPT, "prompt_language": "zh"},
                        files={"audio": ("ref.wav", same)})  # fmt: skip
    created.raise_for_status()
    voice_id = created.json()["id"]
    form = {"text": TEXT, "text_language": "zh", "seed": str(SEED)}
    upload = {**form, "prompt_text": PROMPT, "prompt_language": "zh"}
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    for i in range(requests + WARMUP):
        order = PATHS[i % 3 :] + PATHS[: i % 3]
        new = clip(1000 + i)  # built before any timing: client-side synthesis is no cost of the path
        for path in order:
            start = time.perf_counter()
            if path == "voice_id":
                response = http.post(f"{url}/v1/voice-clone", data={**form, "voice_id": voice_id})
            else:
                audio = same if path == "upload, same clip" else new
                response = http.post(f"{url}/v1/voice-clone", data=upload, files={"audio": ("ref.wav", audio)})
            response.raise_for_status()
            if i >= WARMUP:
                times[path].append(time.perf_counter() - start)
    http.delete(f"{url}/v1/voices/{voice_id}")
    http.close()
    return times


def report(times: dict[str, list[float]]) -> str:
    lines = [
        f"Voice library, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()} ({os.cpu_count()} cores), "
        f"load average {os.getloadavg()[0]:.1f}; same text and seed on every path",
        "",
        "| path | requests | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|---|",
    ]
    for path, values in times.items():
        ms = np.asarray(values) * 1000
        lines.append(
            f"| {path} | {ms.size} | {np.median(ms):.1f} | {np.percentile(ms, 99):.1f} | {statistics.mean(ms):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(parser, " that serves voice_encode")
    parser.add_argument("--requests", type=int, default=60, help="measured requests per path (default 60)")
    args = parser.parse_args(argv)

    with gateway_stack(args, "bench_voices", extra_models=True) as (gateway, _):
        times = run(gateway.url, args.requests)
    print(report(times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
