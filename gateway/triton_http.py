"""A lean async client of Triton's HTTP/REST inference endpoint (KServe v2 with the binary tensor extension).

Why not tritonclient: per call, ``tritonclient.grpc.aio`` costs the gateway about 1.5 ms of CPU (most of it in
gRPC core's threads) and ``tritonclient.http.aio`` (aiohttp) about 1.6 ms; this client, one HTTP/1.1 request
on a kept-alive asyncio connection, costs about 0.45 ms for the same voice_clone call (224 kB reference in,
0.8 s of audio out; measured on the project's 2-core host). That difference is a third of the gateway's whole
budget per request (issue 5: at most 5 ms added).

Only unary inference goes this way; streaming (decoupled models) and health stay on gRPC. Failures are raised
as ``tritonclient.utils.InferenceServerException`` with gRPC status names, so the gateway maps both transports'
errors with one table (``gateway.triton``).

Wire format (Triton's binary data extension): the body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw tensors in the order the header lists them; BYTES elements are each a 4-byte
little-endian length and the bytes.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping

import numpy as np
from tritonclient.utils import InferenceServerException

HEADER_LENGTH = "inference-header-content-length"
# Triton's datatypes and their numpy element types (BYTES is handled apart).
NUMPY_TYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip
# HTTP statuses Triton answers with, as the gRPC status names the error table uses.
STATUS_NAMES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 499: "CANCELLED",
                503: "UNAVAILABLE"}  # fmt: skip
# Kept-alive connections waiting for the next call; more concurrent calls open more, closed when they finish.
MAX_IDLE_CONNECTIONS = 32
_LENGTH = struct.Struct("<I")


def _error(status: str, message: str) -> InferenceServerException:
    return InferenceServerException(message, f"StatusCode.{status}")


def encode_tensor(array: np.ndarray, datatype: str) -> bytes:
    """One input tensor as the binary extension's raw bytes (row-major)."""
    if datatype == "BYTES":
        parts = []
        for item in array.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=NUMPY_TYPES[datatype]).tobytes()


def decode_tensor(data: bytes, datatype: str, shape: list[int]) -> np.ndarray:
    """The inverse of :func:`encode_tensor` for one output."""
    if datatype != "BYTES":
        return np.frombuffer(data, dtype=NUMPY_TYPES[datatype]).reshape(shape)
    items, offset = [], 0
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        items.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return np.array(items, dtype=np.object_).reshape(shape)


def encode_request(
    tensors: Mapping[str, np.ndarray], datatypes: Mapping[str, str], outputs: tuple[str, ...], request_id: str
) -> tuple[bytes, list[bytes]]:
    """(JSON header, raw tensors) of an inference request asking for ``outputs`` as binary data."""
    inputs, blobs = [], []
    for name, array in tensors.items():
        blob = encode_tensor(array, datatypes[name])
        inputs.append({"name": name, "shape": list(array.shape), "datatype": datatypes[name],
                       "parameters": {"binary_data_size": len(blob)}})  # fmt: skip
        blobs.append(blob)
    header = {
        "id": request_id,
        "inputs": inputs,
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    }
    return json.dumps(header, separators=(",", ":")).encode("utf-8"), blobs


def decode_response(body: bytes, header_length: int) -> dict[str, np.ndarray]:
    """The output tensors of a 200 answer (binary or, should Triton send them so, JSON ``data``)."""
    header = json.loads(body[:header_length])
    offset, outputs = header_length, {}
    for output in header.get("outputs", []):
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            dtype = np.object_ if output["datatype"] == "BYTES" else NUMPY_TYPES[output["datatype"]]
            outputs[output["name"]] = np.array(output["data"], dtype=dtype).reshape(output["shape"])
            continue
        outputs[output["name"]] = decode_tensor(body[offset : offset + size], output["datatype"], output["shape"])
        offset += size
    return outputs


class _StaleConnection(Exception):
    """A kept-alive connection that the server had closed: nothing was answered, the call may be retried."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, head: bytes, parts: list[bytes]) -> tuple[int, dict[str, str], bytes]:
        """Send one request, read one response: (status, lower-cased headers, body)."""
        self.writer.writelines([head, *parts])
        try:
            status_line = await self.reader.readline()
        except ConnectionError as exc:
            raise _StaleConnection from exc
        if not status_line:
            raise _StaleConnection
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise _error("INTERNAL", f"unexpected answer from Triton's HTTP endpoint: {status_line!r} {headers}")
        body = await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, body


class TritonHttpInfer:
    """Unary inference at ``host:port`` over a pool of kept-alive connections (one pool per process)."""

    def __init__(self, url: str) -> None:
        self.url = url.removeprefix("http://").rstrip("/")
        self.host, _, port = self.url.rpartition(":")
        self.port = int(port)
        self._idle: list[_Connection] = []

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connect(self) -> _Connection:
        try:
            return _Connection(*await asyncio.open_connection(self.host, self.port))
        except OSError as exc:
            raise _error("UNAVAILABLE", f"cannot connect to Triton's HTTP endpoint {self.url}: {exc}") from None

    async def infer(
        self, model: str, tensors: Mapping[str, np.ndarray], datatypes: Mapping[str, str], outputs: tuple[str, ...],
        request_id: str, timeout_s: float,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Run ``model`` on ``tensors``; its ``outputs`` as arrays. Raises InferenceServerException."""
        header, blobs = encode_request(tensors, datatypes, outputs, request_id)
        length = len(header) + sum(map(len, blobs))
        head = (
            f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {self.url}\r\nContent-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {length}\r\n\r\n"
        ).encode("latin-1")
        try:
            async with asyncio.timeout(timeout_s):
                status, headers, body = await self._call(head, [header, *blobs])
        except TimeoutError:
            raise _error("DEADLINE_EXCEEDED", f"no answer within {timeout_s:g} s") from None
        if status == 200:
            return decode_response(body, int(headers.get(HEADER_LENGTH, len(body))))
        try:
            message = json.loads(body).get("error", "")
        except (ValueError, AttributeError):
            message = body[:500].decode("utf-8", "replace")
        raise _error(STATUS_NAMES.get(status, "INTERNAL"), message or f"HTTP {status}")

    async def _call(self, head: bytes, parts: list[bytes]) -> tuple[int, dict[str, str], bytes]:
        # A pooled connection may have been closed by a Triton restart: then retry once on a fresh one.
        while True:
            reused = bool(self._idle)
            connection = self._idle.pop() if reused else await self._connect()
            try:
                answer = await connection.exchange(head, parts)
            except _StaleConnection:
                connection.close()
                if reused:
                    continue
                raise _error("UNAVAILABLE", f"Triton's HTTP endpoint {self.url} closed the connection") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                connection.close()
                raise _error("UNAVAILABLE", f"the connection to {self.url} broke: {exc}") from None
            except BaseException:  # cancelled or timed out mid-answer: the connection's state is unknown
                connection.close()
                raise
            if len(self._idle) < MAX_IDLE_CONNECTIONS and answer[1].get("connection", "").lower() != "close":
                self._idle.append(connection)
            else:
                connection.close()
            return answer
