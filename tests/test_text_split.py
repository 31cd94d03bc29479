"""Sentence splitting: cut0..cut5 (spec 4.2) and api.py's cut_punc (spec 5.1)."""

from __future__ import annotations

import pytest

from gsv_triton.errors import InputError
from gsv_triton.settings import Limits
from gsv_triton.text import cut, get_phones_and_bert_inputs, split_sentences
from gsv_triton.text.bert_window import window_parts

TEXT = "第一句。第二句，第三句！第四句？第五句。第六句"


def test_cut0_keeps_text_and_blanks_mark_only_input() -> None:
    assert cut(TEXT, "cut0") == TEXT
    assert cut("。。", "cut0") == "。。"  # only !?…,.- and spaces count as marks for cut0
    assert cut("...", "cut0") == "\n"


def test_cut1_groups_four_sentences_and_the_tail_joins_the_last_group() -> None:
    # group starts 0, 4, 8, ...; the last start is dropped, so the final group takes the rest:
    # 6 sentences stay one piece, 9 become [0:4] and [4:9]
    assert cut(TEXT, "cut1") == TEXT + "。"  # rebuilt from sentences, so the end mark is added
    nine = "一。二。三。四。五。六。七。八。九"
    assert cut(nine, "cut1").split("\n") == ["一。二。三。四。", "五。六。七。八。九。"]  # "。" appended
    # "……" counts as one sentence end, "——" as a comma
    text = "甲……乙——丙。丁。戊。己。庚。辛。壬。"  # 9 sentences
    assert cut(text, "cut1").split("\n") == ["甲。乙，丙。丁。", "戊。己。庚。辛。壬。"]


def test_cut2_accumulates_over_50_characters() -> None:
    long = "这是一个用来测试按字数切分的句子，"  # 17 characters
    text = long * 7
    pieces = cut(text, "cut2").split("\n")
    assert "".join(pieces) == text
    assert len(pieces[0]) > 50
    assert all(len(p) >= 50 for p in pieces)  # a short tail was merged into the previous piece


def test_cut3_and_cut4() -> None:
    assert cut("甲。乙。丙。", "cut3").split("\n") == ["甲", "乙", "丙"]
    # a "." between digits does not split
    assert cut("Pi is 3.14 now. It is round. Yes.", "cut4").split("\n") == ["Pi is 3.14 now", " It is round", " Yes"]
    # upstream's regex: a "." right after a digit never splits
    assert cut("It is 3. Yes.", "cut4") == "It is 3. Yes"


def test_cut5_splits_after_every_mark_but_not_decimal_points() -> None:
    assert cut("你好，世界。价格是3.5元！好", "cut5").split("\n") == ["你好，", "世界。", "价格是3.5元！", "好"]
    assert cut("a,,b", "cut5").split("\n") == ["a,", "b"]  # a piece of marks only is dropped


def test_unknown_cut_method() -> None:
    with pytest.raises(InputError) as err:
        cut("abc", "cut9")
    assert err.value.field == "text_split_method"


def test_split_sentences_api_v2_path() -> None:
    # short pieces (< 5 characters) merge into the next; every piece ends with a mark
    assert split_sentences("你好。我是小明，很高兴认识你", "cut5") == ["你好。我是小明，", "很高兴认识你。"]
    # the first sentence has < 4 characters: a leading "。" is added (api_v2)
    assert split_sentences("嗨，今天天气很好", "cut0") == ["。嗨，今天天气很好。"]
    # English pieces end with "."
    assert split_sentences("Hello there, how are you", "cut0", language="en") == ["Hello there, how are you."]
    # repeated marks collapse first
    assert split_sentences("这是真的吗？？？是的!!!", "cut0") == ["这是真的吗？？？是的!"]


def test_split_sentences_splits_over_510_characters() -> None:
    text = ("这是一个很长的句子，" * 60).rstrip("，") + "。"
    pieces = split_sentences(text, "cut0")
    assert len(pieces) > 1 and all(len(p) <= 510 for p in pieces)
    assert "".join(pieces) == text


