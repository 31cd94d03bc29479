"""End to end: the ``voice_clone`` Triton pipeline against the same networks run eagerly in PyTorch in one process.

Both sides run the SAME orchestration (:class:`VoiceClonePipeline`: text frontend, BERT, reference frontend,
HuBERT, VQ, ref encoder, T2S, SoVITS decode) on the SAME demo checkpoints; only the networks differ:

* Triton: the exported repository served by tritonserver (onnxruntime inside Python-backend models, the T2S loop
  in one model with a preallocated KV cache), called over HTTP with tritonclient;
* eager (what an upstream user runs today): our torch modules from ``gsv_export`` loaded from the checkpoints,
  fp32, ``torch.set_num_threads(2)``, one process; the T2S loop is the upstream-style eager loop
  (``gsv_triton.networks.t2s_reference``: KV cache grown by concatenation, SDPA). No caches on this side.

The request (perf/make_inputs.py): one zh segment, a 5 s reference, EOS disabled, exactly 250 generated tokens
= 10 s of speech (the output adds api.py's 0.3 s pause). RTF = seconds of processing / 10 s of speech.
Every measured request uses a reference that side has not seen (Triton caches references per instance), so
both do the same work; a "cached" Triton row repeats the warm-up reference.

* concurrency 1: Triton and eager requests interleaved (T, E, T, E, ...), so CPU load from other jobs hits both;
  per-stage times: eager from timers around each network call, Triton from the server's statistics
  (compute_infer per model; "frontends + BLS" = voice_clone's time minus the models it called);
* concurrency 4: 4 client threads x ``--per-thread`` requests; eager: 4 threads sharing the one process's models.

    .venv/bin/python perf/bench_pipeline.py --repo artifacts/repository-full2 --checkpoints artifacts/demo-full
        [--url 127.0.0.1:8000]   # a running server; default: start tritonserver on free ports
        [--runs 3] [--per-thread 2] [--json perf/results/bench_pipeline.json]

Versions side by side (Triton only, no eager side): ``--versus REPO2 [REPO3 ...]`` starts one tritonserver per
repository (all loaded at once) and interleaves their requests at concurrency 1 (R1, R2, R3, R1, ...), each with a
new reference; then each repeats its warm-up reference, so "new reference" minus "cached" is what a new
reference costs (v2Pro/v2ProPlus add ``speaker_encoder`` and the Kaldi fbank there).

    .venv/bin/python perf/bench_pipeline.py --repo artifacts/repository-full2 \
        --versus artifacts/repository-full-v2Pro artifacts/repository-full-v2ProPlus --runs 3

Prints markdown tables with the 1-minute load average (/proc/loadavg) beside each figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_inputs import TOKENS, synth_reference, voice_clone_inputs  # noqa: E402

from gsv_triton.backend.pipeline import VoiceClonePipeline  # noqa: E402
from gsv_triton.backend.requests import parse_request  # noqa: E402
from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SAMPLES_PER_TOKEN  # noqa: E402

STAGES = ("bert", "ssl", "vq_encode", "speaker_encoder", "ref_encoder", "t2s", "sovits_decode")
TORCH_THREADS = 2
CONCURRENCY = 4
READY_TIMEOUT_S = 900.0  # full-size models on 2 busy cores
REQUEST_TIMEOUT_S = 1800.0
SPEECH_SECONDS = TOKENS * SAMPLES_PER_TOKEN / OUTPUT_SAMPLE_RATE
# Reference seeds: each measured request gets one that no earlier request used, also across invocations against
# the same long-running server (its voice_clone instances cache references): offsets start at a random base.
WARMUP_REFERENCE = 0
SEED_BASE = 1_000 * (1 + secrets.randbelow(1_000_000))
C1_REFERENCES = SEED_BASE + 100
CONCURRENT_TRITON_REFERENCES = SEED_BASE + 300
CONCURRENT_EAGER_REFERENCES = SEED_BASE + 500


def load1() -> float:
    """The 1-minute load average (2 = both cores busy on this machine)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Timing:
    """One measured request: wall seconds, load average before/after, per-stage seconds."""

    seconds: float
    load_before: float
    load_after: float
    stages: dict[str, float] = field(default_factory=dict)


