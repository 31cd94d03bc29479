"""Session fixtures shared by every test that needs exported models or a running tritonserver.

* ``tiny_checkpoints``: tiny random demo checkpoints in upstream format (``gsv-triton demo-checkpoints``);
* ``tiny_model_repository``: those exported (``gsv-triton export``, which also installs the Triton configs of
  every model, the extra ones such as ``voice_encode`` included);
* ``triton_server``: a real tritonserver on free ports serving that repository, log captured to a file,
  stopped at the end of the session (:class:`TritonEndpoints`);
* ``start_tritonserver``: the same start for another repository, ``start_tritonserver(repo, log_path)``;
* ``reference_audio``: a factory of small, valid reference clips (encoded WAV bytes);
* ``browser`` (per module) and ``page`` (per test): headless Chromium driven by Playwright, and a fresh tab of
  it (tests/browser_fixtures.py has the helpers).

Each fixture is built once per session, on first use, so tests that do not ask for them pay nothing. One
fixture applies to every test: ``GSV_VOICE_DIR`` names a session folder, so a gateway a test starts (in
process or as a subprocess) stores its voices there and never in the user's data directory.

Hygiene (issue 20): a test run must leave no Triton shared-memory region, cancel flag or stub process behind.
What exists at the start is noted; whatever of that kind appears during the run and is still there at the end
(after a grace period for stubs on their way out) fails the run.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from browser_fixtures import CHROMIUM_ARGS, VIEWPORT, chromium_path
from playwright.sync_api import Browser, Page, sync_playwright

from gsv_triton.backend.cancel import FLAG_PREFIX
from gsv_triton.errors import UserError
from gsv_triton.server import TritonServer, free_port, locate_tritonserver
from gsv_triton.server.stubs import SHM_DIR, STUB_NAME
from gsv_triton.server.tritonserver import SHM_PREFIX

CLI = [sys.executable, "-m", "gsv_cli"]
CLI_TIMEOUT_S = 900
# Loading ~10 Python stubs (plus the text frontend warm-up) on 2 busy cores.
READY_TIMEOUT_S = 300.0
REFERENCE_RATE = 32_000
DEMO_SEED = 0


# Triton's default region prefix, ours, and the cancel flags.
LEFTOVER_PREFIXES = ("triton_python_backend_shm_region_", SHM_PREFIX, FLAG_PREFIX)
STUB_EXIT_GRACE_S = 15.0
_at_start: dict[str, set] = {}


def _regions() -> set[str]:
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(LEFTOVER_PREFIXES)}


def _stub_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            if os.path.basename(argv0) == STUB_NAME.encode():
                pids.add(int(entry.name))
    return pids


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    _at_start["regions"], _at_start["stubs"] = _regions(), _stub_pids()
    # A run stopped by SIGTERM (``timeout``, CI cancelling) tears down like Ctrl-C, so the session's tritonservers
    # and gateways are stopped by their fixtures instead of outliving pytest.
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    deadline = time.monotonic() + STUB_EXIT_GRACE_S
    while (stubs := _stub_pids() - _at_start["stubs"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    regions = sorted(_regions() - _at_start["regions"])
    if stubs or regions:
        print(f"\nhygiene: this run left {len(stubs)} stub process(es) {sorted(stubs)[:5]} and {len(regions)} "
              f"shared-memory region(s) {regions[:5]} behind", file=sys.stderr)  # fmt: skip
        if session.exitstatus == 0:
            session.exitstatus = 1


@dataclass(frozen=True)
class TritonEndpoints:
    """A running test server: ``host:port`` URLs for tritonclient, the repository and the server log."""

    http_url: str
    grpc_url: str
    metrics_url: str
    repo: Path
    log_path: Path
    server: TritonServer

    def log_tail(self) -> str:
        return self.server.log_tail()


@pytest.fixture(scope="session", autouse=True)
def voice_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """GSV_VOICE_DIR for the whole session (the gateway creates its voice directory at start; the default is
    under the user's home). Tests that need a library of their own still pass ``voice_dir`` / the variable."""
    folder = tmp_path_factory.mktemp("voices")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GSV_VOICE_DIR", str(folder))
        yield folder


def _run_cli(*args: str) -> None:
    run = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if run.returncode != 0:
        raise RuntimeError(f"gsv-triton {args[0]} failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with gpt.ckpt, sovits.pth, chinese-hubert-base/ and chinese-roberta-wwm-ext-large/ (tiny, v2)."""
    out = tmp_path_factory.mktemp("tiny_checkpoints")
    _run_cli("demo-checkpoints", "--size", "tiny", "--version", "v2", "--seed", str(DEMO_SEED), "--out", str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_repository(tiny_checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoints exported into a complete Triton model repository (CPU target)."""
    repo = tmp_path_factory.mktemp("tiny_repository")
    ckpt = tiny_checkpoints
    _run_cli(
        "export", "--gpt", str(ckpt / "gpt.ckpt"), "--sovits", str(ckpt / "sovits.pth"),
        "--hubert", str(ckpt / "chinese-hubert-base"), "--bert", str(ckpt / "chinese-roberta-wwm-ext-large"),
        "--out", str(repo),
    )  # fmt: skip
    return repo


def _start_tritonserver(repo: Path, log_path: Path) -> TritonServer:
    """A ready tritonserver on free ports serving ``repo`` (killed if it does not get ready); the caller stops it.
    Skips the calling test where no tritonserver is installed."""
    try:
        install = locate_tritonserver()
    except UserError as exc:
        pytest.skip(f"no tritonserver: {exc}")
    server = TritonServer(install)
    server.start(repo, free_port(), free_port(), free_port(), log_path=log_path)
    try:
        server.wait_ready(READY_TIMEOUT_S)
    except BaseException:  # not ready, or interrupted while loading: never leave the server behind
        server.kill()
        raise
    return server


@pytest.fixture(scope="session")
def start_tritonserver() -> Callable[[Path, Path], TritonServer]:
    """``start_tritonserver(repo, log_path) -> TritonServer``: as ``triton_server`` starts it; the test stops it."""
    return _start_tritonserver


@pytest.fixture(scope="session")
def triton_server(tiny_model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonEndpoints]:
    """tritonserver serving ``tiny_model_repository``; skipped where no tritonserver is installed."""
    log_path = tmp_path_factory.mktemp("triton_log") / "tritonserver.log"
    server = _start_tritonserver(tiny_model_repository, log_path)
    endpoints = TritonEndpoints(
        http_url=server.http_endpoint,
        grpc_url=server.grpc_endpoint,
        metrics_url=server.metrics_url,
        repo=tiny_model_repository,
        log_path=log_path,
        server=server,
    )
    try:
        yield endpoints
    finally:
        code = server.stop()
        if code != 0:
            print(f"tritonserver exited with {code}; last log lines:\n{server.log_tail()}", file=sys.stderr)


def make_reference(seed: int = 0, seconds: float = 3.5, rate: int = REFERENCE_RATE) -> bytes:
    """A voiced-sounding test clip (amplitude-modulated tone plus noise) as 16-bit WAV bytes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120.0 + 40.0 * seed
    tone = 0.3 * np.sin(2 * np.pi * pitch * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    audio = (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def reference_audio() -> Callable[..., bytes]:
    """``reference_audio(seed=0, seconds=3.5) -> bytes``: a valid reference clip, different per seed."""
    return make_reference


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fake microphone; skipped (saying why) only where it is not installed."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: Debian's chromium package is missing and this user cannot install it "
                    "(scripts/setup.sh installs it when run as root: apt-get install chromium)")  # fmt: skip
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab in its own context (its own session storage). The test fails on any uncaught script error
    in the page."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, errors
