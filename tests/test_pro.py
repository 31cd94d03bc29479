"""v2Pro and v2ProPlus end to end: demo files in upstream's layout, export with ``--sv``, the exported graphs
against our torch modules, the speaker-vector conditioning, a real tritonserver and the gateway on Pro
repositories, and the wrong combinations (one-line errors).

The SoVITS Pro network itself was checked against upstream's own ``SynthesizerTrn`` (full size, same weights
and noise, both ways: max |diff| / peak 1.9e-6 for v2Pro, 3.2e-6 for v2ProPlus); ERes2NetV2 and the fbank have
their own tests in ``tests/test_sv.py``.
"""

from __future__ import annotations

import io
import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import CLI, CLI_TIMEOUT_S, DEMO_SEED, TritonEndpoints
from gateway_fixtures import create_voice, start_gateway

from gsv_export.checkpoints import SV_FILE_NAME, AttrDict, load_sovits, load_sv, save_sv
from gsv_export.demo import SV_FILE, write_demo_gpt, write_demo_sovits, write_demo_sv
from gsv_export.sovits_export import export_sovits
from gsv_triton.backend.ort_backend import OrtBackend
from gsv_triton.backend.pipeline import VoiceClonePipeline
from gsv_triton.backend.requests import VoiceCloneRequest
from gsv_triton.contract import SV_DIM
from gsv_triton.manifest import Manifest
from gsv_triton.networks.sovits import SynthesizerTrn, default_hparams, demo_init_
from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SAMPLES_PER_TOKEN

torch.set_num_threads(1)

