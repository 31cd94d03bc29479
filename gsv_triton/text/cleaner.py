"""One single-language piece -> (phones, word2ph, norm_text), upstream's ``clean_text``.

zh, en and yue here; Japanese in ``ja_g2p`` (Open JTalk), Korean in ``ko_g2p`` (g2pk2). Like upstream, ja and
ko pieces have no word2ph (BERT reads zh only).
"""

from __future__ import annotations

from functools import cache

from gsv_triton.errors import InputError
from gsv_triton.symbols import UNK, symbol_to_id
from gsv_triton.text.languages import SEGMENT_LANGUAGES

# zh only: these characters become a pause of their own kind (every "," phone of the piece).
SPECIAL_PAUSES = (("￥", "SP2"), ("^", "SP3"))
MIN_EN_PHONES = 4  # upstream prepends "," to shorter English pieces


def clean_text(text: str, language: str, version: str = "v2") -> tuple[list[str], list[int] | None, str]:
    """Normalise and phonemise one piece; phones missing from the symbol table become UNK."""
    if language not in SEGMENT_LANGUAGES[version]:
        raise InputError("language", f"{language!r} text is not supported by {version} models")
    table = symbol_to_id(version)
    if language == "zh":
        for char, pause in SPECIAL_PAUSES:
            if char in text:
                phones, word2ph, norm_text = _zh(text.replace(char, ","), version)
                return [pause if p == "," else p for p in phones], word2ph, norm_text
        phones, word2ph, norm_text = _zh(text, version)
    elif language == "ja":
        from gsv_triton.text.ja_g2p import g2p_ja, normalize_ja

        norm_text = normalize_ja(text)
        phones, word2ph = g2p_ja(norm_text), None
    elif language == "ko":
        from gsv_triton.text.ko_g2p import g2p_ko

        norm_text = text  # upstream's Korean module has no normalisation step
        phones, word2ph = g2p_ko(norm_text), None
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
