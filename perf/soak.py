"""Soak (issue 20): many clients for a long time against POST /v1/voice-clone of a real `gsv-triton up`.

Not part of the test suite. What it does, in order:

1. exports the tiny demo checkpoints (``gsv_export``'s own functions; the checkpoints are written once to
   ``artifacts/soak-tiny/checkpoints``) into the work folder, unless ``--model-repository`` names an exported one;
2. starts ``python -m gsv_cli.up`` (tritonserver + gateway) on free loopback ports;
3. makes every request of the mix (texts x seeds) once, alone: its audio is the reference answer;
4. runs ``--clients`` threads for ``--duration`` seconds, each cycling through the mix; an answer whose audio
   differs from the alone answer is a crossed output;
5. a few long requests, one after the other: a text at the length limit cut at every comma (halved until the
   service accepts it, so an output cap that refuses up front still leaves a capped-size request), then an idle
   pause;
6. stops everything it started (also on Ctrl-C, SIGTERM or an error) and checks for leftover shared memory.

RSS (``VmRSS``, and its anonymous and shared-memory parts, from ``/proc/<pid>/status``) of the gateway (the
``up`` process), tritonserver and every Python-backend stub (named by its instance) is taken at each phase
boundary, and a sampler keeps each process's peak. Prints a markdown summary; ``--json`` writes everything.

    .venv/bin/python perf/soak.py                                   # 16 clients, 600 s
    .venv/bin/python perf/soak.py --clients 16 --duration 60 --json perf/results/soak.json --keep-dir /tmp/soak
    .venv/bin/python perf/soak.py --env MALLOC_ARENA_MAX=2          # extra environment for the stack
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from gsv_cli.demo import synthetic_reference
from gsv_triton.server import free_port
from gsv_triton.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINTS = ROOT / "artifacts" / "soak-tiny" / "checkpoints"
READY_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 900.0
SAMPLE_EVERY_S = 0.5
PROMPT_TEXT = "参考音频文字"
# The mix: languages, lengths and punctuation differ; each text is sent with each seed.
TEXTS = (
    ("你好，这是一个语音克隆测试。", "zh"),
    ("今天天气很好。我们去公园散步吧！", "zh"),
    ("Hello world, this is a soak test of the gateway.", "en"),
    ("这个模型在2025年12月6日处理了3.5秒的音频。", "zh"),
    ("我们用 Triton 和 FastAPI 做语音合成。", "auto"),
    ("Short one.", "en"),
)
SEEDS = (1, 2, 3)
LONG_PIECE = "好，"  # one sentence piece per comma: the most pieces a text of this length can make
MIN_LONG_CHARS = 16
STUB_NAME = "triton_python_backend_stub"
SHM_REGION = re.compile(r"triton_python_backend_shm_region_[\w-]+")
STATUS_FIELDS = {"VmRSS": "rss_mb", "RssAnon": "anon_mb", "RssShmem": "shmem_mb"}
Snapshots = dict[str, dict[str, dict[str, float]]]  # label -> process -> {rss_mb, anon_mb, shmem_mb}


# -- processes and memory ------------------------------------------------------------------------
def read_memory(pid: int) -> dict[str, float] | None:
    """{rss_mb, anon_mb, shmem_mb} of ``pid`` (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for key, name in STATUS_FIELDS.items():
        match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        out[name] = round(int(match.group(1)) / 1024, 1) if match else 0.0
    return out


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc: works for any kernel config)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return sorted(found)


def stub_name(args: list[str]) -> str:
    """A stub's instance name (``voice_clone_0_1``) from its command line: argv[1] is the model's model.py."""
    model = Path(args[1]).parent.parent.name if len(args) > 1 else "stub"
    return next((a for a in args[2:] if a.startswith(f"{model}_")), model)


