"""The voice-cloning orchestration (api.py's request flow, spec 0 and 5.1) over named network calls.

The networks are reached through a :class:`Backend`: inside Triton that is BLS (``voice_clone``), in-process it
is plain onnxruntime sessions (:class:`OrtBackend`; tests and benchmarks). The steps:

1. split the target text (api.py's ``cut_punc`` rule); text frontend per piece and for the prompt text;
2. BERT for every zh language segment of all of them in ONE batched call (zeros for other languages);
3. reference audio -> ``ssl`` -> ``vq_encode`` (prompt codes) and spectrogram -> ``ref_encoder`` (ge), both
   cached per reference (key: SHA-256 of the uploaded bytes); v2Pro/v2ProPlus first run ``speaker_encoder`` on
   the Kaldi fbank of the reference and give its speaker vector to ``ref_encoder`` (spec 2.2.5, 2.5);
4. ``t2s`` ONCE for all pieces as a batch, each row = prompt phones+BERT followed by the piece's;
5. ``sovits_decode`` per piece (target phones only) with host noise drawn from the request seed;
6. peak-normalise each piece, 0.3 s of silence after each, concatenate.

Bounds: a :class:`~gsv_triton.backend.cancel.StopSignal` (deadline, cancellation) is checked before every
network call and handed to ``t2s``, whose loop checks it between tokens; the audio a request may produce is
capped (``Limits.max_output_seconds``): refused before any network runs when the pieces' silences alone exceed
it, and as soon as the generated tokens do (before decoding; each ``t2s`` call is capped to what is left).

Randomness comes only from the request seed (:func:`derive_seed` streams per row), and no state but the
caches (pure functions of their keys) survives a request, so the same request always gives the same audio.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gsv_triton.audio import ReferenceAudio, join_segments, normalize_segment, prepare_reference
from gsv_triton.audio.fbank import sv_fbank
from gsv_triton.audio.output import SEGMENT_SILENCE_SECONDS
from gsv_triton.audio.resample import resample
from gsv_triton.backend.cache import LruCache
from gsv_triton.backend.cancel import NEVER, StopSignal
from gsv_triton.contract import BERT_DIM, CODE_UPSAMPLE, frames_for_speed
from gsv_triton.errors import InputError, renamed
from gsv_triton.manifest import Manifest, needs_speaker_vector
from gsv_triton.settings import HOP_LENGTH, OUTPUT_SAMPLE_RATE, SSL_SAMPLE_RATE, Limits, SamplingDefaults
from gsv_triton.text import (
    WARMUP_LANGUAGES,
    Segment,
    get_phones_and_bert_inputs,
    load_vocab,
    split_sentences,
)
from gsv_triton.text import warm_up as warm_up_text

from .requests import VoiceCloneRequest, VoiceConvertRequest, VoiceEncodeRequest

BERT_VOCAB = Path("bert") / "1" / "vocab.txt"
# BERT rows per call; equal to max_batch_size of model_repository/bert/config.pbtxt.
BERT_MAX_BATCH = 8
BERT_MAX_TOKENS = 512  # position table of chinese-roberta-wwm-ext-large ([CLS] + 510 characters + [SEP])
# Pieces per t2s call: its KV cache is [2, layers, text + prompt + max_new_tokens, rows, hidden] floats
# (about 160 MB per row at full size), so a long text runs in several calls.
T2S_MAX_ROWS = 8
REFERENCE_CACHE_SIZE = 16
PROMPT_CACHE_SIZE = 64
# Independent random streams derived from one request seed.
T2S_STREAM = 0
NOISE_STREAM = 1


class Backend(Protocol):
    """Runs one named network: ``infer("ssl", {"wav16k": x}, ["ssl"]) -> {"ssl": y}``; ``stop`` goes with the call
    (``t2s`` checks it between tokens)."""

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
              stop: StopSignal = NEVER) -> dict[str, np.ndarray]:  # fmt: skip
        ...


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline needs to know about the exported networks (from ``gsv_manifest.json``)."""

    symbol_version: str = "v2"
    inter_channels: int = 192
    sample_rate: int = OUTPUT_SAMPLE_RATE
    noise_scale: float = SamplingDefaults.noise_scale
    sovits_version: str = "v2"
    gin_channels: int | None = None  # None: not checked (configs built by hand in tests)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> PipelineConfig:
        return cls(manifest.symbol_version, manifest.sovits.inter_channels, manifest.sampling_rate,
                   sovits_version=manifest.sovits_version, gin_channels=manifest.sovits.gin_channels)  # fmt: skip

    @property
    def needs_speaker_vector(self) -> bool:
        return needs_speaker_vector(self.sovits_version)

    def check_timbre(self, ge: np.ndarray, field: str = "ge") -> None:
        """A stored voice's ge must come from a model of this repository's width (e.g. not v2's 512 on v2Pro)."""
        if self.gin_channels is not None and ge.size != self.gin_channels:
            raise InputError(
                field,
                f"has {ge.size} values, but this repository's SoVITS {self.sovits_version} model takes "
                f"{self.gin_channels}: the voice was encoded with another model; create it again from its clip",
                status=422,
            )


