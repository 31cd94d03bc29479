"""perf_analyzer input data (``--input-data FILE.json``) for ``voice_clone`` and each network it calls.

The component inputs are exactly what ``voice_clone`` sends over BLS for the benchmark request: the real
orchestration (:class:`VoiceClonePipeline`) runs in-process on the repository's ONNX files for ssl, vq_encode,
ref_encoder and bert, and a recording backend keeps the first call's tensors of every model. ``t2s`` and
``sovits_decode`` are recorded but not run (their outputs feed nothing we need; random tokens stand in for the
generated ones), so generating the full-size set takes seconds, not a whole synthesis.

The benchmark request: one zh text segment, a 5 s reference, EOS disabled and ``max_new_tokens`` 251, which gives
exactly 250 tokens = 10 s of audio (like upstream, a run stopped by the cap drops its first token).

    .venv/bin/python perf/make_inputs.py --repo artifacts/repository-full2 [--out perf/inputs]
        [--distinct-references 17]   # also voice_clone_newref.json: every request misses the reference cache

JSON format (perf_analyzer "Real Input Data"): ``{"data": [{name: {"content": ..., "shape": [...]}}]}``; small
tensors inline, larger ones as ``{"b64": little-endian bytes}``; BYTES elements that are not UTF-8 text (the
encoded reference file) as b64 of ``<uint32 length><bytes>`` per element. For a model with ``max_batch_size > 0``
(bert) the shape omits the batch axis and perf_analyzer's ``-b`` sets it.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from gsv_triton.backend.ort_backend import OrtBackend
from gsv_triton.backend.pipeline import VoiceClonePipeline
from gsv_triton.backend.requests import parse_request
from gsv_triton.contract import CONTRACTS, NUMPY_DTYPES, VOICE_CLONE
from gsv_triton.errors import UserError
from gsv_triton.settings import HOP_LENGTH, OUTPUT_SAMPLE_RATE

# --- the benchmark request ------------------------------------------------------------------------------
# One segment (no newline; the default cut_punc splits only at newlines), 34 characters: BERT runs on it and on
# the prompt, like upstream's baseline (40 characters).
TEXT = "今天的天气非常好，我们一起去公园散步，顺便在路上买一些新鲜的水果回家。"
PROMPT_TEXT = "这是一段用来克隆音色的参考音频。"
LANGUAGE = "zh"
REFERENCE_SECONDS = 5.0  # HuBERT then sees 5.6 s (0.6 s of zeros appended), as in perf/README's baseline
TOKENS = 250  # 10 s of audio at 1280 samples per token
CAP_DROP = 1  # a run stopped by max_new_tokens returns max_new_tokens - 1 tokens (upstream's slice)
SEED = 1234

MODELS = ("voice_clone", "ssl", "vq_encode", "ref_encoder", "bert", "t2s", "sovits_decode")
COMPONENTS = MODELS[1:]
INLINE_MAX = 16  # tensors with more elements go out as b64 (exact floats, ~3x smaller than decimal text)
NEWREF_FILE = "voice_clone_newref.json"


def tokens_cap(tokens: int = TOKENS) -> int:
    """The ``max_new_tokens`` that yields exactly ``tokens`` generated tokens with EOS disabled."""
    return tokens + CAP_DROP


def synth_reference(seed: int = 0, seconds: float = REFERENCE_SECONDS, rate: int = OUTPUT_SAMPLE_RATE) -> bytes:
    """A voice-like clip (harmonics of a gliding pitch, syllable-rate envelope, a little noise) as 16-bit WAV.

    ``seed`` changes pitch and noise, so different seeds give different bytes (distinct reference-cache keys).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = (140 + 10 * (seed % 7)) + 40 * np.sin(2 * np.pi * 0.4 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2 / 4
    audio = 0.25 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def voice_clone_inputs(reference: bytes, tokens: int = TOKENS, seed: int = SEED) -> dict[str, np.ndarray]:
    """The ``voice_clone`` request tensors of the benchmark (typed by gsv_triton.contract)."""
    values = {
        "text": TEXT, "text_language": LANGUAGE, "prompt_text": PROMPT_TEXT, "prompt_language": LANGUAGE,
        "reference_audio": reference, "seed": seed, "max_new_tokens": tokens_cap(tokens), "ignore_eos": True,
    }  # fmt: skip
    return {name: VOICE_CLONE.input(name).array(value) for name, value in values.items()}


# --- recording the BLS calls -----------------------------------------------------------------------------
class RecordingBackend:
    """Keeps the inputs of the first call to every model; runs the cheap networks, fakes t2s and sovits_decode."""

    RUN = ("ssl", "vq_encode", "ref_encoder", "bert")

    def __init__(self, repo: Path, seed: int = 0) -> None:
        from gsv_triton.backend.ort_session import create_session

        self.sessions = {m: create_session(Path(repo) / OrtBackend.FILES[m], 1) for m in self.RUN}
        self.calls: dict[str, dict[str, np.ndarray]] = {}
        self.rng = np.random.default_rng(seed)

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
              stop: object = None) -> dict[str, np.ndarray]:  # fmt: skip
        self.calls.setdefault(model, {k: np.asarray(v) for k, v in inputs.items()})
        if model == "t2s":
            rows = inputs["phone_ids"].shape[0]
            n = int(inputs["max_new_tokens"][0]) - CAP_DROP
            return {"tokens": self.rng.integers(0, 1024, (rows, n)), "lengths": np.full(rows, n, dtype=np.int64)}
        if model == "sovits_decode":
            return {"audio": np.zeros((1, 1, inputs["noise"].shape[2] * HOP_LENGTH), np.float32)}
        session = self.sessions[model]
        values = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
        return dict(zip([o.name for o in session.get_outputs()], values, strict=True))