PRO = ("v2Pro", "v2ProPlus")
MANIFESTS = Path(__file__).resolve().parent / "data"
HEADERS = {"v2Pro": b"05", "v2ProPlus": b"06"}
SILENCE = int(0.3 * OUTPUT_SAMPLE_RATE)
TEXT = "你好，世界。今天天气很好。"
CUT_PUNC = "，。"
MAX_TOKENS = 40
ONNX_TOLERANCE = 1e-4  # max |onnx - torch| / max |torch|, fp32


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def _raw_weights(path: Path) -> dict[str, torch.Tensor]:
    data = path.read_bytes()
    with torch.serialization.safe_globals([(AttrDict, "utils.HParams")]):
        return torch.load(io.BytesIO(b"PK" + data[2:]), map_location="cpu", weights_only=True)["weight"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# -- files ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("version", PRO)
def test_full_size_pro_files_are_upstreams_layout(tmp_path: Path, version: str) -> None:
    """A Pro fine-tune as upstream's savee writes it: the version code over "PK", fp16, every key of the upstream
    class but enc_q.*, in order; our loader reads it as that version with v2's symbols."""
    path = write_demo_sovits(tmp_path / "sovits.pth", "full", version)
    assert path.read_bytes()[:4] == HEADERS[version] + b"\x03\x04"
    expected = json.loads((MANIFESTS / f"keys_sovits_{version}.json").read_text())
    expected = [(k, v) for k, v in expected.items() if not k.startswith("enc_q.")]
    raw = _raw_weights(path)
    assert [(k, list(v.shape)) for k, v in raw.items()] == expected
    assert all(v.dtype == torch.float16 for v in raw.values())
    ckpt = load_sovits(path)
    assert (ckpt.model_version, ckpt.symbol_version, ckpt.header) == (version, "v2", HEADERS[version].decode())
    assert ckpt.detection["source"] == "header" and not ckpt.has_posterior
    assert ckpt.hparams["model"]["gin_channels"] == 1024
    gpt = write_demo_gpt(tmp_path / "gpt.ckpt", "tiny", version)
    assert gpt.read_bytes()[:2] == b"PK"


@pytest.mark.slow
def test_the_demo_sv_file_is_upstreams_layout(tmp_path: Path) -> None:
    """A plain torch.save of the ERes2NetV2 state dict: every key and shape of the manifest, in order, and our
    loader accepts it."""
    path = write_demo_sv(tmp_path / SV_FILE)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    expected = json.loads((MANIFESTS / "keys_sv_eres2netv2w24s4ep4.json").read_text())
    assert [(k, list(v.shape)) for k, v in raw.items()] == list(expected.items())
    assert len(load_sv(path).state_dict) == 1001


def test_the_structure_alone_tells_pro_from_proplus(tmp_path: Path) -> None:
    """Without a header (a plain torch.save), sv_emb says Pro and the 768-wide conv_pre says ProPlus."""
    for version in PRO:
        path = write_demo_sovits(tmp_path / f"{version}.pth", "tiny", version)
        plain = tmp_path / f"{version}-plain.pth"
        plain.write_bytes(b"PK" + path.read_bytes()[2:])
        ckpt = load_sovits(plain)
        assert ckpt.model_version == version and ckpt.detection["source"] == "size"


# -- exported graphs against torch ------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=PRO)
def pro_graphs(request, tmp_path_factory) -> tuple[SynthesizerTrn, dict[str, Path]]:
    version = request.param
    model = SynthesizerTrn.from_hparams(default_hparams("tiny", version)["model"], version)
    demo_init_(model, torch.Generator().manual_seed(5))
    return model, export_sovits(model, tmp_path_factory.mktemp(f"{version}_onnx"))


@pytest.mark.parametrize("frames", [60, 250])
def test_pro_ref_encoder_onnx_matches_torch(pro_graphs, frames: int) -> None:
    model, paths = pro_graphs
    g = torch.Generator().manual_seed(frames)
    spec, sv = torch.rand(1, 1025, frames, generator=g) * 20, torch.rand(1, SV_DIM, generator=g)
    session = ort.InferenceSession(str(paths["ref_encoder"]), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} == {"spec", "sv"}
    (ge,) = session.run(None, {"spec": spec.numpy(), "sv": sv.numpy()})
    assert ge.shape == (1, model.gin_channels, 1)
    assert _rel(ge, model.reference_embedding(spec, sv).numpy()) <= ONNX_TOLERANCE


@pytest.mark.parametrize("n_codes", [12, 90])
def test_pro_sovits_decode_onnx_matches_torch(pro_graphs, n_codes: int) -> None:
    model, paths = pro_graphs
    g = torch.Generator().manual_seed(n_codes)
    codes = torch.randint(0, 1024, (1, n_codes), generator=g)
    phones = torch.randint(0, 732, (1, n_codes // 2 + 3), generator=g)
    ge = model.reference_embedding(torch.rand(1, 1025, 80, generator=g) * 20, torch.rand(1, SV_DIM, generator=g))
    noise = torch.randn(1, model.inter_channels, 2 * n_codes, generator=g)
    session = ort.InferenceSession(str(paths["sovits_decode"]), providers=["CPUExecutionProvider"])
    feeds = {"codes": codes.numpy(), "phone_ids": phones.numpy(), "ge": ge.numpy(), "noise": noise.numpy(),
             "noise_scale": np.array([0.5], np.float32)}  # fmt: skip
    (audio,) = session.run(None, feeds)
    expected = model.decode(codes, phones, ge, noise, 0.5).numpy()
    assert audio.shape == expected.shape == (1, 1, SAMPLES_PER_TOKEN * n_codes)
    assert _rel(audio, expected) <= ONNX_TOLERANCE


def test_the_speaker_vector_conditions_the_audio(pro_graphs) -> None:
    """Same spectrogram, same codes, same noise, another speaker vector: the audio moves by a clear margin (the
    SV path is not dead), while the same vector gives the same audio."""
    model, _ = pro_graphs
    g = torch.Generator().manual_seed(9)
    spec = torch.rand(1, 1025, 100, generator=g) * 20
    sv_a, sv_b = torch.rand(1, SV_DIM, generator=g), torch.rand(1, SV_DIM, generator=g)
    codes, phones = torch.randint(0, 1024, (1, 30), generator=g), torch.randint(0, 732, (1, 14), generator=g)
    noise = torch.randn(1, model.inter_channels, 60, generator=g)

    def audio(sv: torch.Tensor) -> torch.Tensor:
        return model.decode(codes, phones, model.reference_embedding(spec, sv), noise, 0.5)

    a, b = audio(sv_a), audio(sv_b)
    assert torch.equal(a, audio(sv_a))
    assert float((a - b).std() / a.std()) > 0.1  # measured 0.3-0.7 with the demo init


# -- the wrong combinations -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pro_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny demo checkpoints of both Pro versions, written by the CLI (GPT, SoVITS, HuBERT, BERT, SV)."""
    out = {}
    for version in PRO:
        folder = tmp_path_factory.mktemp(f"{version}_checkpoints")
        run = _cli("demo-checkpoints", "--size", "tiny", "--version", version, "--seed", str(DEMO_SEED),
                   "--out", str(folder))  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        assert SV_FILE_NAME in run.stdout
        out[version] = folder
    return out


def _export_args(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["export", "--gpt", str(ckpt / "gpt.ckpt"), "--sovits", str(ckpt / "sovits.pth"),
            "--hubert", str(ckpt / "chinese-hubert-base"), "--bert", str(ckpt / "chinese-roberta-wwm-ext-large"),
            "--out", str(out), *extra]  # fmt: skip


def _one_line_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    return lines[0]


def test_a_pro_sovits_without_sv_is_a_one_line_error(pro_checkpoints, tmp_path) -> None:
    line = _one_line_error(_cli(*_export_args(pro_checkpoints["v2Pro"], tmp_path / "repo")))
    assert "v2Pro" in line and "--sv" in line and SV_FILE_NAME in line


def test_a_garbage_sv_file_is_a_one_line_error(pro_checkpoints, tmp_path) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    line = _one_line_error(_cli(*_export_args(pro_checkpoints["v2Pro"], tmp_path / "r1", "--sv", str(garbage))))
    assert str(garbage) in line
    # A real torch file with the wrong network in it: the SoVITS file given as the SV file.
    sovits = pro_checkpoints["v2Pro"] / "sovits.pth"
    line = _one_line_error(_cli(*_export_args(pro_checkpoints["v2Pro"], tmp_path / "r2", "--sv", str(sovits))))
    assert "speaker-verification" in line
    # A truncated SV state dict: the missing key is named.
    state = load_sv(pro_checkpoints["v2Pro"] / SV_FILE).state_dict
    state.pop(next(iter(state)))
    partial = save_sv(tmp_path / "partial.ckpt", state)
    line = _one_line_error(_cli(*_export_args(pro_checkpoints["v2Pro"], tmp_path / "r3", "--sv", str(partial))))
    assert "missing the key" in line


def test_a_v1_gpt_with_a_pro_sovits_is_a_one_line_error(pro_checkpoints, tmp_path) -> None:
    ckpt = tmp_path / "mixed"
    ckpt.mkdir()
    for name in ("sovits.pth", "chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (ckpt / name).symlink_to(pro_checkpoints["v2Pro"] / name)
    write_demo_gpt(ckpt / "gpt.ckpt", "tiny", "v1")
    sv = pro_checkpoints["v2Pro"] / SV_FILE
    line = _one_line_error(_cli(*_export_args(ckpt, tmp_path / "repo", "--sv", str(sv))))
    assert "v1 GPT" in line


def test_real_speaker_vectors_condition_the_exported_pipeline(pro_repositories, reference_audio) -> None:
    """The exported networks with the demo init: two clips' speaker vectors (fbank -> speaker_encoder), the same
    spectrogram, codes and noise -> the audio differs by a clear margin."""
    from gsv_triton.audio import prepare_reference
    from gsv_triton.audio.fbank import sv_fbank
    from gsv_triton.audio.resample import resample
    from gsv_triton.settings import Limits

    for repo in pro_repositories.values():
        backend = OrtBackend(repo)
        clips = [prepare_reference(reference_audio(seed), Limits()) for seed in (1, 3)]
        svs = [backend.infer("speaker_encoder", {"fbank": sv_fbank(resample(c.wav32k, 32000, 16000))[None]}, ["sv"])
               ["sv"] for c in clips]  # fmt: skip
        rng = np.random.default_rng(0)
        codes, phones = rng.integers(0, 1024, (1, 30)), rng.integers(0, 732, (1, 14))
        noise = rng.standard_normal((1, Manifest.read(repo).sovits.inter_channels, 60)).astype(np.float32)
        audio = []
        for sv in svs:
            ge = backend.infer("ref_encoder", {"spec": clips[0].spectrogram[None], "sv": sv}, ["ge"])["ge"]
            audio.append(backend.infer("sovits_decode", {"codes": codes, "phone_ids": phones, "ge": ge, "noise": noise,
                                       "noise_scale": np.array([0.5], np.float32)}, ["audio"])["audio"])  # fmt: skip
        assert float(np.std(audio[0] - audio[1]) / np.std(audio[0])) > 0.1


# -- a real tritonserver and the gateway ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pro_repositories(pro_checkpoints, tmp_path_factory) -> dict[str, Path]:
    repos = {}
    for version, ckpt in pro_checkpoints.items():
        repo = tmp_path_factory.mktemp(f"{version}_repository")
        run = _cli(*_export_args(ckpt, repo, "--sv", str(ckpt / SV_FILE)))
        assert run.returncode == 0, run.stderr[-3000:]
        repos[version] = repo
    return repos


def test_a_pro_repository_states_its_version(pro_repositories) -> None:
    for version, repo in pro_repositories.items():
        manifest = Manifest.read(repo)
        assert (manifest.sovits_version, manifest.symbol_version, manifest.sovits.gin_channels) == (version, "v2", 64)
        assert manifest.sources["sv"].endswith(SV_FILE_NAME)
        assert (repo / "speaker_encoder" / "1" / "speaker_encoder.onnx").is_file()
        assert (repo / "speaker_encoder" / "config.pbtxt").is_file()


@pytest.fixture(scope="module", params=PRO)
def pro_server(request, pro_repositories, start_tritonserver, tmp_path_factory) -> Iterator[TritonEndpoints]:
    repo = pro_repositories[request.param]
    log_path = tmp_path_factory.mktemp(f"{request.param}_triton") / "tritonserver.log"
    server = start_tritonserver(repo, log_path)
    try:
        yield TritonEndpoints(server.http_endpoint, server.grpc_endpoint, server.metrics_url, repo, log_path, server)
    finally:
        server.stop()


def _clone(endpoints: TritonEndpoints, reference: bytes, text: str = TEXT, **fields) -> tuple[np.ndarray, np.ndarray]:
    import tritonclient.grpc as grpcclient

    from gsv_triton.client import build_inputs

    fields.setdefault("cut_punc", CUT_PUNC)
    fields.setdefault("max_new_tokens", MAX_TOKENS)
    client = grpcclient.InferenceServerClient(endpoints.grpc_url)
    try:
        result = client.infer("voice_clone", build_inputs("grpc", text, reference, "这是参考音频", **fields))
    finally:
        client.close()
    return result.as_numpy("audio"), result.as_numpy("segment_tokens")


@pytest.mark.slow
def test_features_of_another_width_are_refused(pro_server, reference_audio) -> None:
    """A voice encoded by a v2 model (ge of 512) sent to a Pro repository: INVALID_ARG naming ge and the widths."""
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        _clone(pro_server, b"", prompt_codes=np.arange(20, dtype=np.int64), ge=np.ones(512, np.float32),
               prompt_phone_ids=np.arange(5, dtype=np.int64), prompt_bert=np.zeros((1024, 5), np.float32))  # fmt: skip
    message = str(caught.value)
    assert "ge" in message and "512" in message and "64" in message, message
    audio, _ = _clone(pro_server, reference_audio(1), seed=1)  # and the server keeps serving
    assert audio.size > 0


@pytest.mark.slow
def test_pro_voice_clone_through_triton(pro_server, reference_audio) -> None:
    """Audio length rules, seeded determinism, Triton equal to the in-process pipeline, and 8 concurrent requests
    equal to the same requests alone."""
    ref = reference_audio(1)
    audio, per_piece = _clone(pro_server, ref, seed=11)
    assert len(per_piece) == 3 and per_piece.min() >= 1  # cut at "，" and "。"
    assert len(audio) == sum(SAMPLES_PER_TOKEN * int(n) + SILENCE for n in per_piece)
    assert 0 < np.abs(audio).max() <= 1.0
    again, _ = _clone(pro_server, ref, seed=11)
    np.testing.assert_array_equal(again, audio)

    pipeline = VoiceClonePipeline.from_repository(OrtBackend(pro_server.repo), pro_server.repo)
    local = pipeline.synthesize(VoiceCloneRequest(
        text=TEXT, text_language="zh", prompt_text="这是参考音频。", prompt_language="zh", reference_audio=ref,
        cut_punc=CUT_PUNC, max_new_tokens=MAX_TOKENS, seed=11))  # fmt: skip
    np.testing.assert_array_equal(local.audio, audio)

    refs = [reference_audio(1), reference_audio(3)]
    jobs = [(refs[i % 2], 100 + i) for i in range(8)]
    alone = [_clone(pro_server, r, seed=s)[0] for r, s in jobs]
    start = threading.Barrier(len(jobs))

    def together(job):
        start.wait()
        return _clone(pro_server, job[0], seed=job[1])[0]

    with ThreadPoolExecutor(len(jobs)) as pool:
        for one, many in zip(alone, pool.map(together, jobs), strict=True):
            np.testing.assert_array_equal(many, one)
    # Different references give different speaker vectors, hence different audio for the same seed.
    assert not np.array_equal(_clone(pro_server, refs[1], seed=11)[0], audio)


@pytest.mark.slow
def test_pro_routes_through_the_gateway(pro_server, reference_audio, tmp_path) -> None:
    """The seed contract on a Pro repository, a stored voice (no SV call: ge carries it) equal to its clip, api.py's
    GET route, the OpenAI speech route, streaming and voice conversion."""
    refs = tmp_path / "refs"
    refs.mkdir()
    ref = reference_audio(2)
    (refs / "default.wav").write_bytes(ref)
    args = ["--refer-root", str(refs), "-dr", str(refs / "default.wav"), "-dt", "这是参考音频", "-dl", "zh",
            "--max-new-tokens", str(MAX_TOKENS)]  # fmt: skip
    gateway = start_gateway(pro_server.grpc_url, tmp_path, args, env={"GSV_VOICE_DIR": str(tmp_path / "voices")})
    try:
        form = {"text": "你好，这是一个语音克隆测试。", "text_language": "zh", "prompt_text": "这是参考音频",
                "prompt_language": "zh", "seed": "7"}  # fmt: skip
        files = {"audio": ("ref.wav", ref)}
        first = httpx.post(f"{gateway.url}/v1/voice-clone", data=form, files=files, timeout=300)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["seed"] == 7
        again = httpx.post(f"{gateway.url}/v1/voice-clone", data=form, files=files, timeout=300)
        assert again.json()["output_audio_base64"] == body["output_audio_base64"]

        voice = create_voice(gateway.url, ref, prompt_text="这是参考音频", prompt_language="zh")
        assert voice.status_code in (200, 201), voice.text
        voice_id = voice.json()["id"]
        by_id = {k: v for k, v in form.items() if not k.startswith("prompt_")} | {"voice_id": voice_id}
        stored = httpx.post(f"{gateway.url}/v1/voice-clone", data=by_id, timeout=300)
        assert stored.status_code == 200, stored.text
        assert stored.json()["output_audio_base64"] == body["output_audio_base64"]

        legacy = httpx.get(f"{gateway.url}/", params={"text": "你好。", "text_language": "zh"}, timeout=300)
        assert legacy.status_code == 200 and legacy.content[:4] == b"RIFF"
        speech = httpx.post(f"{gateway.url}/v1/audio/speech", json={"model": "gpt-sovits", "input": "你好。",
                            "voice": voice_id, "response_format": "wav"}, timeout=300)  # fmt: skip
        assert speech.status_code == 200, speech.text
        with httpx.stream("POST", f"{gateway.url}/v1/voice-clone/stream", data=form, files=files, timeout=300) as s:
            assert s.status_code == 200
            assert sum(len(chunk) for chunk in s.iter_bytes()) > 0
        converted = httpx.post(f"{gateway.url}/v1/voice-convert", data={"text": "你好，世界。", "text_language": "zh",
                               "voice_id": voice_id}, files={"source_audio": ("s.wav", reference_audio(4))},
                               timeout=300)  # fmt: skip
        assert converted.status_code == 200, converted.text
    finally:
        assert gateway.stop() == 0, gateway.log_text()[-3000:]
