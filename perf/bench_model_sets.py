"""Many model sets in one server (issue 16): time to the first answer of a set that is not loaded, steady-state
latency with 1 vs 3 sets loaded, and the memory each loaded set takes.

Through one gateway (``/v1/voice-clone``, which loads a set on its first request) in front of one tritonserver
started on REPO in explicit model-control mode (the default set loads at start, the others on demand)::

    # two more full-size fine-tunes added to a full-size repository (about 3 min each here)
    .venv/bin/gsv-triton demo-checkpoints --size full --version v2 --seed 1 --out artifacts/demo-full-b
    cp -r artifacts/repository-full-v2 artifacts/repository-sets
    .venv/bin/gsv-triton export --gpt artifacts/demo-full-b/gpt.ckpt --sovits artifacts/demo-full-b/sovits.pth \\
        --out artifacts/repository-sets --name b      # likewise --name c from --seed 2
    .venv/bin/python perf/bench_model_sets.py --model-repository artifacts/repository-sets --sets b c --requests 3

Memory is the proportional set size (PSS, shared pages split between the processes that map them) summed over
the tritonserver process group: the server and every Python stub. A set's share is the growth when it loads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from bench_gateway import PROMPT, TIMEOUT_S, Gateway, cpu_model, reference_clip

from gsv_triton.server import TritonServer, free_port
from gsv_triton.server.stubs import group_members

SENTENCE = "今天天气很好，我们一起去公园散步吧，顺便看看湖边的风景和花草树木，心情变得愉快。"
SEED = 26  # 162 tokens (6.5 s) with the full-size demo weights of seed 0
READY_TIMEOUT_S = 900.0


def group_pss_mb(pgid: int) -> float:
    """PSS of every process of group ``pgid`` in MB (Linux ``smaps_rollup``)."""
    total_kb = 0
    for pid in group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue  # exited meanwhile
    return total_kb / 1024


def clone(url: str, model: str | None, reference: bytes, max_new_tokens: int) -> tuple[float, float]:
    """(seconds, seconds of audio) of one ``/v1/voice-clone`` answer with ``model``."""
    data = {"text": SENTENCE, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh",
            "seed": str(SEED), "cut_punc": ""}  # fmt: skip
    if model:
        data["model"] = model
    start = time.perf_counter()
    answer = httpx.post(f"{url}/v1/voice-clone", data=data, files={"audio": ("ref.wav", reference)},
                        timeout=TIMEOUT_S)  # fmt: skip
    answer.raise_for_status()
    return time.perf_counter() - start, float(answer.json()["output_duration"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", required=True, type=Path)
    parser.add_argument("--sets", nargs="+", required=True, help="the named sets to load on demand")
    parser.add_argument("--requests", type=int, default=3, help="measured requests per set and phase")
    parser.add_argument("--max-new-tokens", type=int, default=1500)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_model_sets_"))
    reference = reference_clip()
    server = TritonServer().start(args.model_repository, free_port(), free_port(), free_port(),
                                  log_path=workdir / "tritonserver.log")  # fmt: skip
    lines = [f"Model sets, {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()} ({os.cpu_count()} cores), "
             f"{args.model_repository}", ""]  # fmt: skip
    try:
        started = time.perf_counter()
        server.wait_ready(READY_TIMEOUT_S)
        lines.append(f"* server ready with the default set in {time.perf_counter() - started:.1f} s, "
                     f"PSS {group_pss_mb(server.pid):.0f} MB")  # fmt: skip
        env = {"GSV_MAX_LOADED_MODEL_SETS": str(1 + len(args.sets)), "GSV_MODEL_LOAD_TIMEOUT_S": "600"}
        gateway = Gateway(server.grpc_endpoint, args.max_new_tokens, workdir / "gateway.log", env=env)
        try:
            clone(gateway.url, None, reference, args.max_new_tokens)  # warm-up: reference cache, first calls
            one = [clone(gateway.url, None, reference, args.max_new_tokens)[0] for _ in range(args.requests)]
            lines.append(f"* steady state, only the default set loaded: p50 {statistics.median(one):.2f} s "
                         f"({args.requests} requests, load {os.getloadavg()[0]:.1f})")  # fmt: skip
            firsts = {}
            for name in args.sets:
                before = group_pss_mb(server.pid)
                firsts[name] = clone(gateway.url, name, reference, args.max_new_tokens)[0]
                lines.append(f"* set {name}: first answer (not loaded) {firsts[name]:.2f} s; PSS "
                             f"+{group_pss_mb(server.pid) - before:.0f} MB")  # fmt: skip
            rounds = [(name or "default", *clone(gateway.url, name, reference, args.max_new_tokens))
                      for _ in range(args.requests) for name in (None, *args.sets)]  # fmt: skip
            lines.append(f"* steady state, {1 + len(args.sets)} sets loaded, requests cycling over them "
                         f"(load {os.getloadavg()[0]:.1f}):")  # fmt: skip
            for name in ("default", *args.sets):
                took = statistics.median(t for n, t, _ in rounds if n == name)
                audio = statistics.median(a for n, _, a in rounds if n == name)
                load = f"; its first answer spent about {firsts[name] - took:.1f} s loading" if name in firsts else ""
                lines.append(f"  * {name}: p50 {took:.2f} s for {audio:.1f} s of audio{load}")
            lines.append(f"* PSS with {1 + len(args.sets)} sets loaded: {group_pss_mb(server.pid):.0f} MB")
        finally:
            gateway.stop()
    finally:
        server.stop()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