# --- eager side ------------------------------------------------------------------------------------------
class TorchBackend:
    """The pipeline's networks as eager torch modules loaded from upstream-format checkpoints."""

    def __init__(self, checkpoints: Path) -> None:
        import torch

        from gsv_export.checkpoints import load_gpt, load_sovits
        from gsv_export.shared_steps import load_synthesizer, load_t2s
        from gsv_triton.networks.pretrained import load_bert, load_hubert

        torch.set_num_threads(TORCH_THREADS)
        self.torch = torch
        self.t2s = load_t2s(load_gpt(checkpoints / "gpt.ckpt"))
        self.sovits = load_synthesizer(load_sovits(checkpoints / "sovits.pth"))
        if self.sovits.is_pro:
            from gsv_export.checkpoints import load_sv
            from gsv_export.demo import SV_FILE
            from gsv_export.shared_steps import load_speaker_encoder

            self.speaker = load_speaker_encoder(load_sv(checkpoints / SV_FILE))
        self.hubert = load_hubert(checkpoints / "chinese-hubert-base")
        self.bert = load_bert(checkpoints / "chinese-roberta-wwm-ext-large")
        self.times: dict[str, float] = defaultdict(float)  # only meaningful with one request at a time

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
              stop: object = None) -> dict[str, np.ndarray]:  # fmt: skip
        start = time.perf_counter()
        with self.torch.inference_mode():
            result = getattr(self, f"_{model}")({k: np.asarray(v) for k, v in inputs.items()})
        self.times[model] += time.perf_counter() - start
        return result

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(array))

    def _bert(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = self._tensor
        return {"hidden": self.bert(t(x["input_ids"]), t(x["attention_mask"]), t(x["token_type_ids"])).numpy()}

    def _ssl(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"ssl": self.hubert(self._tensor(x["wav16k"])).numpy()}

    def _vq_encode(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"codes": self.sovits.extract_codes(self._tensor(x["ssl"])).numpy()}

    def _speaker_encoder(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"sv": self.speaker(self._tensor(x["fbank"])).numpy()}

    def _ref_encoder(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        sv = self._tensor(x["sv"]) if "sv" in x else None
        return {"ge": self.sovits.reference_embedding(self._tensor(x["spec"]), sv).numpy()}

    def _sovits_decode(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = self._tensor
        audio = self.sovits.decode(t(x["codes"]), t(x["phone_ids"]), t(x["ge"]), t(x["noise"]), t(x["noise_scale"]))
        return {"audio": audio.numpy()}

    def _t2s(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Upstream's eager loop (batch 1) per row; EOS handling and the cap as in the Triton model."""
        from gsv_triton.networks.t2s_reference import reference_generate

        t = self._tensor
        rows = []
        for r, n in enumerate(x["phone_lengths"]):
            rng = np.random.default_rng(int(x["seed"][r if x["seed"].size > 1 else 0]))
            rows.append(reference_generate(
                self.t2s, t(x["phone_ids"][r : r + 1, :n]), t(x["bert"][r : r + 1, :, :n]),
                t(x["prompt_codes"][:1]), top_k=int(x["top_k"][0]), top_p=float(x["top_p"][0]),
                temperature=float(x["temperature"][0]), repetition_penalty=float(x["repetition_penalty"][0]),
                noise=lambda v, rng=rng: rng.exponential(size=v).astype(np.float32),
                max_new_tokens=int(x["max_new_tokens"][0]), eos_enabled=not bool(x["ignore_eos"][0]),
            ).numpy())  # fmt: skip
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        tokens = np.full((len(rows), int(lengths.max())), -1, dtype=np.int64)
        for r, row in enumerate(rows):
            tokens[r, : len(row)] = row
        return {"tokens": tokens, "lengths": lengths}


class EagerSide:
    """VoiceClonePipeline over :class:`TorchBackend`, caches off (upstream recomputes everything per request)."""

    def __init__(self, repo: Path, checkpoints: Path) -> None:
        self.backend = TorchBackend(checkpoints)
        self.pipeline = VoiceClonePipeline.from_repository(
            self.backend, repo, reference_cache_size=0, prompt_cache_size=0
        )

    def request(self, reference_seed: int) -> Timing:
        inputs = voice_clone_inputs(synth_reference(reference_seed))
        self.backend.times.clear()
        before = load1()
        start = time.perf_counter()
        result = self.pipeline.synthesize(parse_request(inputs, self.pipeline.config.symbol_version))
        seconds = time.perf_counter() - start
        check_tokens("eager", result.segment_tokens)
        stages = {s: self.backend.times.get(s, 0.0) for s in STAGES}
        stages["frontends + glue"] = seconds - sum(stages.values())
        return Timing(seconds, before, load1(), stages)


# --- Triton side -----------------------------------------------------------------------------------------
def check_tokens(side: str, segment_tokens: np.ndarray) -> None:
    if list(np.ravel(segment_tokens)) != [TOKENS]:
        raise RuntimeError(f"{side}: expected one segment of {TOKENS} tokens, got {list(np.ravel(segment_tokens))}")


class TritonSide:
    """HTTP requests to ``voice_clone`` and the server's per-model statistics."""

    def __init__(self, url: str) -> None:
        import tritonclient.http as httpclient

        self.url = url
        self.httpclient = httpclient
        self._local = threading.local()

    def _client(self):
        if not hasattr(self._local, "client"):
            self._local.client = self.httpclient.InferenceServerClient(
                self.url, connection_timeout=REQUEST_TIMEOUT_S, network_timeout=REQUEST_TIMEOUT_S
            )
        return self._local.client

    def stats(self) -> dict[str, tuple[int, float]]:
        """{model: (successful requests, summed compute_infer + queue seconds)} (cumulative since start)."""
        out = {}
        for model in self._client().get_inference_statistics()["model_stats"]:
            s = model["inference_stats"]
            out[model["name"]] = (int(s["success"]["count"]), (s["compute_infer"]["ns"] + s["queue"]["ns"]) / 1e9)
        return out

    def request(self, reference_seed: int) -> float:
        from gsv_triton.client import build_inputs

        x = voice_clone_inputs(synth_reference(reference_seed))
        inputs = build_inputs(
            "http", x["text"][0].decode(), x["reference_audio"][0], x["prompt_text"][0].decode(),
            x["text_language"][0].decode(), x["prompt_language"][0].decode(),
            seed=int(x["seed"][0]), max_new_tokens=int(x["max_new_tokens"][0]), ignore_eos=True,
        )  # fmt: skip
        start = time.perf_counter()
        result = self._client().infer("voice_clone", inputs)
        seconds = time.perf_counter() - start
        check_tokens("triton", result.as_numpy("segment_tokens"))
        return seconds

    def measured(self, reference_seed: int) -> Timing:
        """One request with the server-side time of every model it called (only valid at concurrency 1)."""
        before_stats, before = self.stats(), load1()
        seconds = self.request(reference_seed)
        after_stats = self.stats()
        delta = {m: after_stats[m][1] - before_stats.get(m, (0, 0.0))[1] for m in after_stats}
        stages = {s: delta.get(s, 0.0) for s in STAGES}
        stages["frontends + glue"] = seconds - sum(stages.values())
        stages["ssl calls"] = after_stats["ssl"][0] - before_stats["ssl"][0]
        return Timing(seconds, before, load1(), stages)


# --- measurement -----------------------------------------------------------------------------------------
def concurrent(run: Callable[[int], object], first_seed: int, threads: int, per_thread: int) -> dict[str, float]:
    """``threads`` workers x ``per_thread`` requests; throughput and latency figures."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        for j in range(per_thread):
            start = time.perf_counter()
            run(first_seed + index * per_thread + j)
            with lock:
                latencies.append(time.perf_counter() - start)

    before = load1()
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker, i) for i in range(threads)]:
            future.result()
    wall = time.perf_counter() - start
    n = threads * per_thread
    return {
        "requests": n,
        "wall_s": wall,
        "requests_per_s": n / wall,
        "speech_s_per_s": n * SPEECH_SECONDS / wall,
        "latency_p50_s": statistics.median(latencies),
        "latency_max_s": max(latencies),
        "load_before": before,
        "load_after": load1(),
    }


def summary(timings: Sequence[Timing]) -> dict[str, object]:
    """Median wall time, RTF and per-stage medians over the runs."""
    keys = timings[0].stages.keys()
    return {
        "runs": [asdict(t) for t in timings],
        "median_s": statistics.median(t.seconds for t in timings),
        "min_s": min(t.seconds for t in timings),
        "rtf": statistics.median(t.seconds for t in timings) / SPEECH_SECONDS,
        "stages_median_s": {k: statistics.median(t.stages[k] for t in timings) for k in keys},
        "load": [
            min(min(t.load_before, t.load_after) for t in timings),
            max(max(t.load_before, t.load_after) for t in timings),
        ],
    }


def start_server(repo: Path, log_dir: Path):
    from gsv_triton.server import TritonServer, free_port

    server = TritonServer()
    server.start(repo, free_port(), free_port(), free_port(), log_path=log_dir / "tritonserver.log")
    try:
        waited = server.wait_ready(READY_TIMEOUT_S)
    except BaseException:  # Ctrl-C while loading must not leave the server behind
        server.kill()
        raise
    print(
        f"tritonserver ready in {waited:.0f} s at {server.http_endpoint} (log {log_dir / 'tritonserver.log'})",
        flush=True,
    )
    return server


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load1():.2f}] {msg}", flush=True)


def run_versions(args: argparse.Namespace) -> dict[str, object]:
    """Triton only: --repo and every --versus repository side by side at concurrency 1 (see the module doc)."""
    from gsv_triton.manifest import Manifest

    repos = [args.repo, *args.versus]
    names = [f"{Manifest.read(r).sovits_version} ({r.name})" for r in repos]
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i, repo in enumerate(repos):
                (Path(tmp) / str(i)).mkdir()
                servers.append(start_server(repo, Path(tmp) / str(i)))
            sides = [TritonSide(server.http_endpoint) for server in servers]
            _log("warm-up: 2 concurrent requests per server (both voice_clone instances)")
            for side in sides:
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(side.request, [WARMUP_REFERENCE, WARMUP_REFERENCE]))
            new: list[list[Timing]] = [[] for _ in repos]
            for i in range(args.runs):
                for name, side, timings in zip(names, sides, new, strict=True):
                    timings.append(side.measured(C1_REFERENCES + i))
                    _log(f"c=1 {name} run {i + 1}: {timings[-1].seconds:.2f} s")
            cached: list[list[Timing]] = [[] for _ in repos]
            for _ in range(max(1, args.cached_runs)):
                for name, side, timings in zip(names, sides, cached, strict=True):
                    timings.append(side.measured(WARMUP_REFERENCE))
                    _log(f"c=1 {name} cached reference: {timings[-1].seconds:.2f} s")
        finally:
            for server in servers:
                server.stop()
    return {
        "versions": {name: {"new_reference": summary(n), "cached_reference": summary(c)}
                     for name, n, c in zip(names, new, cached, strict=True)},  # fmt: skip
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cores": __import__("os").cpu_count(),
                 "speech_seconds": SPEECH_SECONDS, "tokens": TOKENS, "repos": [str(r) for r in repos]},  # fmt: skip
    }


def report_versions(results: Mapping[str, object]) -> str:
    """Markdown table of :func:`run_versions`: one column per repository, relative to the first."""
    versions = results["versions"]
    names = list(versions)
    base = versions[names[0]]["new_reference"]["median_s"]
    lines = [
        f"Versions side by side through Triton, {SPEECH_SECONDS:g} s of speech ({TOKENS} tokens), concurrency 1, "
        f"{results['meta']['date']}, {results['meta']['cores']} cores",
        "",
        "| medians | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(versions[n]) for n in names) + " |")

    row("latency s, new reference", lambda v: f"{v['new_reference']['median_s']:.2f}")
    row(f"vs {names[0]}", lambda v: f"{v['new_reference']['median_s'] / base - 1:+.1%}")
    row("RTF", lambda v: f"{v['new_reference']['rtf']:.3f}")
    row("latency s, cached reference", lambda v: f"{v['cached_reference']['median_s']:.2f}")
    row("a new reference costs s", lambda v: f"{v['new_reference']['median_s'] - v['cached_reference']['median_s']:.2f}")
    for stage in (*STAGES, "frontends + glue"):
        row(f"{stage} s", lambda v, s=stage: f"{v['new_reference']['stages_median_s'][s]:.3f}")
    row("load average during runs", lambda v: f"{v['new_reference']['load'][0]:.2f}-{v['new_reference']['load'][1]:.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, object]:
    log = _log
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url is None:
            server = start_server(args.repo, Path(tmp))
            url = server.http_endpoint
        else:
            url = args.url
        try:
            triton = TritonSide(url)
            log("loading the eager torch models")
            start = time.perf_counter()
            eager = EagerSide(args.repo, args.checkpoints)
            log(f"eager models loaded in {time.perf_counter() - start:.1f} s")

            log("warm-up: 2 concurrent Triton requests (both voice_clone instances), 1 eager request")
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(triton.request, [WARMUP_REFERENCE, WARMUP_REFERENCE]))
            eager.request(WARMUP_REFERENCE)

            results: dict[str, object] = {}
            tri, eag = [], []
            for i in range(args.runs):
                tri.append(triton.measured(C1_REFERENCES + i))
                log(f"c=1 triton run {i + 1}: {tri[-1].seconds:.2f} s")
                eag.append(eager.request(C1_REFERENCES + i))
                log(f"c=1 eager run {i + 1}: {eag[-1].seconds:.2f} s")
            results["triton_c1"], results["eager_c1"] = summary(tri), summary(eag)
            if args.cached_runs:
                cached = [triton.measured(WARMUP_REFERENCE) for _ in range(args.cached_runs)]
                results["triton_c1_cached"] = summary(cached)
                log(f"c=1 triton cached reference: {results['triton_c1_cached']['median_s']:.2f} s")
            offset = 0  # every level gets fresh references: a reused one would hit Triton's reference cache
            for n in args.concurrency if args.per_thread else ():
                results[f"triton_c{n}"] = concurrent(
                    triton.request, CONCURRENT_TRITON_REFERENCES + offset, n, args.per_thread
                )
                log(f"c={n} triton: {results[f'triton_c{n}']['requests_per_s']:.3f} req/s")
                results[f"eager_c{n}"] = concurrent(
                    eager.request, CONCURRENT_EAGER_REFERENCES + offset, n, args.per_thread
                )
                log(f"c={n} eager: {results[f'eager_c{n}']['requests_per_s']:.3f} req/s")
                offset += n * args.per_thread
            results["eager_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finally:
            if server is not None:
                server.stop()
    results["meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cores": __import__("os").cpu_count(),
        "speech_seconds": SPEECH_SECONDS,
        "tokens": TOKENS,
        "repo": str(args.repo),
        "checkpoints": str(args.checkpoints),
    }
    return results


def report(results: Mapping[str, object]) -> str:
    """Markdown tables of :func:`run`'s results."""
    t1, e1 = results["triton_c1"], results["eager_c1"]
    lines = [
        f"End to end, {SPEECH_SECONDS:g} s of speech ({TOKENS} tokens), one segment, {results['meta']['date']}, "
        f"{results['meta']['cores']} cores",
        "",
        "| concurrency 1 (medians) | Triton | eager torch | eager / Triton |",
        "|---|---|---|---|",
        f"| latency s | {t1['median_s']:.2f} | {e1['median_s']:.2f} | {e1['median_s'] / t1['median_s']:.2f}x |",
        f"| best run s | {t1['min_s']:.2f} | {e1['min_s']:.2f} | {e1['min_s'] / t1['min_s']:.2f}x |",
        f"| RTF | {t1['rtf']:.3f} | {e1['rtf']:.3f} | |",
    ]
    for stage in (*STAGES, "frontends + glue"):
        a, b = t1["stages_median_s"][stage], e1["stages_median_s"][stage]
        ratio = f"{b / a:.2f}x" if a > 0 else "-"
        lines.append(f"| {stage} s | {a:.3f} | {b:.3f} | {ratio} |")
    lines.append(
        f"| load average (1 min) during runs | {t1['load'][0]:.2f}-{t1['load'][1]:.2f} "
        f"| {e1['load'][0]:.2f}-{e1['load'][1]:.2f} | |"
    )
    if "triton_c1_cached" in results:
        c = results["triton_c1_cached"]
        lines.append(
            f"| Triton, reference cached: latency s | {c['median_s']:.2f} (RTF {c['rtf']:.3f}, load "
            f"{c['load'][0]:.2f}-{c['load'][1]:.2f}, ssl calls {c['stages_median_s']['ssl calls']:.0f}) "
            f"| | |"
        )
    for n in sorted(int(k.removeprefix("triton_c")) for k in results if k.startswith("triton_c") and k[8:].isdigit()):
        if n == 1:
            continue
        t4, e4 = results[f"triton_c{n}"], results[f"eager_c{n}"]
        lines += [
            "",
            f"| concurrency {n} | Triton | eager torch (threads, one process) | Triton / eager |",
            "|---|---|---|---|",
            f"| requests | {t4['requests']} | {e4['requests']} | |",
            f"| throughput req/s | {t4['requests_per_s']:.3f} | {e4['requests_per_s']:.3f} "
            f"| {t4['requests_per_s'] / e4['requests_per_s']:.2f}x |",
            f"| speech seconds per second | {t4['speech_s_per_s']:.2f} | {e4['speech_s_per_s']:.2f} | |",
            f"| latency p50 / max s | {t4['latency_p50_s']:.1f} / {t4['latency_max_s']:.1f} "
            f"| {e4['latency_p50_s']:.1f} / {e4['latency_max_s']:.1f} | |",
            f"| load average before / after | {t4['load_before']:.2f} / {t4['load_after']:.2f} "
            f"| {e4['load_before']:.2f} / {e4['load_after']:.2f} | |",
        ]
    lines.append(f"\neager process peak RSS: {results['eager_peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="exported repository (gsv-triton export)")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="the checkpoints it was exported from (gpt.ckpt, sovits.pth, chinese-hubert-base/, "
        "chinese-roberta-wwm-ext-large/); not needed with --versus",
    )
    parser.add_argument("--versus", type=Path, nargs="+", default=[],
                        help="other repositories to measure beside --repo through Triton (no eager side)")
    parser.add_argument("--url", help="HTTP host:port of a running server (default: start one on free ports)")
    parser.add_argument("--runs", type=int, default=3, help="measured requests per side at concurrency 1")
    parser.add_argument("--cached-runs", type=int, default=1, help="Triton requests with the cached reference")
    parser.add_argument(
        "--per-thread", type=int, default=2, help="requests per thread at each concurrency above 1 (0: skip)"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[CONCURRENCY], help="concurrency levels above 1 to measure"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if not args.versus and args.checkpoints is None:
        parser.error("--checkpoints is required (unless --versus is given)")
    results = run_versions(args) if args.versus else run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), "utf-8")
    print()
    print(report_versions(results) if args.versus else report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
