"""Many fine-tunes in one server (model sets): export --name / remove-model, a real tritonserver in explicit
model-control mode, and the gateway that loads sets on demand, caps them and never unloads one under a request.

Three sets in one repository: ``default`` (the session's tiny v2 files), ``alice`` (other tiny v2 files) and
``pro`` (tiny v2Pro files). Each answers exactly as a single-set server of the same files does, concurrent
requests over the three give their sequential answers, and the gateway's load/unload rules hold with a cap of 2.
"""

from __future__ import annotations

import base64
import dataclasses
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from browser_fixtures import open_page, shown_result, synthesize, wav_samples
from conftest import CLI, CLI_TIMEOUT_S, DEMO_SEED, TritonEndpoints
from gateway_fixtures import create_voice, start_gateway

from gsv_triton.manifest import Manifest
from gsv_triton.model_sets import set_models, startup_models

TEXT = "你好，世界。今天天气很好。"
PROMPT = "这是参考音频"
SETS = ("default", "alice", "pro")
TIMEOUT_S = 180.0
SEED = 5
MAX_TOKENS = "30"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def _export(ckpt: Path, repo: Path, *extra: str, shared: Path | None = None) -> subprocess.CompletedProcess:
    """``export`` of ``ckpt``'s GPT and SoVITS with the HuBERT and BERT of ``shared`` (default: ``ckpt``'s own).

    Fine-tunes share upstream's pretrained HuBERT and BERT; the demo folders each have their own random ones."""
    shared = shared or ckpt
    return _cli("export", "--gpt", str(ckpt / "gpt.ckpt"), "--sovits", str(ckpt / "sovits.pth"),
                "--hubert", str(shared / "chinese-hubert-base"), "--bert", str(shared / "chinese-roberta-wwm-ext-large"),
                "--out", str(repo), *extra)  # fmt: skip


