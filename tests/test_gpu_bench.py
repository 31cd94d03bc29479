"""perf/gpu_bench.sh and perf/gpu_bench.py on the CPU: the guards that make one device call yield every figure.

* the CPU fallback runs every phase against a real tritonserver and writes its results; a phase forced to fail
  (GSV_BENCH_FAIL_PHASE) is recorded with its reason while the others still run (slow: one server run);
* a deadline of a few seconds stops the script on time with its results written, also when a phase hangs
  (the watchdog);
* the pre-flight fails fast with one line when an import fails (an old grpcio, as tritonclient 2.73 refuses it)
  or when neither the host nor a bundle has the packages;
* the small parsers: nvidia-smi's [N/A], instance counts, finite-audio checks, the TensorRT version gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))
import gpu_bench  # noqa: E402

SCRIPT = ROOT / "perf" / "gpu_bench.sh"
TINY_ARGS = "--tokens 20 --first-tokens 8 --runs 1 --concurrency 1,4 --per-thread 1 --t2s-batches 1,2"
SCRIPT_TIMEOUT_S = 900


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return {**os.environ, "GSV_PYTHON": sys.executable, "GSV_BENCH_WORK": str(tmp_path / "work"), "OUT": str(out),
            "GSV_WHEELS": str(tmp_path / "no_wheels"), **extra}  # fmt: skip


def _results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "gpu_bench.json").read_text())


@pytest.mark.slow
def test_cpu_fallback_runs_every_phase_and_survives_a_failing_one(tmp_path: Path) -> None:
    """One real run: tiny checkpoints, gpu-torch export, tritonserver; first_audio forced to fail, every other
    phase still runs and gives its figures, the server log and the whole output land in $OUT."""
    if torch.cuda.is_available():
        pytest.skip("this host has CUDA: the script would run the full-size GPU benchmark")
    env = _env(tmp_path, GSV_BENCH_ARGS=TINY_ARGS, GSV_BENCH_FAIL_PHASE="first_audio")
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=SCRIPT_TIMEOUT_S)
    assert run.returncode == 1, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"  # 1: a phase failed
    assert "no CUDA: CPU fallback" in run.stdout and "preflight OK" in run.stdout
    results = _results(tmp_path)
    phases = results["phases"]
    assert phases["first_audio"] == {**phases["first_audio"], "status": "failed"}
    assert "forced failure (GSV_BENCH_FAIL_PHASE)" in phases["first_audio"]["error"]
    assert phases["gpu_tests"]["status"] == "skipped" and "no CUDA" in phases["gpu_tests"]["reason"]
    others = [p for p in gpu_bench.PHASES if p not in ("first_audio", "gpu_tests")]
    assert {p: phases[p]["status"] for p in ["preflight", *others]} == dict.fromkeys(["preflight", *others], "ok")
    fig = results["figures"]
    assert "first_audio" not in fig
    rtf = fig["rtf"]
    assert rtf["rtf"] > 0 and rtf["rtf"] == pytest.approx(rtf["latency_s"][0] / rtf["audio_s"][0])
    assert rtf["audio_s"][0] > 0  # RTF over the returned audio
    throughput = fig["throughput"]
    assert throughput["warmed_instances"] >= 1 and set(throughput["by_concurrency"]) == {"1", "4"}
    assert throughput["by_concurrency"]["4"]["tokens"] == 4 * 20
    assert fig["gpu_memory"] == {"nvidia_smi": None}
    alone = fig["t2s_alone"]
    assert alone["device"] == "cpu" and alone["batch2"]["steps"] >= 19
    assert 0 < alone["batch2"]["step_ms"] and 0 < alone["batch2"]["prefill_ms"]
    assert set(fig["engine_alone"]["by_concurrency"]) == {"1", "2"}
    assert fig["graphs_vs_eager"]["agreeing_prefix"] == fig["graphs_vs_eager"]["tokens"] == 20
    out = tmp_path / "out"
    markdown = (out / "gpu_bench.md").read_text()
    assert "| first_audio | failed |" in markdown and "| RTF at c=1" in markdown
    assert "voice_clone" in (out / "tritonserver.log").read_text()
    assert "phase engine_alone" in (out / "gpu_bench.log").read_text()


def test_a_deadline_of_seconds_stops_the_script_with_its_results(tmp_path: Path) -> None:
    """The deadline passes during the pre-flight: setup is skipped, gpu_bench.py records why, skips every phase
    and the script ends within seconds of the deadline, results written."""
    env = _env(tmp_path, GSV_BENCH_DEADLINE_S="3", GSV_BENCH_ARGS=TINY_ARGS)
    start = time.monotonic()
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=SCRIPT_TIMEOUT_S)
    wall = time.monotonic() - start
    assert run.returncode == 1, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    results = _results(tmp_path)
    phases = results["phases"]
    assert phases["preflight"]["status"] == "ok"
    assert phases["setup"]["status"] == "failed" and "deadline" in phases["setup"]["error"]
    assert {phases[p]["status"] for p in gpu_bench.PHASES} == {"skipped"}
    assert "deadline" in phases["rtf"]["reason"] or "server_start" in phases["rtf"]["reason"]
    assert not (tmp_path / "work" / "checkpoints-tiny").exists(), "no slow step started after the deadline"
    assert wall < 60, f"took {wall:.0f} s"


def test_the_watchdog_ends_a_hanging_phase_at_the_deadline(tmp_path: Path) -> None:
    """A phase that never returns: at the deadline the results are written (that phase marked interrupted, the
    rest skipped) and the process exits 3, instead of consuming the device call."""
    out = tmp_path / "out"
    env = {**os.environ, "GSV_BENCH_FAIL_PHASE": "t2s_alone:hang"}
    command = [sys.executable, str(ROOT / "perf" / "gpu_bench.py"), "--repo", str(tmp_path / "none"), "--out", str(out),
               "--deadline-s", "15", "--skip-tests"]  # fmt: skip
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    wall = time.monotonic() - start
    assert run.returncode == 3, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    phases = json.loads((out / "gpu_bench.json").read_text())["phases"]
    assert phases["server_start"]["status"] == "failed" and "no repository" in phases["server_start"]["error"]
    assert phases["rtf"] == {**phases["rtf"], "status": "skipped", "reason": "server_start failed"}
    assert phases["t2s_alone"] == {"status": "failed", "error": "interrupted by the deadline"}
    assert phases["engine_alone"]["status"] == phases["gpu_tests"]["status"] == "skipped"
    assert "| t2s_alone | failed |" in (out / "gpu_bench.md").read_text()
    assert wall < 50, f"took {wall:.0f} s"


def test_preflight_fails_in_one_line_when_the_grpc_client_cannot_import(tmp_path: Path) -> None:
    """An old grpcio (here a stand-in package saying 1.60.0 first on the path): tritonclient 2.73 refuses it at
    import; the pre-flight must say so in one line and exit 2, before anything slow."""
    fake = tmp_path / "old_host" / "grpc"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '1.60.0'\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "old_host")}
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "perf" / "gpu_bench.py"), "--preflight", "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    line = [x for x in run.stdout.splitlines() if x.startswith("preflight FAILED")]
    assert len(line) == 1 and "tritonclient.grpc" in line[0], run.stdout
    assert json.loads((out / "gpu_bench.json").read_text())["phases"]["preflight"]["status"] == "failed"


def test_preflight_fails_fast_without_packages_or_bundle(tmp_path: Path) -> None:
    """A host Python without the serving packages and no bundle carried: one line naming the fix, exit 2."""
    bare = next((p for p in ("/usr/bin/python3", "/bin/python3") if Path(p).is_file()), None)
    if bare is None or subprocess.run([bare, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("no Python without torch on this host")
    env = _env(tmp_path, GSV_PYTHON=bare)
    start = time.monotonic()
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "FAILED:" in run.stdout and "no bundle in" in run.stdout and "perf/gpu_wheels.sh" in run.stdout
    assert _results(tmp_path)["phases"]["preflight"]["status"] == "failed"
    assert time.monotonic() - start < 30


def test_preflight_fails_when_the_named_bundle_is_absent(tmp_path: Path) -> None:
    checks = gpu_bench.preflight(None)
    assert checks["imports"] == len(gpu_bench.PREFLIGHT_MODULES) and checks["model_modules"] == 7
    assert "triton_python_backend_utils" not in sys.modules  # the stand-in is gone again
    with pytest.raises(gpu_bench.PhaseFailed, match="bundle .* is missing"):
        gpu_bench.preflight(tmp_path / "gpu_site-py3.12.tar.xz")


def test_nvidia_smi_fields_na_do_not_raise() -> None:
    parsed = gpu_bench.parse_gpu_query("NVIDIA H100 80GB HBM3, [N/A], 81559\n", "123, [N/A]\n456, 2048\n")
    assert parsed == {"gpu": "NVIDIA H100 80GB HBM3", "used_mib": None, "total_mib": 81559, "processes_mib": [2048]}
    assert gpu_bench.parse_gpu_query("", "")["error"]
    assert "n/a / 81559 MiB" in gpu_bench.report({"figures": {"gpu_memory": {"nvidia_smi": parsed}}})


def test_instance_counts_and_audio_checks(tmp_path: Path) -> None:
    (tmp_path / "voice_clone").mkdir()
    (tmp_path / "voice_clone" / "config.pbtxt").write_text("instance_group [ { kind: KIND_CPU, count: 16 } ]\n")
    assert gpu_bench.instance_count(tmp_path, "voice_clone") == 16
    assert gpu_bench.instance_count(tmp_path, "voice_clone_stream") == 0
    audio = np.zeros(100, dtype=np.float32)
    assert gpu_bench.check_audio(audio, "x") is audio
    audio[[3, 7]] = [np.nan, np.inf]
    with pytest.raises(gpu_bench.PhaseFailed, match="2 of 100 audio samples are NaN or inf"):
        gpu_bench.check_audio(audio, "voice_clone")
    with pytest.raises(gpu_bench.PhaseFailed, match="no audio"):
        gpu_bench.check_audio(np.zeros(0, dtype=np.float32), "voice_clone")
    assert gpu_bench.forced_failures("rtf, t2s_alone:hang,") == {"rtf": "fail", "t2s_alone": "hang"}


def test_tensorrt_other_than_10_is_refused_in_one_line() -> None:
    from gsv_export.tensorrt_build import check_tensorrt_version
    from gsv_triton.errors import UserError

    check_tensorrt_version("10.13.3.9")
    for version in ("11.0.0", "9.2.0", "dev"):
        with pytest.raises(UserError, match="TensorRT"):
            check_tensorrt_version(version)


def test_wheels_check_before_a_device_call(tmp_path: Path) -> None:
    """perf/gpu_wheels.sh --check: the bundle must exist, hold tritonserver, its stub and the gRPC client with
    grpcio/protobuf/ml_dtypes, and fit with the working tree in what a device call carries."""
    import tarfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    check = ["bash", str(ROOT / "perf" / "gpu_wheels.sh"), "--check", str(wheels)]
    run = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no " in run.stderr and "run perf/gpu_wheels.sh first" in run.stderr
    members = ["pytriton/tritonserver/bin/tritonserver", "pytriton/tritonserver/python_backend_stubs/3.12/"
               "triton_python_backend_stub", "grpc/__init__.py", "google/protobuf/__init__.py", "ml_dtypes/__init__.py",
               "tritonclient/grpc/__init__.py", "numpy/__init__.py"]  # fmt: skip
    for present in (members[:2] + members[3:], members):
        site = tmp_path / "site"
        for name in present:
            (site / name).parent.mkdir(parents=True, exist_ok=True)
            (site / name).write_text("")
        with tarfile.open(wheels / "gpu_site-py3.12.tar.xz", "w:xz") as tar:
            tar.add(site, arcname="site")
        run = subprocess.run(check, capture_output=True, text=True, timeout=60)
        if present is members:
            assert run.returncode == 0 and "MiB of 64" in run.stdout, run.stdout + run.stderr
        else:
            assert run.returncode == 2 and "lacks site/grpc/__init__.py" in run.stderr
