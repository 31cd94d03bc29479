"""Mandarin G2P (spec 4.4 step 2): jieba POS segmentation, pypinyin readings, tone sandhi,
erhua (v2), then each syllable onto two symbols via the opencpop-strict table.

Deviation from upstream v2: upstream predicts polyphones with g2pW, a BERT-based ONNX model that
is downloaded separately. Here readings come from pypinyin's phrase dictionary (what upstream v1
does), corrected by upstream's 52-entry ``polyphonic.rep`` table; the 45k-line
``polyphonic-fix.rep`` is not shipped. Most polyphones inside common words agree; a polyphone
that only context beyond its jieba word decides (e.g. 行 in an unknown name) may differ.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache, lru_cache
from importlib import resources

from gsv_triton.text.zh_normalize import PUNCTUATION
from gsv_triton.text.zh_sandhi import Word, apply_sandhi, merge_words, word_lists

UNK = "UNK"
_WORD_CACHE = 50_000  # distinct words whose pypinyin reading is kept (a few MB)
_SENTENCE_CACHE = 4096  # sentences whose segmentation is kept
# Finals that pypinyin writes in full after an initial, shortened as the table expects.
_FINAL_AFTER_INITIAL = {"uei": "ui", "iou": "iu", "uen": "un"}
# Zero-initial syllables: whole-syllable spellings first, then the first letter's y/w spelling.
_ZERO_INITIAL_WHOLE = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
_ZERO_INITIAL_FIRST = {"v": "yu", "e": "e", "i": "y", "u": "w"}
_SENTENCE_BREAK = re.compile(r"(?<=[" + re.escape(PUNCTUATION) + r"])\s*")
_ERHUA_KEEP_TAGS = {"a", "j", "nr"}


@cache
def opencpop_table() -> dict[str, tuple[str, str]]:
    text = resources.files("gsv_triton.text").joinpath("data/opencpop_strict.tsv").read_text("utf-8")
    table = {}
    for line in text.splitlines():
        if line.strip():
            syllable, symbols = line.split("\t")
            initial, final = symbols.split(" ")
            table[syllable] = (initial, final)
    return table


@cache
def polyphone_overrides() -> dict[str, list[str]]:
    raw = resources.files("gsv_triton.text").joinpath("data/zh_polyphonic.json").read_text("utf-8")
    return json.loads(raw)["words"]


@cache
def _jieba_posseg():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.CRITICAL)
    jieba.initialize()
    return jieba.posseg


@cache
def _pypinyin():
    from pypinyin import Style
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT, RE_HANS
    from pypinyin.converter import UltimateConverter
    from pypinyin.seg.simpleseg import seg

    converter = UltimateConverter(neutral_tone_with_five=True)

    @lru_cache(maxsize=4096)
    def tone3(marked: str) -> str:
        return converter.convert_style("", marked, Style.TONE3, True)

    return seg, RE_HANS, PHRASES_DICT, PINYIN_DICT, tone3


@lru_cache(maxsize=_WORD_CACHE)
def _word_pinyin(word: str) -> tuple[str, ...]:
    """TONE3 pinyin per character ("hao3", neutral "ma5"); punctuation stays itself.

    Exactly ``lazy_pinyin(word, style=TONE3, neutral_tone_with_five=True)`` (pypinyin's phrase
    segmentation, phrase dictionary, then single-character dictionary), read from pypinyin's
    tables directly because its general converter costs ~5x more per word; a test compares the two.
    """
    seg, re_hans, phrases, chars, tone3 = _pypinyin()
    out: list[str] = []
    for piece in seg(word):
        if not re_hans.match(piece):
            out.append(piece)
            continue
        if piece in phrases:
            marked = [readings[0] for readings in phrases[piece]]
        else:
            marked = [chars[ord(c)].split(",")[0] if ord(c) in chars else c for c in piece]
        out.extend(tone3(m) for m in marked)
    return tuple(out)


@lru_cache(maxsize=4096)
def _split_syllable(syllable: str) -> tuple[str, str]:
    """(initial, final+tone) in pypinyin's strict INITIALS / FINALS_TONE3 styles."""
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    return to_initials(syllable, strict=True), to_finals_tone3(syllable, strict=True, neutral_tone_with_five=True)