@pytest.fixture(scope="module")
def set_checkpoints(tiny_checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three sets' files: the session's tiny v2, another tiny v2 (other seed) and a tiny v2Pro."""
    folders = {"default": tiny_checkpoints}
    for name, version, seed in (("alice", "v2", DEMO_SEED + 1), ("pro", "v2Pro", DEMO_SEED + 2)):
        out = tmp_path_factory.mktemp(f"{name}_checkpoints")
        run = _cli("demo-checkpoints", "--size", "tiny", "--version", version, "--seed", str(seed), "--out", str(out))
        assert run.returncode == 0, run.stderr[-2000:]
        folders[name] = out
    return folders


def _sv_args(ckpt: Path) -> tuple[str, ...]:
    sv = ckpt / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt"
    return ("--sv", str(sv)) if sv.is_file() else ()


@pytest.fixture(scope="module")
def multi_repository(tiny_model_repository: Path, set_checkpoints, tmp_path_factory) -> Path:
    """The session's tiny repository (its default set) with ``alice`` and ``pro`` added by ``export --name``."""
    repo = tmp_path_factory.mktemp("multi") / "repository"
    shutil.copytree(tiny_model_repository, repo)
    for name in ("alice", "pro"):
        run = _export(set_checkpoints[name], repo, "--name", name, *_sv_args(set_checkpoints[name]))
        assert run.returncode == 0, run.stderr[-3000:]
    # A fourth set whose files were deleted after its export: alice's, with its decoder's ONNX file gone.
    for model in set_models("alice"):
        shutil.copytree(repo / model, repo / model.replace("alice__", "broken__"))
    dataclasses.replace(Manifest.read(repo, "alice"), sources={}).write(repo, "broken")
    (repo / "broken__sovits_decode" / "1" / "sovits_decode.onnx").unlink()
    return repo


def _server(start_tritonserver, repo: Path, log_dir: Path) -> Iterator[TritonEndpoints]:
    server = start_tritonserver(repo, log_dir / "tritonserver.log")
    try:
        yield TritonEndpoints(server.http_endpoint, server.grpc_endpoint, server.metrics_url, repo,
                              log_dir / "tritonserver.log", server)  # fmt: skip
    finally:
        server.stop()


@pytest.fixture(scope="module")
def multi_server(multi_repository, start_tritonserver, tmp_path_factory) -> Iterator[TritonEndpoints]:
    yield from _server(start_tritonserver, multi_repository, tmp_path_factory.mktemp("multi_triton"))


def _states(endpoints: TritonEndpoints) -> dict[str, str]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(endpoints.grpc_url)
    try:
        return {m["name"]: m.get("state", "") for m in client.get_model_repository_index(as_json=True)["models"]}
    finally:
        client.close()


def _load(endpoints: TritonEndpoints, model_set: str) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(endpoints.grpc_url)
    try:
        for model in set_models(model_set):
            client.load_model(model)
    finally:
        client.close()


def _clone(endpoints: TritonEndpoints, reference: bytes, model_set: str | None, seed: int = SEED) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    from gsv_triton.client import build_inputs

    options = {"seed": seed, "cut_punc": "，。", "max_new_tokens": int(MAX_TOKENS), "model": model_set}
    client = grpcclient.InferenceServerClient(endpoints.grpc_url)
    try:
        return client.infer("voice_clone", build_inputs("grpc", TEXT, reference, PROMPT, **options)).as_numpy("audio")
    finally:
        client.close()


# -- export and the manifest ------------------------------------------------------------------------------------
def test_sets_in_the_manifest_and_on_disk(multi_repository: Path) -> None:
    sets = Manifest.read_sets(multi_repository)
    assert list(sets) == ["default", "alice", "pro", "broken"]
    assert [m.sovits_version for m in sets.values()] == ["v2", "v2", "v2Pro", "v2"]
    for name in ("alice", "pro"):
        for model in set_models(name):
            assert (multi_repository / model / "config.pbtxt").is_file()
        assert sets[name].files["ssl"] == "ssl/1/ssl.onnx"  # shared, not written again
        assert sets[name].files["sovits_decode"] == f"{name}__sovits_decode/1/sovits_decode.onnx"
    # The first Pro set brought the shared speaker encoder; the others have no use for it.
    assert (multi_repository / "speaker_encoder" / "1" / "speaker_encoder.onnx").is_file()
    startup = startup_models(multi_repository)
    assert "speaker_encoder" in startup and "t2s" in startup and not any("__" in m for m in startup)


def test_export_and_remove_errors(multi_repository: Path, set_checkpoints, tmp_path: Path) -> None:
    repo = tmp_path / "repository"
    shutil.copytree(multi_repository, repo)
    again = _export(set_checkpoints["alice"], repo, "--name", "alice")
    assert again.returncode == 2 and "already has a model set named 'alice'" in again.stderr, again.stderr
    for bad in ("Alice", "a_b", "-x", "a" * 49):
        run = _export(set_checkpoints["alice"], repo, f"--name={bad}")
        assert run.returncode == 2 and "--name: must be 1-48 lower-case letters" in run.stderr, run.stderr
    assert _cli("remove-model", "--model-repository", str(repo), "default").returncode == 2
    missing = _cli("remove-model", "--model-repository", str(repo), "bob")
    assert missing.returncode == 2 and "has: alice, broken, default, pro" in missing.stderr
    removed = _cli("remove-model", "--model-repository", str(repo), "alice")
    assert removed.returncode == 0, removed.stderr
    assert list(Manifest.read_sets(repo)) == ["default", "pro", "broken"]
    assert not any((repo / m).exists() for m in set_models("alice"))
    # A repository started with a named set: shared networks plus that set, no default set.
    fresh = tmp_path / "fresh"
    run = _export(set_checkpoints["alice"], fresh, "--name", "alice")
    assert run.returncode == 0, run.stderr[-2000:]
    assert list(Manifest.read_sets(fresh)) == ["alice"] and not (fresh / "t2s").exists()
    assert (fresh / "bert" / "1" / "bert.onnx").is_file() and (fresh / "alice__t2s" / "1").is_dir()


# -- Triton: each set is its own single-set server ---------------------------------------------------------------
@pytest.mark.slow
def test_each_set_answers_as_a_single_set_server(multi_server, triton_server, set_checkpoints, start_tritonserver,
                                                 reference_audio, tmp_path_factory) -> None:  # fmt: skip
    states = _states(multi_server)
    assert states["t2s"] == "READY" and states.get("alice__t2s") != "READY"  # named sets load on demand
    ref = reference_audio(1)
    for name in ("alice", "pro"):
        _load(multi_server, name)
    answers = {name: _clone(multi_server, ref, name) for name in SETS}
    np.testing.assert_array_equal(_clone(multi_server, ref, None), answers["default"])  # no name: the default
    np.testing.assert_array_equal(answers["default"], _clone(triton_server, ref, None))
    assert len({a.tobytes() for a in answers.values()}) == 3  # three voices
    for name in ("alice", "pro"):
        single = tmp_path_factory.mktemp(f"{name}_single") / "repository"
        run = _export(set_checkpoints[name], single, *_sv_args(set_checkpoints[name]),
                      shared=set_checkpoints["default"])  # the multi-set repository's shared networks
        assert run.returncode == 0, run.stderr[-2000:]
        for endpoints in _server(start_tritonserver, single, single.parent):
            np.testing.assert_array_equal(answers[name], _clone(endpoints, ref, None))

    # 12 concurrent requests spread over the three sets: exactly their sequential answers.
    jobs = [(SETS[i % 3], 100 + i // 3) for i in range(12)]
    alone = [_clone(multi_server, ref, name, seed) for name, seed in jobs]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda job: _clone(multi_server, ref, *job), jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_unknown_and_unloaded_sets_are_clear_errors(multi_server, reference_audio) -> None:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as unknown:
        _clone(multi_server, reference_audio(1), "bob")
    assert "unknown model set 'bob'" in str(unknown.value) and "alice, broken, default, pro" in str(unknown.value)
    with pytest.raises(InferenceServerException) as bad:
        _clone(multi_server, reference_audio(1), "Bob!")
    assert "model" in str(bad.value) and "lower-case" in str(bad.value)
    assert _clone(multi_server, reference_audio(1), None).size > 0  # and the server keeps serving


# -- the gateway: on-demand loading, the cap, in-flight requests --------------------------------------------------
@pytest.fixture(scope="module")
def module_gateway(multi_server, tmp_path_factory, refs_dir, multi_repository) -> Iterator:
    """A gateway capped at 2 loaded sets in front of the three-set server."""
    env = {"GSV_MAX_LOADED_MODEL_SETS": "2", "GSV_MODEL_REPOSITORY": str(multi_repository),
           "GSV_REFER_ROOT": str(refs_dir), "GSV_MAX_NEW_TOKENS": MAX_TOKENS}  # fmt: skip
    gateway = start_gateway(multi_server.grpc_url, tmp_path_factory.mktemp("gateway_multi"), env=env)
    try:
        yield gateway, multi_server
    finally:
        gateway.stop()


@pytest.fixture
def gateway(module_gateway) -> tuple:
    """The module's gateway, with only the default set loaded (as after Triton's start)."""
    import tritonclient.grpc as grpcclient

    gw, endpoints = module_gateway
    client = grpcclient.InferenceServerClient(endpoints.grpc_url)
    try:
        client.load_model("t2s")  # (a no-op when loaded)
        for name in ("alice", "pro"):
            for model in set_models(name):
                client.unload_model(model)
        deadline = time.monotonic() + TIMEOUT_S
        while any(_states(endpoints).get(m) == "READY" for n in ("alice", "pro") for m in set_models(n)):
            assert time.monotonic() < deadline, "the sets did not unload"
            time.sleep(0.2)
    finally:
        client.close()
    return gw, endpoints


@pytest.fixture(scope="module")
def refs_dir(tmp_path_factory, reference_audio) -> Path:
    folder = tmp_path_factory.mktemp("multi_refs")
    (folder / "ref.wav").write_bytes(reference_audio(1))
    return folder


def _post(url: str, reference: bytes, model: str | None = None, **fields) -> httpx.Response:
    data = {"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh", "seed": str(SEED),
            "cut_punc": "，。", **fields}  # fmt: skip
    if model is not None:
        data["model"] = model
    files = {"audio": ("ref.wav", reference)}
    if "voice_id" in fields:  # a stored voice instead of the clip and its transcript
        files = None
        del data["prompt_text"], data["prompt_language"]
    return httpx.post(f"{url}/v1/voice-clone", data=data, files=files, timeout=TIMEOUT_S)


def _sets(url: str) -> dict[str, dict]:
    cards = httpx.get(f"{url}/v1/models", timeout=TIMEOUT_S).json()["data"]
    return {c["id"]: c["model_set"] for c in cards if c.get("model_set")}


@pytest.mark.slow
def test_gateway_loads_on_demand_within_the_cap(gateway, reference_audio) -> None:
    gw, endpoints = gateway
    ref = reference_audio(1)
    sets = _sets(gw.url)
    assert {n: s["state"] for n, s in sets.items()} == {"default": "loaded", "alice": "unloaded", "pro": "unloaded",
                                                         "broken": "unloaded"}  # fmt: skip
    assert sets["default"]["default"] and sets["alice"]["triton_models"] == list(set_models("alice"))
    first = {name: _post(gw.url, ref, name) for name in SETS}
    assert all(r.status_code == 200 for r in first.values()), {n: r.text[:300] for n, r in first.items()}
    for _ in range(2):  # cycling over three sets with room for two: every request succeeds
        for name in SETS:
            answer = _post(gw.url, ref, name)
            assert answer.status_code == 200 and answer.json()["output_audio_base64"] == \
                first[name].json()["output_audio_base64"]  # fmt: skip
            loaded = [n for n, s in _sets(gw.url).items() if s["state"] == "loaded"]
            assert name in loaded and len(loaded) <= 2, loaded
            triton_ready = [n for n in SETS if all(_states(endpoints).get(m) == "READY" for m in set_models(n))]
            assert sorted(triton_ready) == sorted(loaded)
    # An explicit unload, then a request loads it again.
    unloaded = httpx.post(f"{gw.url}/v1/models/pro/unload", timeout=TIMEOUT_S)
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    assert _states(endpoints).get("pro__t2s") != "READY"
    assert _post(gw.url, ref, "pro").json()["output_audio_base64"] == first["pro"].json()["output_audio_base64"]
    loaded = httpx.post(f"{gw.url}/v1/models/alice/load", timeout=TIMEOUT_S)
    assert loaded.status_code == 200 and loaded.json()["state"] == "loaded" and loaded.json()["loads"] >= 2


@pytest.mark.slow
def test_a_set_is_never_unloaded_under_a_request(gateway, reference_audio) -> None:
    """A long stream on ``alice`` that the client stops reading holds ``alice``: an unload is refused (409), and
    loading ``pro`` with a cap of 2 unloads ``default`` although ``alice`` is the less recently used; the stream
    then ends with alice's whole audio."""
    gw, endpoints = gateway
    ref = reference_audio(1)
    data = {"text": "你好。" * 80, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh",
            "seed": str(SEED), "cut_punc": "。", "model": "alice"}  # fmt: skip
    chunks: list[bytes] = []
    started, resume = threading.Event(), threading.Event()

    def stream() -> None:
        with httpx.stream("POST", f"{gw.url}/v1/voice-clone/stream", data=data, files={"audio": ("ref.wav", ref)},
                          timeout=TIMEOUT_S) as response:  # fmt: skip
            response.raise_for_status()
            for chunk in response.iter_raw():
                chunks.append(chunk)
                if not started.is_set():
                    started.set()
                    resume.wait(TIMEOUT_S)  # stop reading: 80 pieces (2 min of audio) cannot all be buffered

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert started.wait(TIMEOUT_S)
        assert _post(gw.url, ref, "default").status_code == 200  # default is now used more recently than alice
        busy = httpx.post(f"{gw.url}/v1/models/alice/unload", timeout=TIMEOUT_S)
        assert busy.status_code == 409 and "in flight" in busy.json()["detail"], busy.text
        assert _post(gw.url, ref, "pro").status_code == 200
        states = _states(endpoints)
        assert states.get("alice__t2s") == "READY" and states.get("t2s") != "READY", states
        assert _sets(gw.url)["alice"]["in_flight"] == 1
    finally:
        resume.set()
        worker.join(TIMEOUT_S)
    whole = _post(gw.url, ref, "alice", text=data["text"], cut_punc="。")
    assert b"".join(chunks)[44:] == base64.b64decode(whole.json()["output_audio_base64"])[44:]


@pytest.mark.slow
def test_gateway_names_and_voices(gateway, reference_audio, multi_repository) -> None:
    gw, _ = gateway
    ref = reference_audio(1)
    unknown = _post(gw.url, ref, "bob")
    assert unknown.status_code == 404 and "alice, broken, default, pro" in unknown.json()["detail"]
    assert _post(gw.url, ref, "No Such").status_code == 400
    # A stored voice belongs to the set that encoded it, and speaks with it.
    voice = create_voice(gw.url, ref, model="alice", prompt_text=PROMPT)
    assert voice.status_code == 201 and voice.json()["model"] == "alice", voice.text
    voice_id = voice.json()["id"]
    by_voice = _post(gw.url, ref, voice_id=voice_id)
    by_clip = _post(gw.url, ref, "alice")
    assert by_voice.json()["output_audio_base64"] == by_clip.json()["output_audio_base64"]
    other = _post(gw.url, ref, "pro", voice_id=voice_id)
    assert other.status_code == 422 and "stored under model set 'alice'" in other.json()["detail"]
    speech = httpx.post(f"{gw.url}/v1/audio/speech", json={"model": "alice", "input": TEXT, "voice": voice_id,
                                                          "response_format": "wav", "seed": SEED}, timeout=TIMEOUT_S)
    assert speech.status_code == 200, speech.text
    wrong = httpx.post(f"{gw.url}/v1/audio/speech", json={"model": "pro", "input": TEXT, "voice": voice_id},
                       timeout=TIMEOUT_S)  # fmt: skip
    assert wrong.status_code == 422
    # api_v2: /set_gpt_weights with a set's checkpoint switches /tts to that set.
    alice_gpt = Manifest.read(multi_repository, "alice").sources["gpt"]
    query = {"text": TEXT, "text_lang": "zh", "ref_audio_path": "ref.wav", "prompt_text": PROMPT, "prompt_lang": "zh",
             "seed": SEED, "text_split_method": "cut5", "media_type": "raw"}  # fmt: skip
    before = httpx.get(f"{gw.url}/tts", params=query, timeout=TIMEOUT_S)
    switched = httpx.get(f"{gw.url}/set_gpt_weights", params={"weights_path": alice_gpt}, timeout=TIMEOUT_S)
    assert switched.status_code == 200, switched.text
    after = httpx.get(f"{gw.url}/tts", params=query, timeout=TIMEOUT_S)
    assert before.status_code == after.status_code == 200 and before.content != after.content
    back = httpx.get(f"{gw.url}/set_sovits_weights",
                     params={"weights_path": Manifest.read(multi_repository).sources["sovits"]}, timeout=TIMEOUT_S)
    assert back.status_code == 200 and httpx.get(f"{gw.url}/tts", params=query, timeout=TIMEOUT_S).content == \
        before.content  # fmt: skip


@pytest.mark.slow
def test_a_set_whose_files_are_gone(gateway, reference_audio) -> None:
    """The set whose decoder file was deleted: its load fails with a clear 503, nothing of it stays loaded, and
    the other sets keep serving."""
    gw, endpoints = gateway
    broken = _post(gw.url, reference_audio(1), "broken")
    assert broken.status_code == 503 and "model set 'broken' is unusable" in broken.json()["detail"], broken.text
    assert _sets(gw.url)["broken"]["last_error"]
    assert not any(_states(endpoints).get(m) == "READY" for m in set_models("broken"))  # nothing half loaded
    assert _post(gw.url, reference_audio(1), "pro").status_code == 200
    assert _post(gw.url, reference_audio(1)).status_code == 200


@pytest.mark.slow
def test_the_web_page_lists_the_sets_and_speaks_with_the_chosen_one(gateway, page, reference_audio, tmp_path) -> None:
    gw, _ = gateway
    clip = tmp_path / "reference.wav"
    clip.write_bytes(reference_audio(1))
    open_page(page, gw.url)
    assert sorted(page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")) == \
        sorted(["default", *SETS[1:], "broken"])  # fmt: skip
    assert page.input_value("#model") == "default"
    page.set_input_files("#audio", clip)
    page.fill("#prompt_text", PROMPT)
    page.fill("#text", TEXT)
    page.fill("#seed", str(SEED))
    page.fill("#cut_punc", "，。")
    page.select_option("#model", "alice")
    synthesize(page)
    samples, _ = shown_result(page)
    expected = wav_samples(base64.b64decode(_post(gw.url, reference_audio(1), "alice").json()["output_audio_base64"]))
    np.testing.assert_array_equal(samples, expected[0])
    # A set that cannot load: the gateway's 503 reason on the page.
    page.select_option("#model", "broken")
    page.click("#synthesize")
    page.wait_for_selector("#message.error:has-text(\"model set 'broken' is unusable\")")
