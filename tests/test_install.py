"""A plain (non-editable) install works outside the checkout: demo checkpoints, export, serve, one voice_clone call.

The project is installed with ``pip install --no-deps`` into a fresh venv, from a copy of its sources (so no
``build/`` folder of the checkout is read or written); a full ``pip install '.[export,serve]'`` takes minutes
(torch, tritonserver), so its dependencies come from the test's own venv instead, through a
``.pth`` line naming that venv's site-packages: a plain path, so the ``.pth`` files there (the editable finder
of the checkout among them) are never run and the checkout stays unimportable. Every command runs from a
temporary directory with the fresh venv's entry points; Triton's Python stubs get the fresh venv through the
exported configs' ``EXECUTION_ENV_PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import CLI_TIMEOUT_S, READY_TIMEOUT_S
from gateway_fixtures import terminate

from gsv_triton.errors import UserError
from gsv_triton.server import free_port, locate_tritonserver

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from (pyproject's packages, package-dir targets and readme).
SOURCES = ("pyproject.toml", "README.md", "gsv_triton", "export", "gateway", "cli", "model_repository")
INSTALL_TIMEOUT_S = 300
# serve_main drains for up to 30 s, then Triton unloads ~10 stubs.
STOP_TIMEOUT_S = 60.0
READY_LINE = "gsv-triton serve: ready"
POLL_S = 0.2
TEXT = "你好，世界。"
PROMPT_TEXT = "参考音频文字"


@dataclass(frozen=True)
class FreshInstall:
    """The fresh venv with the project installed, the environment to run it in and a work directory outside
    the checkout."""

    prefix: Path
    env: dict[str, str]
    workdir: Path
    timings: dict[str, float]

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.prefix / "bin" / "gsv-triton"

    def run(self, *command: str | Path, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(c) for c in command], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def check(self, step: str, *command: str | Path) -> str:
        """Run ``command`` as step ``step`` (timed); its stdout, or a failure with its output."""
        start = time.monotonic()
        done = self.run(*command)
        self.timings[step] = time.monotonic() - start
        assert done.returncode == 0, f"{step} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        return done.stdout


def _copy_sources(dest: Path) -> Path:
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.onnx", "*.onnx.data")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    return dest


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    try:
        locate_tritonserver()
    except UserError as exc:
        pytest.skip(f"no tritonserver: {exc}")
    base = tmp_path_factory.mktemp("install")
    timings: dict[str, float] = {}
    start = time.monotonic()
    prefix = base / "venv"
    # No pip of its own: the test venv's pip installs into it (--python), which is faster than ensurepip.
    venv.create(prefix, with_pip=False)
    # A plain path line: Python runs no .pth file of that folder (the checkout's editable finder stays out).
    (_site_packages(prefix) / "gsv_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", "utf-8")
    timings["venv"] = time.monotonic() - start

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env |= {"VIRTUAL_ENV": str(prefix), "PATH": f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    start = time.monotonic()
    source = _copy_sources(base / "src")
    # --no-build-isolation --no-index: setuptools comes from the test venv, nothing is downloaded.
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install", "-q", "--no-deps",
         "--no-build-isolation", "--no-index", str(source)],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env, cwd=base,
    )  # fmt: skip
    timings["pip install"] = time.monotonic() - start
    assert installed.returncode == 0, installed.stderr[-4000:]
    workdir = base / "work"
    workdir.mkdir()
    return FreshInstall(prefix=prefix, env=env, workdir=workdir, timings=timings)


def test_the_install_is_used_and_not_the_checkout(fresh_install: FreshInstall) -> None:
    code = (
        "import json, sys, gsv_triton, gsv_export.triton_repository as t, gsv_gateway.page as page; "
        "print(json.dumps({'gsv_triton': gsv_triton.__file__, 'templates': str(t.TEMPLATES), "
        "'page': sorted(p.name for p in page.STATIC_DIR.iterdir()), "
        "'finders': [repr(f) for f in sys.meta_path], 'path': sys.path}))"
    )
    found = json.loads(fresh_install.check("imports", fresh_install.python, "-c", code))
    prefix = str(fresh_install.prefix.resolve())
    assert found["gsv_triton"].startswith(prefix), found
    assert found["templates"].startswith(prefix) and Path(found["templates"], "voice_clone", "config.pbtxt").is_file()
    assert found["page"] == sorted(p.name for p in (ROOT / "gateway" / "static").iterdir())  # the web page ships
    assert not any("editable" in finder.lower() for finder in found["finders"]), found["finders"]
    checkout = {ROOT, *(ROOT / name for name in SOURCES)}
    assert not any(Path(p).resolve() in checkout for p in found["path"] if p), found["path"]


@dataclass
class ServeProcess:
    """``gsv-triton serve`` of the fresh install; its output goes to ``log_path``."""

    process: subprocess.Popen
    log_path: Path
    http_port: int

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def wait_ready(self, timeout: float) -> float:
        start = time.monotonic()
        while READY_LINE not in self.log_text():
            assert self.process.poll() is None, (
                f"serve exited with {self.process.returncode}:\n{self.log_text()[-4000:]}"
            )
            assert time.monotonic() - start < timeout, f"not ready in {timeout:g} s:\n{self.log_text()[-4000:]}"
            time.sleep(POLL_S)
        return time.monotonic() - start

    def stop(self) -> int:
        """SIGTERM: serve drains and stops tritonserver itself. SIGKILL (serve and Triton's group) only after
        STOP_TIMEOUT_S, so no server outlives the test."""
        if terminate(self.process, STOP_TIMEOUT_S):
            self._kill_tritonserver()
        return int(self.process.returncode)

    def _kill_tritonserver(self) -> None:
        """serve was killed, so it could not stop its tritonserver: kill that process group (server plus stubs)."""
        for line in self.log_text().splitlines():
            if line.startswith(READY_LINE) and "tritonserver pid " in line:
                pid = int(line.split("tritonserver pid ")[1].split(",")[0])
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def serve(fresh_install: FreshInstall) -> Iterator[Callable[[Path], ServeProcess]]:
    started: list[ServeProcess] = []

    def start(repo: Path) -> ServeProcess:
        ports = [free_port() for _ in range(3)]
        log_path = fresh_install.workdir / "serve.log"
        command = [
            str(fresh_install.cli), "serve", "--model-repository", str(repo), "--address", "127.0.0.1",
            "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]),
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=fresh_install.workdir, env=fresh_install.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(ServeProcess(process, log_path, ports[0]))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_demo_export_serve_and_clone_a_voice(
    fresh_install: FreshInstall, serve: Callable[[Path], ServeProcess], reference_audio: Callable[..., bytes]
) -> None:
    install, cli = fresh_install, fresh_install.cli
    # Relative paths: everything lands in the work directory, outside the checkout.
    install.check("demo-checkpoints", cli, "demo-checkpoints", "--size", "tiny", "--version", "v2", "--out", "ckpt")
    install.check(
        "export", cli, "export", "--gpt", "ckpt/gpt.ckpt", "--sovits", "ckpt/sovits.pth",
        "--hubert", "ckpt/chinese-hubert-base", "--bert", "ckpt/chinese-roberta-wwm-ext-large", "--out", "repo",
    )  # fmt: skip
    repo = install.workdir / "repo"
    config = (repo / "voice_clone" / "config.pbtxt").read_text("utf-8")
    assert f'string_value: "{install.prefix}"' in config  # the stubs run in the fresh venv
    assert "@EXECUTION_ENV@" not in config and "@INTRA_OP_THREADS@" not in config

    start = time.monotonic()
    server = serve(repo)
    server.wait_ready(READY_TIMEOUT_S)
    install.timings["serve (ready)"] = time.monotonic() - start

    (install.workdir / "reference.wav").write_bytes(reference_audio())
    said = install.check(
        "voice_clone", cli, "client", "--url", f"127.0.0.1:{server.http_port}", "--text", TEXT,
        "--reference", "reference.wav", "--prompt-text", PROMPT_TEXT, "--seed", "1", "--out", "out.wav",
    )  # fmt: skip
    assert "wrote out.wav" in said
    audio, rate = sf.read(install.workdir / "out.wav", dtype="float32")
    assert rate == 32000 and audio.size > 0 and np.abs(audio).max() > 0

    start = time.monotonic()
    code = server.stop()
    install.timings["stop"] = time.monotonic() - start
    assert code == 0, server.log_text()[-4000:]
    assert "gsv-triton serve: stopped" in server.log_text()
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in install.timings.items()))
