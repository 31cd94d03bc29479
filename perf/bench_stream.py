"""Streaming: time to the first audio byte vs time to the full response, at concurrency 1 and 4.

Through one gateway process: ``POST /v1/voice-clone/stream`` (time to first byte and to the end of the
stream) against ``POST /v1/voice-clone`` (time to the whole answer), the same seeded multi-sentence text,
the two alternating in each client thread.

    .venv/bin/python perf/bench_stream.py --model-repository artifacts/repository-tiny [--requests 20]
    .venv/bin/python perf/bench_stream.py --triton-grpc 127.0.0.1:8001 --triton-http 127.0.0.1:8000 --concurrency 1 4

``--model-repository`` installs the extra models (voice_clone_stream, ...) into that repository first.

``--token-chunks`` (issue 15): one 40-character zh sentence (one piece), three variants interleaved in every
round: the token-chunk stream (``chunk_tokens``), the per-piece stream, the unstreamed request; time to the first
audio byte and to the end, with the 1-minute load average at each request (a shared host)::

    .venv/bin/python perf/bench_stream.py --model-repository artifacts/repository-full-v2 --token-chunks \
        --max-new-tokens 1500 --requests 5 --concurrency 1

``--api-v2``: the same sentence through api_v2's ``GET /tts`` as its clients send it (query parameters,
``ref_audio_path`` in the gateway's reference directory, api_v2's defaults: ``text_split_method`` cut5,
``min_chunk_length`` 16, ``overlap_length`` 2), ``streaming_mode`` 2, 1 and 0 interleaved; first audio byte
(past the WAV header) and end::

    .venv/bin/python perf/bench_stream.py --model-repository artifacts/repository-full-v2 --api-v2 \\
        --max-new-tokens 1500 --requests 3 --concurrency 1 4

``--quality REPO`` (no server): the joined token-chunk stream against the unstreamed audio of the same seeded
request, in-process, per chunk size: tokens identical?, SNR over the clip, largest step at a join against the
99.9th percentile of the unstreamed audio's sample-to-sample steps, decoder seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import httpx
import numpy as np
from bench_gateway import PROMPT, SEED, TIMEOUT_S, add_stack_arguments, cpu_model, gateway_stack, reference_clip

TEXT = "你好，这是第一句。这是第二句话，还有一点。最后是第三句！然后再说一句。"
SENTENCE = "今天天气很好，我们一起去公园散步吧，顺便看看湖边的风景和花草树木，心情变得愉快。"  # 40 characters
# The demo weights are random: their EOS comes at random. With this seed the sentence's piece has 162 tokens
# (6.5 s), near what a trained voice speaks for 40 characters (seed 7 stops after 50).
SENTENCE_SEED = 26
VARIANTS = ("token-chunk stream", "per-piece stream", "unstreamed")
API_V2_MODES = ("streaming_mode 2", "streaming_mode 1", "streaming_mode 0")
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


def _timed(http: httpx.Client, url: str, variant: str, form: dict, reference: bytes,
           chunk_tokens: int) -> tuple[float, float]:  # fmt: skip
    """(first audio byte, end) in seconds of one request of ``variant``."""
    files = {"audio": ("ref.wav", reference)}
    start = time.perf_counter()
    if variant == "unstreamed":
        http.post(f"{url}/v1/voice-clone", data=form, files=files).raise_for_status()
        end = time.perf_counter() - start
        return end, end
    data = {**form, "chunk_tokens": str(chunk_tokens)} if variant == "token-chunk stream" else form
    first = None
    with http.stream("POST", f"{url}/v1/voice-clone/stream", data=data, files=files) as response:
        response.raise_for_status()
        for raw in response.iter_raw():
            if first is None and len(raw) > 44:  # past the WAV header: audio
                first = time.perf_counter() - start
    end = time.perf_counter() - start
    return first or end, end


def _timed_api_v2(http: httpx.Client, url: str, variant: str) -> tuple[float, float]:
    """(first audio byte, end) in seconds of one ``GET /tts`` in ``variant``'s streaming_mode."""
    query = {"text": SENTENCE, "text_lang": "zh", "ref_audio_path": "ref.wav", "prompt_text": PROMPT,
             "prompt_lang": "zh", "seed": SENTENCE_SEED, "streaming_mode": variant.split()[-1]}  # fmt: skip
    start = time.perf_counter()
    first, received = None, 0
    with http.stream("GET", f"{url}/tts", params=query) as response:
        response.raise_for_status()
        for raw in response.iter_raw():
            received += len(raw)
            if first is None and received > 44:  # past the WAV header: audio
                first = time.perf_counter() - start
    end = time.perf_counter() - start
    return first or end, end


