"""Upstream api_v2.py's routes on the gateway (gateway/routes/api_v2.py).

Fast: the parameter rules (gateway/api_v2_params.py), the text split, path confinement, the weights check
against a manifest, the ge average and the piece re-spacing. Slow: a real gateway process in front of a real
tritonserver (tiny models), driven the way api_v2 users write clients: ``requests.get`` with query parameters,
``stream=True`` + ``iter_content`` for streams. The aux-reference average is checked against voice_encode and
voice_clone called directly with the mean ge computed here.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np
import pytest

from gsv_gateway.api_v2_params import MAX_AUX_REFERENCES, parse_tts
from gsv_gateway.api_v2_refs import confine, mean_ge
from gsv_gateway.api_v2_weights import weights_model_set
from gsv_gateway.errors import ForbiddenPath
from gsv_gateway.routes.api_v2 import respaced, split_text
from gsv_gateway.triton import StreamPiece
from gsv_triton.audio.formats import API_V2_FORMATS, encode_audio
from gsv_triton.audio.output import pcm16_bytes
from gsv_triton.errors import InputError
from gsv_triton.manifest import Manifest, SovitsShape
from gsv_triton.settings import Limits

RATE = 32_000
BASE = {"text": "你好。", "text_lang": "ZH", "prompt_text": "参考音频文字", "prompt_lang": "zh"}


# -- the parameter rules ------------------------------------------------------------------------------------
def test_defaults_are_api_v2s() -> None:
    params = parse_tts(BASE)
    assert (params.text_lang, params.prompt_lang) == ("zh", "zh")  # lowered, as api_v2 does
    assert params.text_split_method == "cut5" and params.media_type == "wav" and params.streaming_mode == 0
    assert params.fragment_interval == 0.3 and params.seed is None and params.aux_ref_audio_paths == ()
    assert (params.overlap_length, params.min_chunk_length) == (None, 16)  # None: the stream model's overlap


@pytest.mark.parametrize("missing", ["text", "text_lang", "prompt_lang"])
def test_required_fields(missing: str) -> None:
    with pytest.raises(InputError, match="is required") as error:
        parse_tts({k: v for k, v in BASE.items() if k != missing})
    assert error.value.field == missing and error.value.status == 400


def test_reference_free_mode_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="reference-free") as error:
        parse_tts({**BASE, "prompt_text": ""})
    assert error.value.field == "prompt_text"


@pytest.mark.parametrize(
    ("sent", "mode"),
    [(False, 0), (True, 1), (0, 0), (1, 1), (2, 2), (3, 3), ("false", 0), ("true", 1), ("True", 1), ("0", 0),
     ("1", 1), ("2", 2), ("3", 3), (None, 0)],
)  # fmt: skip
def test_streaming_mode_values(sent: object, mode: int) -> None:
    assert parse_tts({**BASE, "streaming_mode": sent}).streaming_mode == mode


@pytest.mark.parametrize("sent", [4, -1, "4", "yes please", 1.5, [1]])
def test_streaming_mode_refused(sent: object) -> None:
    with pytest.raises(InputError, match="must be one of 0, 1, 2, 3, true or false") as error:
        parse_tts({**BASE, "streaming_mode": sent})
    assert error.value.field == "streaming_mode"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("media_type", "mp3", "must be one of wav, raw, ogg, aac"),
        ("text_split_method", "cut9", "must be one of cut0, cut1, cut2, cut3, cut4, cut5"),
        ("top_k", "1.5", "must be an integer"),
        ("top_k", True, "must be an integer"),
        ("seed", "abc", "must be an integer"),
        ("top_p", "nan", "must be a finite number"),
        ("temperature", 10**400, "must be a finite number"),
        ("batch_size", 0, "must be an integer >= 1"),
        ("split_bucket", "maybe", "must be true or false"),
        ("fragment_interval", -0.1, "must be in [0, 10] seconds"),
        ("fragment_interval", 11, "must be in [0, 10] seconds"),
        ("overlap_length", -1, "must be an integer >= 0"),
        ("min_chunk_length", 0, "must be an integer >= 1"),
        ("sample_steps", 8, "v3/v4 models only"),
        ("super_sampling", True, "v3 models only"),
        ("super_sampling", "true", "v3 models only"),
        ("aux_ref_audio_paths", [1, 2], "must be a list of paths"),
        ("text", 5, "must be a string"),
    ],
)
def test_rules_name_the_field(field: str, value: object, rule: str) -> None:
    with pytest.raises(InputError, match=rule.replace("[", r"\[").replace("(", r"\(")) as error:
        parse_tts({**BASE, field: value})
    assert error.value.field == field and error.value.status == 400


def test_accepted_values_pass_and_are_typed() -> None:
    params = parse_tts({**BASE, "top_k": "20", "top_p": "0.8", "temperature": 0.7, "speed_factor": "1.25",
                        "seed": "-1", "sample_steps": "32", "super_sampling": "false", "batch_size": "4",
                        "parallel_infer": "false", "split_bucket": True, "media_type": "AAC",
                        "aux_ref_audio_paths": ["a.wav", "", "b.wav"], "repetition_penalty": "1.2",
                        "fragment_interval": 0})  # fmt: skip
    assert (params.top_k, params.top_p, params.temperature, params.speed_factor) == (20, 0.8, 0.7, 1.25)
    assert params.seed is None and params.media_type == "aac" and params.repetition_penalty == 1.2
    assert params.aux_ref_audio_paths == ("a.wav", "b.wav")  # empty entries skipped, as api_v2 skips them
    assert params.fragment_interval == 0.0
    assert params.ignored == {"batch_size": 4, "split_bucket": True, "parallel_infer": False, "sample_steps": 32,
                              "super_sampling": False}  # fmt: skip
    assert parse_tts({**BASE, "seed": 12}).seed == 12


def test_too_many_aux_references() -> None:
    with pytest.raises(InputError, match=f"at most {MAX_AUX_REFERENCES}"):
        parse_tts({**BASE, "aux_ref_audio_paths": [f"r{i}.wav" for i in range(MAX_AUX_REFERENCES + 1)]})


def test_split_text_uses_the_method_and_the_limit() -> None:
    text = "第一句话很长。第二句话也很长。第三句话来了！"
    assert split_text(parse_tts({**BASE, "text": text, "text_split_method": "cut5"}), Limits()).split("\n") == [
        "第一句话很长。", "第二句话也很长。", "第三句话来了！"]  # fmt: skip
    assert split_text(parse_tts({**BASE, "text": text, "text_split_method": "cut0"}), Limits()) == text
    with pytest.raises(InputError, match="is longer than 10 characters") as error:
        split_text(parse_tts({**BASE, "text": "一" * 11}), Limits(max_text_chars=10))
    assert error.value.status == 413
    # 11 characters as sent, 13 once cut5 splits them in two (a line break between, a mark after the second)
    with pytest.raises(InputError, match="is 13 characters once split into 2 pieces"):
        split_text(parse_tts({**BASE, "text": "一二三四五，六七八九十"}), Limits(max_text_chars=12))


# -- paths -----------------------------------------------------------------------------------------------------
def test_confinement(tmp_path: Path) -> None:
    root = tmp_path / "refs"
    root.mkdir()
    (root / "a.wav").write_bytes(b"x")
    (tmp_path / "secret.wav").write_bytes(b"x")
    (root / "link.wav").symlink_to(tmp_path / "secret.wav")
    assert confine("a.wav", root, "ref_audio_path") == (root / "a.wav").resolve()
    assert confine(str(root / "a.wav"), root, "ref_audio_path") == (root / "a.wav").resolve()
    for raw in ("../secret.wav", str(tmp_path / "secret.wav"), "link.wav", "a.wav\x00", "/etc/passwd"):
        with pytest.raises(ForbiddenPath) as error:
            confine(raw, root, "aux_ref_audio_paths[0]")
        assert error.value.status == 403 and error.value.field == "aux_ref_audio_paths[0]"
    with pytest.raises(ForbiddenPath, match="--refer-root"):
        confine("a.wav", None, "ref_audio_path")


def test_weights_paths_choose_a_model_set(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("gpt.ckpt", "alice.ckpt", "other.ckpt"):
        (weights / name).write_bytes(b"x")
    (tmp_path / "outside.ckpt").write_bytes(b"x")
    repo = tmp_path / "repo"
    repo.mkdir()
    Manifest("cpu", "v2", "v2", SovitsShape(192, 512), sources={"gpt": str(weights / "gpt.ckpt")}).write(repo)
    Manifest("cpu", "v2", "v2", SovitsShape(192, 512), sources={"gpt": str(weights / "alice.ckpt")}).write(repo, "alice")
    assert weights_model_set("gpt.ckpt", "gpt", repo) == "default"
    assert weights_model_set(str(weights / "alice.ckpt"), "gpt", repo) == "alice"
    assert weights_model_set("alice", "gpt", repo) == "alice"  # a set's name chooses it too
    with pytest.raises(InputError, match="no model set of this server was exported from") as other:
        weights_model_set("other.ckpt", "gpt", repo)
    assert other.value.status == 400 and other.value.field == "weights_path"
    assert "'alice.ckpt' (alice)" in str(other.value)
    for raw in ("../outside.ckpt", str(tmp_path / "outside.ckpt"), "gpt.ckpt\x00"):
        with pytest.raises(ForbiddenPath):
            weights_model_set(raw, "gpt", repo)
    with pytest.raises(ForbiddenPath, match="GSV_MODEL_REPOSITORY"):
        weights_model_set("gpt.ckpt", "gpt", None)
    with pytest.raises(InputError, match="is required"):
        weights_model_set("", "gpt", repo)


# -- audio ------------------------------------------------------------------------------------------------------
def test_mean_ge_is_the_elementwise_mean() -> None:
    ges = [np.array([1.0, 2.0], np.float32), np.array([3.0, 6.0], np.float32), np.array([[2.0], [1.0]], np.float32)]
    np.testing.assert_array_equal(mean_ge(ges), np.array([2.0, 3.0], np.float32))
    assert mean_ge(ges).dtype == np.float32


def test_respaced_replaces_the_models_silence() -> None:
    speech = np.full(100, 0.5, np.float32)
    piece = StreamPiece(np.concatenate([speech, np.zeros(9600, np.float32)]), 0, 1, RATE, 1)
    out = respaced(piece, 0.5)
    assert len(out) == 100 + 16_000 and np.all(out[:100] == 0.5) and not out[100:].any()
    np.testing.assert_array_equal(respaced(piece, 0.3), piece.audio)


def _decode(data: bytes) -> tuple[str, int, np.ndarray]:
    """Codec, rate and samples of an encoded file, through FFmpeg (PyAV), not the library that wrote it."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return stream.codec_context.name, stream.rate, np.concatenate(frames)