@dataclass(frozen=True)
class TextRow:
    """One text as the GPT sees it: phone ids and the matching BERT features."""

    phone_ids: np.ndarray  # int64 [P]
    bert: np.ndarray  # float32 [1024, P]


@dataclass(frozen=True)
class Reference:
    """What one reference clip contributes: prompt semantic codes and the timbre vector."""

    prompt_codes: np.ndarray  # int64 [Ty]
    ge: np.ndarray  # float32 [1, gin, 1]
    seconds: float | None = None  # duration of the decoded clip (None for a stored voice's features)


@dataclass(frozen=True)
class Synthesis:
    audio: np.ndarray  # float32 [N] in [-1, 1]
    sample_rate: int
    segment_tokens: np.ndarray  # int32 [pieces]: semantic tokens generated per piece
    tokens: np.ndarray  # int32 [sum of segment_tokens]: the pieces' semantic tokens, concatenated
    seed: int


class OutputBudget:
    """The audio a request may still produce (``Limits.max_output_seconds``), in seconds and T2S tokens."""

    def __init__(self, limits: Limits, pieces: int, speed: float, sample_rate: int) -> None:
        self.max_seconds = limits.max_output_seconds
        self.token_seconds = CODE_UPSAMPLE * HOP_LENGTH / (speed * sample_rate)  # frames_for_speed, per token
        self.seconds_left = self.max_seconds - pieces * SEGMENT_SILENCE_SECONDS
        if self.seconds_left < 0:
            raise self._exceeded(f"its {pieces} sentence pieces alone come with {pieces * SEGMENT_SILENCE_SECONDS:g} s "
                                 "of silence")  # fmt: skip

    def tokens_left(self) -> int:
        return int(self.seconds_left / self.token_seconds)

    def spend(self, tokens: int) -> None:
        """Count ``tokens`` generated; 422 as soon as they exceed the budget."""
        self.seconds_left -= tokens * self.token_seconds
        if self.seconds_left < 0:
            raise self._exceeded("the generated speech exceeds it")

    def _exceeded(self, why: str) -> InputError:
        return InputError(
            "text",
            f"would give more than {self.max_seconds:g} s of audio (GSV_MAX_OUTPUT_SECONDS): {why}; send less text "
            "per request",
            status=422,
        )


