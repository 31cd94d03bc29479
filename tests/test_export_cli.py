"""`gsv-triton demo-checkpoints` + `gsv-triton export` as a user runs them (subprocesses, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gsv_export.onnx_utils import ort_session

CLI = [sys.executable, "-m", "gsv_cli"]
EXPECTED_FILES = {
    "ssl": "ssl/1/ssl.onnx",
    "bert": "bert/1/bert.onnx",
    "t2s_prefill": "t2s/1/t2s_prefill.onnx",
    "t2s_step": "t2s/1/t2s_step.onnx",
    "vq_encode": "vq_encode/1/vq_encode.onnx",
    "ref_encoder": "ref_encoder/1/ref_encoder.onnx",
    "sovits_decode": "sovits_decode/1/sovits_decode.onnx",
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=900)


def export_args(ckpt: Path, out: Path) -> list[str]:
    return [
        "export", "--gpt", str(ckpt / "gpt.ckpt"), "--sovits", str(ckpt / "sovits.pth"),
        "--hubert", str(ckpt / "chinese-hubert-base"), "--bert", str(ckpt / "chinese-roberta-wwm-ext-large"),
        "--out", str(out),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, str]:
    ckpt = tmp_path_factory.mktemp("ckpt")
    repo = tmp_path_factory.mktemp("repo")
    demo = run_cli("demo-checkpoints", "--size", "tiny", "--version", "v2", "--seed", "3", "--out", str(ckpt))
    assert demo.returncode == 0, demo.stderr
    export = run_cli(*export_args(ckpt, repo))
    assert export.returncode == 0, export.stderr
    return ckpt, repo, export.stdout


def test_export_writes_every_network_into_the_triton_layout(exported) -> None:
    _, repo, stdout = exported
    manifest = json.loads((repo / "gsv_manifest.json").read_text())
    assert manifest["files"] == EXPECTED_FILES
    assert manifest["symbol_version"] == "v2" and manifest["sampling_rate"] == 32000
    for rel in EXPECTED_FILES.values():
        assert (repo / rel).stat().st_size > 0
    assert (repo / "bert/1/vocab.txt").is_file()
    # one progress line per submodel, with its time
    assert stdout.count(" done in ") >= 7


def test_exported_graphs_run_in_onnxruntime(exported) -> None:
    _, repo, _ = exported
    ssl = ort_session(repo / EXPECTED_FILES["ssl"]).run(None, {"wav16k": np.zeros((1, 16000 + 9600), np.float32)})[0]
    assert ssl.shape == (1, 768, (16000 + 9600 - 400) // 320 + 1)
    codes = ort_session(repo / EXPECTED_FILES["vq_encode"]).run(None, {"ssl": ssl})[0]
    assert codes.shape == (1, ssl.shape[2] // 2) and codes.dtype == np.int64


def test_a_bad_checkpoint_gets_one_line(exported, tmp_path: Path) -> None:
    ckpt, _, _ = exported
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    for name in ("gpt.ckpt", "sovits.pth"):
        (bogus / name).write_bytes(b"not a checkpoint at all")
    for name in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (bogus / name).symlink_to(ckpt / name)
    result = run_cli(*export_args(bogus, tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpt.ckpt" in lines[0] and "Traceback" not in result.stderr


def test_gpt_passed_as_sovits_gets_one_line(exported, tmp_path: Path) -> None:
    ckpt, _, _ = exported
    args = export_args(ckpt, tmp_path / "out")
    args[args.index("--sovits") + 1] = str(ckpt / "gpt.ckpt")
    result = run_cli(*args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_gpu_target_without_tensorrt_stops_with_a_clear_message(exported, tmp_path: Path) -> None:
    ckpt, _, _ = exported
    result = run_cli(*export_args(ckpt, tmp_path / "out"), "--target", "gpu")
    assert result.returncode == 2
    assert "TensorRT" in result.stderr and "Traceback" not in result.stderr
