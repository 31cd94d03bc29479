"""One single-language piece -> (phones, word2ph, norm_text), upstream's ``clean_text``.

Japanese and Korean are refused with a "needs" message (see README): their upstream G2P needs
pyopenjtalk with a 100 MB+ dictionary, or g2pk2 with python-mecab-ko and NLTK data.
"""

from __future__ import annotations

from functools import cache

from gsv_triton.errors import InputError
from gsv_triton.symbols import UNK, symbol_to_id
from gsv_triton.text.languages import SEGMENT_LANGUAGES

# zh only: these characters become a pause of their own kind (every "," phone of the piece).
SPECIAL_PAUSES = (("￥", "SP2"), ("^", "SP3"))
MIN_EN_PHONES = 4  # upstream prepends "," to shorter English pieces
NEEDS = {
    "ja": "Japanese needs pyopenjtalk with an Open JTalk dictionary (pyopenjtalk-plus, ~350 MB), "
    "which this server does not install",
    "ko": "Korean needs g2pk2 with python-mecab-ko and its dictionary (~110 MB), "
    "which this server does not install",
}
# Status for a language this deployment cannot pronounce (the request itself is well formed).
NEEDS_STATUS = 422


def clean_text(text: str, language: str, version: str = "v2") -> tuple[list[str], list[int] | None, str]:
    """Normalise and phonemise one piece; phones missing from the symbol table become UNK."""
    if language not in SEGMENT_LANGUAGES[version]:
        raise InputError("language", f"{language!r} text is not supported by {version} models")
    if language in NEEDS:
        raise InputError("language", f"language {language!r}: {NEEDS[language]}", status=NEEDS_STATUS)
    table = symbol_to_id(version)
    if language == "zh":
        for char, pause in SPECIAL_PAUSES:
            if char in text:
                phones, word2ph, norm_text = _zh(text.replace(char, ","), version)
                return [pause if p == "," else p for p in phones], word2ph, norm_text
        phones, word2ph, norm_text = _zh(text, version)
    elif language == "yue":
        from gsv_triton.text.yue_g2p import g2p_yue, normalize_yue

        norm_text = normalize_yue(text)
        phones, word2ph = g2p_yue(norm_text)
    else:
        from gsv_triton.text.en_g2p import g2p_en
        from gsv_triton.text.en_normalize import normalize_en

        norm_text = normalize_en(text)
        phones = g2p_en(norm_text, _symbol_set(version))
        if len(phones) < MIN_EN_PHONES:
            phones = [",", *phones]
        word2ph = None
    return [p if p in table else UNK for p in phones], word2ph, norm_text


@cache
def _symbol_set(version: str) -> frozenset[str]:
    return frozenset(symbol_to_id(version))


def _zh(text: str, version: str) -> tuple[list[str], list[int], str]:
    from gsv_triton.text.zh_g2p import g2p_zh
    from gsv_triton.text.zh_normalize import normalize_zh

    norm_text = normalize_zh(text)
    phones, word2ph = g2p_zh(norm_text, version)
    return phones, word2ph, norm_text