@pytest.mark.parametrize(("name", "codec"), [("wav", "pcm_s16le"), ("ogg", "vorbis"), ("aac", "aac")])
def test_api_v2_formats_decode(name: str, codec: str) -> None:
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    got_codec, rate, samples = _decode(encode_audio(tone, RATE, API_V2_FORMATS[name]).data)
    assert (got_codec, rate) == (codec, RATE)
    assert abs(len(samples) - RATE) < 2048  # codec priming and padding only
    assert encode_audio(tone, RATE, API_V2_FORMATS["raw"]).data == pcm16_bytes(tone)


# -- through a real tritonserver and the real gateway -------------------------------------------------------------
MAX_NEW_TOKENS = 40
TIMEOUT_S = 120.0
PROMPT = "参考音频文字"
SEED = 7
TINY_MIN_SNR_DB = 12.0  # tests/test_token_stream.py's bound for the tiny random models


@pytest.fixture(scope="module")
def refs(tmp_path_factory, reference_audio) -> Path:
    root = tmp_path_factory.mktemp("api_v2_refs")
    for i in range(3):
        (root / f"ref{i}.wav").write_bytes(reference_audio(i + 1))
    outside = tmp_path_factory.mktemp("api_v2_outside")
    (outside / "secret.wav").write_bytes(reference_audio(9))
    (root / "escape.wav").symlink_to(outside / "secret.wav")
    return root


