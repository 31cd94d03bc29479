"""The offline text frontend: text -> phones, phone ids, word2ph and BERT input ids (spec 4, 2.4).

Public API:
* ``get_phones_and_bert_inputs(text, language, version, vocab=None) -> TextFeatures``
* ``split_sentences(text, method="cut5", cut_punc=None, language="zh") -> list[str]``
* ``g2p_report(text, language, version) -> dict`` (the ``gsv-triton g2p`` command)
* ``bert_token_ids(norm_text, vocab)`` and ``load_vocab(path)``

Everything runs from installed packages and the data files under ``text/data``; nothing is
downloaded. See README.md in this folder for the language decisions and the deviations from
upstream GPT-SoVITS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from gsv_triton.errors import InputError
from gsv_triton.settings import Limits
from gsv_triton.symbols import phones_to_ids
from gsv_triton.text.bert_align import bert_token_ids, load_vocab
from gsv_triton.text.bert_window import BERT_WINDOW_CHARS, shorter_limit, window_parts
from gsv_triton.text.cleaner import clean_text
from gsv_triton.text.languages import SEGMENT_LANGUAGES, normalize_code, split_by_language
from gsv_triton.text.splitting import SPLITS, cut, split_sentences

__all__ = [
    "Segment",
    "TextFeatures",
    "BACKGROUND_WARMUP_LANGUAGES",
    "WARMUP_LANGUAGES",
    "WARMUP_TEXTS",
    "bert_token_ids",
    "cut",
    "g2p_report",
    "get_phones_and_bert_inputs",
    "load_vocab",
    "split_sentences",
    "warm_up",
]

# One short sentence per language: the first call of each loads its dictionaries and models for seconds (Open
# JTalk 0.5 s, g2pk2 + MeCab 1 s), which the backends pay at start-up instead of on a request.
WARMUP_TEXTS = {
    "zh": "你好，世界。", "en": "Hello world.", "yue": "你好，世界。", "ja": "こんにちは、世界。", "ko": "안녕하세요, 세계.",
}
# What the backends warm up by default; ``warm_up`` skips the languages a model's version cannot read (ko for v1).
WARMUP_LANGUAGES = ("zh", "en", "ja", "ko")
# Languages whose G2P loads behind a lock (Open JTalk, g2pk2 + MeCab: about 3.5 s together), so a backend may warm
# them in a background thread after it is ready: a request that needs one meanwhile waits for the lock.
BACKGROUND_WARMUP_LANGUAGES = ("ja", "ko")

MIN_PHONES = 6  # upstream re-reads shorter texts once with a leading "."
# Phones that are not speech: a text made only of these has nothing to read aloud.
_SILENT_PHONES = frozenset(["!", "?", "…", ",", ".", "-", "SP", "SP2", "SP3", "UNK", "_"])


@dataclass(frozen=True)
class Segment:
    """One single-language piece of the text."""

    language: str  # zh, en, ja, ko or yue (the cleaner used)
    text: str  # the raw piece
    norm_text: str
    phones: tuple[str, ...]
    phone_ids: tuple[int, ...]
    word2ph: tuple[int, ...] | None  # zh and yue: phones per character of norm_text
    bert_token_ids: tuple[int, ...] | None  # zh with a vocabulary: [CLS] one-per-char [SEP]

    @property
    def needs_bert(self) -> bool:
        """BERT features are computed for zh only; every other piece gets zeros (spec 2.4)."""
        return self.language == "zh"


@dataclass(frozen=True)
class TextFeatures:
    """The whole text: segments in order; phones/ids/norm_text concatenated over them."""

    text: str
    language: str
    version: str
    segments: tuple[Segment, ...]

    @property
    def phones(self) -> list[str]:
        return [p for s in self.segments for p in s.phones]

    @property
    def phone_ids(self) -> list[int]:
        return [i for s in self.segments for i in s.phone_ids]

    @property
    def norm_text(self) -> str:
        return "".join(s.norm_text for s in self.segments)

    @property
    def languages(self) -> list[str]:
        return [s.language for s in self.segments]


Cleaned = tuple[str, list[str], list[int] | None, str]  # (text, phones, word2ph, norm_text)


def _clean_in_window(text: str, version: str) -> list[Cleaned]:
    """A Chinese piece cleaned, cut into parts whose normalised text fits BERT's window where it does not
    (``bert_window``: a piece that fits is cleaned whole, exactly as before the rule)."""
    phones, word2ph, norm_text = clean_text(text, "zh", version)
    if len(norm_text) <= BERT_WINDOW_CHARS or len(text) < 2:
        return [(text, phones, word2ph, norm_text)]
    limit = shorter_limit(len(text), len(norm_text))
    return [cleaned for part in window_parts(text, limit) for cleaned in _clean_in_window(part, version)]


def _segments(text: str, language: str, version: str, vocab: Mapping[str, int] | None) -> list[Segment]:
    out = []
    for piece in split_by_language(text, language, version):
        if piece.language == "zh" and vocab is not None:  # BERT reads it: cut to its window where needed
            parts = _clean_in_window(piece.text, version)
        else:
            parts = [(piece.text, *clean_text(piece.text, piece.language, version))]
        for part, phones, word2ph, norm_text in parts:
            if not phones:  # e.g. kana inside zh text, deleted by normalisation: nothing to feed BERT
                continue
            ids = None
            if piece.language == "zh" and vocab is not None:
                ids = tuple(bert_token_ids(norm_text, vocab))
            out.append(
                Segment(
                    language=piece.language,
                    text=part,
                    norm_text=norm_text,
                    phones=tuple(phones),
                    phone_ids=tuple(phones_to_ids(phones, version)),
                    word2ph=tuple(word2ph) if word2ph is not None else None,
                    bert_token_ids=ids,
                )
            )
    return out


def counted_chars(text: str) -> int:
    """The characters of ``text`` that count against ``max_text_chars``: all but a sentence mark at either end.

    The text reaching the frontend is a piece the splitter closed with a mark (api_v2 also opens a short first
    sentence with one), or a prompt that api.py's rule closed with one. The client's limit is checked on the
    text as sent (``gsv_triton.backend.requests``); not counting those marks here, a text of exactly the limit
    is read whole instead of refused as one character too long."""
    return len(text) - (text[:1] in SPLITS) - (len(text) > 1 and text[-1] in SPLITS)


def get_phones_and_bert_inputs(
    text: str,
    language: str,
    version: str = "v2",
    vocab: Mapping[str, int] | None = None,
    limits: Limits | None = None,
) -> TextFeatures:
    """Phones, ids, word2ph, norm_text and (with ``vocab``) BERT ids of one text (spec 4.1).

    With ``vocab``, a Chinese segment longer than BERT's window is cut into segments that fit it
    (``bert_window``). Raises InputError for empty text, text longer than ``limits.max_text_chars``
    (``counted_chars``: not counting the marks a splitter adds), a text with nothing to read aloud (only
    punctuation, symbols or emoji), an unknown language code, and a language the symbol version lacks.
    """
    limits = limits or Limits()
    code = normalize_code(language, version)
    if not text or not text.strip():
        raise InputError("text", "text is empty")
    if counted_chars(text) > limits.max_text_chars:
        raise InputError("text", f"text is longer than {limits.max_text_chars} characters", status=413)
    text = re.sub(" {2,}", " ", text)
    segments = _segments(text, code, version, vocab)
    if sum(len(s.phones) for s in segments) < MIN_PHONES:
        segments = _segments("." + text, code, version, vocab)
    if all(p in _SILENT_PHONES for s in segments for p in s.phones):
        raise InputError("text", "text has nothing to read aloud (only punctuation, symbols or emoji)")
    return TextFeatures(text=text, language=code, version=version, segments=tuple(segments))


def warm_up(
    languages: Sequence[str],
    version: str = "v2",
    vocab: Mapping[str, int] | None = None,
    limits: Limits | None = None,
) -> list[str]:
    """Run the frontend once per language of ``languages`` that ``version`` reads (others are skipped, so one
    list serves v1 and v2 models); returns the languages warmed."""
    done = []
    for language in languages:
        text = WARMUP_TEXTS.get(language)
        if text and language in SEGMENT_LANGUAGES[version]:
            get_phones_and_bert_inputs(text, language, version, vocab, limits)
            done.append(language)
    return done


def g2p_report(text: str, language: str, version: str = "v2") -> dict:
    """JSON-ready view of ``get_phones_and_bert_inputs`` (``gsv-triton g2p``)."""
    features = get_phones_and_bert_inputs(text, language, version)
    segments = []
    for seg in features.segments:
        item = asdict(seg)
        item.pop("bert_token_ids")
        for key in ("phones", "phone_ids", "word2ph"):
            item[key] = list(item[key]) if item[key] is not None else None
        segments.append(item)
    return {
        "text": features.text,
        "language": features.language,
        "version": features.version,
        "norm_text": features.norm_text,
        "phones": features.phones,
        "phone_ids": features.phone_ids,
        "segments": segments,
    }
