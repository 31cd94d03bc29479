"""Write golden.json from upstream GPT-SoVITS's own text frontend (see README.md here).

Run with a Python that has upstream's text dependencies (not this project's venv), e.g.

    UPSTREAM=/path/to/GPT-SoVITS/GPT_SoVITS HOME=$(mktemp -d) python make_golden.py > golden.json

Upstream is loaded offline: g2pW is replaced by its non-g2pW path (``chinese2.is_g2pw = False``, pypinyin, which is
what this project's frontend reproduces), ``jieba_fast`` by ``jieba`` (same dictionary), and NLTK's data by stubs:
the POS tagger tags every word NN, so no case may hold a homograph (checked below), and g2p_en's own CMU corpus is
not needed because upstream's ``en_G2p`` replaces it with its ``cmudict.rep`` files.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import types

# (rule, level, language, text). level "request": the whole text through get_phones_and_bert (one piece, then
# upstream's "." retry under 6 phones); level "piece": one piece through cleaner.clean_text (the segmenter's
# split is another module's job and is not tested here).
CASES = [
    # --- signed numbers with units, percentages, temperatures (zh_normalization quantifier.py / num.py) ----------
    ("temperature: a leading '-' reads 零下 (replace_temperature)", "request", "zh", "今天最低气温-5℃。"),
    ("temperature: 摄氏度 always reads 度 (replace_temperature tests the decimal group)", "request", "zh", "体温三十七点五，气温-2摄氏度。"),
    ("temperature: a decimal with ℃", "request", "zh", "水温是36.6℃左右。"),
    ("temperature: °C is a unit of RE_TEMPERATURE", "piece", "zh", "明天-3°C，后天5°C。"),
    ("temperature range with ~ and units (RE_TO_RANGE then RE_TEMPERATURE)", "piece", "zh", "温度-3°C~5°C之间。"),
    ("temperature range: '~' without units is …", "piece", "zh", "温度-3~5°C。"),
    ("percentage (replace_percentage)", "request", "zh", "完成了80%的工作。"),
    ("negative percentage reads 负百分之", "request", "zh", "利润下降了-12.5%。"),
    ("percentage range with ~ (RE_TO_RANGE keeps 至)", "request", "zh", "比例在10%~20%之间。"),
    ("percentage range with - (RE_PERCENTAGE first, then the '-' reads 减)", "request", "zh", "湿度为40%-60%。"),
    ("'+' before a percentage reads 加 (_post_replace)", "request", "zh", "同比增长+5%。"),
    ("negative number (replace_negative_num)", "request", "zh", "账户余额是-200元。"),
    ("a number after '-' with a quantifier", "request", "zh", "变化量为-3个。"),
    ("units anywhere in measure_dict order: m before mm (replace_measure)", "piece", "zh", "直径5mm的螺丝。"),
    ("unit kg after a number", "piece", "zh", "体重70kg左右。"),
    ("unit m2 before m", "piece", "zh", "面积是120m2。"),
    ("unit km and s", "piece", "zh", "速度是3km每5s。"),
    ("signed decimal with a unit", "piece", "zh", "海拔-3.5m的地方。"),
    # --- times and ranges written with '-' and ':' (chronology.py, num.py) ------------------------------------------
    ("time range with '-': the second clock uses the FIRST minute for 半 (replace_time)", "request", "zh", "会议时间是9:00-10:30。"),
    ("time range with '~'", "request", "zh", "营业时间8:00~9:30。"),
    ("time range: first minute 30 makes the second clock 半", "request", "zh", "课程9:30-10:15结束。"),
    ("time range with seconds", "request", "zh", "比赛从12:00:05-13:30:00。"),
    ("single clock with a zero minute reads 零五分", "request", "zh", "我们7:05出发。"),
    ("clock 12:00 reads 十二点", "request", "zh", "中午12:00吃饭。"),
    ("ratio 3:2 is a clock (RE_TIME)", "request", "zh", "比分是3:2。"),
    ("date written with '-' (RE_DATE2)", "request", "zh", "日期是2024-03-05。"),
    ("date with single-digit month is not RE_DATE2: '-' is subtraction", "request", "zh", "日期是2024-3-5。"),
    ("number range with '-' is subtraction (RE_ASMD before RE_RANGE)", "request", "zh", "需要3-5天。"),
    ("number range with '~' reads 到 (replace_range)", "request", "zh", "大约1~5个人。"),
    ("negative range with ~", "request", "zh", "坐标从-5~-3。"),
    ("year range with '-' is subtraction of bare numbers", "request", "zh", "在2020-2024年间。"),
    ("landline with '-' (RE_TELEPHONE)", "request", "zh", "电话是010-12345678。"),
    ("service number 400 (RE_NATIONAL_UNIFORM_NUMBER)", "request", "zh", "请拨打400-123-4567。"),
    # --- Latin letters inside a zh piece: deleted (after replace_measure) --------------------------------------------
    ("Latin letters in a zh piece are deleted (replace_punctuation)", "piece", "zh", "我买了A股。"),
    ("upper-case letters deleted", "piece", "zh", "去做B超和CT检查。"),
    ("lower-case m and s inside a word become 米 and 秒 before deletion (replace_measure)", "piece", "zh", "这个ms很快。"),
    ("'cm' inside a word becomes 厘米", "piece", "zh", "用cm作单位。"),
    ("letters that hold no unit are dropped", "piece", "zh", "这是我的iPad。"),
    ("a letter operand in arithmetic (RE_ASMD)", "piece", "zh", "已知a+b=c。"),
    ("letters and digits: 3D", "piece", "zh", "这是3D打印。"),
    ("letters and a number: 5G", "piece", "zh", "我们有5G网络。"),
    # --- English quotes and contractions (english.py rep_map is re.escape'd; expend.normalize deletes) ------------
    ("curly apostrophe deleted: don’t -> dont", "request", "en", "I don’t know."),
    ("curly apostrophe deleted: it’s -> its", "request", "en", "It’s fine with me."),
    ("curly apostrophe deleted: they’re -> theyre (upstream dictionary entry)", "request", "en", "They’re here now."),
    ("curly apostrophe deleted: isn’t -> isnt", "request", "en", "This isn’t right."),
    ("curly apostrophe deleted: you’re -> youre", "request", "en", "You’re welcome to join."),
    ("straight apostrophe kept: don't", "request", "en", "I don't know."),
    ("straight apostrophe kept: we're, let's", "request", "en", "We're done, let's go."),
    ("possessive with a curly apostrophe: Tom’s -> Toms", "request", "en", "That is Tom’s book."),
    ("double quotes deleted", "request", "en", 'He said "hello" to me.'),
    ("curly double quotes deleted", "request", "en", "“Hello,” she said."),
    ("single quotes kept as ' (phone -)", "request", "en", "She said 'yes' twice."),
    ("semicolon deleted (not mapped to ,)", "request", "en", "We're done; let's go home."),
    ("colon deleted (not mapped to ,)", "request", "en", "Note: this works well."),
    ("colon between digits is a time", "request", "en", "Call me at 5:30 please."),
    # --- English numbers: negatives, units, percentages, times with '-' ---------------------------------------------
    ("negative glued to the word before (RE_INTEGER eats the space)", "request", "en", "It is -5°C outside."),
    ("negative at the start", "request", "en", "-19°C is very cold."),
    ("percentage", "request", "en", "It's 80% done."),
    ("time range: 'a.m.ten' is one TweetTokenizer token, split by wordsegment", "request", "en", "Open from 9:00-10:30 daily."),
    ("measure after a number (_expand_measurement)", "request", "en", "We walked 5km in 2h."),
    ("number range with '-' stays a hyphen", "request", "en", "It takes 3-5 days."),
    ("arithmetic needs spaces around the operator (RE_ASMD)", "request", "en", "So 2 + 2 = 4 here."),
    # --- English segments shorter than 4 phones (cleaner.clean_text) and under 6 phones (get_phones_and_bert) -------
    ("under 4 phones: ',' first; under 6 in total: re-read with '.'", "request", "en", "OK"),
    ("short word with a mark", "request", "en", "Hi!"),
    ("single letter", "request", "en", "A"),
    ("quoted short word: the quotes vanish", "request", "en", '"Yes"'),
    ("upstream dictionary reading of hm", "request", "en", "hm"),
    ("two letters spelled, 4+ phones: no ','", "request", "en", "TV"),
    ("an English piece of a mixed text under 4 phones", "piece", "en", "AI"),
    ("an English piece of a mixed text under 4 phones", "piece", "en", "OK"),
    ("an English piece of exactly 4 phones", "piece", "en", "Go!"),
]


def _load(root: str):
    sys.path.insert(0, root)
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.CRITICAL)
    fast = types.ModuleType("jieba_fast")
    fast.__dict__.update(jieba.__dict__)
    fast.posseg = jieba.posseg
    sys.modules["jieba_fast"], sys.modules["jieba_fast.posseg"] = fast, jieba.posseg
    g2pw = types.ModuleType("text.g2pw")
    g2pw.G2PWPinyin = lambda *a, **k: None
    g2pw.correct_pronunciation = lambda word, pinyins: pinyins
    sys.modules["text.g2pw"] = g2pw
    import nltk
    import nltk.data

    nltk.data.find = lambda *a, **k: None
    nltk.download = lambda *a, **k: None
    nltk.pos_tag = lambda words: [(w, "NN") for w in words]
    import g2p_en.g2p

    g2p_en.g2p.cmudict = types.SimpleNamespace(dict=dict)
    g2p_en.g2p.pos_tag = nltk.pos_tag
    with contextlib.redirect_stdout(io.StringIO()):
        from text import chinese2, cleaner, english
    chinese2.is_g2pw = False
    return cleaner, english


def main() -> None:
    cleaner, english = _load(os.environ["UPSTREAM"])
    homographs = set(english._g2p.homograph2features)

    def clean(text: str, language: str):
        with contextlib.redirect_stdout(io.StringIO()):
            return cleaner.clean_text(text, language, "v2")

    out = []
    for rule, level, language, text in CASES:
        words = {w.lower() for w in english.word_tokenize(english.text_normalize(text))} if language == "en" else set()
        assert not words & homographs, (text, words & homographs)  # the POS stub would decide them
        phones, word2ph, norm = clean(text, language)
        if level == "request" and len(phones) < 6:  # get_phones_and_bert's retry
            phones, word2ph, norm = clean("." + text, language)
        out.append({"rule": rule, "level": level, "language": language, "text": text,
                    "phones": " ".join(phones), "word2ph": word2ph, "norm_text": norm})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