@pytest.fixture(scope="module")
def gateway(triton_server, refs, tmp_path_factory):
    from gateway_fixtures import start_gateway

    running = start_gateway(
        triton_server.grpc_url, tmp_path_factory.mktemp("api_v2_run"),
        ["--refer-root", str(refs), "--max-new-tokens", str(MAX_NEW_TOKENS)],
        env={"GSV_MODEL_REPOSITORY": str(triton_server.repo)}, triton_http_url=triton_server.http_url,
    )  # fmt: skip
    yield running
    assert running.stop() == 0, running.log_text()[-3000:]


def _query(**fields: object) -> dict[str, object]:
    return {"text": "今天天气很好。", "text_lang": "zh", "ref_audio_path": "ref0.wav", "prompt_text": PROMPT,
            "prompt_lang": "zh", "seed": SEED, **fields}  # fmt: skip


def _tts(url: str, **fields: object):
    import requests

    return requests.get(f"{url}/tts", params=_query(**fields), timeout=TIMEOUT_S)


@pytest.mark.slow
def test_media_types_decode(gateway) -> None:
    import requests

    wav = _tts(gateway.url)
    assert wav.status_code == 200, wav.text
    assert wav.headers["content-type"] == "audio/wav" and wav.headers["x-seed"] == str(SEED)
    codec, rate, samples = _decode(wav.content)
    assert (codec, rate) == ("pcm_s16le", RATE) and len(samples) > 0.3 * RATE
    raw = _tts(gateway.url, media_type="raw")
    assert raw.headers["content-type"] == "audio/raw" and raw.content == wav.content[44:]  # same seed, same audio
    for name, codec_name in (("ogg", "vorbis"), ("aac", "aac")):
        answer = _tts(gateway.url, media_type=name)
        assert answer.status_code == 200 and answer.headers["content-type"] == f"audio/{name}"
        got_codec, got_rate, decoded = _decode(answer.content)
        assert (got_codec, got_rate) == (codec_name, RATE) and abs(len(decoded) - len(samples)) < 2048
    post = requests.post(f"{gateway.url}/tts", json=_query(streaming_mode=False), timeout=TIMEOUT_S)
    assert post.status_code == 200 and post.content == wav.content


