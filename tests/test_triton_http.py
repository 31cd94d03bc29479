"""The gateway's lean Triton HTTP client (gateway/triton_http.py): the binary tensor codec, and its connection
handling against a scripted local HTTP server (the real tritonserver path is tested in test_gateway_triton.py,
whose gateway runs with --triton-http-url)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from gsv_gateway.triton_http import TritonHttpInfer, decode_response, decode_tensor, encode_request, encode_tensor
from gsv_triton.server import free_port

DATATYPES = {"text": "BYTES", "audio": "FP32", "seed": "INT64"}


def test_tensor_codec_round_trips() -> None:
    texts = np.array([["你好".encode(), b""], [b"\x00\x01", b"x" * 300]], dtype=np.object_)
    assert decode_tensor(encode_tensor(texts, "BYTES"), "BYTES", [2, 2]).tolist() == texts.tolist()
    audio = np.linspace(-1, 1, 7, dtype=np.float32).reshape(1, 7)
    np.testing.assert_array_equal(decode_tensor(encode_tensor(audio, "FP32"), "FP32", [1, 7]), audio)
    seed = np.array([-(2**63)], dtype=np.int64)
    np.testing.assert_array_equal(decode_tensor(encode_tensor(seed, "INT64"), "INT64", [1]), seed)


def test_request_header_lists_each_tensor_with_its_binary_size() -> None:
    tensors = {"text": np.array([b"hi"], dtype=np.object_), "seed": np.array([7], dtype=np.int64)}
    header, blobs = encode_request(tensors, DATATYPES, ("audio",), "rid-1")
    decoded = json.loads(header)
    assert decoded["id"] == "rid-1" and decoded["outputs"] == [{"name": "audio", "parameters": {"binary_data": True}}]
    assert [i["parameters"]["binary_data_size"] for i in decoded["inputs"]] == [len(b) for b in blobs] == [6, 8]


def test_response_outputs_binary_or_json() -> None:
    audio = np.arange(3, dtype=np.float32)
    header = json.dumps({"outputs": [
        {"name": "audio", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 12}},
        {"name": "sample_rate", "datatype": "INT32", "shape": [1], "data": [32000]},
    ]}).encode()  # fmt: skip
    outputs = decode_response(header + audio.tobytes(), len(header))
    np.testing.assert_array_equal(outputs["audio"], audio)
    assert outputs["sample_rate"].dtype == np.int32 and outputs["sample_rate"].tolist() == [32000]


class ScriptedServer:
    """A local HTTP/1.1 server that answers each request with the next scripted (status, body, close) entry."""

    def __init__(self, script: list[tuple[int, bytes, bool]]) -> None:
        self.script = list(script)
        self.connections = 0
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while self.script:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            status, body, close = self.script.pop(0)
            if status == 0:  # hang: never answer
                await asyncio.sleep(3600)
            extra = b"Inference-Header-Content-Length: %d\r\n" % len(body) if status == 200 else b""
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), extra, body))
            await writer.drain()
            if close:
                break
        writer.close()


def run_against(script: list[tuple[int, bytes, bool]], calls: int, timeout_s: float = 5.0):
    """Make ``calls`` infer calls through one client; returns (results or exceptions, server)."""
    server = ScriptedServer(script)

    async def main():
        listener = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
        client = TritonHttpInfer(f"127.0.0.1:{server.port}")
        results = []
        for _ in range(calls):
            try:
                tensors = {"seed": np.array([1], dtype=np.int64)}
                results.append(await client.infer("m", tensors, DATATYPES, ("audio",), "r", timeout_s))
            except InferenceServerException as exc:
                results.append(exc)
        await client.close()
        listener.close()
        return results

    return asyncio.run(main()), server


OK = json.dumps({"outputs": [{"name": "audio", "datatype": "FP32", "shape": [0], "data": []}]}).encode()


def test_a_connection_the_server_closed_is_retried_once_on_a_fresh_one() -> None:
    results, server = run_against([(200, OK, True), (200, OK, False)], calls=2)
    assert all(isinstance(r, dict) for r in results), results
    assert server.connections == 2  # the first was kept for reuse, found closed, and replaced


def test_triton_errors_keep_their_message_and_get_grpc_status_names() -> None:
    script = [(400, b'{"error":"text: is empty"}', False), (404, b'{"error":"unknown model"}', False),
              (500, b"not json", False)]  # fmt: skip
    results, server = run_against(script, calls=3)
    assert [(str(r.status()), r.message()) for r in results] == [
        ("StatusCode.INVALID_ARGUMENT", "text: is empty"),
        ("StatusCode.NOT_FOUND", "unknown model"),
        ("StatusCode.INTERNAL", "not json"),
    ]
    assert server.connections == 1  # error answers keep the connection


def test_nothing_listening_is_unavailable_and_a_hang_is_a_deadline() -> None:
    async def refused():
        return await TritonHttpInfer(f"127.0.0.1:{free_port()}").infer("m", {}, DATATYPES, (), "r", 5.0)

    with pytest.raises(InferenceServerException) as caught:
        asyncio.run(refused())
    assert str(caught.value.status()) == "StatusCode.UNAVAILABLE"
    results, server = run_against([(0, b"", False), (200, OK, False)], calls=2, timeout_s=0.3)
    assert str(results[0].status()) == "StatusCode.DEADLINE_EXCEEDED"
    assert isinstance(results[1], dict) and server.connections == 2  # the timed-out connection was not reused
