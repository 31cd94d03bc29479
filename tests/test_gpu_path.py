"""The GPU path (``export --target gpu-torch`` + the torch runtime of the Triton models), exercised on the CPU.

On a host without CUDA the same repository runs our torch modules in float32 on the CPU; these tests check it
against the onnxruntime repository of the same tiny checkpoints: every network within the fp32 parity tolerance,
the T2S loop token for token, and a real tritonserver answering ``voice_clone`` from the torch repository with the
tokens of the onnxruntime pipeline. The CUDA side (float16, CUDA graphs) runs in perf/gpu_bench.sh on a GPU host;
tests/test_gpu_bench.py runs that script's CPU fallback.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export_cli import export_args, run_cli

from gsv_export.onnx_utils import FP32_REL_TOL, ort_session, relative_error
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.backend.torch_device import resolve_placement
from gsv_triton.backend.torch_networks import load_network, load_t2s_runner
from gsv_triton.networks.saved import NETWORK_FILE, WEIGHTS_FILE

PLAIN = ("ssl", "bert", "vq_encode", "ref_encoder", "sovits_decode")
TORCH_MODELS = (*PLAIN, "t2s")
# End-to-end audio passes HiFi-GAN and peak normalisation; the networks themselves meet FP32_REL_TOL.
AUDIO_REL_TOL = 1e-3
MAX_TOKENS = 30
CLI_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def torch_repository(tiny_checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("torch_repository")
    run = run_cli(*export_args(tiny_checkpoints, repo), "--target", "gpu-torch")
    assert run.returncode == 0, f"gsv-triton export failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return repo


def test_gpu_torch_export_writes_torch_networks_and_configs(torch_repository: Path) -> None:
    repo = torch_repository
    manifest = json.loads((repo / "gsv_manifest.json").read_text())
    assert manifest["target"] == "gpu-torch" and manifest["runtime"] == "torch"
    assert not list(repo.rglob("*.onnx")), "the torch target writes no ONNX"
    assert (repo / "bert/1/vocab.txt").is_file()
    for model in TORCH_MODELS:
        assert (repo / model / "1" / NETWORK_FILE).is_file() and (repo / model / "1" / WEIGHTS_FILE).is_file()
    for model in (*PLAIN, "t2s_engine"):
        config = (repo / model / "config.pbtxt").read_text()
        assert 'key: "runtime", value: { string_value: "torch" }' in config
        assert "onnx_file" not in config and "step_file" not in config and "@" not in config
    engine = (repo / "t2s_engine/config.pbtxt").read_text()
    assert "decoupled: true" in engine and "count: 1 " in engine and (repo / "t2s_engine/1/model.py").is_file()
    forward = (repo / "t2s/config.pbtxt").read_text()
    assert 'string_value: "t2s_engine"' in forward and "runtime" not in forward and "count: 4 " in forward
    assert 'string_value: "float32"' in (repo / "vq_encode/config.pbtxt").read_text()
    assert "runtime" not in (repo / "voice_clone/config.pbtxt").read_text()


def _network_inputs(name: str, repo_manifest: dict, gen: np.random.Generator) -> dict[str, np.ndarray]:
    inter, gin = repo_manifest["sovits"]["inter_channels"], repo_manifest["sovits"]["gin_channels"]
    if name == "ssl":
        return {"wav16k": gen.uniform(-0.5, 0.5, (1, 16_000)).astype(np.float32)}
    if name == "bert":
        ids = gen.integers(200, 3000, (2, 9)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[1, 5:] = 0
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    if name == "vq_encode":
        return {"ssl": gen.standard_normal((1, 768, 25)).astype(np.float32)}
    if name == "ref_encoder":
        return {"spec": gen.uniform(0, 2, (1, 1025, 60)).astype(np.float32)}
    return {
        "codes": gen.integers(0, 1024, (1, 12)).astype(np.int64),
        "phone_ids": gen.integers(0, 300, (1, 9)).astype(np.int64),
        "ge": gen.standard_normal((1, gin, 1)).astype(np.float32),
        "noise": gen.standard_normal((1, inter, 24)).astype(np.float32),
        "noise_scale": np.array([0.5], dtype=np.float32),
    }


@pytest.mark.parametrize("name", PLAIN)
def test_torch_networks_match_the_onnx_graphs(torch_repository: Path, tiny_model_repository: Path, name) -> None:
    torch.set_num_threads(1)
    manifest = json.loads((torch_repository / "gsv_manifest.json").read_text())
    network = load_network(torch_repository / name / "1", resolve_placement("cpu"))
    session = ort_session(tiny_model_repository / name / "1" / f"{name}.onnx", threads=1)
    assert [p.name for p in network.get_inputs()] == [i.name for i in session.get_inputs()]
    feeds = _network_inputs(name, manifest, np.random.default_rng(5))
    expected = session.run(None, feeds)[0]
    got = network.run(None, feeds)[0]
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if name == "vq_encode":
        np.testing.assert_array_equal(got, expected)
    else:
        assert relative_error(expected, got) < FP32_REL_TOL


def test_torch_t2s_from_the_repository_equals_the_onnx_loop(torch_repository, tiny_model_repository) -> None:
    torch.set_num_threads(1)
    runner = load_t2s_runner(torch_repository / "t2s" / "1", resolve_placement("cpu"))
    folder = tiny_model_repository / "t2s" / "1"
    onnx = T2SRunner(ort_session(folder / "t2s_prefill.onnx", threads=1), ort_session(folder / "t2s_step.onnx", threads=1))
    rng = np.random.default_rng(2)
    phones = [rng.integers(0, 700, n).astype(np.int64) for n in (10, 6)]
    berts = [rng.standard_normal((1024, len(p))).astype(np.float32) for p in phones]
    prompt = rng.integers(0, 1024, 8).astype(np.int64)
    for kwargs in (dict(top_k=1), dict(top_k=15, temperature=0.9, seed=[3, 4])):
        expected = onnx.generate(phones, berts, prompt, max_new_tokens=MAX_TOKENS, **kwargs)
        got = runner.generate(phones, berts, prompt, max_new_tokens=MAX_TOKENS, **kwargs)
        for x, y in zip(expected, got, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_tritonserver_serves_voice_clone_from_the_torch_repository(
    torch_repository, tiny_model_repository, reference_audio, start_tritonserver, tmp_path
) -> None:
    """voice_clone through a real tritonserver on the torch runtime (CPU: t2s forwards to t2s_engine) gives the
    onnxruntime pipeline's tokens, and concurrent requests (merged by the engine) their sequential audio."""
    from gsv_triton.backend.ort_backend import OrtBackend
    from gsv_triton.backend.pipeline import VoiceClonePipeline
    from gsv_triton.backend.requests import parse_request
    from gsv_triton.client import synthesize

    ref = reference_audio(2)
    text, prompt_text = "你好，世界。Hello world.", "这是参考音频"
    options = dict(seed=21, max_new_tokens=MAX_TOKENS, cut_punc="，。")
    server = start_tritonserver(torch_repository, tmp_path / "triton.log")

    def call(seed: int) -> tuple[np.ndarray, int]:
        return synthesize(server.grpc_endpoint, "grpc", text=text, reference_audio=ref, prompt_text=prompt_text,
                          **(options | {"seed": seed}))  # fmt: skip

    try:
        audio, rate = call(options["seed"])
        seeds = [31, 32, 33]
        alone = [call(seed)[0] for seed in seeds]
        with ThreadPoolExecutor(len(seeds)) as pool:  # t2s_engine decodes these requests in shared steps
            together = list(pool.map(lambda seed: call(seed)[0], seeds))
    finally:
        server.stop()
    assert "t2s_engine: torch runtime on cpu" in (tmp_path / "triton.log").read_text()
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)

    def strings(**values: str | bytes) -> dict[str, np.ndarray]:
        return {k: np.array([v if isinstance(v, bytes) else v.encode()], dtype=object) for k, v in values.items()}

    inputs = strings(text=text, text_language="zh", prompt_text=prompt_text, prompt_language="zh",
                     reference_audio=ref, cut_punc=options["cut_punc"])
    inputs |= {"seed": np.array([21], dtype=np.int64), "max_new_tokens": np.array([MAX_TOKENS], dtype=np.int32)}
    pipeline = VoiceClonePipeline.from_repository(OrtBackend(tiny_model_repository), tiny_model_repository)
    local = pipeline.synthesize(parse_request(inputs))
    assert rate == local.sample_rate
    assert audio.shape == local.audio.shape, "same tokens per piece give the same length"
    assert relative_error(local.audio, audio) < AUDIO_REL_TOL


def test_torch_runtime_config_rewrites_a_template() -> None:
    from gsv_export.triton_repository import (
        TEMPLATES,
        set_instance_count,
        t2s_engine_config,
        t2s_forward_config,
        torch_runtime_config,
    )

    template = (TEMPLATES / "t2s" / "config.pbtxt").read_text()
    engine = t2s_engine_config(template)
    assert "count: 1 " in engine and "prefill_file" not in engine and "step_file" not in engine
    assert 'key: "runtime", value: { string_value: "torch" }' in engine
    assert "max_batch_size: 0\nmodel_transaction_policy { decoupled: true }" in engine
    forward = t2s_forward_config(template, 16)
    assert "count: 16 " in forward and 'key: "forward_to"' in forward and "runtime" not in forward
    vq = torch_runtime_config((TEMPLATES / "vq_encode" / "config.pbtxt").read_text(), "vq_encode")
    assert 'key: "dtype", value: { string_value: "float32" }' in vq and "onnx_file" not in vq
    voice = set_instance_count((TEMPLATES / "voice_clone" / "config.pbtxt").read_text(), 8)
    assert "kind: KIND_CPU, count: 8" in voice
