"""Sentence splitting (spec 4.2 and api.py's ``cut_punc``, spec 5.1).

``cut(text, method)`` is one of upstream's cut0..cut5 and returns the pieces joined by newlines,
as upstream does. ``split_sentences`` adds what the APIs do around it and returns the pieces
that are synthesised one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gsv_triton.errors import InputError

# Marks after which a piece may end (text_segmentation_method.splits).
SPLITS = frozenset("，。？！,.?!~:：—…")
# Marks that a piece of only marks (and spaces) consists of; such pieces are dropped.
_MARKS = frozenset("!?…,.- ")
# cut5 and api.py's cut_punc split after these.
CUT5_MARKS = frozenset(",.;?!、，。？！;：…")
CUT_PUNC_MARKS = frozenset(",.;?!、，。？！；：…")
SENTENCES_PER_PIECE = 4  # cut1
CUT2_MIN_CHARS = 50
MIN_PIECE_CHARS = 5  # shorter pieces are merged into the next
MAX_PIECE_CHARS = 510  # BERT's limit; longer pieces are split on punctuation
FIRST_SENTENCE_MIN = 4  # a shorter first sentence gets a leading "。" (api_v2)
_COLLAPSE = re.compile(r"([!?…,.\-])[!?…,.\-]+")


def _only_marks(piece: str) -> bool:
    return set(piece) <= _MARKS


def _sentences(text: str) -> list[str]:
    """Split after every SPLITS mark (after "……"→"。", "——"→"，"); the text ends with a mark."""
    text = text.replace("……", "。").replace("——", "，")
    if text and text[-1] not in SPLITS:
        text += "。"
    pieces, start = [], 0
    for i, char in enumerate(text):
        if char in SPLITS:
            pieces.append(text[start : i + 1])
            start = i + 1
    return pieces


def cut0(text: str) -> str:
    return "\n" if _only_marks(text) else text


def cut1(text: str) -> str:
    text = text.strip("\n")
    sentences = _sentences(text)
    if len(sentences) <= SENTENCES_PER_PIECE:
        pieces = [text]
    else:
        # groups of four; the remainder joins the last full group
        starts = list(range(0, len(sentences), SENTENCES_PER_PIECE))
        bounds = [*starts[:-1], len(sentences)]
        pieces = ["".join(sentences[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    return "\n".join(p for p in pieces if not _only_marks(p))


def cut2(text: str) -> str:
    text = text.strip("\n")
    sentences = _sentences(text)
    if len(sentences) < 2:
        return text
    pieces, current = [], ""
    for sentence in sentences:
        current += sentence
        if len(current) > CUT2_MIN_CHARS:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    if len(pieces) > 1 and len(pieces[-1]) < CUT2_MIN_CHARS:
        pieces[-2:] = [pieces[-2] + pieces[-1]]
    return "\n".join(p for p in pieces if not _only_marks(p))


def cut3(text: str) -> str:
    pieces = text.strip("\n").strip("。").split("。")
    return "\n".join(p for p in pieces if not _only_marks(p))


def cut4(text: str) -> str:
    pieces = re.split(r"(?<!\d)\.(?!\d)", text.strip("\n").strip("."))
    return "\n".join(p for p in pieces if not _only_marks(p))


def cut5(text: str) -> str:
    text = text.strip("\n")
    pieces, current = [], ""
    for i, char in enumerate(text):
        current += char
        decimal_point = char == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        if char in CUT5_MARKS and not decimal_point:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return "\n".join(p for p in pieces if not set(p) <= CUT5_MARKS)


CUT_METHODS: dict[str, Callable[[str], str]] = {
    "cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5,
}


def cut(text: str, method: str) -> str:
    try:
        return CUT_METHODS[method](text)
    except KeyError:
        raise InputError("text_split_method", f"unknown cut method {method!r}; expected one of cut0..cut5") from None


def cut_by_punctuation(text: str, cut_punc: str) -> str:
    """api.py ``cut_text``: split after each mark of ``cut_punc`` that is a sentence mark."""
    marks = [p for p in cut_punc if p in CUT_PUNC_MARKS]
    if marks:
        items = re.split("([" + re.escape("".join(marks)) + "])", text.strip("\n"))
        joined = ["".join(pair) for pair in zip(items[::2], items[1::2], strict=False)]
        if len(items) % 2 == 1:
            joined.append(items[-1])
        text = "\n".join(joined)
    return re.sub(r"\n{2,}", "\n", text)


def _has_word_chars(piece: str) -> bool:
    return bool(re.sub(r"\W+", "", piece))


def _end_mark(language: str) -> str:
    return "." if language == "en" else "。"


def _merge_short(pieces: list[str], threshold: int) -> list[str]:
    if len(pieces) < 2:
        return pieces
    out, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            out.append(current)
            current = ""
    if current:
        if out:
            out[-1] += current
        else:
            out.append(current)
    return out


def _split_long(piece: str, limit: int = MAX_PIECE_CHARS) -> list[str]:
    parts = re.split("([" + re.escape("".join(sorted(SPLITS))) + "])", piece)
    out, current = [], ""
    for part in parts:
        if len(current + part) > limit:
            out.append(current)
            current = part
        else:
            current += part
    if current:
        out.append(current)
    return [p for p in out if p]


def split_sentences(
    text: str, method: str = "cut5", cut_punc: str | None = None, language: str = "zh"
) -> list[str]:
    """The pieces to synthesise one at a time, each ending with a sentence mark.

    With ``cut_punc`` (api.py): split after those marks and at newlines, skip pieces without
    letters or digits, no merging. Otherwise (api_v2): collapse repeated marks, give a short first
    sentence a leading "。", apply ``method``, merge pieces under 5 characters into the next, drop
    mark-only pieces, and split pieces over 510 characters. Raises InputError when nothing
    speakable is left.
    """
    end = _end_mark(language.lower())
    if not text.strip():
        raise InputError("text", "text is empty")
    if cut_punc is not None:
        pieces = [p for p in cut_by_punctuation(text, cut_punc).split("\n") if any(c.isalnum() for c in p)]
        out = [p if p[-1] in SPLITS else p + end for p in pieces]
    else:
        text = _COLLAPSE.sub(r"\1", text).strip("\n")
        first = re.split("[" + re.escape("".join(sorted(SPLITS))) + "]", text)[0].strip()
        if text[0] not in SPLITS and len(first) < FIRST_SENTENCE_MIN:
            text = end + text
        lines = re.sub(r"\n{2,}", "\n", cut(text, method)).split("\n")
        lines = _merge_short([line for line in lines if line not in ("", " ")], MIN_PIECE_CHARS)
        out = []
        for piece in lines:
            if not piece.strip() or not _has_word_chars(piece):
                continue
            if piece[-1] not in SPLITS:
                piece += end
            out.extend(_split_long(piece) if len(piece) > MAX_PIECE_CHARS else [piece])
    if not out:
        raise InputError("text", "text has nothing to read aloud (only punctuation or symbols)")
    return out
