"""The gateway's one connection to Triton: an async client of the ``voice_clone`` model and its siblings.

One :class:`TritonVoiceClone` per process (created in the app's lifespan). Unary inference goes over Triton's
HTTP endpoint when one is configured (``GSV_TRITON_HTTP_URL``, through ``tritonclient.http.aio``), else over
gRPC (``tritonclient.grpc.aio``); streaming and health always use gRPC. The gRPC
channel multiplexes every request over one HTTP/2 connection and reconnects by itself after Triton restarts.
The reconnect backoff is capped at :data:`MAX_RECONNECT_BACKOFF_MS`, so a restarted Triton is used again
within about a second, and calls never wait for a connection (gRPC's default): while Triton is down each one
fails at once with UNAVAILABLE, which becomes a 503.

Every call carries its deadline (the ``gsv_deadline`` request parameter, wall-clock time: the orchestrator and
``t2s`` stop working for it once it passes) and, as Triton's own request timeout, the time left for the queue
policy of the public models (a request that waited past it is dropped). A unary call has one total deadline
(``timeout_s``); a stream has none in total but an idle one: each piece must come within ``timeout_s`` of the
previous one (``gsv_piece_timeout``). Cancelling a call (the client went away) cancels the gRPC call, which
Triton passes on to the model; over HTTP, Triton cannot see it and the work ends at the deadline.

Triton's answers become domain errors here: INVALID_ARGUMENT -> the model's ``InputError`` (sent as data, see
``InputError.to_wire``: the input and the HTTP status to answer with), UNAVAILABLE / NOT_FOUND -> :class:`ServiceUnavailable`, DEADLINE_EXCEEDED ->
:class:`UpstreamTimeout`, anything else -> :class:`UpstreamFailure`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import numpy as np

from gsv_triton.contract import (
    DEADLINE_PARAMETER,
    DEADLINE_PASSED,
    PIECE_TIMEOUT_PARAMETER,
    VOICE_CLONE,
    VOICE_CLONE_STREAM,
    VOICE_CONVERT,
    VOICE_ENCODE,
)
from gsv_triton.errors import InputError
from gsv_triton.precision import PRECISION_KEY

from .errors import START_HINT, Overloaded, ServiceUnavailable, UpstreamFailure, UpstreamTimeout
from .models import ModelState, TritonHealth

# Every input the gateway may send, by name: the tensor contract of the models it calls.
INPUT_SPECS = {
    spec.name: spec
    for contract in (VOICE_CLONE, VOICE_CONVERT, VOICE_ENCODE, VOICE_CLONE_STREAM)
    for spec in contract.inputs
}
OUTPUTS = ("audio", "sample_rate", "used_seed")
# Triton's HTTP statuses, as the gRPC status names the error table uses.
HTTP_STATUS_NAMES = {"400": "INVALID_ARGUMENT", "404": "NOT_FOUND", "408": "DEADLINE_EXCEEDED", "499": "CANCELLED",
                     "503": "UNAVAILABLE"}  # fmt: skip
ENCODE_MODEL = "voice_encode"
ENCODE_OUTPUTS = VOICE_ENCODE.output_names
CONVERT_MODEL = "voice_convert"
STREAM_MODEL = "voice_clone_stream"
UNKNOWN_MODEL = "Request for unknown model"  # Triton's message when a repository lacks the model
QUEUE_FULL = "Exceeds maximum queue size"  # Triton's message when a model's queue policy refuses a request
RETRY_AFTER_S = 1  # Retry-After of a 503 for a full queue
# A unary request whose Triton went away (a replica restarted behind a load balancer) is sent once more on a
# fresh connection: seeded synthesis is idempotent. Streams are never retried (audio may have left already).
UNARY_ATTEMPTS = 2
# The pause before that retry: a replica killed a moment ago may still accept connections while it dies, and a
# load balancer's health check takes a moment to take it out (HAProxy's every 300 ms in tests/test_scale_out.py).
# Short, because a Triton that is simply down must still be a quick 503.
RETRY_DELAY_S = 0.5
US_PER_S = 1_000_000
MIN_RECONNECT_BACKOFF_MS = 100
MAX_RECONNECT_BACKOFF_MS = 1000
_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.NOT_FOUND", "StatusCode.CANCELLED"}
# Triton's words for an instance whose Python stub died: /health says "degraded" for this long after one.
DEAD_STUB_MESSAGE = "Stub process"
DEAD_STUB_WINDOW_S = 5.0

log = logging.getLogger("gsv_gateway.triton")


@dataclass(frozen=True)
class StreamPiece:
    """One response of voice_clone_stream: a sentence piece followed by its silence, or (token-chunk streams) a
    chunk of piece ``index``; ``piece_done`` marks a piece's last response (its audio ends with the silence)."""

    audio: np.ndarray  # float32 [N]
    index: int
    pieces: int
    sample_rate: int
    seed: int
    piece_done: bool = True
    tokens: np.ndarray | None = None  # token-chunk streams: the piece's semantic tokens, with its last chunk

    @property
    def last(self) -> bool:
        return self.piece_done and self.index + 1 >= self.pieces


