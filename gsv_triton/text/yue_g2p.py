"""Cantonese (spec 4.6): the zh number rules, then Jyutping from the ``ToJyutping`` package (offline,
0.5 MB), split into two ``Y``-prefixed symbols per character as upstream's ``cantonese.py`` does.
BERT features stay zeros for yue.
"""

from __future__ import annotations

import re
from functools import cache

from gsv_triton.text.zh_normalize import PUNCTUATION, map_punctuation, normalize_sentence
from gsv_triton.text.zh_normalize import split_sentences_for_normalization as _pieces

UNK = "UNK"
# Upstream's "initial" list, matched by prefix in this order. It also holds zero-initial
# vowels (aa, o, ...); a syllable that is only its "initial" repeats that initial's last
# letter as the final (aa3 -> Yaa Ya3, ng5 -> Yng Yg5).
_INITIALS = (
    "aa aai aak aap aat aau ai au ap at ak a p b e ts t dz d kw k gw g f h l m ng n s y w c z j "
    "ong on ou oi ok o uk ung sp spl spn sil"
).split()
YUE_PUNCTUATION_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    "...": "…", "$": ".", "“": "'", "”": "'", '"': "'", "‘": "'", "’": "'", "（": "'", "）": "'",
    "(": "'", ")": "'", "《": "'", "》": "'", "【": "'", "】": "'", "[": "'", "]": "'", "—": "-",
    "～": "-", "~": "-", "「": "'", "」": "'",
}
_SYLLABLE = re.compile(r"^[a-z]+[1-6]$")


@cache
def _jyutping():
    import ToJyutping

    return ToJyutping


def normalize_yue(text: str) -> str:
    """zh number rules and upstream's Cantonese punctuation map (no collapsing of runs)."""
    return "".join(map_punctuation(normalize_sentence(s), YUE_PUNCTUATION_MAP) for s in _pieces(text))


def syllable_phones(syllable: str) -> list[str]:
    """"keoi5" -> ["Yk", "Yeoi5"]."""
    if not _SYLLABLE.match(syllable):
        return [UNK, UNK]
    body, tone = syllable[:-1], syllable[-1]
    for initial in _INITIALS:
        if body.startswith(initial):
            final = body[len(initial) :] or initial[-1]
            return ["Y" + initial, "Y" + final + tone]
    return [UNK, UNK]


def g2p_yue(norm_text: str) -> tuple[list[str], list[int]]:
    phones: list[str] = []
    word2ph: list[int] = []
    for char, reading in _jyutping().get_jyutping_list(norm_text):
        for i, c in enumerate(char):
            if c in PUNCTUATION:
                phones.append(c)
                word2ph.append(1)
                continue
            syllables = (reading or "").split()
            phones.extend(syllable_phones(syllables[i] if i < len(syllables) else ""))
            word2ph.append(2)
    return phones, word2ph
