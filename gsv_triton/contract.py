"""The tensor contract of every Triton model: names, datatypes, shapes, which inputs are optional, and what
each tensor means. One table, read by the request parsers inside Triton, the gateway's tensor builders, the
Python client and the perf_analyzer inputs; ``tests/test_contract.py`` holds it against every
``model_repository/*/config.pbtxt``.

Shapes are the ``dims`` of ``config.pbtxt`` (-1: any length); for a model with ``max_batch_size`` > 0 the batch
dimension is not part of them, as in Triton.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsv_triton.settings import N_FFT

BERT_DIM = 1024  # chinese-roberta-wwm-ext-large hidden size
SSL_DIM = 768  # chinese-hubert-base hidden size
SPEC_BINS = N_FFT // 2 + 1  # 1025 linear-spectrogram bins
SV_DIM = 20480  # ERes2NetV2's pooled speaker vector (v2Pro/v2ProPlus, spec 2.5)
SV_MEL_BINS = 80  # Kaldi fbank bins of the speaker-verification input
# voice_clone_stream's first token chunk when a client asks for token chunks without a size: 1 s of speech
# (GSV-TTS-Lite's and upstream's order of magnitude).
DEFAULT_CHUNK_TOKENS = 25
CODE_UPSAMPLE = 2  # 25 Hz semantic codes -> 50 Hz SoVITS latent frames


def frames_for_speed(n_codes: int, speed: float) -> int:
    """Latent frames of ``sovits_decode`` for ``n_codes`` codes at ``speed`` (the length of its ``noise`` input):
    upstream's 2T at exactly 1.0, else int(2T / speed) + 1. The audio is ``HOP_LENGTH`` samples per frame."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    frames = CODE_UPSAMPLE * n_codes
    return frames if speed == 1.0 else int(frames / speed) + 1


# Triton wire datatype -> numpy dtype of the array that carries it.
# Request parameters (not tensors) that bound a request's work. The gateway sends DEADLINE, the wall-clock time
# (seconds since the epoch) after which nobody waits for the answer; the orchestrators stop between steps past
# it and hand it on to t2s, whose loop stops between tokens. PIECE_TIMEOUT (seconds) is the streaming model's:
# each piece gets that long. CANCEL names the flag an orchestrator raises when its own request is cancelled
# (the client went away), so that t2s, another process, stops too (gsv_triton.backend.cancel).
DEADLINE_PARAMETER = "gsv_deadline"
PIECE_TIMEOUT_PARAMETER = "gsv_piece_timeout"
CANCEL_PARAMETER = "gsv_cancel"
DEADLINE_PASSED = "its deadline passed"  # in the error of a request stopped at its deadline

NUMPY_DTYPES = {
    "BYTES": np.object_,
    "BOOL": np.bool_,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP32": np.float32,
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Triton wire name: BYTES, BOOL, INT32, INT64, FP32
    dims: tuple[int, ...]
    meaning: str
    optional: bool = False

    @property
    def dtype(self) -> type:
        return NUMPY_DTYPES[self.datatype]

    def array(self, value) -> np.ndarray:
        """``value`` as this tensor's array: one element (text as UTF-8 bytes) when ``dims`` is ``[1]``."""
        if self.datatype == "BYTES":
            items = [value] if isinstance(value, (str, bytes, bytearray, memoryview)) else list(value)
            return np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in items], dtype=np.object_)
        return np.asarray([value] if np.ndim(value) == 0 else value, dtype=self.dtype)


@dataclass(frozen=True)
class ModelContract:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 0
    decoupled: bool = False

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no input {name!r}")

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no output {name!r}")


def _t(name: str, datatype: str, dims: tuple[int, ...], meaning: str, optional: bool = False) -> TensorSpec:
    return TensorSpec(name, datatype, dims, meaning, optional)


# -- the public models' tensors, shared between them ------------------------------------------------------
TEXT = _t("text", "BYTES", (1,), "the text to speak (UTF-8)")
TEXT_LANGUAGE = _t("text_language", "BYTES", (1,), "its language code (zh, en, yue, auto, all_zh, ...)")
PROMPT_TEXT = _t("prompt_text", "BYTES", (1,), "the transcript of reference_audio", optional=True)
PROMPT_LANGUAGE = _t("prompt_language", "BYTES", (1,), "the transcript's language code", optional=True)
REFERENCE_AUDIO = _t("reference_audio", "BYTES", (1,), "the reference clip as an encoded file (wav, flac, ogg, mp3; 3-10 s)",
                     optional=True)  # fmt: skip