def run_token_chunks(url: str, requests: int, concurrency: int, chunk_tokens: int,
                     api_v2: bool = False) -> dict[str, list[tuple]]:  # fmt: skip
    """{variant: [(first byte s, end s, load), ...]}, the variants interleaved in each client's rounds."""
    form = {"text": SENTENCE, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh",
            "seed": str(SENTENCE_SEED), "cut_punc": ""}  # fmt: skip
    reference = reference_clip()
    variants = API_V2_MODES if api_v2 else VARIANTS
    times: dict[str, list[tuple]] = {v: [] for v in variants}
    lock = threading.Lock()

    def worker(offset: int) -> None:
        http = httpx.Client(timeout=TIMEOUT_S)
        for i in range(requests + 1):  # round 0 warms up
            for k in range(len(variants)):
                variant = variants[(k + i + offset) % len(variants)]  # rotate the order round by round
                if api_v2:
                    first, end = _timed_api_v2(http, url, variant)
                else:
                    first, end = _timed(http, url, variant, form, reference, chunk_tokens)
                if i:
                    with lock:
                        times[variant].append((first, end, os.getloadavg()[0]))
        http.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def token_chunk_table(gateway_url: str, args: argparse.Namespace) -> list[str]:
    what = "api_v2 GET /tts, its defaults" if args.api_v2 else f"one piece, chunk_tokens {args.chunk_tokens}"
    lines = [f"Token-chunk streaming, {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()} ({os.cpu_count()} cores); "
             f"{len(SENTENCE)}-character zh sentence, {what}, {args.requests} measured rounds per client", "",
             "| concurrency | variant | first audio p50 ms | total p50 ms | total / unstreamed | load (min-max) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for concurrency in args.concurrency:
        times = run_token_chunks(gateway_url, args.requests, concurrency, args.chunk_tokens, args.api_v2)
        base = float(np.median([t[1] for t in times["streaming_mode 0" if args.api_v2 else "unstreamed"]]))
        for variant, rows in times.items():
            first, total = (1000 * float(np.median([r[i] for r in rows])) for i in (0, 1))
            loads = [r[2] for r in rows]
            lines.append(f"| {concurrency} | {variant} | {first:.0f} | {total:.0f} | {total / 1000 / base:.2f} | "
                         f"{min(loads):.1f}-{max(loads):.1f} |")  # fmt: skip
            print(lines[-1], flush=True)
    return lines


def quality_table(repo: str, chunk_sizes: list[int], overlap: int) -> list[str]:
    """The quality rule per chunk size, in-process (onnxruntime, no Triton)."""
    from gsv_triton.backend.chunk_join import Chunking, join_quality
    from gsv_triton.backend.ort_backend import OrtBackend
    from gsv_triton.backend.pipeline import VoiceClonePipeline
    from gsv_triton.backend.requests import parse_request
    from gsv_triton.backend.token_stream import synthesize_token_chunks
    from gsv_triton.contract import VOICE_CLONE
    from gsv_triton.settings import Limits

    backend = OrtBackend(repo)
    pipeline = VoiceClonePipeline.from_repository(backend, repo)
    values = dict(text=SENTENCE, text_language="zh", prompt_text=PROMPT, prompt_language="zh",
                  reference_audio=reference_clip(), seed=SENTENCE_SEED, cut_punc="")  # as the gateway sends it
    request = parse_request({k: VOICE_CLONE.input(k).array(v) for k, v in values.items()}, "v2", Limits(), "")
    full = pipeline.synthesize(request)
    lines = [f"Quality, {time.strftime('%Y-%m-%d %H:%M')}, {repo}, {len(SENTENCE)} characters, "
             f"{len(full.tokens)} tokens, overlap_tokens {overlap}", "",
             "| chunk_tokens | chunks | tokens identical | SNR dB | largest join step | normal step (p99.9) | "
             "stream s | load |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for chunk in chunk_sizes:
        start = time.perf_counter()
        chunks = list(synthesize_token_chunks(pipeline, request, Chunking.from_request(chunk, overlap), backend.t2s))
        took = time.perf_counter() - start
        tokens = np.concatenate([c.tokens for c in chunks if c.tokens is not None])
        audio = np.concatenate([c.audio for c in chunks])
        quality = join_quality(audio, full.audio, list(np.cumsum([len(c.audio) for c in chunks])[:-1]))
        lines.append(f"| {chunk} | {len(chunks)} | {np.array_equal(tokens, full.tokens)} | {quality.snr_db:.1f} | "
                     f"{quality.max_join_step:.3f} | {quality.normal_step:.3f} | {took:.1f} | "
                     f"{os.getloadavg()[0]:.1f} |")  # fmt: skip
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        import sys

        argv = sys.argv[1:]
    if argv[:1] == ["--quality"]:
        quality = argparse.ArgumentParser(description="the token-chunk quality rule, in-process")
        quality.add_argument("--quality", required=True, metavar="REPO")
        quality.add_argument("--chunk-tokens", type=int, nargs="+", default=[10, 25, 50])
        quality.add_argument("--overlap-tokens", type=int, default=4)
        q = quality.parse_args(argv)
        print("\n".join(quality_table(q.quality, q.chunk_tokens, q.overlap_tokens)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(parser, " that serves voice_clone_stream")
    parser.add_argument("--token-chunks", action="store_true", help="the token-chunk table (issue 15)")
    parser.add_argument("--api-v2", action="store_true", help="the same through api_v2's GET /tts, modes 2, 1, 0")
    parser.add_argument("--chunk-tokens", type=int, default=25)
    parser.add_argument("--requests", type=int, default=20, help="measured requests per client (default 20)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args(argv)

    lines = [f"Streaming, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()} ({os.cpu_count()} cores); "
             f"{len(TEXT)} characters, cut at {CUT}", "",
             "| concurrency | load | first byte p50 ms | end of stream p50 ms | full response p50 ms | first byte / full |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    with gateway_stack(args, "bench_stream", extra_models=True) as (gateway, _):
        if args.token_chunks or args.api_v2:
            print("\n".join(token_chunk_table(gateway.url, args)))
            return 0
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