@dataclass(frozen=True)
class Synthesis:
    """What voice_clone returned for one request."""

    audio: np.ndarray  # float32 [N], mono in [-1, 1]
    sample_rate: int
    seed: int  # the seed used, as an unsigned 64-bit value

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def _seed(used_seed: np.ndarray | None) -> int:
    """The used_seed output as the unsigned 64-bit value clients see (0 when a model reports none)."""
    return int(used_seed.astype(np.int64).view(np.uint64)[0]) if used_seed is not None else 0


def _replica_gone(exc) -> bool:
    """Whether a failed call never reached a living Triton (connection refused or reset), not a model's answer."""
    message = exc.message() or ""
    return str(exc.status()) == "StatusCode.UNAVAILABLE" and UNKNOWN_MODEL not in message and QUEUE_FULL not in message


class ModelLoadFailed(ServiceUnavailable):
    """Triton could not load a model (its files are missing or broken, or it ran out of memory)."""

    def __init__(self, model: str, reason: str) -> None:
        reason = reason.strip().splitlines()[0] if reason.strip() else "no reason given"  # not the stub's traceback
        super().__init__(f"Triton could not load {model}: {reason}")
        self.model = model
        self.reason = reason


class TritonVoiceClone:
    """Async client of ``model_name`` at the gRPC endpoint ``url`` (unary calls at the HTTP ``http_url`` if given)."""

    def __init__(
        self, url: str, model_name: str, timeout_s: float, health_timeout_s: float, http_url: str | None = None
    ) -> None:
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as grpcaio
        import tritonclient.http as httpclient
        import tritonclient.http.aio as httpaio

        self.url = url
        self.http_url = http_url
        # conn_timeout is aiohttp's total time per request: the unary deadline.
        self._http = httpaio.InferenceServerClient(http_url, conn_timeout=timeout_s) if http_url else None
        self._http_module = httpclient
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.health_timeout_s = health_timeout_s
        self._grpc_module = grpcclient
        channel_args = [
            ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.initial_reconnect_backoff_ms", MIN_RECONNECT_BACKOFF_MS),
            ("grpc.min_reconnect_backoff_ms", MIN_RECONNECT_BACKOFF_MS),
            ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ]
        self._client = grpcaio.InferenceServerClient(url, channel_args=channel_args)
        self._grpc_aio, self._http_aio, self._channel_args = grpcaio, httpaio, channel_args
        self._closing: set[asyncio.Task] = set()  # replaced clients waiting to be closed (_reconnect)
        self._dead_stub_seen: collections.deque[float] = collections.deque(maxlen=1024)
        # (model, version) -> its config's precision parameter (None: it has none); configs of a loaded version
        # do not change, so each is asked for once.
        self._precisions: dict[tuple[str, str], str | None] = {}

    def dead_stub_failures(self, window_s: float = DEAD_STUB_WINDOW_S) -> int:
        """Requests that failed in the last ``window_s`` seconds because a Triton stub had died."""
        since = time.monotonic() - window_s
        return sum(1 for t in self._dead_stub_seen if t >= since)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self._client.close()

    # -- inference ------------------------------------------------------------------------------------------
    async def synthesize(self, tensors: Mapping[str, np.ndarray], request_id: str) -> Synthesis:
        """Run voice_clone on ``tensors`` ({input name: array of shape [1]}, validated by the caller)."""
        return self._synthesis(await self._infer(self.model_name, tensors, request_id, OUTPUTS))

    @staticmethod
    def _synthesis(result: Mapping[str, np.ndarray]) -> Synthesis:
        return Synthesis(audio=result["audio"], sample_rate=int(result["sample_rate"][0]), seed=_seed(result.get("used_seed")))

    async def convert(self, tensors: Mapping[str, np.ndarray], request_id: str) -> Synthesis:
        """Run voice_convert on ``tensors`` (source_audio, text, text_language, reference_audio or ge, ...)."""
        return self._synthesis(await self._infer(CONVERT_MODEL, tensors, request_id, OUTPUTS))

    async def stream(self, tensors: Mapping[str, np.ndarray], request_id: str) -> AsyncIterator[StreamPiece]:
        """Run voice_clone_stream (gRPC bidirectional stream): its pieces as they arrive.

        The model names the number of pieces in every response, so the stream ends after the last one
        (no empty final response is needed); with ``chunk_tokens`` in ``tensors`` (> 0) a piece ends with the
        response that carries its ``semantic_tokens``. A Triton error raises the same domain errors as
        :meth:`synthesize`.
        """
        from grpc.aio import AioRpcError
        from tritonclient.utils import InferenceServerException

        chunked = int(np.asarray(tensors.get("chunk_tokens", 0)).ravel()[0]) > 0
        request = {"model_name": STREAM_MODEL, "inputs": self._inputs(tensors), "request_id": request_id,
                   "parameters": {PIECE_TIMEOUT_PARAMETER: self.timeout_s}}  # fmt: skip

        async def requests():
            yield request

        responses = self._client.stream_infer(requests())
        iterator = aiter(responses)
        try:
            while True:
                try:
                    result, error = await asyncio.wait_for(anext(iterator), self.timeout_s)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"{STREAM_MODEL} sent no piece within {self.timeout_s:g} s (raise GSV_REQUEST_TIMEOUT_S or "
                        "--timeout: it bounds each piece of a stream)"
                    ) from None
                if error is not None:
                    raise self._stream_error(error.message() or str(error))
                tokens = result.as_numpy("semantic_tokens") if chunked else None
                piece = StreamPiece(
                    audio=result.as_numpy("audio"),
                    index=int(result.as_numpy("piece")[0]),
                    pieces=int(result.as_numpy("pieces")[0]),
                    sample_rate=int(result.as_numpy("sample_rate")[0]),
                    seed=_seed(result.as_numpy("used_seed")),
                    piece_done=not chunked or tokens is not None,
                    tokens=tokens,
                )
                yield piece
                if piece.last:
                    return
        except AioRpcError as exc:
            raise self._domain_error(InferenceServerException(exc.details(), str(exc.code())), STREAM_MODEL) from None
        finally:
            responses.cancel()

    def _stream_error(self, message: str) -> Exception:
        """A model error sent inside the stream (no gRPC status there): field errors are :meth:`InputError.to_wire` objects."""
        from tritonclient.utils import InferenceServerException

        if UNKNOWN_MODEL in message:
            return self._domain_error(InferenceServerException(message, "StatusCode.NOT_FOUND"), STREAM_MODEL)
        error = InputError.from_wire(message)
        if error is not None:
            return error
        self._note_failure(message)
        log.error("triton stream failure", extra={"fields": {"triton_message": message}})
        return UpstreamFailure(f"{STREAM_MODEL} failed inside Triton")

    async def encode_voice(self, tensors: Mapping[str, np.ndarray], request_id: str) -> dict[str, np.ndarray]:
        """Run voice_encode on ``tensors`` (reference_audio, prompt_text, prompt_language): the voice features."""
        return await self._infer(ENCODE_MODEL, tensors, request_id, ENCODE_OUTPUTS)

    async def _infer(
        self, model: str, tensors: Mapping[str, np.ndarray], request_id: str, outputs: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        from tritonclient.utils import InferenceServerException

        bounds = {"parameters": {DEADLINE_PARAMETER: time.time() + self.timeout_s},
                  "timeout": int(self.timeout_s * US_PER_S)}  # fmt: skip
        for attempt in range(UNARY_ATTEMPTS):
            try:
                if self._http is not None:
                    result = await self._http_infer(model, tensors, request_id, outputs, bounds)
                else:
                    result = await self._client.infer(
                        model, self._inputs(tensors), request_id=request_id, client_timeout=self.timeout_s, **bounds
                    )
                return {name: result.as_numpy(name) for name in outputs}
            except InferenceServerException as exc:
                if attempt + 1 < UNARY_ATTEMPTS and _replica_gone(exc):
                    log.warning("triton unavailable; retrying once on a fresh connection",
                                extra={"fields": {"model": model, "triton_message": exc.message()}})  # fmt: skip
                    self._reconnect()
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
                raise self._domain_error(exc, model) from None
        raise AssertionError("unreachable")

    def _reconnect(self) -> None:
        """Fresh clients (new connections: behind a load balancer, to a living replica). The old ones are closed
        once the requests still running on them are past their deadline."""
        old = [self._client] + ([self._http] if self._http is not None else [])
        self._client = self._grpc_aio.InferenceServerClient(self.url, channel_args=self._channel_args)
        if self._http is not None:
            self._http = self._http_aio.InferenceServerClient(self.http_url, conn_timeout=self.timeout_s)

        async def close_later() -> None:
            await asyncio.sleep(self.timeout_s)
            for client in old:
                with contextlib.suppress(Exception):
                    await client.close()

        task = asyncio.get_running_loop().create_task(close_later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _http_infer(self, model: str, tensors: Mapping[str, np.ndarray], request_id: str,
                          outputs: tuple[str, ...], bounds: Mapping[str, object]):  # fmt: skip
        """One unary call over HTTP; aiohttp's failures raised as InferenceServerException with gRPC status
        names, so both transports share :meth:`_domain_error`."""
        import aiohttp
        from tritonclient.utils import InferenceServerException

        def failure(message: str, status: str) -> InferenceServerException:
            return InferenceServerException(message, f"StatusCode.{status}")

        inputs = self._inputs(tensors, self._http_module)
        requested = [self._http_module.InferRequestedOutput(name, binary_data=True) for name in outputs]
        try:
            return await self._http.infer(model, inputs, outputs=requested, request_id=request_id, **bounds)
        except InferenceServerException as exc:
            raise failure(exc.message(), HTTP_STATUS_NAMES.get(str(exc.status()), "INTERNAL")) from None
        except TimeoutError:
            raise failure(f"no answer within {self.timeout_s:g} s", "DEADLINE_EXCEEDED") from None
        except aiohttp.ServerDisconnectedError:  # (a kept-alive connection a restarted Triton closed: retried)
            raise failure(f"{self.http_url} closed the connection", "UNAVAILABLE") from None
        except aiohttp.ClientError as exc:
            raise failure(f"cannot reach {self.http_url}: {exc}", "UNAVAILABLE") from None

    def _inputs(self, tensors: Mapping[str, np.ndarray], module=None) -> list:
        """The ``InferInput`` list of ``tensors`` for the gRPC (default) or HTTP client module."""
        module = module or self._grpc_module
        inputs = []
        for name, array in tensors.items():
            tensor = module.InferInput(name, list(array.shape), INPUT_SPECS[name].datatype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return inputs

    def _domain_error(self, exc, model: str) -> Exception:
        status = str(exc.status())
        message = exc.message() or str(exc)
        if UNKNOWN_MODEL in message:  # checked first: Triton's HTTP endpoint answers it with 400
            if model != self.model_name:
                return ServiceUnavailable(
                    f"the Triton repository has no {model} model (it serves this route): install it with "
                    "`python -m gsv_export.extra_models REPO`, then restart Triton"
                )
            status = "StatusCode.UNAVAILABLE"  # voice_clone itself missing: not ready, a 503 like any other
        if status == "StatusCode.INVALID_ARGUMENT":
            return InputError.from_wire(message) or InputError("request", message)
        if QUEUE_FULL in message:
            return Overloaded(
                f"Triton's {model} queue is full; try again in a moment", retry_after_s=RETRY_AFTER_S
            )
        if status == "StatusCode.DEADLINE_EXCEEDED" or DEADLINE_PASSED in message:
            return UpstreamTimeout(
                f"{model} did not finish within {self.timeout_s:g} s "
                "(raise GSV_REQUEST_TIMEOUT_S or --timeout for long texts)"
            )
        if status in _UNAVAILABLE:
            return ServiceUnavailable(
                f"the voice-cloning service is not available: Triton at {self.url} is not reachable or its "
                f"{model} model is not ready ({message}); {START_HINT}"
            )
        self._note_failure(message)
        log.error("triton failure", extra={"fields": {"status": status, "triton_message": message}})
        return UpstreamFailure(f"{model} failed inside Triton ({status.removeprefix('StatusCode.')})")

    def _note_failure(self, message: str) -> None:
        if DEAD_STUB_MESSAGE in message:
            self._dead_stub_seen.append(time.monotonic())

    # -- model control (Triton's repository API; the model sets of gateway.model_sets) -------------------------
    async def model_states(self) -> dict[str, str]:
        """``{model: state}`` of every model in Triton's repository (READY, UNAVAILABLE, LOADING; "" never loaded)."""
        from tritonclient.utils import InferenceServerException

        for attempt in range(UNARY_ATTEMPTS):
            try:
                index = await self._client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
                return {m.get("name", ""): m.get("state", "") for m in index.get("models", [])}
            except InferenceServerException as exc:
                if attempt + 1 < UNARY_ATTEMPTS and _replica_gone(exc):
                    self._reconnect()
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
                raise self._domain_error(exc, self.model_name) from None  # Triton down: the usual 503
        raise AssertionError("unreachable")

    async def load_model(self, model: str, timeout_s: float) -> None:
        """Load ``model`` (explicit model control); :class:`ModelLoadFailed` with Triton's reason."""
        from tritonclient.utils import InferenceServerException

        try:
            await self._client.load_model(model, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise ModelLoadFailed(model, exc.message() or str(exc)) from None

    async def unload_model(self, model: str) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            await self._client.unload_model(model, client_timeout=self.health_timeout_s)
        except InferenceServerException as exc:
            raise ServiceUnavailable(f"Triton did not unload {model}: {exc.message() or exc}") from None

    # -- health ---------------------------------------------------------------------------------------------
    async def health(self) -> TritonHealth:
        """Liveness, readiness and model states; never raises (errors are reported in the result)."""
        from tritonclient.utils import InferenceServerException

        timeout = self.health_timeout_s
        health = TritonHealth(url=self.url, live=False, ready=False, model_ready=False)
        try:
            health.live = bool(await self._client.is_server_live(client_timeout=timeout))
            health.ready = bool(await self._client.is_server_ready(client_timeout=timeout))
            health.model_ready = bool(await self._client.is_model_ready(self.model_name, client_timeout=timeout))
            index = await self._client.get_model_repository_index(as_json=True, client_timeout=timeout)
            health.models = [
                ModelState(
                    name=m.get("name", ""),
                    version=m.get("version", ""),
                    state=m.get("state", ""),
                    reason=m.get("reason", ""),
                    precision=await self._precision(m) if m.get("state") == "READY" else None,
                )
                for m in index.get("models", [])
            ]
        except InferenceServerException as exc:
            health.error = f"{exc.message() or exc}; {START_HINT}"
        return health

    async def _precision(self, model: dict) -> str | None:
        """The ``precision`` parameter of a loaded model's config (gsv_triton.precision), asked once per version."""
        from tritonclient.utils import InferenceServerException

        key = (model.get("name", ""), model.get("version", ""))
        if key not in self._precisions:
            try:
                reply = await self._client.get_model_config(*key, as_json=True, client_timeout=self.health_timeout_s)
            except InferenceServerException:
                return None  # unloaded since the index was read: not worth failing the probe for
            parameter = reply.get("config", {}).get("parameters", {}).get(PRECISION_KEY, {})
            self._precisions[key] = parameter.get("string_value") or None
        return self._precisions[key]
