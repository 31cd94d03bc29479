"""The Triton model repository and the ``voice_clone`` pipeline.

Fast tests cover the request rules, the pipeline helpers and the config installer. Tests marked ``slow`` run a
real tritonserver on the tiny exported models (``triton_server`` fixture in conftest.py): HTTP and gRPC, audio
length per token, seeds, concurrency without crosstalk, BERT's dynamic batching and error handling.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from gsv_triton.backend.cache import LruCache
from gsv_triton.backend.ort_backend import OrtBackend
from gsv_triton.backend.pipeline import (
    VoiceClonePipeline,
    derive_seed,
    expand_bert,
    pad_rows,
)
from gsv_triton.backend.requests import parse_request, prompt_with_end_mark
from gsv_triton.contract import frames_for_speed
from gsv_triton.errors import InputError
from gsv_triton.settings import HOP_LENGTH, OUTPUT_SAMPLE_RATE, SAMPLES_PER_TOKEN
from gsv_triton.text import get_phones_and_bert_inputs

SILENCE = int(0.3 * OUTPUT_SAMPLE_RATE)  # api.py: 0.3 s after every piece
MAX_TOKENS = 40  # bounds the tiny random GPT (it usually stops at EOS after 11-20 tokens)
TEXT = "你好，世界。今天天气很好! Hello world."
CUT_PUNC = "，。!"
PIECES = 4  # TEXT split after "，", "。" and "!"


def _strings(**values: str | bytes) -> dict[str, np.ndarray]:
    return {k: np.array([v if isinstance(v, bytes) else v.encode()], dtype=object) for k, v in values.items()}


def _request_inputs(reference: bytes, **extra) -> dict[str, np.ndarray]:
    inputs = _strings(text=TEXT, text_language="zh", prompt_text="这是参考音频", prompt_language="zh")
    inputs["reference_audio"] = np.array([reference], dtype=object)
    inputs.update({k: np.array([v]) for k, v in extra.items()})
    return inputs


# -- request rules (no server) ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"prompt_text": ""}, "prompt_text"),
        ({"text_language": "xx"}, "text_language"),
        ({"prompt_language": "klingon"}, "prompt_language"),
        ({"top_k": np.int32(0)}, "top_k"),
        ({"top_p": np.float32(0.0)}, "top_p"),
        ({"top_p": np.float32(1.5)}, "top_p"),
        ({"temperature": np.float32(0.0)}, "temperature"),
        ({"temperature": np.float32(np.nan)}, "temperature"),
        ({"speed": np.float32(0.0)}, "speed"),
        ({"speed": np.float32(10.0)}, "speed"),
        ({"repetition_penalty": np.float32(-1.0)}, "repetition_penalty"),
        ({"max_new_tokens": np.int32(0)}, "max_new_tokens"),
        ({"reference_audio": b""}, "reference_audio"),
        ({"text": b"\xff\xfe"}, "text"),
    ],
)
def test_parse_request_names_the_bad_field(change, field) -> None:
    inputs = _request_inputs(b"RIFF")
    for key, value in change.items():
        inputs[key] = _strings(**{key: value})[key] if isinstance(value, str | bytes) else np.array([value])
    with pytest.raises(InputError) as info:
        parse_request(inputs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_parse_request_defaults_and_normalisation() -> None:
    parsed = parse_request(_request_inputs(b"RIFF", seed=np.int64(-1)), default_cut_punc="。")
    assert (parsed.top_k, parsed.top_p, parsed.temperature, parsed.speed) == (15, 1.0, 1.0, 1.0)
    assert parsed.repetition_penalty == pytest.approx(1.35)
    assert parsed.seed == (1 << 64) - 1  # int64 -1 as the unsigned seed it stands for
    assert parsed.cut_punc == "。"  # the server default applies when the request has none
    assert parsed.prompt_text == "这是参考音频。"
    explicit = parse_request({**_request_inputs(b"RIFF"), **_strings(cut_punc="")}, default_cut_punc="。")
    assert explicit.cut_punc == ""  # an explicit empty cut_punc disables splitting (api.py)
    unseeded = {parse_request(_request_inputs(b"RIFF")).seed for _ in range(4)}
    assert len(unseeded) > 1  # no seed: a fresh random one each time, like upstream


def test_prompt_end_mark_follows_api_py() -> None:
    assert prompt_with_end_mark("hello\n", "en") == "hello."
    assert prompt_with_end_mark("hello", "EN") == "hello。"  # tested before mapping, as upstream
    assert prompt_with_end_mark("你好！", "zh") == "你好！"


# -- pipeline helpers (no server) ------------------------------------------------------------------------------
def test_derive_seed_streams_are_deterministic_and_distinct() -> None:
    seeds = {derive_seed(7, stream, row) for stream in (0, 1) for row in range(4)}
    assert len(seeds) == 8
    assert derive_seed(7, 0, 0) == derive_seed(7, 0, 0) != derive_seed(8, 0, 0)
    assert all(0 <= s < 1 << 63 for s in seeds)


def test_frames_for_speed_matches_upstream_rule() -> None:
    assert frames_for_speed(50, 1.0) == 100
    assert frames_for_speed(50, 1.25) * HOP_LENGTH == 51840  # spec 2.2's worked example
    assert frames_for_speed(10, 0.5) == 41


def test_pad_rows_and_lru_cache() -> None:
    matrix, lengths = pad_rows([[1, 2, 3], [4]], value=-1)
    assert matrix.tolist() == [[1, 2, 3], [4, -1, -1]] and lengths.tolist() == [3, 1]
    cache = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2


def test_expand_bert_repeats_character_rows_by_word2ph() -> None:
    vocab = {"[CLS]": 0, "[SEP]": 1, "[UNK]": 2}
    segment = get_phones_and_bert_inputs("你好世界啊", "zh", vocab=vocab).segments[0]
    n = len(segment.norm_text)
    hidden = np.arange((n + 4) * 1024, dtype=np.float32).reshape(n + 4, 1024)  # [CLS] chars [SEP] + padding
    out = expand_bert(hidden, segment)
    assert out.shape == (1024, len(segment.phones))
    expected = np.repeat(hidden[1 : n + 1], segment.word2ph, axis=0).T
    np.testing.assert_array_equal(out, expected)


# -- config installer (no server) ------------------------------------------------------------------------------
def _fake_export(repo: Path) -> None:
    for model in ("bert", "ssl", "vq_encode", "ref_encoder", "sovits_decode", "t2s"):
        (repo / model / "1").mkdir(parents=True)


def test_install_triton_models_fills_every_placeholder(tmp_path) -> None:
    from gsv_export.triton_repository import MODELS, install_triton_models

    _fake_export(tmp_path)
    install_triton_models(tmp_path, threads=3)
    for model in MODELS:
        config = (tmp_path / model / "config.pbtxt").read_text()
        assert "@" not in config, model
        assert "EXECUTION_ENV_PATH" in config and 'backend: "python"' in config
        assert "TritonPythonModel" in (tmp_path / model / "1" / "model.py").read_text()
    assert 'string_value: "3"' in (tmp_path / "ssl" / "config.pbtxt").read_text()


def test_install_triton_models_gpu_target_uses_native_backends(tmp_path) -> None:
    from gsv_export.triton_repository import install_triton_models

    _fake_export(tmp_path)
    (tmp_path / "ssl" / "1" / "model.plan").write_bytes(b"engine")
    install_triton_models(tmp_path, target="gpu")
    bert = (tmp_path / "bert" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in bert and 'default_model_filename: "bert.onnx"' in bert
    assert "allow_ragged_batch" not in bert and "onnx_file" not in bert and "KIND_GPU" in bert
    assert 'platform: "tensorrt_plan"' in (tmp_path / "ssl" / "config.pbtxt").read_text()
    t2s = (tmp_path / "t2s" / "config.pbtxt").read_text()
    assert 'backend: "python"' in t2s and "KIND_GPU" in t2s
    assert "KIND_CPU" in (tmp_path / "voice_clone" / "config.pbtxt").read_text()


# -- a real tritonserver ---------------------------------------------------------------------------------------
def _call(endpoints, protocol: str, reference: bytes, **fields):
    """voice_clone over ``protocol``; returns (audio, segment_tokens, semantic_tokens, sample_rate)."""
    from gsv_triton.client import build_inputs

    if protocol == "http":
        import tritonclient.http as module

        client = module.InferenceServerClient(endpoints.http_url, network_timeout=300.0)
    else:
        import tritonclient.grpc as module

        client = module.InferenceServerClient(endpoints.grpc_url)
    text = fields.pop("text", TEXT)
    fields.setdefault("cut_punc", CUT_PUNC)
    fields.setdefault("max_new_tokens", MAX_TOKENS)
    inputs = build_inputs(protocol, text, reference, fields.pop("prompt_text", "这是参考音频"),
                          fields.pop("text_language", "zh"), fields.pop("prompt_language", "zh"), **fields)
    try:
        result = client.infer("voice_clone", inputs)
    finally:
        client.close()
    return (
        result.as_numpy("audio"),
        result.as_numpy("segment_tokens"),
        result.as_numpy("semantic_tokens"),
        int(result.as_numpy("sample_rate")[0]),
    )


@pytest.mark.slow
def test_voice_clone_over_http_and_grpc(triton_server, reference_audio) -> None:
    ref = reference_audio(1)
    audio, per_piece, tokens, rate = _call(triton_server, "http", ref, seed=11)
    assert rate == OUTPUT_SAMPLE_RATE
    assert len(per_piece) == PIECES and per_piece.min() >= 1 and len(tokens) == per_piece.sum()
    assert tokens.min() >= 0 and tokens.max() < 1024
    # 1280 samples per generated token, plus 0.3 s of silence after every piece
    assert len(audio) == sum(SAMPLES_PER_TOKEN * int(n) + SILENCE for n in per_piece)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0
    grpc_audio, grpc_per_piece, _, _ = _call(triton_server, "grpc", ref, seed=11)
    np.testing.assert_array_equal(grpc_per_piece, per_piece)
    np.testing.assert_array_equal(grpc_audio, audio)


@pytest.mark.slow
def test_speed_sets_frames_per_piece(triton_server, reference_audio) -> None:
    audio, per_piece, _, _ = _call(triton_server, "grpc", reference_audio(1), seed=5, speed=1.5)
    assert len(audio) == sum(HOP_LENGTH * frames_for_speed(int(n), 1.5) + SILENCE for n in per_piece)


@pytest.mark.slow
def test_seed_decides_the_tokens(triton_server, reference_audio) -> None:
    ref = reference_audio(2)
    first = _call(triton_server, "http", ref, seed=123)
    again = _call(triton_server, "grpc", ref, seed=123)
    other = _call(triton_server, "http", ref, seed=124)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[2], first[2])
    assert not np.array_equal(other[2], first[2])


@pytest.mark.slow
def test_ignore_eos_generates_a_fixed_token_count(triton_server, reference_audio) -> None:
    _, per_piece, _, _ = _call(triton_server, "grpc", reference_audio(1), seed=3, max_new_tokens=30, ignore_eos=True)
    # At the cap upstream's slice drops the first token: 29 per piece, the same for every piece.
    assert per_piece.tolist() == [29] * PIECES


@pytest.mark.slow
def test_concurrent_requests_equal_sequential_ones(triton_server, reference_audio) -> None:
    refs = [reference_audio(1), reference_audio(3)]
    texts = ["你好，世界。", "今天天气很好，我们去公园吧。", "Hello there, how are you?"]
    jobs = [dict(ref=refs[i % 2], text=texts[i % 3], seed=1000 + i, protocol=("http", "grpc")[i % 2])
            for i in range(8)]  # fmt: skip

    def run(job):
        return _call(triton_server, job["protocol"], job["ref"], text=job["text"], seed=job["seed"])

    alone = [run(job) for job in jobs]
    start = threading.Barrier(len(jobs))

    def run_together(job):
        start.wait()  # release all eight at once
        return run(job)

    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(run_together, jobs))
    for one, many in zip(alone, together, strict=True):
        np.testing.assert_array_equal(many[2], one[2])
        np.testing.assert_array_equal(many[0], one[0])


@pytest.mark.slow
def test_bert_batches_across_requests_exactly(triton_server) -> None:
    """Rows of different lengths merged into one padded batch give the same features as alone."""
    import tritonclient.grpc as grpcclient

    rng = np.random.default_rng(0)
    rows = [rng.integers(200, 20000, size=n) for n in (5, 9, 17, 33, 12, 7, 21, 3)]

    def bert(ids):
        client = grpcclient.InferenceServerClient(triton_server.grpc_url)
        ids = ids[None, :].astype(np.int64)
        inputs = []
        for name, value in (("input_ids", ids), ("attention_mask", np.ones_like(ids)),
                            ("token_type_ids", np.zeros_like(ids))):  # fmt: skip
            tensor = grpcclient.InferInput(name, list(value.shape), "INT64")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        try:
            return client.infer("bert", inputs).as_numpy("hidden")
        finally:
            client.close()

    alone = [bert(r) for r in rows]
    stats = grpcclient.InferenceServerClient(triton_server.grpc_url)
    merged = False
    for _ in range(5):  # merging depends on timing; a few rounds of 8 concurrent requests always produce some
        before = stats.get_inference_statistics("bert", as_json=True)["model_stats"][0]
        with ThreadPoolExecutor(len(rows)) as pool:
            together = list(pool.map(bert, rows))
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_array_equal(b, a)
        after = stats.get_inference_statistics("bert", as_json=True)["model_stats"][0]
        runs = int(after["execution_count"]) - int(before["execution_count"])
        merged = merged or runs < len(rows)
        if merged:
            break
    stats.close()
    assert merged, "the dynamic batcher never merged two bert requests"


BAD_INPUTS = [  # (change, field, the status the error carries for HTTP clients)
    ({"text": ""}, "text", 400),
    ({"text_language": "xx"}, "text_language", 400),
    ({"reference_audio": b"this is not an audio file"}, "reference_audio", 415),
    ({"reference_audio": "short"}, "reference_audio", 400),
    ({"top_k": 0}, "top_k", 400),
    ({"top_p": 1.5}, "top_p", 400),
    ({"temperature": 0.0}, "temperature", 400),
    ({"speed": 0.0}, "speed", 400),
    ({"prompt_text": ""}, "prompt_text", 400),
]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_inputs_are_errors_and_the_server_keeps_serving(triton_server, reference_audio, protocol) -> None:
    from tritonclient.utils import InferenceServerException

    good = reference_audio(1)
    for change, field, status in BAD_INPUTS:
        change = dict(change)
        ref = change.pop("reference_audio", good)
        if ref == "short":
            ref = reference_audio(1, seconds=1.0)
        with pytest.raises(InferenceServerException) as info:
            _call(triton_server, protocol, ref, seed=1, **change)
        error = InputError.from_wire(info.value.message())  # field and status as data, not words
        assert error is not None and (error.field, error.status) == (field, status), info.value.message()
        assert str(info.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT"), info.value.status()
    audio, per_piece, _, _ = _call(triton_server, protocol, good, seed=1)
    assert len(audio) == sum(SAMPLES_PER_TOKEN * int(n) + SILENCE for n in per_piece)


@pytest.mark.slow
def test_triton_equals_the_in_process_pipeline(triton_server, reference_audio) -> None:
    """BLS through Triton gives exactly what the same networks give in-process (no tensor corrupted on the way)."""
    ref = reference_audio(4)
    audio, per_piece, tokens, _ = _call(triton_server, "grpc", ref, seed=77)
    pipeline = VoiceClonePipeline.from_repository(OrtBackend(triton_server.repo), triton_server.repo)
    local = pipeline.synthesize(
        parse_request(_request_inputs(ref, seed=np.int64(77), max_new_tokens=np.int32(MAX_TOKENS))
                      | _strings(cut_punc=CUT_PUNC))
    )
    np.testing.assert_array_equal(local.segment_tokens, per_piece)
    np.testing.assert_array_equal(local.tokens, tokens)
    np.testing.assert_array_equal(local.audio, audio)


@pytest.mark.slow
def test_t2s_chunks_do_not_change_a_pieces_tokens(tiny_model_repository, reference_audio, monkeypatch) -> None:
    """A long text runs t2s in chunks of rows; each piece keeps its own seed stream, so the result is the same."""
    import gsv_triton.backend.pipeline as pipeline_module

    pipeline = VoiceClonePipeline.from_repository(OrtBackend(tiny_model_repository), tiny_model_repository)
    inputs = _request_inputs(reference_audio(1), seed=np.int64(5), max_new_tokens=np.int32(MAX_TOKENS))
    inputs |= _strings(text="一，二，三，四，五。", cut_punc="，。")
    whole = pipeline.synthesize(parse_request(inputs))
    monkeypatch.setattr(pipeline_module, "T2S_MAX_ROWS", 2)
    chunked = pipeline.synthesize(parse_request(inputs))
    assert len(whole.segment_tokens) == 5
    np.testing.assert_array_equal(chunked.tokens, whole.tokens)
    np.testing.assert_array_equal(chunked.audio, whole.audio)


def test_rule_messages_show_the_value_that_broke_the_rule() -> None:
    """Issue 20: top_p = 1.0000001 (an FP32 just above 1) was refused with "got 1"."""
    inputs = _request_inputs(b"RIFF")
    inputs["top_p"] = np.array([1.0000001], dtype=np.float32)
    with pytest.raises(InputError) as info:
        parse_request(inputs)
    assert info.value.field == "top_p" and not info.value.message.endswith("got 1")
    assert "got 1.0000001" in info.value.message
