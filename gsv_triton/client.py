"""A small client of the ``voice_clone`` Triton model (HTTP or gRPC) and the ``gsv-triton client`` command.

``synthesize(url, text=..., reference_audio=..., prompt_text=...) -> (audio, sample_rate)`` builds the request
tensors of the public contract (model_repository/voice_clone/config.pbtxt); only the inputs you pass are sent,
so the server's defaults apply to the rest. Needs ``tritonclient[http,grpc]`` (the ``serve`` extra).

``synthesize_stream(url, text=..., ...)`` yields the audio of each sentence piece as the decoupled
``voice_clone_stream`` model sends it (gRPC only); ``gsv-triton client --stream`` uses it.
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gsv_triton.contract import VOICE_CLONE
from gsv_triton.errors import UserError

MODEL_NAME = "voice_clone"
STREAM_MODEL_NAME = "voice_clone_stream"
PROTOCOLS = ("http", "grpc")
DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}
# A long text on a CPU host takes a while; the HTTP client's own default (60 s) is too short.
DEFAULT_TIMEOUT_S = 600.0
def _client_module(protocol: str):
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; expected http or grpc")
    try:
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
    except ImportError as exc:
        raise UserError(f"tritonclient is not installed ({exc}); pip install 'gsv-triton[serve]'") from None
    return module


def _tensor(module, name: str, value: Any):
    """One ``InferInput`` of ``voice_clone``, typed and shaped by the contract."""
    array = VOICE_CLONE.input(name).array(value)
    tensor = module.InferInput(name, list(array.shape), VOICE_CLONE.input(name).datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def build_inputs(
    protocol: str,
    text: str,
    reference_audio: bytes,
    prompt_text: str,
    text_language: str = "zh",
    prompt_language: str = "zh",
    **options: Any,
) -> list:
    """The ``InferInput`` list of one request; ``options`` are the optional inputs (None = not sent)."""
    module = _client_module(protocol)
    unknown = set(options) - set(VOICE_CLONE.input_names)
    if unknown:
        raise UserError(f"unknown voice_clone option(s): {', '.join(sorted(unknown))}")
    required = {"text": text, "text_language": text_language, "prompt_text": prompt_text,
                "prompt_language": prompt_language, "reference_audio": bytes(reference_audio)}  # fmt: skip
    return [_tensor(module, name, value) for name, value in {**required, **options}.items() if value is not None]


def synthesize(
    url: str | None = None,
    protocol: str = "http",
    *,
    text: str,
    reference_audio: bytes,
    prompt_text: str,
    text_language: str = "zh",
    prompt_language: str = "zh",
    model_name: str = MODEL_NAME,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **options: Any,
) -> tuple[np.ndarray, int]:
    """Call ``voice_clone`` once; returns (float32 mono audio in [-1, 1], sample rate).

    ``options``: any other input of the contract (``gsv_triton.contract.VOICE_CLONE``: top_k, top_p, temperature,
    speed, seed, cut_punc, ...). Server-side errors (bad inputs) raise UserError with the server's message.
    """
    module = _client_module(protocol)
    from tritonclient.utils import InferenceServerException

    inputs = build_inputs(protocol, text, reference_audio, prompt_text, text_language, prompt_language, **options)
    url = url or DEFAULT_URLS[protocol]
    if protocol == "http":
        client = module.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
        call = {}
    else:
        client = module.InferenceServerClient(url)
        call = {"client_timeout": timeout_s}
    try:
        result = client.infer(model_name, inputs, **call)
    except InferenceServerException as exc:
        raise UserError(f"{model_name} at {url} ({protocol}): {exc.message() or exc}") from None
    finally:
        client.close()
    return result.as_numpy("audio"), int(result.as_numpy("sample_rate")[0])


def synthesize_stream(
    url: str | None = None,
    *,
    text: str,
    reference_audio: bytes,
    prompt_text: str,
    text_language: str = "zh",
    prompt_language: str = "zh",
    model_name: str = STREAM_MODEL_NAME,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **options: Any,
) -> Iterator[tuple[np.ndarray, int]]:
    """Call ``voice_clone_stream`` over gRPC; yields (audio of one sentence piece, sample rate) as each arrives.

    The pieces concatenated equal :func:`synthesize`'s audio for the same request and seed. Pieces come at the
    sentence marks of ``cut_punc`` (without it, a text splits at newlines only). Errors raise UserError.
    """
    module = _client_module("grpc")
    inputs = build_inputs("grpc", text, reference_audio, prompt_text, text_language, prompt_language, **options)
    url = url or DEFAULT_URLS["grpc"]
    responses: queue.Queue = queue.Queue()
    client = module.InferenceServerClient(url)
    try:
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        client.async_stream_infer(model_name, inputs)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                result, error = responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise UserError(f"{model_name} at {url}: no answer within {timeout_s:g} s") from None
            if error is not None:
                raise UserError(f"{model_name} at {url} (grpc): {error.message() or error}")
            yield result.as_numpy("audio"), int(result.as_numpy("sample_rate")[0])
            if int(result.as_numpy("piece")[0]) + 1 >= int(result.as_numpy("pieces")[0]):
                return
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gsv-triton client`` (also used by :func:`main`)."""
    parser.add_argument("--url", default=None, help="host:port (default 127.0.0.1:8000 for http, :8001 for grpc)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="http")
    parser.add_argument("--text", required=True, help="text to speak")
    parser.add_argument("--text-language", default="zh")
    parser.add_argument("--reference", required=True, help="reference audio file (3-10 s: wav, flac, ogg, mp3)")
    parser.add_argument("--prompt-text", required=True, help="transcript of the reference audio")
    parser.add_argument("--prompt-language", default="zh")
    parser.add_argument("--out", required=True, help="output .wav file")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--speed", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cut-punc", help="split the text after these marks, e.g. '，。'")
    parser.add_argument("--model-name", help=f"default {MODEL_NAME} ({STREAM_MODEL_NAME} with --stream)")
    parser.add_argument("--model", help="the model set (export --name) to speak with; its networks must be loaded "
                        "(default: the default set)")  # fmt: skip
    parser.add_argument("--stream", action="store_true",
                        help=f"use {STREAM_MODEL_NAME} (gRPC): print each sentence piece as it arrives")  # fmt: skip


