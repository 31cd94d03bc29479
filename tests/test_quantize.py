"""``export --quantize int8``: the int8 T2S step against the fp32 torch module, the CLI path, and a tritonserver
that loads the int8 twins where the CPU has int8 dot-product instructions (and the fp32 graphs where not)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from test_export_cli import export_args, run_cli
from tiny_t2s import TINY, tiny_decoder

from gsv_export.onnx_utils import ort_session, relative_error
from gsv_export.quantize import greedy_agreement, quantize_int8
from gsv_export.t2s_export import export_t2s
from gsv_triton.backend.t2s.loop import T2SRunner
from gsv_triton.precision import int8_dot_instructions

# int8 weights with per-tensor scales: the stated tolerance on logits and K/V (fp32 graphs meet 1e-4).
INT8_REL_TOL = 0.05
GREEDY = {"top_k": 1, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.0}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    torch.set_num_threads(1)
    decoder = tiny_decoder()
    fp32_dir, int8_dir = tmp_path_factory.mktemp("fp32"), tmp_path_factory.mktemp("int8")
    paths = export_t2s(decoder, fp32_dir)
    int8 = {k: shutil.copy(p, int8_dir / p.name) for k, p in paths.items()}
    quantize_int8(int8["step"])  # what export --quantize int8 does: the step graph only
    return decoder, paths, int8


def _runner(paths) -> T2SRunner:
    return T2SRunner(ort_session(paths["prefill"], threads=1), ort_session(paths["step"], threads=1))


def test_int8_step_stores_int8_weights_and_the_prefill_stays_fp32(graphs):
    _, fp32, int8 = graphs
    model = onnx.load(str(int8["step"]))
    assert {n.op_type for n in model.graph.node} & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)
    assert int8["step"].stat().st_size < 0.5 * fp32["step"].stat().st_size
    assert int8["prefill"].read_bytes() == fp32["prefill"].read_bytes()


def test_int8_step_stays_within_tolerance_of_torch(graphs):
    decoder, _, int8 = graphs
    gen = torch.Generator().manual_seed(5)
    past = [torch.randn(20, 1, 4, 32, generator=gen) for _ in range(2 * TINY.n_layer)]
    token, position, key_valid = torch.tensor([7]), torch.tensor([20]), torch.ones(1, 20, dtype=torch.bool)
    with torch.no_grad():
        expected = decoder.step(token, position, key_valid, past)
    feeds = {"token": token.numpy(), "position": position.numpy(), "key_valid": key_valid.numpy()}
    feeds.update({f"past_{kv}_{i // 2}": past[i].numpy() for i, kv in enumerate(["k", "v"] * TINY.n_layer)})
    got = ort_session(int8["step"], threads=1).run(None, feeds)
    for name, ref, act in zip(("logits", "new_k", "new_v"), expected, got, strict=True):
        err = relative_error(ref, act)
        assert 0 < err <= INT8_REL_TOL, (name, err)  # > 0: the graph really is quantised


def test_int8_greedy_token_agreement_with_fp32(graphs):
    """Greedy decoding, teacher-forced on the fp32 tokens: the int8 step picks the same token at most steps."""
    _, fp32, int8 = graphs
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(0, TINY.phoneme_vocab_size, (1, 12), generator=gen).numpy()
    bert = torch.randn(1, 1024, 12, generator=gen).numpy()
    prompt = torch.randint(0, 1024, (1, 8), generator=gen).numpy()
    agreement, reference = greedy_agreement(_runner(fp32), _runner(int8), ids, bert, prompt, steps=60)
    # The harness is the serving loop: greedy T2SRunner tokens (the cap drops the first) are the same.
    tokens = _runner(fp32).generate(ids, bert, prompt[0], max_new_tokens=61, eos_enabled=False, **GREEDY)[0]
    np.testing.assert_array_equal(tokens, reference[1:])
    assert agreement >= 0.8, agreement  # measured 0.967 (59 of 61 steps)
    assert greedy_agreement(_runner(fp32), _runner(fp32), ids, bert, prompt, steps=20)[0] == 1.0


@pytest.fixture(scope="module")
def int8_repository(tiny_checkpoints, tmp_path_factory):
    repo = tmp_path_factory.mktemp("int8") / "repo"
    done = run_cli(*export_args(tiny_checkpoints, repo), "--quantize", "int8")
    assert done.returncode == 0, done.stderr
    return repo


def test_cli_quantize_int8_writes_int8_twins_beside_fp32_and_records_them(tiny_checkpoints, int8_repository, tmp_path):
    both = run_cli(*export_args(tiny_checkpoints, tmp_path / "bad"), "--quantize", "int8", "--fp16")
    assert both.returncode != 0 and "exclude each other" in both.stderr
    repo = int8_repository
    manifest = json.loads((repo / "gsv_manifest.json").read_text())
    assert manifest["quantize"] == "int8"
    assert manifest["int8_files"] == {"t2s_step": "t2s/1/t2s_step.int8.onnx",
                                      "sovits_decode": "sovits_decode/1/sovits_decode.int8.onnx"}  # fmt: skip

    def int8_weights(path) -> bool:
        return any(t.data_type == onnx.TensorProto.INT8 for t in onnx.load(str(path)).graph.initializer)

    # The fp32 graphs stay as they were (a CPU without int8 instructions loads them); the twins hold int8.
    for network, fp32 in (("t2s_step", "t2s/1/t2s_step.onnx"), ("sovits_decode", "sovits_decode/1/sovits_decode.onnx")):
        assert not int8_weights(repo / fp32) and int8_weights(repo / manifest["int8_files"][network])
    decoder = onnx.load(str(repo / manifest["int8_files"]["sovits_decode"]))
    ops = [(n.name, n.op_type) for n in decoder.graph.node]
    assert any(op == "QLinearConv" and name.startswith("/dec/") for name, op in ops)
    assert not any(op == "QLinearConv" and not name.startswith("/dec/") for name, op in ops)  # the generator only
    for kept in ("/dec/conv_pre", "/dec/conv_post"):  # the generator's first and last stay fp32
        assert any(op in ("Conv", "FusedConv") and name.startswith(kept) for name, op in ops), kept
    for model in ("t2s", "sovits_decode"):
        config = (repo / model / "config.pbtxt").read_text()
        assert 'key: "precision", value: { string_value: "auto" }' in config
        assert 'key: "allow_spinning", value: { string_value: "1" }' in config


@pytest.mark.slow
def test_tritonserver_loads_the_twins_this_cpu_can_run_fast_and_serves(int8_repository, start_tritonserver,
                                                                        reference_audio, tmp_path):  # fmt: skip
    import tritonclient.http as httpclient

    from gsv_triton.client import build_inputs

    log = tmp_path / "tritonserver.log"
    server = start_tritonserver(int8_repository, log)
    try:
        client = httpclient.InferenceServerClient(server.http_endpoint)
        inputs = build_inputs("http", "你好，世界。", reference_audio(1), "参考音频文字", seed=3, max_new_tokens=30)
        audio = client.infer("voice_clone", inputs).as_numpy("audio")
        assert audio.size > 0 and np.isfinite(audio).all()
    finally:
        server.stop()
    text = log.read_text("utf-8", "replace")
    instructions = int8_dot_instructions()
    for line in ("t2s: decode step t2s_step", "sovits_decode: sovits_decode"):
        chosen = [entry for entry in text.splitlines() if line in entry]
        assert chosen, (line, text[-3000:])
        if instructions:  # decided on this host's /proc/cpuinfo at load
            assert all(f"int8 (precision: auto; the CPU has {', '.join(instructions)})" in c for c in chosen), chosen
        else:
            assert all("fp32 (precision: auto; the CPU has no VNNI/AMX int8 instructions)" in c for c in chosen), chosen