def _initials_finals(word: str) -> tuple[list[str], list[str]]:
    initials, finals = [], []
    for syllable in _word_pinyin(word):
        if syllable[:1].isalpha():
            initial, final = _split_syllable(syllable)
        else:  # punctuation: initial == final marks it
            initial = final = syllable
        initials.append(initial)
        finals.append(final)
    return initials, finals


def _finals_of(word: str) -> list[str]:
    return _initials_finals(word)[1]


def _correct_polyphones(word: str, initials: list[str], finals: list[str]) -> None:
    """upstream v2 ``correct_pronunciation``: a whole-word entry, else single-character entries."""
    table = polyphone_overrides()
    readings = table.get(word)
    if readings is None:
        readings = [table[c][0] if c in table else None for c in word]
    if len(readings) != len(finals):
        return
    for i, syllable in enumerate(readings):
        if syllable:
            initials[i], finals[i] = _split_syllable(syllable)


def _erhua(word: str, pos: str, initials: list[str], finals: list[str]) -> None:
    """v2: a final 儿 reads er2, and inside an erhua word it takes the tone of the syllable before."""
    if finals and word[-1:] == "儿" and finals[-1] == "er1":
        finals[-1] = "er2"
    lists = word_lists()
    if word not in lists["must_erhua"] and (word in lists["not_erhua"] or pos in _ERHUA_KEEP_TAGS):
        return
    if len(finals) != len(word) or len(word) < 2:
        return
    if word[-1] == "儿" and finals[-1] in {"er2", "er5"} and word[-2:] not in lists["not_erhua"]:
        finals[-1] = "er" + finals[-2][-1]


def syllable_phones(initial: str, final: str) -> list[str]:
    """Map one (initial, final+tone) pair onto [initial_symbol, final_symbol+tone]."""
    tone = final[-1:]
    bare = final[:-1]
    if tone not in "12345" or not tone:
        return [UNK, UNK]
    if initial:
        pinyin = initial + _FINAL_AFTER_INITIAL.get(bare, bare)
    elif bare in _ZERO_INITIAL_WHOLE:
        pinyin = _ZERO_INITIAL_WHOLE[bare]
    elif bare[:1] in _ZERO_INITIAL_FIRST:
        pinyin = _ZERO_INITIAL_FIRST[bare[:1]] + bare[1:]
    else:
        pinyin = bare
    pair = opencpop_table().get(pinyin)
    if pair is None:
        # a reading without a table row (e.g. syllabic m/ng): keep two phones so word2ph holds
        return [UNK, UNK]
    return [pair[0], pair[1] + tone]


@lru_cache(maxsize=_SENTENCE_CACHE)
def _sentence_words(sentence: str) -> tuple[Word, ...]:
    """jieba POS words regrouped for sandhi; cached because prompt texts repeat every request."""
    sentence = re.sub("[a-zA-Z]+", "", sentence)
    words = [(w.word, w.flag) for w in _jieba_posseg().lcut(sentence)]
    return tuple(merge_words(words, _finals_of))


def g2p_zh(norm_text: str, version: str = "v2") -> tuple[list[str], list[int]]:
    """Phones and word2ph (2 per character, 1 per punctuation mark) of normalised Chinese text."""
    phones: list[str] = []
    word2ph: list[int] = []
    for sentence in _SENTENCE_BREAK.split(norm_text):
        if not sentence.strip():
            continue
        for word, pos in _sentence_words(sentence):
            if pos == "eng":
                continue
            initials, finals = _initials_finals(word)
            if version != "v1":
                _correct_polyphones(word, initials, finals)
            finals = apply_sandhi(word, pos, finals)
            if version != "v1":
                _erhua(word, pos, initials, finals)
            for initial, final in zip(initials, finals, strict=True):
                if initial == final:  # punctuation
                    phones.append(initial)
                    word2ph.append(1)
                else:
                    phones.extend(syllable_phones(initial, final))
                    word2ph.append(2)
    return phones, word2ph
