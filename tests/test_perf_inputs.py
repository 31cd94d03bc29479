"""perf/make_inputs.py: the perf_analyzer input files match the tiny repository's model configs.

The last test runs perf_analyzer itself against the session's tritonserver when ``.venv-pa`` exists
(``perf/run_perf_analyzer.sh`` creates it); elsewhere it is skipped.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gsv_triton.contract import NUMPY_DTYPES

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "perf"
PA_BINARY = ROOT / ".venv-pa" / "bin" / "perf_analyzer"
PA_TIMEOUT_S = 300


def _load_make_inputs():
    spec = importlib.util.spec_from_file_location("perf_make_inputs", PERF / "make_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mi = _load_make_inputs()


@pytest.fixture(scope="module")
def perf_inputs(tiny_model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("perf_inputs")
    return mi.write_inputs(tiny_model_repository, out, distinct_references=2)


def test_every_model_has_an_input_file(perf_inputs: dict[str, Path]) -> None:
    assert set(perf_inputs) == {*mi.MODELS, "voice_clone_newref"}
    for path in perf_inputs.values():
        assert json.loads(path.read_text("utf-8"))["data"], path


@pytest.mark.parametrize("model", mi.MODELS)
def test_inputs_match_the_model_config(model: str, perf_inputs: dict[str, Path], tiny_model_repository: Path) -> None:
    max_batch, spec = mi.model_spec(model)  # the contract, which tests/test_contract.py holds to config.pbtxt
    for request in mi.load_inputs(perf_inputs[model], model):  # decodes with the contract's datatypes
        required = {name for name, (_, _, optional) in spec.items() if not optional}
        assert required <= set(request), f"{model} lacks {required - set(request)}"
        for name, array in request.items():
            datatype, dims, _ = spec[name]
            assert array.dtype == np.dtype(NUMPY_DTYPES[datatype]), (model, name, array.dtype)
            # dims exclude the batch axis exactly when the model batches, and so do the JSON shapes.
            assert array.ndim == len(dims), (model, name, array.shape, dims)
            for have, want in zip(array.shape, dims, strict=True):
                assert want == -1 or have == want, (model, name, array.shape, dims)
            assert array.size > 0, (model, name)
        if max_batch > 0:
            assert request["input_ids"].shape == request["attention_mask"].shape


def test_voice_clone_request_is_the_fixed_length_benchmark(
    perf_inputs: dict[str, Path], tiny_model_repository: Path
) -> None:
    (request,) = mi.load_inputs(perf_inputs["voice_clone"], "voice_clone")
    assert request["max_new_tokens"].tolist() == [mi.TOKENS + 1]  # the cap drops one token: exactly TOKENS
    assert request["ignore_eos"].tolist() == [True]
    assert request["text"][0].decode("utf-8") == mi.TEXT
    audio, rate = sf.read(io.BytesIO(request["reference_audio"][0]))
    assert rate == 32_000 and len(audio) / rate == pytest.approx(mi.REFERENCE_SECONDS)


def test_component_inputs_are_what_voice_clone_sends(perf_inputs: dict[str, Path], tiny_model_repository: Path) -> None:
    load = lambda m: mi.load_inputs(perf_inputs[m], m)[0]  # noqa: E731
    t2s, decode, ssl, vq = load("t2s"), load("sovits_decode"), load("ssl"), load("vq_encode")
    assert t2s["max_new_tokens"].tolist() == [mi.TOKENS + 1] and t2s["ignore_eos"].tolist() == [True]
    tx = t2s["phone_ids"].shape[1]
    assert t2s["bert"].shape == (1, 1024, tx) and t2s["phone_lengths"].tolist() == [tx]
    assert decode["codes"].shape == (1, mi.TOKENS)
    assert decode["noise"].shape[2] == 2 * mi.TOKENS  # speed 1: two latent frames per token
    # 5 s at 16 kHz plus the 0.6 s zero tail, and HuBERT's 50 Hz frames of it
    assert ssl["wav16k"].shape == (1, round(16_000 * (mi.REFERENCE_SECONDS + 0.6)))
    assert abs(vq["ssl"].shape[2] - ssl["wav16k"].shape[1] // 320) <= 1
    assert t2s["prompt_codes"].shape[1] == vq["ssl"].shape[2] // 2


def test_newref_requests_carry_distinct_references(perf_inputs: dict[str, Path], tiny_model_repository: Path) -> None:
    requests = mi.load_inputs(perf_inputs["voice_clone_newref"], "voice_clone")
    references = {r["reference_audio"][0] for r in requests}
    assert len(requests) == 2 and len(references) == 2


def test_binary_bytes_use_perf_analyzer_length_prefix() -> None:
    blob = b"\xff\xfe\x00RIFF"  # not UTF-8: must go out as b64 with the 4-byte length of each element
    entry = mi.encode_tensor(np.array([blob], dtype=np.object_))
    raw = base64.b64decode(entry["content"]["b64"])
    assert raw == struct.pack("<I", len(blob)) + blob
    assert mi.decode_tensor(entry, "BYTES")[0] == blob
    floats = np.arange(40, dtype=np.float32).reshape(1, 2, 20) / 3
    np.testing.assert_array_equal(mi.decode_tensor(mi.encode_tensor(floats), "FP32"), floats)
    with pytest.raises(ValueError):
        mi.decode_tensor(mi.encode_tensor(floats), "INT64")  # wrong byte count for the declared type


@pytest.mark.skipif(not PA_BINARY.exists(), reason="no .venv-pa (run perf/run_perf_analyzer.sh once to create it)")
def test_perf_analyzer_runs_voice_clone(perf_inputs: dict[str, Path], triton_server, tmp_path: Path) -> None:
    http_port = triton_server.http_url.rsplit(":", 1)[1]
    run = subprocess.run(
        [str(PERF / "run_perf_analyzer.sh"), "voice_clone", "--http-port", http_port, "--inputs",
         str(perf_inputs["voice_clone"]), "--out", str(tmp_path), "--concurrency", "1", "--requests", "1",
         "--warmup", "1"],
        capture_output=True, text=True, timeout=PA_TIMEOUT_S,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "voice_clone_http.csv").open()))
    assert len(rows) == 1 and rows[0]["Concurrency"] == "1"
    assert float(rows[0]["p50 latency"]) > 0 and float(rows[0]["Inferences/Second"]) > 0
    assert "t2s, version: 1" in run.stderr  # the server-side breakdown of the BLS composing models