def _stream(url: str, **fields: object) -> tuple[list[bytes], Mapping[str, str]]:
    import requests

    with requests.get(f"{url}/tts", params=_query(**fields), stream=True, timeout=TIMEOUT_S) as response:
        assert response.status_code == 200, response.text
        chunks = [chunk for chunk in response.iter_content(chunk_size=None) if chunk]
        return chunks, response.headers


@pytest.mark.slow
def test_streaming_modes(gateway) -> None:
    text = "第一句话。第二句话！第三句话？"
    whole = _tts(gateway.url, text=text).content
    chunks, headers = _stream(gateway.url, text=text, streaming_mode="true")
    assert headers["Content-Type"] == "audio/wav" and headers["X-Pieces"] == "3"
    body = b"".join(chunks)
    assert body[:4] == b"RIFF" and body[44:] == whole[44:]  # the stream joins to the whole file's samples
    # streaming_mode 2 and 3: voice_clone_stream's token chunks (min_chunk_length tokens each, overlap_length
    # cross-faded), with the unstreamed tokens. One exception, by the stream model's design: a piece that hits
    # max_new_tokens (40 here) keeps the first token it already sent, where the unstreamed answer drops it
    # (upstream's cap rule), so it is one token (1280 samples) longer
    full = np.frombuffer(whole[44:], "<i2").astype(np.float64)
    modes = {}
    for mode in ("2", "3"):
        chunks_, headers_ = _stream(gateway.url, text=text, streaming_mode=mode, min_chunk_length=8, overlap_length=2)
        modes[mode] = b"".join(chunks_)
        assert headers_["Content-Type"] == "audio/wav" and modes[mode][:4] == b"RIFF"
        streamed = np.frombuffer(modes[mode][44:], "<i2").astype(np.float64)
        extra = streamed.size - full.size
        assert extra % 1280 == 0 and 0 <= extra <= 3 * 1280, (mode, streamed.size, full.size)
        assert np.count_nonzero(streamed) > 0.5 * np.count_nonzero(full)
        if extra == 0:  # no piece at the cap: the same audio within the tiny models' join bound
            snr_db = 10 * np.log10(np.sum(full**2) / max(np.sum((full - streamed) ** 2), 1e-9))
            assert snr_db >= TINY_MIN_SNR_DB, (mode, snr_db)
    assert modes["2"] == modes["3"]  # one chunk rule here (api_v2's mute-token cuts of mode 2 are not ours)
    bad = _tts(gateway.url, text=text, streaming_mode=2, min_chunk_length=8, overlap_length=8)
    assert bad.status_code == 400 and bad.json()["field"] == "overlap_length", bad.text
    raw_chunks, raw_headers = _stream(gateway.url, text=text, streaming_mode=1, media_type="raw")
    assert raw_headers["Content-Type"] == "audio/raw" and b"".join(raw_chunks) == whole[44:]
    aac_chunks, _ = _stream(gateway.url, text=text, streaming_mode=1, media_type="aac")
    assert _decode(b"".join(aac_chunks))[0] == "aac"  # back-to-back ADTS pieces are one valid stream