def run(args: argparse.Namespace) -> Path:
    """Synthesise per ``args`` and write a 16-bit wav; returns its path."""
    from gsv_triton.audio import to_wav_bytes

    try:
        reference = Path(args.reference).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read reference audio {args.reference}: {exc.strerror}") from None
    request = dict(
        text=args.text,
        reference_audio=reference,
        prompt_text=args.prompt_text,
        text_language=args.text_language,
        prompt_language=args.prompt_language,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        speed=args.speed,
        seed=args.seed,
        cut_punc=args.cut_punc,
        model=getattr(args, "model", None),
    )
    if getattr(args, "stream", False):
        if args.protocol != "grpc":
            raise UserError("--stream needs --protocol grpc (Triton streams over gRPC only)")
        start, parts, rate = time.perf_counter(), [], 0
        for part, rate in synthesize_stream(args.url, model_name=args.model_name or STREAM_MODEL_NAME, **request):
            parts.append(part)
            print(f"piece {len(parts)}: {len(part) / rate:.2f} s of audio at {time.perf_counter() - start:.2f} s")
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    else:
        audio, rate = synthesize(args.url, args.protocol, model_name=args.model_name or MODEL_NAME, **request)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_wav_bytes(audio, rate))
    print(f"wrote {out}: {len(audio) / rate:.2f} s at {rate} Hz")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gsv-triton client", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except UserError as exc:
        print(f"gsv-triton client: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