# -- the stack -------------------------------------------------------------------------------------
@dataclass
class Stack:
    """``python -m gsv_cli.up`` in its own session: the gateway runs in it, tritonserver is its child."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    triton_pid: int = 0
    shm_regions: list[str] = field(default_factory=list)

    def processes(self) -> dict[str, int]:
        """{name: pid} of the gateway, tritonserver and every stub alive now."""
        found = {"gateway": self.process.pid}
        if self.triton_pid:
            found["tritonserver"] = self.triton_pid
            for pid in children(self.triton_pid):
                args = cmdline(pid)
                if args and args[0].endswith(STUB_NAME):
                    found[stub_name(args)] = pid
        return found

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


def start_stack(repo: Path, workdir: Path, env: dict[str, str]) -> Stack:
    """Start ``gsv-triton up`` on free ports; the caller must :func:`stop_stack` it (also when this raises)."""
    port = free_port()
    command = [
        sys.executable, "-m", "gsv_cli.up", "--model-repository", str(repo), "--host", "127.0.0.1",
        "--port", str(port), "--triton-http-port", str(free_port()), "--triton-grpc-port", str(free_port()),
        "--triton-metrics-port", str(free_port()), "--voice-dir", str(workdir / "voices"), "--log-level", "WARNING",
    ]  # fmt: skip
    log_path = workdir / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env}, start_new_session=True)  # fmt: skip
    return Stack(process, f"http://127.0.0.1:{port}", log_path)


def wait_ready(stack: Stack, timeout: float = READY_TIMEOUT_S) -> float:
    """Seconds until /health says ok; RuntimeError with the log tail if the stack exits or times out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if stack.process.poll() is not None:
            raise RuntimeError(f"gsv-triton up exited with {stack.process.returncode}:\n{stack.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{stack.url}/health", timeout=2.0).json().get("status") == "ok":
                tritons = [p for p in children(stack.process.pid) if Path(cmdline(p)[0]).name == "tritonserver"]
                stack.triton_pid = tritons[0] if tritons else 0
                stack.shm_regions = sorted({m for pid in stack.processes().values()
                                            for m in SHM_REGION.findall(" ".join(cmdline(pid)))})  # fmt: skip
                return time.monotonic() - started
        time.sleep(1.0)
    raise RuntimeError(f"the stack was not ready after {timeout:.0f} s:\n{stack.log_tail()}")


def stop_stack(stack: Stack) -> int | None:
    """SIGTERM (gateway drains, then Triton); SIGKILL of both process groups if that takes too long."""
    with contextlib.suppress(ProcessLookupError):
        stack.process.send_signal(signal.SIGTERM)
    try:
        stack.process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.process.pid, signal.SIGKILL)
        stack.process.wait()
    if stack.triton_pid and read_memory(stack.triton_pid) is not None:  # tritonserver has its own session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(stack.triton_pid, signal.SIGKILL)
    return stack.process.returncode


# -- memory sampling -------------------------------------------------------------------------------
class MemoryLog:
    """Named snapshots of every process's memory, plus a background sampler keeping each one's peak RSS."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.snapshots: Snapshots = {}
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, name="rss-sampler", daemon=True)

    def sample(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, pid in self.stack.processes().items():
            memory = read_memory(pid)
            if memory is not None:
                out[name] = memory
                self.peaks[name] = max(self.peaks.get(name, 0.0), memory["rss_mb"])
        return out

    def snapshot(self, label: str) -> None:
        self.snapshots[label] = self.sample()
        total = sum(m["rss_mb"] for m in self.snapshots[label].values())
        print(f"[soak] RSS {label}: {total:.0f} MB over {len(self.snapshots[label])} processes", flush=True)

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.sample()

    def __enter__(self) -> MemoryLog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


# -- requests --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One request of the mix, its multipart body built once."""

    name: str
    body: bytes
    content_type: str


def build_case(url: str, name: str, reference: bytes, form: dict[str, str]) -> Case:
    fields = {"prompt_text": PROMPT_TEXT, "prompt_language": "zh", **form}
    request = httpx.Request("POST", url, data=fields, files={"audio": ("reference.wav", reference)})
    return Case(name, request.read(), request.headers["content-type"])


def mix(url: str, reference: bytes) -> list[Case]:
    return [build_case(url, f"text{i}/seed{seed}", reference, {"text": text, "text_language": lang, "seed": str(seed)})
            for i, (text, lang) in enumerate(TEXTS) for seed in SEEDS]  # fmt: skip


@dataclass
class Answer:
    status: int
    seconds: float
    audio_sha256: str = ""
    audio_seconds: float = 0.0
    body_bytes: int = 0
    error: str = ""


def post(client: httpx.Client, url: str, case: Case) -> Answer:
    started = time.perf_counter()
    try:
        response = client.post(url, content=case.body, headers={"content-type": case.content_type})
    except httpx.HTTPError as exc:
        return Answer(0, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:300])
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return Answer(response.status_code, seconds, body_bytes=len(response.content), error=response.text[:300])
    result = response.json()
    digest = hashlib.sha256(result["output_audio_base64"].encode()).hexdigest()
    return Answer(200, seconds, digest, float(result["output_duration"]), len(response.content))