@pytest.mark.slow
def test_fragment_interval_respaces_the_pieces(gateway) -> None:
    text = "第一句话。第二句话！"
    base = np.frombuffer(_tts(gateway.url, text=text, media_type="raw").content, "<i2")
    wide = np.frombuffer(_tts(gateway.url, text=text, media_type="raw", fragment_interval=0.5).content, "<i2")
    assert len(wide) == len(base) + 2 * int(0.2 * RATE)  # two pieces, 0.2 s more silence after each
    none = np.frombuffer(_tts(gateway.url, text=text, media_type="raw", fragment_interval=0).content, "<i2")
    assert len(none) == len(base) - 2 * int(0.3 * RATE)
    # only silence moved: without their zero samples the three answers are the same audio
    np.testing.assert_array_equal(wide[wide != 0], base[base != 0])
    np.testing.assert_array_equal(none[none != 0], base[base != 0])
    assert np.count_nonzero(base) > 0.1 * RATE


def _infer(http_url: str, model: str, values: dict[str, object], outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    import tritonclient.http as httpclient

    from gsv_triton.contract import CONTRACTS

    contract = CONTRACTS[model]
    inputs = []
    for name, value in values.items():
        spec = contract.input(name)
        array = value if isinstance(value, np.ndarray) else spec.array(value)
        tensor = httpclient.InferInput(name, list(array.shape), spec.datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    client = httpclient.InferenceServerClient(http_url, network_timeout=TIMEOUT_S, connection_timeout=TIMEOUT_S)
    try:
        result = client.infer(model, inputs, outputs=[httpclient.InferRequestedOutput(n) for n in outputs])
        return {name: result.as_numpy(name) for name in outputs}
    finally:
        client.close()


@pytest.mark.slow
def test_aux_references_average_ge_as_upstream(gateway, triton_server, refs) -> None:
    text = "今天天气很好。"  # one cut5 piece, sent to voice_clone as it is
    answer = _tts(gateway.url, text=text, media_type="raw", aux_ref_audio_paths=["ref1.wav", "ref2.wav"])
    assert answer.status_code == 200, answer.text
    encode = ("prompt_phone_ids", "prompt_bert", "prompt_codes", "ge")
    features = [
        _infer(
            triton_server.http_url,
            "voice_encode",
            {"reference_audio": (refs / f"ref{i}.wav").read_bytes(), "prompt_text": PROMPT, "prompt_language": "zh"},
            encode,
        )  # fmt: skip
        for i in range(3)
    ]
    ge = np.mean(np.stack([f["ge"].astype(np.float32) for f in features]), axis=0).astype(np.float32)
    assert not np.allclose(ge, features[0]["ge"])  # the references differ, so the average matters
    values: dict[str, object] = {
        "text": text, "text_language": "zh", "cut_punc": "", "seed": SEED, "max_new_tokens": MAX_NEW_TOKENS,
        **{name: features[0][name] for name in encode[:3]}, "ge": ge,
    }  # fmt: skip
    direct = _infer(triton_server.http_url, "voice_clone", values, ("audio",))["audio"]
    assert answer.content == pcm16_bytes(direct)
    main_only = _tts(gateway.url, text=text, media_type="raw")
    assert main_only.content != answer.content


@pytest.mark.slow
def test_paths_escaping_the_reference_directory_are_403(gateway, refs) -> None:
    import requests

    outside = str(refs.parent)
    for fields in ({"ref_audio_path": "../x.wav"}, {"ref_audio_path": "/etc/passwd"},
                   {"ref_audio_path": "escape.wav"}, {"aux_ref_audio_paths": ["ref1.wav", "../../x.wav"]},
                   {"ref_audio_path": f"{outside}/ref0.wav"}, {"ref_audio_path": "ref0.wav\x00"}):  # fmt: skip
        answer = _tts(gateway.url, **fields)
        assert answer.status_code == 403, (fields, answer.text)
        assert next(iter(fields)) in answer.json()["message"]
    for route, key in (("/set_refer_audio", "refer_audio_path"), ("/set_gpt_weights", "weights_path"),
                       ("/set_sovits_weights", "weights_path")):  # fmt: skip
        answer = requests.get(f"{gateway.url}{route}", params={key: "../../../etc/passwd"}, timeout=TIMEOUT_S)
        assert answer.status_code == 403 and answer.json()["message"].startswith(key)


@pytest.mark.slow
def test_set_routes_and_control(gateway, triton_server, refs) -> None:
    import requests

    url = gateway.url
    assert _tts(url, ref_audio_path=None).status_code == 400  # no reference set yet
    ok = requests.get(f"{url}/set_refer_audio", params={"refer_audio_path": "ref1.wav"}, timeout=TIMEOUT_S)
    assert ok.status_code == 200 and ok.json() == {"message": "success"}
    by_default = _tts(url, ref_audio_path=None, media_type="raw")
    assert by_default.status_code == 200 and by_default.content == _tts(url, ref_audio_path="ref1.wav",
                                                                        media_type="raw").content  # fmt: skip
    missing = requests.get(f"{url}/set_refer_audio", params={"refer_audio_path": "nope.wav"}, timeout=TIMEOUT_S)
    assert missing.status_code == 400 and "refer_audio_path" in missing.json()["message"]
    sources = Manifest.read(triton_server.repo).sources
    for route, kind in (("/set_gpt_weights", "gpt"), ("/set_sovits_weights", "sovits")):
        loaded = requests.get(f"{url}{route}", params={"weights_path": sources[kind]}, timeout=TIMEOUT_S)
        assert loaded.status_code == 200 and loaded.json() == {"message": "success"}
        by_name = requests.get(f"{url}{route}", params={"weights_path": Path(sources[kind]).name}, timeout=TIMEOUT_S)
        assert by_name.status_code == 200
        other = requests.get(f"{url}{route}", params={"weights_path": "other_voice.ckpt"}, timeout=TIMEOUT_S)
        assert other.status_code == 400 and "no model set of this server" in other.json()["message"]
        assert requests.get(f"{url}{route}", timeout=TIMEOUT_S).status_code == 400
    exit_ = requests.get(f"{url}/control", params={"command": "exit"}, timeout=TIMEOUT_S)
    assert exit_.status_code == 403 and "GSV_ALLOW_CONTROL_EXIT" in exit_.json()["message"]
    restart = requests.get(f"{url}/control", params={"command": "restart"}, timeout=TIMEOUT_S)
    assert restart.status_code == 200 and restart.json() == {"message": "success"}
    assert _tts(url, ref_audio_path=None).status_code == 400  # restart forgot the /set_refer_audio reference
    for params in ({}, {"command": "reboot"}):
        bad = requests.get(f"{url}/control", params=params, timeout=TIMEOUT_S)
        assert bad.status_code == 400 and bad.json()["message"].startswith("command: ")
    assert gateway.process.poll() is None


@pytest.mark.slow
def test_error_shapes(gateway) -> None:
    import requests

    cases = [
        ({"text": None}, 400, "text: is required"),
        ({"text_lang": "xx"}, 400, "text_lang: "),
        ({"prompt_lang": "xx"}, 400, "prompt_lang: "),
        ({"media_type": "flac"}, 400, "media_type: must be one of wav, raw, ogg, aac"),
        ({"streaming_mode": "7"}, 400, "streaming_mode: must be one of 0, 1, 2, 3"),
        ({"text_split_method": "cut6"}, 400, "text_split_method: must be one of"),
        ({"sample_steps": 16}, 400, "sample_steps: is used by v3/v4 models only"),
        ({"speed_factor": 9}, 400, "speed_factor: must be in [0.25, 4]"),
        ({"top_p": 2}, 400, "top_p: must be in (0, 1]"),
        ({"prompt_text": ""}, 400, "prompt_text: is required"),
        ({"ref_audio_path": "nope.wav"}, 400, "ref_audio_path: "),
        ({"streaming_mode": 1, "text_lang": "xx"}, 400, "text_lang: "),  # a stream's error before any audio
    ]
    for fields, status, message in cases:
        answer = _tts(gateway.url, **fields)
        assert answer.status_code == status, (fields, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["message"].startswith(message), (fields, answer.json())
    garbage = requests.post(f"{gateway.url}/tts", data=b"{not json", headers={"Content-Type": "application/json"},
                            timeout=TIMEOUT_S)  # fmt: skip
    assert garbage.status_code == 400 and garbage.json()["message"] == "body: is not valid JSON"


@pytest.mark.slow
def test_control_exit_where_the_operator_allows_it(triton_server, tmp_path) -> None:
    import requests
    from gateway_fixtures import start_gateway

    running = start_gateway(triton_server.grpc_url, tmp_path, env={"GSV_ALLOW_CONTROL_EXIT": "true"})
    try:
        answer = requests.get(f"{running.url}/control", params={"command": "exit"}, timeout=TIMEOUT_S)
        assert answer.status_code == 200 and answer.json() == {"message": "success"}
        deadline = time.monotonic() + 15
        while running.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running.process.returncode is not None, "the gateway did not stop"
        assert running.process.returncode == 0, running.log_text()[-2000:]
    finally:
        running.stop()


@pytest.mark.slow
def test_v1_voice_clone_aux_voice_ids_average_as_tts_does(gateway, refs) -> None:
    """/v1/voice-clone's aux_voice_ids (stored voices) give exactly api_v2's aux_ref_audio_paths audio."""
    import base64

    import httpx
    from gateway_fixtures import create_voice

    voice_ids = []
    for i in range(3):
        created = create_voice(gateway.url, (refs / f"ref{i}.wav").read_bytes(), prompt_text=PROMPT)
        assert created.status_code == 201, created.text
        voice_ids.append(created.json()["id"])
    text = "今天天气很好。"
    tts = _tts(gateway.url, text=text, media_type="raw", aux_ref_audio_paths=["ref1.wav", "ref2.wav"])
    assert tts.status_code == 200, tts.text

    def clone(**form: str) -> bytes:
        files = form.pop("files", None)
        answer = httpx.post(f"{gateway.url}/v1/voice-clone", data={"text": text, "text_language": "zh",
                            "seed": str(SEED), **form}, files=files, timeout=TIMEOUT_S)  # fmt: skip
        assert answer.status_code == 200, answer.text
        return base64.b64decode(answer.json()["output_audio_base64"])[44:]

    aux = f"{voice_ids[1]}, {voice_ids[2]}"
    assert clone(voice_id=voice_ids[0], aux_voice_ids=aux) == tts.content
    uploaded = clone(prompt_text=PROMPT, prompt_language="zh", aux_voice_ids=aux,
                     files={"audio": ("ref0.wav", (refs / "ref0.wav").read_bytes())})  # fmt: skip
    assert uploaded == tts.content  # an uploaded main clip is encoded, then averaged the same way
    assert clone(voice_id=voice_ids[0]) != tts.content
    missing = httpx.post(f"{gateway.url}/v1/voice-clone", data={"text": text, "text_language": "zh",
                         "voice_id": voice_ids[0], "aux_voice_ids": "voice_0000000000000000"}, timeout=TIMEOUT_S)  # fmt: skip
    assert missing.status_code == 404 and missing.json()["field"] == "aux_voice_ids"
