"""Token-chunk streaming (``voice_clone_stream`` with ``chunk_tokens``): audio while T2S still generates.

Fast: the chunk settings' rules, the joiner's arithmetic (exact for a decoder without long-range context), the
prefix-stable piece noise. Slow (tiny models): the tokens equal the unstreamed request's, the joins stay below
the clip's normal sample step, through a real tritonserver and gateway the chunks arrive before the piece ends
and equal the in-process stream bit for bit, bad settings get a 400 naming the field, OpenAI's ``stream=true``
streams, and a client that leaves stops the work.

The SNR rule (>= 25 dB against the unstreamed audio) is measured on full-size weights (perf/README.md, "Token-chunk
streaming"); tiny random networks attend evenly over all tokens, so the tokens still to come move every frame
and their SNR floor here is :data:`TINY_MIN_SNR_DB` (measured 14.7-17 dB).
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from gateway_fixtures import create_voice, start_gateway

from gsv_triton.backend.chunk_join import Chunking, ChunkJoiner, join_quality
from gsv_triton.backend.pipeline import PipelineConfig, VoiceClonePipeline
from gsv_triton.errors import InputError

TIMEOUT_S = 120.0
PROMPT = "参考音频文字"
TEXT = "今天天气很好，我们一起去公园散步吧。"
SPT = 1280  # samples per token at speed 1 (2 latent frames of 640)
TINY_MIN_SNR_DB = 12.0


# -- fast ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chunk", "overlap", "field"),
    [(-1, None, "chunk_tokens"), (1501, None, "chunk_tokens"), (10, 10, "overlap_tokens"), (10, -1, "overlap_tokens")],
)
def test_chunk_settings_name_the_broken_rule(chunk, overlap, field) -> None:
    with pytest.raises(InputError) as info:
        Chunking.from_request(chunk, overlap)
    assert info.value.field == field and info.value.status == 400
    assert str(chunk if field == "chunk_tokens" else overlap) in info.value.message


def test_chunk_settings_defaults() -> None:
    assert not Chunking.from_request(None, None).enabled
    assert not Chunking.from_request(0, 99).enabled  # overlap only matters with chunks
    assert Chunking.from_request(25, None) == Chunking(25, 4)


def _local_decoder(values: np.ndarray, calls: list[tuple[int, int]]):
    """A decoder whose sample n depends only on its own token: windows then join exactly."""

    def decode(lo: int, hi: int) -> np.ndarray:
        calls.append((lo, hi))
        return np.repeat(values[lo:hi], SPT).astype(np.float32)

    return decode


@pytest.mark.parametrize(("chunk", "overlap", "total"), [(5, 2, 23), (4, 0, 17), (25, 4, 25), (10, 3, 7)])
def test_joiner_is_exact_for_a_local_decoder(chunk: int, overlap: int, total: int) -> None:
    values = np.random.default_rng(total).uniform(-1, 1, total)
    calls: list[tuple[int, int]] = []
    joiner = ChunkJoiner(Chunking(chunk, overlap, context_tokens=3), _local_decoder(values, calls))
    parts = []
    for n in range(1, total + 1, 3):  # the caller looks now and then
        parts += list(joiner.pending(n))
    parts += list(joiner.pending(total))
    parts.append(joiner.push(total, final=True))
    np.testing.assert_allclose(np.concatenate(parts), np.repeat(values, SPT), rtol=0, atol=1e-6)
    assert len(parts) == 1 + _chunks_before_the_last(total, chunk, overlap)
    # Each window starts at most context_tokens before what it emits: the decoder's work stays linear.
    assert all(hi - lo <= 4 * chunk + overlap + 3 for lo, hi in calls[:-1]), calls


def _chunks_before_the_last(total: int, chunk: int, overlap: int) -> int:
    """The rule: chunks of chunk, 2 chunk, 4 chunk, 4 chunk, ... tokens, each once overlap more tokens exist."""
    emitted, count = 0, 0
    while total - emitted >= chunk * min(1 << count, 4) + overlap:
        emitted += chunk * min(1 << count, 4)
        count += 1
    return count


def test_chunks_grow_to_four_times_the_first() -> None:
    assert _chunks_before_the_last(200, 25, 4) == 3  # 25, 50, 100, then the last 25
    joiner = ChunkJoiner(Chunking(10, 2, 3), _local_decoder(np.zeros(200), []))
    sizes = []
    for _ in joiner.pending(200):
        sizes.append(joiner.emitted - sum(sizes))
    assert sizes == [10, 20, 40, 40, 40, 40]


def test_piece_noise_is_prefix_stable() -> None:
    pipeline = VoiceClonePipeline(backend=None, vocab={}, config=PipelineConfig())  # type: ignore[arg-type]
    whole = pipeline.piece_noise(seed=5, index=2, start=0, frames=90)
    assert whole.shape == (1, 192, 90) and whole.flags.c_contiguous
    np.testing.assert_array_equal(pipeline.piece_noise(5, 2, 30, 40), whole[:, :, 30:70])
    np.testing.assert_array_equal(pipeline.piece_noise(5, 2, 0, 20), whole[:, :, :20])
    assert not np.array_equal(pipeline.piece_noise(5, 3, 0, 90), whole)  # pieces keep their own streams


def test_join_quality_measures_snr_and_join_steps() -> None:
    reference = np.sin(np.arange(4000) / 10).astype(np.float32)
    same = join_quality(reference, reference, [1000, 2000])
    assert same.snr_db == float("inf") and same.passes
    broken = reference.copy()
    broken[2000:] += 0.5  # a step at the join
    quality = join_quality(broken, reference, [1000, 2000])
    assert quality.max_join_step > quality.normal_step and not quality.passes


# -- slow: tiny models ------------------------------------------------------------------------------------------
def _request(reference: bytes, **changes):
    """The request as the models parse it (api.py's prompt end mark and defaults included)."""
    from gsv_triton.backend.requests import parse_request
    from gsv_triton.contract import VOICE_CLONE
    from gsv_triton.settings import Limits

    values = dict(text=TEXT, text_language="zh", prompt_text=PROMPT, prompt_language="zh", reference_audio=reference,
                  seed=7, max_new_tokens=60, cut_punc="", **changes)  # fmt: skip
    return parse_request({k: VOICE_CLONE.input(k).array(v) for k, v in values.items()}, "v2", Limits(), "")


def _in_process_stream(repo, request, chunking: Chunking):
    from gsv_triton.backend.ort_backend import OrtBackend
    from gsv_triton.backend.token_stream import synthesize_token_chunks

    backend = OrtBackend(repo)
    pipeline = VoiceClonePipeline.from_repository(backend, repo)
    full = pipeline.synthesize(request)
    chunks = list(synthesize_token_chunks(pipeline, request, chunking, backend.t2s))
    return full, chunks


@pytest.mark.slow
@pytest.mark.parametrize("ignore_eos", [False, True])
def test_streamed_tokens_are_identical_and_joins_are_smooth(tiny_model_repository, reference_audio, ignore_eos):
    request = _request(reference_audio(1), ignore_eos=ignore_eos)
    for chunk in (5, 10, 20):
        full, chunks = _in_process_stream(tiny_model_repository, request, Chunking(chunk, 4))
        tokens = np.concatenate([c.tokens for c in chunks if c.tokens is not None])
        np.testing.assert_array_equal(tokens, full.tokens)
        audio = np.concatenate([c.audio for c in chunks])
        joins = list(np.cumsum([len(c.audio) for c in chunks])[:-1])
        quality = join_quality(audio, full.audio, joins)
        # Windows end at fixed token counts, however fast T2S ran against the decoder.
        expected = 1 + _chunks_before_the_last(len(full.tokens), chunk, 4)
        assert len(chunks) == expected, (chunk, len(full.tokens), len(chunks))
        assert len(chunks) >= 2 or not ignore_eos, "the piece came in one chunk: nothing was streamed"
        assert quality.max_join_step <= quality.normal_step, (chunk, quality)
        assert quality.snr_db >= TINY_MIN_SNR_DB, (chunk, quality)


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory):
    running = start_gateway(triton_server.grpc_url, tmp_path_factory.mktemp("token_stream"),
                            ["--max-new-tokens", "60"])  # fmt: skip
    yield running
    assert running.stop() == 0