def derive_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for one row of one random stream, independent of every other (stream, index)."""
    state = np.random.SeedSequence([int(seed) & ((1 << 64) - 1), stream, index]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def pad_rows(rows: Sequence[Sequence[int] | np.ndarray], value: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad int sequences into [B, Lmax] int64; returns (matrix, lengths)."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    out = np.full((len(rows), int(lengths.max(initial=0))), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out, lengths


def expand_bert(hidden: np.ndarray, segment: Segment) -> np.ndarray:
    """BERT rows of one zh segment -> [1024, n_phones]: drop [CLS] (and [SEP]/padding), repeat row i
    ``word2ph[i]`` times (spec 2.4)."""
    word2ph = np.asarray(segment.word2ph, dtype=np.int64)
    if len(word2ph) != len(segment.norm_text) or int(word2ph.sum()) != len(segment.phones):
        raise RuntimeError(f"word2ph does not match the text {segment.norm_text!r}")
    rows = hidden[1 : 1 + len(word2ph)]
    return np.ascontiguousarray(np.repeat(rows, word2ph, axis=0).T, dtype=np.float32)


class VoiceClonePipeline:
    """api.py's synthesis over a :class:`Backend`; one instance serves requests one after another."""

    def __init__(
        self,
        backend: Backend,
        vocab: Mapping[str, int],
        config: PipelineConfig,
        limits: Limits | None = None,
        reference_cache_size: int = REFERENCE_CACHE_SIZE,
        prompt_cache_size: int = PROMPT_CACHE_SIZE,
    ) -> None:
        self.backend = backend
        self.vocab = vocab
        self.config = config
        self.limits = limits or Limits()
        self.references = LruCache(reference_cache_size)
        self.prompts = LruCache(prompt_cache_size)

    @classmethod
    def from_repository(cls, backend: Backend, repo: Path, limits: Limits | None = None, **kwargs) -> VoiceClonePipeline:
        """Configured from an exported repository's default set (manifest + the BERT vocabulary next to bert.onnx)."""
        return cls.from_config(backend, repo, PipelineConfig.from_manifest(Manifest.read(repo)), limits, **kwargs)

    @classmethod
    def from_config(cls, backend: Backend, repo: Path, config: PipelineConfig, limits: Limits | None = None,
                    **kwargs) -> VoiceClonePipeline:  # fmt: skip
        """``config``'s pipeline with the repository's BERT vocabulary (shared by every model set)."""
        return cls(backend, load_vocab(Path(repo) / BERT_VOCAB), config, limits, **kwargs)

    def warm_up(self, languages: Sequence[str] = WARMUP_LANGUAGES) -> None:
        """Run the text frontend once per language this model's version reads: the first call of each loads
        dictionaries and models for up to a second, which would otherwise land on the first request of each
        instance."""
        warm_up_text(languages, self.config.symbol_version, self.vocab, self.limits)

    # -- the whole request ---------------------------------------------------------------------------
    def synthesize(self, request: VoiceCloneRequest, stop: StopSignal = NEVER) -> Synthesis:
        pieces = self.split(request)
        budget = self.output_budget(request, len(pieces))
        prompt, rows = self.text_rows(request, pieces, stop)
        reference = self.request_reference(request, stop)
        tokens = self.generate(prompt, rows, reference, request, stop=stop, budget=budget)
        audio = self.decode(rows, tokens, reference, request, stop)
        return Synthesis(
            audio=join_segments(audio, sample_rate=self.config.sample_rate),
            sample_rate=self.config.sample_rate,
            segment_tokens=np.array([len(t) for t in tokens], dtype=np.int32),
            tokens=np.concatenate([np.zeros(0, np.int32), *tokens]).astype(np.int32),
            seed=request.seed,
        )

    def output_budget(self, request: VoiceCloneRequest, pieces: int) -> OutputBudget:
        """The request's output budget; 422 at once when ``pieces`` alone exceed it."""
        return OutputBudget(self.limits, pieces, request.speed, self.config.sample_rate)

    def _infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
               stop: StopSignal) -> dict[str, np.ndarray]:  # fmt: skip
        """One network call, unless the request should stop (RequestCancelled)."""
        stop.check()
        return self.backend.infer(model, inputs, outputs, stop)

    # -- 1 + 2: text ---------------------------------------------------------------------------------
    def split(self, request: VoiceCloneRequest) -> list[str]:
        """The target pieces (api.py ``cut_text`` with the request's ``cut_punc``)."""
        return split_sentences(request.text.strip("\n"), cut_punc=request.cut_punc, language=request.text_language)

    def text_rows(self, request: VoiceCloneRequest, pieces: Sequence[str],
                  stop: StopSignal = NEVER) -> tuple[TextRow, list[TextRow]]:  # fmt: skip
        """(prompt row, one row per piece) with BERT features, all zh segments in one BERT batch."""
        prompt_key = (request.prompt_text, request.prompt_language)
        if request.prompt_phone_ids is not None and request.prompt_bert is not None:
            prompt = TextRow(request.prompt_phone_ids, request.prompt_bert)  # a stored voice
        else:
            prompt = self.prompts.get(prompt_key)
        texts = [(p, request.text_language, "text") for p in pieces]
        if prompt is None:
            texts.insert(0, (request.prompt_text, request.prompt_language, "prompt_text"))
        features = []
        for text, language, field in texts:
            names = {"text": field, "language": "prompt_language" if field == "prompt_text" else "text_language"}
            try:
                feats = get_phones_and_bert_inputs(text, language, self.config.symbol_version, self.vocab, self.limits)
            except InputError as exc:
                raise renamed(exc, names) from None
            if any(s.needs_bert and len(s.bert_token_ids) > BERT_MAX_TOKENS for s in feats.segments):
                raise InputError(
                    field,
                    f"a sentence has more than {BERT_MAX_TOKENS - 2} characters; split it with punctuation (cut_punc)",
                )
            features.append(feats)
        zh = [seg for f in features for seg in f.segments if seg.needs_bert]
        bert = self._bert(zh, stop)
        rows = []
        for f in features:
            parts = [bert[id(s)] if s.needs_bert else np.zeros((BERT_DIM, len(s.phones)), np.float32)
                     for s in f.segments]
            rows.append(TextRow(np.asarray(f.phone_ids, dtype=np.int64), np.concatenate(parts, axis=1)))
        if prompt is None:
            prompt = rows.pop(0)
            self.prompts.put(prompt_key, prompt)
        return prompt, rows

    def _bert(self, segments: Sequence[Segment], stop: StopSignal) -> dict[int, np.ndarray]:
        """{id(segment): [1024, n_phones]} for zh segments, in batches of at most BERT_MAX_BATCH rows."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(segments), BERT_MAX_BATCH):
            chunk = segments[start : start + BERT_MAX_BATCH]
            ids, lengths = pad_rows([s.bert_token_ids for s in chunk])
            mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
            hidden = self._infer(
                "bert",
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
                ["hidden"],
                stop,
            )["hidden"]
            for seg, h in zip(chunk, hidden, strict=True):
                out[id(seg)] = expand_bert(h, seg)
        return out

    # -- 3: reference --------------------------------------------------------------------------------
    def request_reference(self, request: VoiceCloneRequest, stop: StopSignal = NEVER) -> Reference:
        """The request's stored-voice features when it carries them, else those of its reference clip."""
        if request.prompt_codes is not None and request.ge is not None:
            self.config.check_timbre(request.ge)
            return Reference(prompt_codes=request.prompt_codes, ge=request.ge.reshape(1, -1, 1))
        return self.reference(request.reference_audio, stop)

    def encode_voice(self, request: VoiceEncodeRequest) -> tuple[TextRow, Reference]:
        """The reference side of a voice, computed once for a voice library: (prompt row, reference).

        The same calls and caches as :meth:`synthesize`, so a request that sends these features back gives
        exactly the audio of the same request with the clip and transcript."""
        text_only = VoiceCloneRequest(
            text="", text_language=request.prompt_language, prompt_text=request.prompt_text,
            prompt_language=request.prompt_language, reference_audio=b"",
        )  # fmt: skip
        prompt, _ = self.text_rows(text_only, [])
        return prompt, self.reference(request.reference_audio)

    def reference(self, audio: bytes, stop: StopSignal = NEVER) -> Reference:
        """Prompt codes and ge of a reference clip (cached by content)."""
        key = hashlib.sha256(audio).hexdigest()
        cached = self.references.get(key)
        if cached is not None:
            return cached
        try:
            prepared = prepare_reference(audio, self.limits)
        except InputError as exc:
            raise renamed(exc, {"audio": "reference_audio"}) from None
        ssl = self._infer("ssl", {"wav16k": prepared.wav16k[None, :]}, ["ssl"], stop)["ssl"]
        codes = self._infer("vq_encode", {"ssl": ssl}, ["codes"], stop)["codes"]
        ge = self._infer("ref_encoder", self.timbre_inputs(prepared, stop), ["ge"], stop)["ge"]
        reference = Reference(prompt_codes=np.ascontiguousarray(codes[0], dtype=np.int64), ge=ge.astype(np.float32),
                              seconds=prepared.duration_seconds)  # fmt: skip
        if reference.prompt_codes.size == 0:
            raise InputError("reference_audio", "is too short to give any prompt token")
        self.references.put(key, reference)
        return reference

    def timbre_inputs(self, prepared: ReferenceAudio, stop: StopSignal = NEVER) -> dict[str, np.ndarray]:
        """``ref_encoder``'s inputs: the spectrogram, and for Pro the speaker vector of the same peak-limited
        32 kHz audio taken down to 16 kHz (upstream's SV input, not the HuBERT signal)."""
        inputs = {"spec": prepared.spectrogram[None]}
        if self.config.needs_speaker_vector:
            fbank = sv_fbank(resample(prepared.wav32k, OUTPUT_SAMPLE_RATE, SSL_SAMPLE_RATE))
            inputs["sv"] = self._infer("speaker_encoder", {"fbank": fbank[None]}, ["sv"], stop)["sv"]
        return inputs

    # -- voice conversion ----------------------------------------------------------------------------
    def convert(self, request: VoiceConvertRequest) -> np.ndarray:
        """The source clip's content in the target's voice: the source's own semantic codes (ssl ->
        vq_encode, instead of the GPT's) decoded by SoVITS with the transcript's phones and the target's ge.

        The source goes through the reference path (its rules, 3-10 s, and its cache); only its codes are used.
        """
        try:
            source = self.reference(request.source_audio)
        except InputError as exc:
            raise renamed(exc, {"reference_audio": "source_audio"}) from None
        if request.ge is not None:
            self.config.check_timbre(request.ge)
            target_ge = request.ge.reshape(1, -1, 1)
        else:
            target_ge = self.reference(request.reference_audio).ge
        try:
            feats = get_phones_and_bert_inputs(request.text, request.text_language, self.config.symbol_version,
                                               None, self.limits)  # fmt: skip
        except InputError as exc:
            raise renamed(exc, {"language": "text_language"}) from None
        row = TextRow(np.asarray(feats.phone_ids, dtype=np.int64), np.zeros((BERT_DIM, 0), np.float32))
        clone = VoiceCloneRequest(text=request.text, text_language=request.text_language, prompt_text="",
                                  prompt_language="", reference_audio=b"", speed=request.speed, seed=request.seed)  # fmt: skip
        target = Reference(prompt_codes=source.prompt_codes, ge=target_ge)
        return normalize_segment(self.decode_piece(row, source.prompt_codes, target, clone, 0))

    # -- 4: semantic tokens --------------------------------------------------------------------------
    def t2s_inputs(self, prompt: TextRow, rows: Sequence[TextRow], reference: Reference,
                   request: VoiceCloneRequest, first: int = 0) -> dict[str, np.ndarray]:
        """The ``t2s`` input tensors for ``rows``, pieces ``first``, ``first + 1``, ... of the request (the
        piece index picks the row's random stream, so chunking never changes a piece's tokens)."""
        phones, lengths = pad_rows([np.concatenate([prompt.phone_ids, r.phone_ids]) for r in rows])
        bert = np.zeros((len(rows), BERT_DIM, phones.shape[1]), dtype=np.float32)
        for i, row in enumerate(rows):
            bert[i, :, : lengths[i]] = np.concatenate([prompt.bert, row.bert], axis=1)
        seeds = [derive_seed(request.seed, T2S_STREAM, first + i) for i in range(len(rows))]
        return {
            "phone_ids": phones,
            "phone_lengths": lengths,
            "bert": bert,
            "prompt_codes": reference.prompt_codes[None, :],
            "top_k": np.array([request.top_k], dtype=np.int32),
            "top_p": np.array([request.top_p], dtype=np.float32),
            "temperature": np.array([request.temperature], dtype=np.float32),
            "repetition_penalty": np.array([request.repetition_penalty], dtype=np.float32),
            "seed": np.array(seeds, dtype=np.int64),
            "max_new_tokens": np.array([request.max_new_tokens], dtype=np.int32),
            "ignore_eos": np.array([request.ignore_eos], dtype=bool),
        }

    def generate(self, prompt: TextRow, rows: Sequence[TextRow], reference: Reference,
                 request: VoiceCloneRequest, first: int = 0, stop: StopSignal = NEVER,
                 budget: OutputBudget | None = None) -> list[np.ndarray]:  # fmt: skip
        """Semantic tokens per piece: the pieces run as one ``t2s`` batch (in chunks of ``T2S_MAX_ROWS``);
        ``rows`` are pieces ``first``, ``first + 1``, ... of the request (see :meth:`t2s_inputs`).

        With a ``budget``, no row may generate more tokens than the budget has left (+2, so that a row cut there
        is seen to exceed it: a row that ends by itself below that is untouched), and the tokens are spent."""
        tokens: list[np.ndarray] = []
        for start in range(0, len(rows), T2S_MAX_ROWS):
            chunk = rows[start : start + T2S_MAX_ROWS]
            inputs = self.t2s_inputs(prompt, chunk, reference, request, first=first + start)
            if budget is not None:
                cap = min(request.max_new_tokens, budget.tokens_left() + 2)
                inputs["max_new_tokens"] = np.array([cap], dtype=np.int32)
            result = self._infer("t2s", inputs, ["tokens", "lengths"], stop)
            if budget is not None:
                budget.spend(int(result["lengths"].sum()))
            tokens += [np.asarray(t[:n], dtype=np.int64) for t, n in zip(result["tokens"], result["lengths"], strict=True)]
        return tokens

    # -- 5: audio ------------------------------------------------------------------------------------
    def decode_inputs(self, row: TextRow, tokens: np.ndarray, reference: Reference, request: VoiceCloneRequest,
                      index: int) -> dict[str, np.ndarray]:
        """``sovits_decode`` inputs of piece ``index``: only the piece's phones, noise from its own stream."""
        frames = frames_for_speed(len(tokens), request.speed)
        return {
            "codes": tokens[None, :].astype(np.int64),
            "phone_ids": row.phone_ids[None, :],
            "ge": reference.ge,
            "noise": self.piece_noise(request.seed, index, 0, frames),
            "noise_scale": np.array([self.config.noise_scale], dtype=np.float32),
        }

    def piece_noise(self, seed: int, index: int, start: int, frames: int) -> np.ndarray:
        """[1, C, frames] host noise of piece ``index`` for latent frames ``[start, start + frames)``.

        Drawn frame by frame (frame-major), so frame t's noise does not depend on how many frames the piece
        has: a token-chunk stream decodes windows of a piece whose length is not known yet, with exactly the
        noise the whole piece gets."""
        rng = np.random.default_rng(derive_seed(seed, NOISE_STREAM, index))
        drawn = rng.standard_normal((start + frames, self.config.inter_channels), dtype=np.float32)
        return np.ascontiguousarray(drawn[start:].T[None])

    def decode(self, rows: Sequence[TextRow], tokens: Sequence[np.ndarray], reference: Reference,
               request: VoiceCloneRequest, stop: StopSignal = NEVER) -> list[np.ndarray]:
        """Audio per piece; a piece without tokens contributes no samples (its silence stays)."""
        return [self.decode_piece(row, toks, reference, request, i, stop)
                for i, (row, toks) in enumerate(zip(rows, tokens, strict=True))]  # fmt: skip

    def decode_piece(self, row: TextRow, tokens: np.ndarray, reference: Reference, request: VoiceCloneRequest,
                     index: int, stop: StopSignal = NEVER) -> np.ndarray:
        """Audio of piece ``index`` (no samples for a piece without tokens)."""
        if len(tokens) == 0:
            return np.zeros(0, dtype=np.float32)
        inputs = self.decode_inputs(row, tokens, reference, request, index)
        out = self._infer("sovits_decode", inputs, ["audio"], stop)
        return np.ravel(out["audio"]).astype(np.float32, copy=False)

    # -- streaming -----------------------------------------------------------------------------------
    def synthesize_pieces(self, request: VoiceCloneRequest, pieces: Sequence[str] | None = None,
                          stop: Callable[[], StopSignal] = lambda: NEVER) -> Iterator[np.ndarray]:  # fmt: skip
        """The audio of each sentence piece as soon as it exists: the piece normalised, then its 0.3 s of
        silence, exactly the part :meth:`synthesize` joins for it. Each piece runs ``t2s`` alone with the
        random stream of its index; ``t2s`` rows are independent, so the concatenation equals
        :meth:`synthesize`'s audio (tests/test_stream.py checks it through Triton).

        ``pieces``: the request's :meth:`split`, when the caller already has it. ``stop()`` gives the signal of
        each piece (a stream's deadline is per piece)."""
        pieces = self.split(request) if pieces is None else pieces
        budget = self.output_budget(request, len(pieces))
        prompt, rows = self.text_rows(request, pieces, stop())
        reference = self.request_reference(request, stop())
        for i, row in enumerate(rows):
            piece_stop = stop()
            (tokens,) = self.generate(prompt, [row], reference, request, first=i, stop=piece_stop, budget=budget)
            audio = self.decode_piece(row, tokens, reference, request, i, piece_stop)
            yield join_segments([audio], sample_rate=self.config.sample_rate)