PROMPT_PHONE_IDS = _t("prompt_phone_ids", "INT64", (-1,), "a stored voice: the transcript's phone ids", optional=True)
PROMPT_BERT = _t("prompt_bert", "FP32", (BERT_DIM, -1), "a stored voice: the transcript's BERT features",
                 optional=True)  # fmt: skip
PROMPT_CODES = _t("prompt_codes", "INT64", (-1,), "a stored voice: the reference's semantic codes", optional=True)
GE = _t("ge", "FP32", (-1,), "a stored voice: the reference's timbre vector", optional=True)
MODEL_SET = _t("model", "BYTES", (1,), "the model set (fine-tune) to speak with, by its export --name; absent or "
               "empty: the default set", optional=True)  # fmt: skip
SPEED = _t("speed", "FP32", (1,), "speaking rate (0.25-4, default 1)", optional=True)
SEED = _t("seed", "INT64", (1,), "random seed (an unsigned 64-bit value may be sent as its INT64 bits)", optional=True)
SAMPLING = (
    _t("top_k", "INT32", (1,), "sampling: keep the k most likely tokens (default 15)", optional=True),
    _t("top_p", "FP32", (1,), "sampling: nucleus mass in (0, 1] (default 1)", optional=True),
    _t("temperature", "FP32", (1,), "sampling: temperature > 0 (default 1)", optional=True),
)
SYNTHESIS_INPUTS = (
    TEXT, TEXT_LANGUAGE, PROMPT_TEXT, PROMPT_LANGUAGE, REFERENCE_AUDIO, *SAMPLING, SPEED, SEED,
    _t("cut_punc", "BYTES", (1,), "punctuation to split the text at (api.py's cut_punc)", optional=True),
    _t("repetition_penalty", "FP32", (1,), "sampling: repetition penalty > 0 (default 1.35)", optional=True),
    _t("max_new_tokens", "INT32", (1,), "cap on semantic tokens per sentence piece (1-1500)", optional=True),
    _t("ignore_eos", "BOOL", (1,), "benchmarks: generate max_new_tokens tokens, never stop early", optional=True),
    PROMPT_PHONE_IDS, PROMPT_BERT, PROMPT_CODES, GE, MODEL_SET,
)  # fmt: skip
AUDIO = _t("audio", "FP32", (-1,), "32 kHz mono audio in [-1, 1]")
SAMPLE_RATE = _t("sample_rate", "INT32", (1,), "the audio's sample rate")
USED_SEED = _t("used_seed", "INT64", (1,), "the seed used (send it as seed to reproduce the request)")

VOICE_CLONE = ModelContract(
    "voice_clone",
    SYNTHESIS_INPUTS,
    (
        AUDIO, SAMPLE_RATE,
        _t("segment_tokens", "INT32", (-1,), "semantic tokens generated per sentence piece"),
        _t("semantic_tokens", "INT32", (-1,), "the pieces' semantic tokens, concatenated"),
        USED_SEED,
    ),
)  # fmt: skip
VOICE_CLONE_STREAM = ModelContract(
    "voice_clone_stream",
    (
        *SYNTHESIS_INPUTS,
        _t("chunk_tokens", "INT32", (1,), "token-chunk streaming: the first chunk's semantic tokens (1-1500; later "
           "chunks double up to 4x; absent or 0: one response per sentence piece)", optional=True),
        _t("overlap_tokens", "INT32", (1,), "token-chunk streaming: tokens held back and cross-faded at each join "
           "(0 <= overlap < chunk_tokens, default 4)", optional=True),
    ),
    (
        _t("audio", "FP32", (-1,), "one sentence piece followed by its 0.3 s of silence (with chunk_tokens: one "
           "chunk of it; the piece's last chunk ends with the silence)"),
        _t("piece", "INT32", (1,), "the piece's index"),
        _t("pieces", "INT32", (1,), "how many pieces the request has"),
        SAMPLE_RATE, USED_SEED,
        _t("semantic_tokens", "INT32", (-1,), "with chunk_tokens: the piece's semantic tokens, in its last chunk "
           "only"),
    ),
    decoupled=True,
)  # fmt: skip
VOICE_ENCODE = ModelContract(
    "voice_encode",
    (
        _t("reference_audio", "BYTES", (1,), REFERENCE_AUDIO.meaning),
        _t("prompt_text", "BYTES", (1,), PROMPT_TEXT.meaning),
        _t("prompt_language", "BYTES", (1,), PROMPT_LANGUAGE.meaning),
        MODEL_SET,
    ),
    (
        _t("prompt_phone_ids", "INT64", (-1,), PROMPT_PHONE_IDS.meaning),
        _t("prompt_bert", "FP32", (BERT_DIM, -1), PROMPT_BERT.meaning),
        _t("prompt_codes", "INT64", (-1,), PROMPT_CODES.meaning),
        _t("ge", "FP32", (-1,), GE.meaning),
        _t("reference_seconds", "FP32", (1,), "the reference clip's duration"),
    ),
)
VOICE_CONVERT = ModelContract(
    "voice_convert",
    (
        _t("source_audio", "BYTES", (1,), "the clip whose content is spoken again (encoded file, 3-10 s)"),
        _t("text", "BYTES", (1,), "the transcript of source_audio"),
        TEXT_LANGUAGE,
        _t("reference_audio", "BYTES", (1,), "the target voice's clip (or ge)", optional=True),
        _t("ge", "FP32", (-1,), "the target voice's stored timbre vector (or reference_audio)", optional=True),
        SPEED, SEED, MODEL_SET,
    ),
    (AUDIO, SAMPLE_RATE, USED_SEED),
)  # fmt: skip