def _form(**changes) -> dict:
    form = {"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh", "seed": "7",
            "response_format": "pcm", **changes}  # fmt: skip
    return {k: v for k, v in form.items() if v is not None}


def _stream(url: str, data: dict, reference: bytes) -> tuple[httpx.Response, bytes, list[float], float]:
    start, arrivals, body = time.perf_counter(), [], b""
    with httpx.stream("POST", f"{url}/v1/voice-clone/stream", data=data, files={"audio": ("ref.wav", reference)},
                      timeout=TIMEOUT_S) as response:  # fmt: skip
        for chunk in response.iter_raw():
            arrivals.append(time.perf_counter() - start)
            body += chunk
    return response, body, arrivals, time.perf_counter() - start


@pytest.mark.slow
def test_gateway_token_chunks_equal_the_in_process_stream(gateway, triton_server, reference_audio) -> None:
    reference = reference_audio(1)
    response, body, arrivals, done = _stream(gateway.url, _form(chunk_tokens="5", overlap_tokens="2"), reference)
    assert response.status_code == 200, body[:300]
    _, chunks = _in_process_stream(triton_server.repo, _request(reference), Chunking(5, 2))
    expected = (np.clip(np.concatenate([c.audio for c in chunks]) * 32768.0, -32768, 32767)).astype(np.int16)
    np.testing.assert_array_equal(np.frombuffer(body, "<i2"), expected)
    assert len(chunks) >= 3 and len(arrivals) >= 2 and arrivals[0] < done - 0.02, (arrivals, done)


