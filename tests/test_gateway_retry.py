"""A unary call whose Triton replica went away is sent once more on a fresh connection; a model's own answer
(a bad input, a full queue) and a second failure are not retried. (Against real replicas behind a load
balancer: tests/test_scale_out.py.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from gsv_gateway import triton as triton_module
from gsv_gateway.errors import Overloaded, ServiceUnavailable
from gsv_gateway.triton import ENCODE_MODEL, TritonVoiceClone

GONE = InferenceServerException("Socket closed", "StatusCode.UNAVAILABLE")
FULL = InferenceServerException("Exceeds maximum queue size", "StatusCode.UNAVAILABLE")


class Result:
    def as_numpy(self, name: str) -> np.ndarray:
        return np.zeros(1, np.float32)


class FakeClient:
    """A gRPC client whose ``infer`` raises the errors it was given, one per call, then answers."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0
        self.closed = False

    async def infer(self, *args, **kwargs) -> Result:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Result()

    async def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch) -> None:
    monkeypatch.setattr(triton_module, "RETRY_DELAY_S", 0.0)


def _encode(first: FakeClient, fresh: FakeClient) -> TritonVoiceClone:
    """One voice_encode call through a client whose first connection is ``first``; returns the client."""

    async def call() -> TritonVoiceClone:  # the aio clients need a running loop
        triton = TritonVoiceClone("127.0.0.1:1", "voice_clone", timeout_s=0.05, health_timeout_s=1)
        triton._client = first
        triton._grpc_aio = SimpleNamespace(InferenceServerClient=lambda url, channel_args: fresh)
        assert list(await triton._infer(ENCODE_MODEL, {}, "id", ("ge",))) == ["ge"]
        await asyncio.sleep(0.1)  # the replaced client is closed after the timeout
        return triton

    return asyncio.run(call())


def test_a_gone_replica_is_retried_once_on_a_fresh_connection() -> None:
    first, fresh = FakeClient([GONE]), FakeClient([])
    triton = _encode(first, fresh)
    assert (first.calls, fresh.calls) == (1, 1) and triton._client is fresh and first.closed


def test_a_second_failure_is_the_usual_503() -> None:
    first, fresh = FakeClient([GONE]), FakeClient([GONE])
    with pytest.raises(ServiceUnavailable, match="not reachable"):
        _encode(first, fresh)
    assert (first.calls, fresh.calls) == (1, 1)


def test_answers_of_a_living_triton_are_not_retried() -> None:
    first, fresh = FakeClient([FULL]), FakeClient([])
    with pytest.raises(Overloaded):
        _encode(first, fresh)
    assert (first.calls, fresh.calls) == (1, 0)