@dataclass
class SoakTally:
    requests: int = 0
    errors: int = 0
    crossed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, case: Case, answer: Answer, expected: str) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[answer.status] += 1
            self.latencies.append(answer.seconds)
            if answer.status != 200:
                self.errors += 1
                if len(self.first_errors) < 5:
                    self.first_errors.append(f"{case.name}: {answer.status} {answer.error}")
            elif answer.audio_sha256 != expected:
                self.crossed += 1


def alone_answers(url: str, cases: list[Case]) -> dict[str, str]:
    """Each case once, one at a time: {case name: audio digest}; the soak's expected answers."""
    expected = {}
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for case in cases:
            answer = post(client, url, case)
            if answer.status != 200:
                raise RuntimeError(f"{case.name} failed alone: {answer.status} {answer.error}")
            expected[case.name] = answer.audio_sha256
    return expected


def run_soak(url: str, cases: list[Case], expected: dict[str, str], clients: int, duration: float) -> SoakTally:
    """``clients`` threads, each cycling through ``cases`` from its own offset until ``duration`` has passed."""
    tally = SoakTally()
    deadline = time.monotonic() + duration
    stop = threading.Event()

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            i = index
            while not stop.is_set() and time.monotonic() < deadline:
                case = cases[i % len(cases)]
                tally.add(case, post(client, url, case), expected[case.name])
                i += 1

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()  # Ctrl-C: let the clients see it while the stack is stopped
    return tally


def long_requests(url: str, reference: bytes, count: int, max_chars: int) -> list[dict[str, object]]:
    """``count`` long requests one after the other; the text is halved until the service accepts it (a cap that
    refuses up front, 4xx), so the requests are as long as the service allows."""
    chars = max_chars
    results: list[dict[str, object]] = []
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        while len(results) < count:
            text = (LONG_PIECE * chars)[: chars - 1] + "。"
            case = build_case(url, f"long{len(results)}", reference,
                              {"text": text, "text_language": "zh", "seed": str(len(results)), "cut_punc": "，"})  # fmt: skip
            answer = post(client, url, case)
            print(f"[soak] long request, {chars} chars: {answer.status}, {answer.audio_seconds:.0f} s of audio, "
                  f"{answer.body_bytes / 1e6:.1f} MB in {answer.seconds:.1f} s", flush=True)  # fmt: skip
            if 400 <= answer.status < 500 and chars // 2 >= MIN_LONG_CHARS and not results:
                chars //= 2
                continue
            results.append({"chars": chars, **asdict(answer)})
    return results


# -- models --------------------------------------------------------------------------------------
def tiny_repository(checkpoints: Path, out: Path) -> Path:
    """The tiny demo checkpoints (written to ``checkpoints`` on first use) exported into ``out``, with the
    project's own functions. The export runs every time (seconds): a cached repository would keep the Triton
    configs of the code that exported it."""
    from gsv_export.build import export_repository
    from gsv_export.demo import write_demo_checkpoints

    if not (checkpoints / "sovits.pth").is_file():
        print(f"[soak] writing tiny demo checkpoints to {checkpoints}", flush=True)
        write_demo_checkpoints(checkpoints, size="tiny", version="v2", seed=0)
    export_repository(gpt=checkpoints / "gpt.ckpt", sovits=checkpoints / "sovits.pth",
                      hubert=checkpoints / "chinese-hubert-base", bert=checkpoints / "chinese-roberta-wwm-ext-large",
                      out=out)  # fmt: skip
    return out