@pytest.mark.slow
def test_direct_triton_stream_reports_the_unstreamed_tokens(triton_server, reference_audio) -> None:
    import tritonclient.grpc as grpcclient

    from gsv_triton.client import synthesize
    from gsv_triton.contract import VOICE_CLONE_STREAM

    reference = reference_audio(3)
    values = {"text": TEXT, "text_language": "zh", "prompt_text": PROMPT, "prompt_language": "zh",
              "reference_audio": reference, "seed": 21, "max_new_tokens": 60, "chunk_tokens": 6}  # fmt: skip
    responses: list = []
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    client.start_stream(callback=lambda result, error: responses.append((result, error)))
    inputs = []
    for name, value in values.items():
        array = VOICE_CLONE_STREAM.input(name).array(value)
        tensor = grpcclient.InferInput(name, list(array.shape), VOICE_CLONE_STREAM.input(name).datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    client.async_stream_infer("voice_clone_stream", inputs)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and not any(r is not None and r.as_numpy("semantic_tokens") is not None
                                                  for r, _ in responses):  # fmt: skip
        time.sleep(0.05)
    client.stop_stream()
    assert all(error is None for _, error in responses), responses
    tokens = [r.as_numpy("semantic_tokens") for r, _ in responses if r.as_numpy("semantic_tokens") is not None]
    assert len(responses) >= 2 and len(tokens) == 1
    full, _ = synthesize(triton_server.grpc_url, "grpc", text=TEXT, reference_audio=reference, prompt_text=PROMPT,
                         seed=21, max_new_tokens=60)  # fmt: skip
    audio = np.concatenate([r.as_numpy("audio") for r, _ in responses])
    assert audio.size == full.size
    assert join_quality(audio, full, []).snr_db >= TINY_MIN_SNR_DB


@pytest.mark.slow
def test_bad_chunk_settings_are_4xx_naming_the_field(gateway, reference_audio) -> None:
    reference = reference_audio(1)
    cases = [
        ({"chunk_tokens": "-1"}, "chunk_tokens", "[0, 1500]", 400),
        ({"chunk_tokens": "10", "overlap_tokens": "10"}, "overlap_tokens", "chunk_tokens", 400),
        ({"overlap_tokens": "3"}, "overlap_tokens", "chunk_tokens", 400),
        ({"chunk_tokens": "ten"}, "chunk_tokens", "integer", 422),  # the forms' rule for a malformed value
    ]
    for changes, field, words, status in cases:
        response = httpx.post(f"{gateway.url}/v1/voice-clone/stream", data=_form(**changes),
                              files={"audio": ("ref.wav", reference)}, timeout=TIMEOUT_S)  # fmt: skip
        assert response.status_code == status, response.text
        assert response.json()["field"] == field and words in response.json()["detail"], response.json()


@pytest.mark.slow
def test_openai_speech_streams_with_stream_true(gateway, reference_audio) -> None:
    created = create_voice(gateway.url, reference_audio(2))
    assert created.status_code == 201, created.text
    body = {"model": "tts-1", "input": TEXT, "voice": created.json()["id"], "language": "zh", "seed": 3}
    whole = httpx.post(f"{gateway.url}/v1/audio/speech", json={**body, "response_format": "wav"}, timeout=TIMEOUT_S)
    assert whole.status_code == 200
    with httpx.stream("POST", f"{gateway.url}/v1/audio/speech", timeout=TIMEOUT_S,
                      json={**body, "stream": True, "chunk_tokens": 5}) as response:  # fmt: skip
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        assert response.headers["transfer-encoding"] == "chunked"
        streamed = b"".join(response.iter_raw())
    assert len(streamed) == len(whole.content)  # same length, same 44-byte header size
    for changes, field in (({"response_format": "mp3"}, "response_format"), ({"response_format": "pcm"}, "sample_rate"),
                           ({"stream": False, "chunk_tokens": 5}, "chunk_tokens")):  # fmt: skip
        response = httpx.post(f"{gateway.url}/v1/audio/speech", json={**body, "stream": True, **changes},
                              timeout=TIMEOUT_S)  # fmt: skip
        assert response.status_code == 400 and response.json()["field"] == field, response.text


@pytest.mark.slow
def test_a_client_that_leaves_a_token_stream_stops_it(triton_server, tmp_path, reference_audio) -> None:
    from test_overload import _wait_idle

    gateway = start_gateway(triton_server.grpc_url, tmp_path, ["--timeout", "60"])
    try:
        data = _form(text="今天天气很好。" * 60, chunk_tokens="5", cut_punc="。")
        with httpx.stream("POST", f"{gateway.url}/v1/voice-clone/stream", data=data, timeout=TIMEOUT_S,
                          files={"audio": ("ref.wav", reference_audio(12))}) as response:  # fmt: skip
            assert response.status_code == 200
            next(response.iter_raw())  # the first chunk, then the client goes away
        idle_after = _wait_idle(triton_server.server, within_s=10.0)
        assert idle_after <= 1.0, f"the abandoned stream computed {idle_after:.1f} s after the client left"
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text()
