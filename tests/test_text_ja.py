"""Japanese phones against upstream GPT-SoVITS's own frontend (tests/data/text_ja_ko/golden.json, made by
running upstream's text/japanese.py; see the README there). Each case's ``rule`` names what it exercises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsv_triton.text import get_phones_and_bert_inputs
from gsv_triton.text.cleaner import clean_text
from gsv_triton.text.ja_g2p import g2p_ja, normalize_ja

GOLDEN = json.loads((Path(__file__).parent / "data" / "text_ja_ko" / "golden.json").read_text("utf-8"))
CASES = GOLDEN["ja"]


def test_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c["text"] for c in CASES])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_upstream_phones(case: dict, version: str) -> None:
    phones, word2ph, norm_text = clean_text(case["text"], "ja", version)
    assert (phones, norm_text) == (case[f"phones_{version}"], case["norm_text"]), case["rule"]
    assert word2ph is None  # upstream: no word2ph for ja, BERT reads zeros


def test_prosody_marks() -> None:
    # rising [, falling ], phrase border # (UNK in the v2 table), devoiced vowels read as voiced
    assert g2p_ja("富士山は日本一高い山です") == (
        "f u ] j i s a N w a # n i [ cl p o ] N i ch i # t a [ k a ] i # z a [ N ] d e s u".split()
    )


def test_user_dictionary_is_loaded() -> None:
    # without upstream's user dictionary Open JTalk reads 主殿 as "shuden"
    assert "".join(g2p_ja("主殿")).startswith("a[ruji]dono")


def test_repeated_marks_collapse() -> None:
    assert normalize_ja("本当?!...") == "本当?"
    assert normalize_ja("早く！！！") == "早く！！！"  # full-width marks are not in upstream's list


def test_ja_pieces_carry_no_bert_ids() -> None:
    features = get_phones_and_bert_inputs("今日はいい天気ですね。", "ja", "v2", vocab={"[CLS]": 1, "[SEP]": 2})
    assert [s.language for s in features.segments] == ["ja"]
    assert features.segments[0].bert_token_ids is None and not features.segments[0].needs_bert
