"""Korean phones against upstream GPT-SoVITS's own frontend (tests/data/text_ja_ko/golden.json, made by
running upstream's text/korean.py; see the README there). Each case's ``rule`` names what it exercises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsv_triton.errors import InputError
from gsv_triton.text import get_phones_and_bert_inputs
from gsv_triton.text.cleaner import clean_text
from gsv_triton.text.ko_g2p import g2p_ko, spell_latin

GOLDEN = json.loads((Path(__file__).parent / "data" / "text_ja_ko" / "golden.json").read_text("utf-8"))
CASES = GOLDEN["ko"]


def test_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c["text"] for c in CASES])
def test_upstream_phones(case: dict) -> None:
    phones, word2ph, norm_text = clean_text(case["text"], "ko", "v2")
    assert (phones, norm_text) == (case["phones_v2"], case["text"]), case["rule"]
    assert word2ph is None


def test_latin_letters_are_spelled_in_hangul() -> None:
    assert spell_latin("KBS와 mp") == "케이비에스와 엠피"


def test_space_and_unknown_characters() -> None:
    phones = g2p_ko("좋다 😀")
    assert "空" in phones and phones[-1] == "停"  # space -> 空; what the table lacks -> 停


def test_korean_is_refused_for_v1_models() -> None:
    with pytest.raises(InputError) as err:
        get_phones_and_bert_inputs("안녕하세요", "ko", "v1")
    assert (err.value.field, err.value.status) == ("language", 400)
