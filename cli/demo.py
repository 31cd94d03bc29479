"""The last step of the README's main command: serve an exported repository, make the seed's example request
through the gateway, write the WAV, stop everything, say where the file is.

    python -m gsv_cli.demo --model-repository artifacts/repository-tiny [--out output.wav]

Triton and the gateway listen on free loopback ports only for the duration of the request. Without
``--reference`` a synthetic voiced clip is written next to the output and used as the reference. With demo
checkpoints (random weights) the WAV is noise of the right length; real GPT-SoVITS files give speech.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from gsv_gateway.server import BackgroundGateway
from gsv_triton.errors import GsvError, UserError
from gsv_triton.server import TritonServer, TritonServerError, free_port
from gsv_triton.settings import Settings

# The seed's Python example (voice-clone-integration-summary.md).
SEED_TEXT = "你好，这是一个语音克隆测试。"
SEED_TEXT_LANGUAGE = "zh"
SEED_PROMPT_TEXT = "参考音频文字"
SEED_PROMPT_LANGUAGE = "zh"
DEMO_SEED = 0
# Bounds the generation of random demo weights, which may never emit EOS; a real model says the seed text in
# about 75 tokens (3 s), far below this.
DEMO_MAX_NEW_TOKENS = 250
READY_TIMEOUT_S = 900.0  # full-size models load slowly on a small CPU
REQUEST_TIMEOUT_S = 900.0
REFERENCE_SECONDS = 4.0
REFERENCE_RATE = 32_000


@dataclass(frozen=True)
class DemoResult:
    out: Path
    duration_s: float
    processing_time_s: float
    reference: Path


def synthetic_reference(path: Path, seconds: float = REFERENCE_SECONDS, rate: int = REFERENCE_RATE) -> Path:
    """A voiced-sounding clip (pitch glide with syllable-rate amplitude modulation and a little noise)."""
    rng = np.random.default_rng(DEMO_SEED)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140.0 + 30.0 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) * 0.25
    audio = (voice * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


def run_demo(
    model_repository: Path,
    out: Path = Path("output.wav"),
    reference: Path | None = None,
    text: str = SEED_TEXT,
    max_new_tokens: int = DEMO_MAX_NEW_TOKENS,
) -> DemoResult:
    """Start Triton and the gateway, POST the seed's request to /v1/voice-clone, write ``out``, stop both."""
    out = Path(out)
    if reference is None:
        reference = synthetic_reference(out.with_name("reference.wav"))
    try:
        reference_bytes = Path(reference).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the reference {reference}: {exc.strerror}") from None
    log_path = out.with_name("tritonserver.log")
    print(f"[demo] starting tritonserver on {model_repository} (log: {log_path})", flush=True)
    # The demo stores no voices: a throwaway voice directory keeps the user's data directory untouched.
    voice_dir = tempfile.TemporaryDirectory(prefix="gsv-demo-voices-")
    triton = TritonServer()
    triton.start(Path(model_repository), free_port(), free_port(), free_port(), log_path=log_path)
    try:
        try:
            waited = triton.wait_ready(READY_TIMEOUT_S)
        except TritonServerError as exc:
            raise UserError(f"{exc.summary} (see {log_path})") from exc
        settings = Settings(
            triton_url=triton.grpc_endpoint, triton_http_url=triton.http_endpoint, max_new_tokens=max_new_tokens,
            request_timeout_s=REQUEST_TIMEOUT_S, voice_dir=Path(voice_dir.name),
        )  # fmt: skip
        with BackgroundGateway(settings) as gateway:
            print(f"[demo] Triton ready in {waited:.1f} s; gateway on {gateway.url}; POST /v1/voice-clone", flush=True)
            started = time.perf_counter()
            response = httpx.post(
                f"{gateway.url}/v1/voice-clone",
                files={"audio": (Path(reference).name, reference_bytes)},
                data={
                    "text": text,
                    "text_language": SEED_TEXT_LANGUAGE,
                    "prompt_text": SEED_PROMPT_TEXT,
                    "prompt_language": SEED_PROMPT_LANGUAGE,
                    "seed": str(DEMO_SEED),
                },
                timeout=REQUEST_TIMEOUT_S,
            )
            elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise UserError(f"the gateway answered {response.status_code}: {response.text[:500]}")
        result = response.json()
        wav = base64.b64decode(result["output_audio_base64"])
        sf.info(io.BytesIO(wav))  # a WAV that does not decode is a failure here, not in the user's player
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(wav)
    finally:
        triton.stop()
        voice_dir.cleanup()
    print(f"[demo] request took {elapsed:.2f} s; Triton and the gateway are stopped", flush=True)
    return DemoResult(out=out, duration_s=result["output_duration"], processing_time_s=result["processing_time"],
                      reference=Path(reference))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsv_cli.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--model-repository", required=True)
    parser.add_argument("--out", default="output.wav")
    parser.add_argument("--reference", help="reference audio (default: a synthetic clip written next to --out)")
    parser.add_argument("--text", default=SEED_TEXT)
    parser.add_argument("--max-new-tokens", type=int, default=DEMO_MAX_NEW_TOKENS)
    args = parser.parse_args(argv)
    try:
        result = run_demo(
            Path(args.model_repository), Path(args.out), Path(args.reference) if args.reference else None,
            args.text, args.max_new_tokens,
        )  # fmt: skip
    except GsvError as exc:
        print(f"[demo] error: {exc}", file=sys.stderr)
        return 2
    print(
        f"[demo] wrote {result.out.resolve()} ({result.duration_s:.2f} s of 32 kHz 16-bit audio, "
        f"reference {result.reference}). Demo weights are random: the audio is noise of the right length.\n"
        f"[demo] to try voices in a browser: gsv-triton up --model-repository {args.model_repository} --port 8080, "
        "then open http://localhost:8080/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
