"""Chinese normalisation and G2P building blocks (spec 4.4)."""

from __future__ import annotations

import random

import pytest

from gsv_triton.text import zh_g2p
from gsv_triton.text.zh_normalize import normalize_zh
from gsv_triton.text.zh_numbers import read_cardinal, read_digits, read_number

NORMALIZE = [
    # numbers with quantifiers are cardinals; 二 before a measure word is 两
    ("我有2个苹果", "我有两个苹果"),
    ("1050元", "一千零五十元"),
    ("10000人", "一万人"),
    ("100000000人", "一亿人"),
    # decimals, negatives, percentages, fractions
    ("3.20", "三点二零"),  # upstream keeps one trailing zero
    ("-3", "负三"),
    ("-12.5%", "负百分之十二点五"),
    ("3/4", "四分之三"),
    # dates and times
    ("2024年3月5日", "二零二四年三月五日"),
    ("2024-03-05", "二零二四年三月五日"),
    ("8:05", "八点零五分"),
    # upstream's range rule tests the first clock's minute for 半 (chronology.replace_time)
    ("8:00~9:30", "八点至九点三十分"),
    ("9:30-10:15", "九点半至十点半"),
    ("12:30:15", "十二点半十五秒"),
    # temperature, units, ranges
    ("-5℃", "零下五度"),
    # upstream compares the decimal group with 摄氏度, so the unit always reads 度 (quantifier.replace_temperature)
    ("25摄氏度", "二十五度"),
    ("10cm", "十厘米"),
    # measure_dict is applied anywhere, in its order: "m" before "mm" (quantifier.replace_measure)
    ("5mm", "五米米"),
    ("ms级", "米秒级"),
    ("1~5", "一到五"),
    ("10%~20%", "百分之十至百分之二十"),
    # arithmetic and powers
    ("1+1=2", "一加一等于二"),
    ("2³", "二的三次方"),
    # phone numbers are read digit by digit with 幺
    ("13812345678", "幺三八幺二三四五六七八"),
    ("电话4001234567", "电话四零零幺二三四五六七"),
    # a bare number of 3+ digits is read digit by digit (upstream rule)
    ("编号007", "编号零零七"),
    # versions
    ("1.2.3版", "一点二点三版"),
    # symbols and letters
    ("α粒子", "阿尔法粒子"),
    ("①②③", "一二三"),
    # punctuation onto the table, other characters deleted, runs collapsed
    ("你好，世界。", "你好,世界."),
    ("真的吗？！", "真的吗?"),
    ("等等……", "等等…"),
    ("《三体》", "三体"),
    ("好～", "好…"),
    ("A股", "股"),
    ("嗯呣", "恩母"),
    ("漢語", "汉语"),
    ("ＡＢＣ１２３", "幺二三"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize_zh(raw) == expected


def test_number_readings() -> None:
    assert read_cardinal("10") == "十"
    assert read_cardinal("110") == "一百一十"
    assert read_cardinal("1005") == "一千零五"
    assert read_cardinal("20000") == "二万"
    assert read_cardinal("0") == "零"
    assert read_number(".5") == "零点五"
    assert read_number("3.0") == "三点零"
    assert read_digits("2010", yao=True) == "二零幺零"


def test_normalized_text_holds_only_cjk_and_table_punctuation() -> None:
    text = "Hello！2024年，价格￥99.9元（约$14）😀#标签 [注]"
    out = normalize_zh(text)
    assert all("\u4e00" <= c <= "\u9fa5" or c in "!?…,.-" for c in out)


@pytest.mark.parametrize(
    ("initial", "final", "phones"),
    [
        ("n", "i3", ["n", "i3"]),
        ("", "i1", ["y", "i1"]),  # yi
        ("", "v2", ["y", "v2"]),  # yu
        ("", "van2", ["y", "van2"]),  # yuan
        ("", "uo3", ["w", "o3"]),  # wo
        ("", "e4", ["EE", "e4"]),  # e
        ("", "er2", ["EE", "er2"]),
        ("", "a1", ["AA", "a1"]),
        ("", "ou1", ["OO", "ou1"]),
        ("sh", "i4", ["sh", "ir4"]),
        ("z", "i3", ["z", "i03"]),
        ("d", "uei4", ["d", "ui4"]),  # uei -> ui
        ("n", "iou2", ["n", "iu2"]),  # iou -> iu
        ("l", "uen2", ["l", "un2"]),  # uen -> un
        ("j", "v3", ["j", "v3"]),
        ("", "m2", ["UNK", "UNK"]),  # syllabic m has no table row: still two phones
    ],
)
def test_syllable_to_symbols(initial: str, final: str, phones: list[str]) -> None:
    assert zh_g2p.syllable_phones(initial, final) == phones


def test_opencpop_table_has_429_rows() -> None:
    assert len(zh_g2p.opencpop_table()) == 429


def test_word_pinyin_equals_pypinyin_lazy_pinyin() -> None:
    """The direct table reading must equal pypinyin's own lazy_pinyin."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.constants import PHRASES_DICT

    rng = random.Random(0)
    phrases = list(PHRASES_DICT)
    chars = [chr(c) for c in range(0x4E00, 0x9FA6)]
    words = rng.sample(phrases, 2000) + ["".join(rng.sample(chars, 3)) for _ in range(500)]
    words += ["你好,", "一…", "重新", "长大", "嗯", "呣"]
    for word in words:
        expected = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
        assert list(zh_g2p._word_pinyin.__wrapped__(word)) == expected, word
