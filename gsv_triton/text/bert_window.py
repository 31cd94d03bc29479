"""Chinese text longer than the BERT window, cut into parts that fit it (a documented rule, README "Limits").

BERT (chinese-roberta-wwm-ext-large) reads at most 512 positions: ``[CLS]``, 510 characters of normalised
text, ``[SEP]``. A Chinese segment whose normalised text is longer is cut, as the client wrote it, after the
last punctuation mark before 510 characters (else after the last space; a hard cut at 510 when there is
neither), and every part is normalised, phonemised and read by BERT on its own. A part that normalisation
lengthens past the window (numbers, units and symbols are spelled out) is cut again, shorter. Text that fits
the window is never cut, so it reads exactly as before this rule existed.
"""

from __future__ import annotations

BERT_WINDOW_CHARS = 510  # 512 positions less [CLS] and [SEP]
# A cut may fall after one of these (sentence and clause marks), else after a space.
CUT_AFTER = frozenset("，。？！,.?!~:：—…;；、")
_IN_NUMBERS = frozenset(".,:")  # "3.5", "1,000", "12:30": not a cut point between two digits


def _inside_number(text: str, i: int) -> bool:
    return text[i] in _IN_NUMBERS and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()


def _cut_position(text: str, limit: int) -> int:
    """Where a text longer than ``limit`` is cut: after its last mark within the limit, else after its last
    space, else at the limit."""
    for i in range(limit - 1, -1, -1):
        if text[i] in CUT_AFTER and not _inside_number(text, i):
            return i + 1
    return text.rfind(" ", 0, limit) + 1 or limit


def window_parts(text: str, limit: int = BERT_WINDOW_CHARS) -> list[str]:
    """``text`` as consecutive parts of at most ``limit`` characters that join back into ``text``."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    parts = []
    while len(text) > limit:
        cut = _cut_position(text, limit)
        parts.append(text[:cut])
        text = text[cut:]
    if text:
        parts.append(text)
    return parts


def shorter_limit(text_chars: int, norm_chars: int, window: int = BERT_WINDOW_CHARS) -> int:
    """A cut length for a text of ``text_chars`` characters whose normalised form has ``norm_chars`` (more than
    ``window``): in proportion to how much normalisation lengthened it, always less than ``text_chars``."""
    return max(1, min(window, text_chars * window // norm_chars, text_chars - 1))