# -- report --------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_table(snapshots: Snapshots, peaks: dict[str, float]) -> str:
    """Markdown: one row per process, one column per snapshot (VmRSS MB), the peak, and sums."""
    labels = list(snapshots)
    names = sorted({n for snap in snapshots.values() for n in snap},
                   key=lambda n: (n not in ("gateway", "tritonserver"), n))  # fmt: skip
    head = ["process", *labels, "peak"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [f"{snapshots[label].get(name, {}).get('rss_mb', 0):.0f}" for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {peaks.get(name, 0):.0f} |")
    for key, title in (("rss_mb", "**sum of VmRSS**"), ("anon_mb", "sum of RssAnon"), ("shmem_mb", "sum of RssShmem")):
        cells = [f"{sum(m[key] for m in snapshots[label].values()):.0f}" for label in labels]
        lines.append(f"| {title} | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def long_summary(results: list[dict]) -> str:
    return "; ".join(f"{r['chars']} chars: {r['status']}, {r['audio_seconds']:.0f} s of audio, "
                     f"{r['body_bytes'] / 1e6:.0f} MB body, {r['seconds']:.1f} s" for r in results)  # fmt: skip


def report(result: dict) -> str:
    soak = result["soak"]
    lines = [
        f"Soak {result['date']}, {os.cpu_count()} cores, repository {result['repository']}: "
        f"{result['clients']} clients for {result['duration_s']:.0f} s, {len(TEXTS) * len(SEEDS)} distinct requests",
        "",
        "| requests | errors | crossed outputs | req/s | p50 s | p95 s | max s | statuses |",
        "|---|---|---|---|---|---|---|---|",
        f"| {soak['requests']} | {soak['errors']} | {soak['crossed']} | {soak['rps']:.2f} | {soak['p50_s']:.2f} | "
        f"{soak['p95_s']:.2f} | {soak['max_s']:.2f} | {soak['statuses']} |",
        "",
        f"Long requests, one after the other: {long_summary(result['long'])}",
        "",
        "RSS in MB (VmRSS; the peak is the highest of the samples taken every 0.5 s; tritonserver's and the stubs' "
        "RssShmem count the same shared-memory regions twice):",
        "",
        rss_table(result["rss_mb"], result["peak_rss_mb"]),
        "",
        f"Stopped with exit code {result['exit_code']}; shared-memory regions left in /dev/shm: {result['leftover_shm']}",
    ]  # fmt: skip
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------
def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of the soak phase")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep-dir", type=Path, help="work folder (logs, reference, voices) to keep; default: a "
                                                      "temporary one, removed at the end")  # fmt: skip
    parser.add_argument("--model-repository", type=Path, help="an exported repository (default: tiny demo models)")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS,
                        help="tiny demo checkpoints (written on first use), exported into the work folder each run")  # fmt: skip
    parser.add_argument("--long", type=int, default=3, help="long requests after the soak")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle before the last RSS sample")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment of the stack"
    )
    return parser.parse_args(argv)


def soak(args: argparse.Namespace, workdir: Path) -> dict:
    repo = args.model_repository or tiny_repository(args.checkpoints, workdir / "repository")
    env = dict(item.split("=", 1) for item in args.env)
    reference = synthetic_reference(workdir / "reference.wav").read_bytes()
    stack = start_stack(repo, workdir, env)
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "repository": str(repo), "env": env,
                                 "clients": args.clients, "duration_s": args.duration}  # fmt: skip
    memory = MemoryLog(stack)
    try:
        print(f"[soak] stack ready in {wait_ready(stack):.0f} s at {stack.url} (log {stack.log_path})", flush=True)
        url = f"{stack.url}/v1/voice-clone"
        with memory:
            memory.snapshot("start")
            cases = mix(url, reference)
            expected = alone_answers(url, cases)
            memory.snapshot("after warm-up")
            started = time.monotonic()
            tally = run_soak(url, cases, expected, args.clients, args.duration)
            elapsed = time.monotonic() - started
            memory.snapshot("end of soak")
            result["soak"] = {
                "requests": tally.requests, "errors": tally.errors, "crossed": tally.crossed,
                "statuses": dict(tally.statuses), "rps": tally.requests / elapsed, "seconds": elapsed,
                "p50_s": statistics.median(tally.latencies) if tally.latencies else 0.0,
                "p95_s": percentile(tally.latencies, 95), "max_s": max(tally.latencies, default=0.0),
                "first_errors": tally.first_errors,
            }  # fmt: skip
            print(f"[soak] {tally.requests} requests, {tally.errors} errors, {tally.crossed} crossed", flush=True)
            result["long"] = long_requests(url, reference, args.long, Settings().max_text_chars)
            memory.snapshot("after long requests")
            time.sleep(args.idle)
            memory.snapshot(f"after {args.idle:.0f} s idle")
    finally:
        result["exit_code"] = stop_stack(stack)
        result["leftover_shm"] = [r for r in stack.shm_regions if Path("/dev/shm", r).exists()]
    result["rss_mb"] = memory.snapshots
    result["peak_rss_mb"] = memory.peaks
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = args.keep_dir or Path(tempfile.mkdtemp(prefix="gsv-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = soak(args, workdir)
    finally:
        if args.keep_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 1 if result["soak"]["errors"] or result["soak"]["crossed"] else 0


if __name__ == "__main__":
    sys.exit(main())