def test_cut_punc_api_py_path() -> None:
    # only marks of cut_punc that are sentence marks count; no merging of short pieces
    assert split_sentences("你好，世界。再见", cut_punc="，。") == ["你好，", "世界。", "再见。"]
    assert split_sentences("你好，世界。再见", cut_punc="。x") == ["你好，世界。", "再见。"]
    # an explicit empty cut_punc splits only at newlines
    assert split_sentences("你好，世界\n再见", cut_punc="") == ["你好，世界。", "再见。"]
    # mark-only pieces are skipped
    assert split_sentences("你好。。。", cut_punc="。") == ["你好。"]


@pytest.mark.parametrize("text", ["", "  \n ", "。。。！", "……", "😀😀"])
def test_nothing_to_read(text: str) -> None:
    with pytest.raises(InputError) as err:
        split_sentences(text)
    assert err.value.field == "text"


# -- issue 20: the text limit as sent, and lines longer than BERT's window ----------------------------------------
BERT_VOCAB = {"[CLS]": 0, "[SEP]": 1, "[UNK]": 2}  # ids do not matter here: only their count per segment
LONG_ZH_LINE = ("今天天气很好，我们一起去公园散步吧" * 70)[:1000]


def test_window_parts_cut_after_the_last_mark_else_space_else_at_the_limit() -> None:
    assert window_parts("甲甲甲，乙乙。丙丙丙丙", 8) == ["甲甲甲，乙乙。", "丙丙丙丙"]
    assert window_parts("ab cd ef gh", 6) == ["ab cd ", "ef gh"]
    assert window_parts("a" * 10, 4) == ["aaaa", "aaaa", "aa"]
    assert window_parts("价格3.5元和4.5元", 6) == ["价格3.5元", "和4.5元"]  # never between the digits of a number
    assert window_parts("短句。", 510) == ["短句。"]


def test_a_piece_of_exactly_the_limit_is_read_and_one_more_character_is_413() -> None:
    limits = Limits(max_text_chars=12)
    for text in ("好" * 12, "hello worlds"):
        (piece,) = split_sentences(text, cut_punc="", language="en" if text.isascii() else "zh")
        assert len(piece) == 13  # the closing mark the splitter appends (and api.py's prompt rule)
        get_phones_and_bert_inputs(piece, "en" if text.isascii() else "zh", limits=limits)
    with pytest.raises(InputError) as err:
        get_phones_and_bert_inputs("好" * 13, "zh", limits=limits)
    assert err.value.status == 413


def test_a_zh_line_longer_than_the_bert_window_reads_in_segments_that_fit() -> None:
    (piece,) = split_sentences(LONG_ZH_LINE, cut_punc="")
    features = get_phones_and_bert_inputs(piece, "zh", vocab=BERT_VOCAB)
    assert len(features.segments) == 2
    assert all(len(s.bert_token_ids) <= 512 for s in features.segments)
    assert "".join(s.text for s in features.segments) == piece
    assert features.segments[0].text.endswith("，")  # cut after its last mark before the limit
    # a part that normalisation lengthens past the window is cut again: "%" reads 百分之
    features = get_phones_and_bert_inputs("增长50%" * 200, "zh", vocab=BERT_VOCAB)
    assert all(len(s.bert_token_ids) <= 512 for s in features.segments)
    # without BERT (voice conversion) nothing is cut
    assert len(get_phones_and_bert_inputs(piece, "zh").segments) == 1


def test_text_within_the_bert_window_reads_exactly_as_before() -> None:
    text = LONG_ZH_LINE[:500]
    with_bert = get_phones_and_bert_inputs(text, "zh", vocab=BERT_VOCAB)
    without = get_phones_and_bert_inputs(text, "zh")
    assert len(with_bert.segments) == 1 and with_bert.phone_ids == without.phone_ids
    assert with_bert.segments[0].word2ph == without.segments[0].word2ph
