"""Streaming: time to the first audio byte vs time to the full response, at concurrency 1 and 4.

Through one gateway process: ``POST /v1/voice-clone/stream`` (time to first byte and to the end of the
stream) against ``POST /v1/voice-clone`` (time to the whole answer), the same seeded multi-sentence text,
the two alternating in each client thread.

    .venv/bin/python perf/bench_stream.py --model-repository artifacts/repository-tiny [--requests 20]
    .venv/bin/python perf/bench_stream.py --triton-grpc 127.0.0.1:8001 --triton-http 127.0.0.1:8000 --concurrency 1 4

``--model-repository`` installs the extra models (voice_clone_stream, ...) into that repository first.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import httpx
import numpy as np
from bench_gateway import PROMPT, SEED, TIMEOUT_S, add_stack_arguments, gateway_stack, reference_clip

TEXT = "你好，这是第一句。这是第二句话，还有一点。最后是第三句！然后再说一句。"
CUT = "，。！"
WARMUP = 2


def run(url: str, requests: int, concurrency: int) -> dict[str, list[float]]:
    form = {"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh", "seed": str(SEED),
            "cut_punc": CUT}  # fmt: skip
    reference = reference_clip()
    times: dict[str, list[float]] = {"first byte (stream)": [], "end of stream": [], "full response": []}
    lock = threading.Lock()

    def worker() -> None:
        http = httpx.Client(timeout=TIMEOUT_S)
        for i in range(requests + WARMUP):
            start = time.perf_counter()
            first = None
            with http.stream("POST", f"{url}/v1/voice-clone/stream", data=form,
                             files={"audio": ("ref.wav", reference)}) as response:  # fmt: skip
                response.raise_for_status()
                for _ in response.iter_raw():
                    first = first or time.perf_counter() - start
            end = time.perf_counter() - start
            start = time.perf_counter()
            http.post(f"{url}/v1/voice-clone", data=form, files={"audio": ("ref.wav", reference)}).raise_for_status()
            full = time.perf_counter() - start
            if i >= WARMUP:
                with lock:
                    times["first byte (stream)"].append(first or end)
                    times["end of stream"].append(end)
                    times["full response"].append(full)
        http.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(parser, " that serves voice_clone_stream")
    parser.add_argument("--requests", type=int, default=20, help="measured requests per client (default 20)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args(argv)

    lines = [f"Streaming, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()} ({os.cpu_count()} cores); "
             f"{len(TEXT)} characters, cut at {CUT}", "",
             "| concurrency | load | first byte p50 ms | end of stream p50 ms | full response p50 ms | first byte / full |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    with gateway_stack(args, "bench_stream", extra_models=True) as (gateway, _):
        for concurrency in args.concurrency:
            times = run(gateway.url, args.requests, concurrency)
            p50 = {k: 1000 * float(np.median(v)) for k, v in times.items()}
            lines.append(
                f"| {concurrency} | {os.getloadavg()[0]:.1f} | {p50['first byte (stream)']:.0f} | {p50['end of stream']:.0f} "
                f"| {p50['full response']:.0f} | {p50['first byte (stream)'] / p50['full response']:.2f} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