def component_inputs(repo: Path, request: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{model: its input tensors} as ``voice_clone`` sends them for ``request`` (batch axis included)."""
    backend = RecordingBackend(repo)
    pipeline = VoiceClonePipeline.from_repository(backend, repo)
    pipeline.synthesize(parse_request(request, pipeline.config.symbol_version))
    missing = [m for m in COMPONENTS if m not in backend.calls]
    if missing:
        raise RuntimeError(f"the benchmark request never called {', '.join(missing)}")
    return backend.calls


# --- config.pbtxt and JSON -------------------------------------------------------------------------------
def model_spec(model: str) -> tuple[int, dict[str, tuple[str, tuple[int, ...], bool]]]:
    """(max_batch_size, {input: (Triton datatype, dims, optional)}) of ``model``'s tensor contract."""
    contract = CONTRACTS[model]
    return contract.max_batch_size, {t.name: (t.datatype, t.dims, t.optional) for t in contract.inputs}


def _is_text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_tensor(array: np.ndarray) -> dict[str, Any]:
    """One tensor as perf_analyzer JSON ``{"content": ..., "shape": [...]}``."""
    array = np.asarray(array)
    if array.dtype == np.object_:
        items = [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in array.ravel()]
        if all(_is_text(x) for x in items):
            content: Any = [x.decode("utf-8") for x in items]
        else:
            # perf_analyzer's serialised BYTES layout: each element is <uint32 little-endian length><bytes>.
            raw = b"".join(struct.pack("<I", len(x)) + x for x in items)
            content = {"b64": base64.b64encode(raw).decode("ascii")}
    elif array.size <= INLINE_MAX:
        content = array.ravel().tolist()
    else:
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        content = {"b64": base64.b64encode(raw).decode("ascii")}
    return {"content": content, "shape": list(array.shape)}


def decode_tensor(entry: Mapping[str, Any], datatype: str) -> np.ndarray:
    """Inverse of :func:`encode_tensor` for a tensor of Triton ``datatype``; raises ValueError on a mismatch."""
    shape, content = list(entry["shape"]), entry["content"]
    count = int(np.prod(shape, dtype=np.int64))
    if datatype == "BYTES":
        if isinstance(content, dict):
            raw, items = base64.b64decode(content["b64"]), []
            while raw:
                (n,) = struct.unpack("<I", raw[:4])
                items.append(raw[4 : 4 + n])
                raw = raw[4 + n :]
        else:
            items = [str(x).encode("utf-8") for x in content]
        array = np.array(items, dtype=np.object_)
    else:
        dtype = np.dtype(NUMPY_DTYPES[datatype]).newbyteorder("<")
        if isinstance(content, dict):
            raw = base64.b64decode(content["b64"])
            if len(raw) != count * dtype.itemsize:
                raise ValueError(f"{len(raw)} bytes do not hold {shape} of {datatype}")
            array = np.frombuffer(raw, dtype=dtype)
        else:
            kinds = {"BOOL": bool, "FP32": (int, float)}.get(datatype, int)
            if not all(isinstance(x, kinds) and (datatype == "BOOL" or not isinstance(x, bool)) for x in content):
                raise ValueError(f"inline values {content[:4]} are not {datatype}")
            array = np.array(content, dtype=dtype)
    if array.size != count:
        raise ValueError(f"{array.size} elements do not fill shape {shape}")
    return array.reshape(shape)


def to_json(entries: Sequence[Mapping[str, np.ndarray]], max_batch_size: int = 0) -> dict[str, Any]:
    """perf_analyzer input data with one ``data`` entry per request; batch row 0 only when the model batches."""
    data = []
    for tensors in entries:
        data.append({k: encode_tensor(v[0] if max_batch_size > 0 else v) for k, v in tensors.items()})
    return {"data": data}


def load_inputs(path: Path, model: str) -> list[dict[str, np.ndarray]]:
    """The requests of an input-data file as arrays, typed by ``model``'s tensor contract (tests, replay)."""
    _, spec = model_spec(model)
    payload = json.loads(Path(path).read_text("utf-8"))
    out = []
    for entry in payload["data"]:
        unknown = set(entry) - set(spec)
        if unknown:
            raise ValueError(f"{path}: inputs {sorted(unknown)} are not inputs of {model}")
        out.append({name: decode_tensor(value, spec[name][0]) for name, value in entry.items()})
    return out


def write_inputs(repo: Path, out: Path, tokens: int = TOKENS, distinct_references: int = 0) -> dict[str, Path]:
    """Write ``<model>.json`` for every model of :data:`MODELS` (and the newref set if asked); returns the paths."""
    repo, out = Path(repo), Path(out)
    for model in MODELS:
        if not (repo / model / "config.pbtxt").is_file():
            raise UserError(
                f"{repo / model / 'config.pbtxt'} is missing: export the repository with `gsv-triton export`"
            )
    out.mkdir(parents=True, exist_ok=True)
    request = voice_clone_inputs(synth_reference(0), tokens)
    tensors = {"voice_clone": request, **component_inputs(repo, request)}
    paths = {}
    for model in MODELS:
        max_batch, _ = model_spec(model)
        paths[model] = out / f"{model}.json"
        paths[model].write_text(json.dumps(to_json([tensors[model]], max_batch)), "utf-8")
    if distinct_references:
        entries = [voice_clone_inputs(synth_reference(1 + i), tokens) for i in range(distinct_references)]
        paths["voice_clone_newref"] = out / NEWREF_FILE
        paths["voice_clone_newref"].write_text(json.dumps(to_json(entries)), "utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, type=Path, help="an exported repository (gsv-triton export)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "inputs")
    parser.add_argument("--tokens", type=int, default=TOKENS, help="generated tokens per request (EOS disabled)")
    parser.add_argument(
        "--distinct-references",
        type=int,
        default=0,
        help="also write voice_clone_newref.json with this many different references "
        "(more than the reference cache, 16, so every request recomputes ssl/vq/ref_encoder)",
    )
    args = parser.parse_args(argv)
    try:
        paths = write_inputs(args.repo, args.out, args.tokens, args.distinct_references)
    except UserError as exc:
        print(f"make_inputs: error: {exc}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