# -- the networks behind them ------------------------------------------------------------------------------
T2S = ModelContract(
    "t2s",
    (
        _t("phone_ids", "INT64", (-1, -1), "rows of prompt + piece phone ids, right-padded"),
        _t("phone_lengths", "INT64", (-1,), "each row's length"),
        _t("bert", "FP32", (-1, BERT_DIM, -1), "each row's BERT features"),
        _t("prompt_codes", "INT64", (-1, -1), "the reference's semantic codes (one row, or one per row)"),
        *SAMPLING,
        _t("repetition_penalty", "FP32", (1,), "sampling: repetition penalty", optional=True),
        _t("seed", "INT64", (-1,), "one seed, or one per row", optional=True),
        _t("max_new_tokens", "INT32", (1,), "cap on generated tokens per row", optional=True),
        _t("ignore_eos", "BOOL", (1,), "never stop at EOS", optional=True),
    ),
    (
        _t("tokens", "INT64", (-1, -1), "generated semantic tokens per row, padded with -1"),
        _t("lengths", "INT64", (-1,), "tokens per row"),
    ),
)  # fmt: skip
SSL = ModelContract(
    "ssl",
    (_t("wav16k", "FP32", (-1, -1), "16 kHz reference audio"),),
    (_t("ssl", "FP32", (-1, SSL_DIM, -1), "HuBERT last_hidden_state, channels first"),),
)
BERT = ModelContract(
    "bert",
    (
        _t("input_ids", "INT64", (-1,), "BERT token ids"),
        _t("attention_mask", "INT64", (-1,), "1 for real tokens"),
        _t("token_type_ids", "INT64", (-1,), "zeros"),
    ),
    (_t("hidden", "FP32", (-1, BERT_DIM), "hidden_states[-3]"),),
    max_batch_size=8,
)
VQ_ENCODE = ModelContract(
    "vq_encode",
    (_t("ssl", "FP32", (-1, SSL_DIM, -1), "HuBERT features"),),
    (_t("codes", "INT64", (-1, -1), "semantic codes (ssl_proj + nearest codebook row)"),),
)
REF_ENCODER = ModelContract(
    "ref_encoder",
    (
        _t("spec", "FP32", (-1, SPEC_BINS, -1), "linear spectrogram of the 32 kHz reference"),
        _t("sv", "FP32", (-1, SV_DIM), "speaker vector from speaker_encoder (v2Pro/v2ProPlus only, required there)",
           optional=True),
    ),
    (_t("ge", "FP32", (-1, -1, 1), "timbre vector"),),
)
SPEAKER_ENCODER = ModelContract(
    "speaker_encoder",
    (_t("fbank", "FP32", (-1, -1, SV_MEL_BINS), "Kaldi fbank of the 16 kHz reference [1, frames, 80]"),),
    (_t("sv", "FP32", (-1, SV_DIM), "ERes2NetV2 speaker vector (mean over time)"),),
)
SOVITS_DECODE = ModelContract(
    "sovits_decode",
    (
        _t("codes", "INT64", (-1, -1), "semantic tokens of one piece"),
        _t("phone_ids", "INT64", (-1, -1), "the piece's phone ids"),
        _t("ge", "FP32", (-1, -1, 1), "timbre vector"),
        _t("noise", "FP32", (-1, -1, -1), "standard normal noise [1, inter_channels, frames]"),
        _t("noise_scale", "FP32", (-1,), "noise scale (0.5)"),
    ),
    (_t("audio", "FP32", (-1, 1, -1), "32 kHz audio"),),
)

CONTRACTS: dict[str, ModelContract] = {
    c.name: c
    for c in (VOICE_CLONE, VOICE_CLONE_STREAM, VOICE_ENCODE, VOICE_CONVERT, T2S, SSL, BERT, VQ_ENCODE, REF_ENCODER,
              SPEAKER_ENCODER, SOVITS_DECODE)  # fmt: skip
}
