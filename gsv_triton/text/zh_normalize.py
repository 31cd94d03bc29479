"""Chinese text normalisation (spec 4.4 step 1): numbers, dates, times, units and symbols become
Chinese characters, punctuation is mapped onto the symbol table's ``! ? … , . -`` and everything
else is deleted, so that every remaining character is one CJK syllable or one punctuation phone.

The rules and their order follow PaddleSpeech's ``zh_normalization`` as GPT-SoVITS uses it,
including its quirks (a bare number of three or more digits is read digit by digit with 幺, and
"a-b" between numbers is read as subtraction because the arithmetic rule runs before ranges).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from gsv_triton.text.zh_numbers import read_cardinal, read_digits, read_number

PUNCTUATION = "!?…,.-"

# Sentence pieces are normalised one at a time, as upstream does, so no rule spans a full stop.
_SENTENCE_END = re.compile(r"([：、，；。？！,;?!][”’]?)")
_DROP_BEFORE = re.compile(r"[——《》【】<>{}()（）#&@“”^_|\\]")
_DROP_AFTER = re.compile(r"[-——《》【】<=>{}()（）#&@“”^_|\\]")

_FULLWIDTH = {c + 0xFEE0: c for c in range(ord("!"), ord("~") + 1) if chr(c).isalnum()}
_FULLWIDTH[0x3000] = ord(" ")

_NUM = r"\d+(?:\.\d+)?"
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_SUPERSCRIPT_PLAIN = dict(zip(_SUPERSCRIPTS, "0123456789xyn", strict=True))

_DATE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
_DATE_NUMERIC = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_CLOCK = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?"
_TIME_RANGE = re.compile(_CLOCK + r"[~-]" + _CLOCK)
_TIME = re.compile(_CLOCK)
_UNIT_ALT = "%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s"
_TO_RANGE = re.compile(rf"(-?{_NUM}|\.\d+)({_UNIT_ALT})~(-?{_NUM}|\.\d+)({_UNIT_ALT})")
_TEMPERATURE = re.compile(rf"(-?)({_NUM})(°C|℃|度|摄氏度)")
# quantifier.py measure_dict, in its order: upstream replaces each key anywhere in the sentence (Latin words
# included, which are deleted later anyway), so "m" runs before "mm" ("5mm" -> 五米米) and "ms" -> 米秒.
MEASURE_UNITS: dict[str, str] = {
    "cm2": "平方厘米", "cm²": "平方厘米", "cm3": "立方厘米", "cm³": "立方厘米", "cm": "厘米",
    "db": "分贝", "ds": "毫秒", "kg": "千克", "km": "千米", "m2": "平方米", "m²": "平方米",
    "m³": "立方米", "m3": "立方米", "ml": "毫升", "m": "米", "mm": "毫米", "s": "秒",
}
_OPERAND = rf"-?\d+(?:\.\d+)?[{_SUPERSCRIPTS}]*|\.\d+[{_SUPERSCRIPTS}]*|[A-Za-z][{_SUPERSCRIPTS}]*"
_ARITHMETIC = re.compile(rf"({_OPERAND})([+\-×÷=])({_OPERAND})")
_OPERATOR_READINGS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
_POWER = re.compile(rf"[{_SUPERSCRIPTS}]+")
_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
_PERCENT = re.compile(rf"(-?)({_NUM})%")
_MOBILE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
_SERVICE_NUMBER = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
_RANGE = re.compile(rf"(?<![\d+\-×÷=])(-?{_NUM})[-~](-?{_NUM})(?![\d+\-×÷=])")
_NEGATIVE = re.compile(r"-(\d+)")
_VERSION = re.compile(r"\d+(?:\.\d+){2,}")
_DECIMAL = re.compile(r"(-?)(\d+\.\d+)|\.(\d+)")
# Measure words after which a number is read as a cardinal (二 becomes 两).
_QUANTIFIERS = (
    "处 台 架 枚 趟 幅 平 方 堵 间 床 株 批 项 例 列 篇 栋 注 亩 封 艘 把 目 套 段 人 所 朵 匹 张 座 回 场 尾 条 个 首 "
    "阙 阵 网 炮 顶 丘 棵 只 支 袭 辆 挑 担 颗 壳 窠 曲 墙 群 腔 砣 客 贯 扎 捆 刀 令 打 手 罗 坡 山 岭 江 溪 钟 队 单 "
    "双 对 出 口 头 脚 板 跳 枝 件 贴 针 线 管 名 位 身 堂 课 本 页 家 户 层 丝 毫 厘 分 钱 两 斤 铢 石 钧 锱 忽 千克 "
    "毫克 微克 公分 寸 尺 丈 里 寻 常 铺 程 千米 分米 厘米 毫米 微米 米 撮 勺 合 升 斗 盘 碗 碟 叠 桶 笼 盆 盒 杯 斛 锅 "
    "簋 篮 罐 瓶 壶 卮 盏 箩 箱 煲 啖 袋 钵 年 月 日 季 刻 时 周 天 秒 小时 旬 纪 岁 世 更 夜 春 夏 秋 冬 代 伏 辈 丸 泡 "
    "粒 幢 堆 根 道 面 片 块 元 亿 千万 百万 万 千 百 美元 十 吨 角 毛"
).split()
_QUANTIFIED = re.compile(r"(\d+)([多余几+])?(?=" + "|".join(sorted(_QUANTIFIERS, key=len, reverse=True)) + ")")
_LONG_DIGITS = re.compile(r"\d{3,}")
_NUMBER = re.compile(rf"(-?)({_NUM})|\.(\d+)")

_SYMBOL_READINGS = {
    "/": "每", "①": "一", "②": "二", "③": "三", "④": "四", "⑤": "五", "⑥": "六", "⑦": "七", "⑧": "八",
    "⑨": "九", "⑩": "十", "α": "阿尔法", "β": "贝塔", "γ": "伽玛", "Γ": "伽玛", "δ": "德尔塔", "Δ": "德尔塔",
    "ε": "艾普西龙", "ζ": "捷塔", "η": "依塔", "θ": "西塔", "Θ": "西塔", "ι": "艾欧塔", "κ": "喀帕",
    "λ": "拉姆达", "Λ": "拉姆达", "μ": "缪", "ν": "拗", "ξ": "克西", "Ξ": "克西", "ο": "欧米克伦", "π": "派",
    "Π": "派", "ρ": "肉", "ς": "西格玛", "Σ": "西格玛", "σ": "西格玛", "τ": "套", "υ": "宇普西龙",
    "φ": "服艾", "Φ": "服艾", "χ": "器", "ψ": "普赛", "Ψ": "普赛", "ω": "欧米伽", "Ω": "欧米伽",
    "+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等",
}

# Punctuation onto the symbol table (chinese2.py rep_map), applied after the rules above.
ZH_PUNCTUATION_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
}


@cache
def _t2s_table() -> dict[int, str]:
    text = resources.files("gsv_triton.text").joinpath("data/zh_t2s.txt").read_text("utf-8")
    return {ord(line[0]): line[1] for line in text.splitlines() if line and not line.startswith("#")}


def to_simplified(text: str) -> str:
    return text.translate(_t2s_table())


def _sign(minus: str, word: str = "负") -> str:
    return word if minus else ""


def _clock(m: re.Match[str], offset: int = 0, half_from: str | None = None) -> str:
    """``half_from``: the minute that decides 半; upstream's range rule tests the FIRST clock's minute for the
    second clock too (9:00-10:30 -> 九点至十点三十分, 9:30-10:15 -> 九点半至十点半)."""
    hour, minute, second = m.group(1 + offset), m.group(2 + offset), m.group(3 + offset)
    out = read_number(hour) + "点"
    if minute.lstrip("0"):
        half = int(half_from or minute) == 30
        # a leading zero is spoken: 8:05 -> 八点零五分
        out += "半" if half else ("零" if minute[0] == "0" else "") + read_number(minute.lstrip("0")) + "分"
    if second and second.lstrip("0"):
        out += ("零" if second[0] == "0" else "") + read_number(second.lstrip("0")) + "秒"
    return out


def _date(m: re.Match[str]) -> str:
    out = read_digits(m.group(1)) + "年"
    if m.group(3):
        out += read_cardinal(m.group(3)) + "月"
    if m.group(5):
        out += read_cardinal(m.group(5)) + m.group(9)
    return out


def _date_numeric(m: re.Match[str]) -> str:
    return f"{read_digits(m.group(1))}年{read_cardinal(m.group(3))}月{read_cardinal(m.group(4))}日"


def _signed(m: re.Match[str]) -> str:
    """Groups (sign, number, pure-decimal digits) of _NUMBER / _DECIMAL."""
    if m.group(3):
        return read_number("0." + m.group(3))
    return _sign(m.group(1)) + read_number(m.group(2))


def _phone(text: str, sep: str) -> str:
    parts = text.strip("+").split(sep)
    return "，".join(read_digits(p, yao=True) for p in parts if p)


def _quantified(m: re.Match[str]) -> str:
    number = read_number(m.group(1))
    more = "多" if m.group(2) == "+" else (m.group(2) or "")
    return ("两" if number == "二" else number) + more


def normalize_sentence(sentence: str) -> str:
    """All number, unit and symbol rules on one sentence piece (PaddleSpeech order)."""
    s = to_simplified(sentence).translate(_FULLWIDTH)
    s = _DATE.sub(_date, s)
    s = _DATE_NUMERIC.sub(_date_numeric, s)
    s = _TIME_RANGE.sub(lambda m: _clock(m) + "至" + _clock(m, 3, half_from=m.group(2)), s)
    s = _TIME.sub(_clock, s)
    s = _TO_RANGE.sub(lambda m: m.group(0).replace("~", "至"), s)
    # upstream compares its decimal group with 摄氏度, so the unit is always read 度
    s = _TEMPERATURE.sub(lambda m: _sign(m.group(1), "零下") + read_number(m.group(2)) + "度", s)
    for unit, reading in MEASURE_UNITS.items():
        if unit in s:
            s = s.replace(unit, reading)
    while _ARITHMETIC.search(s):
        s = _ARITHMETIC.sub(lambda m: m.group(1) + _OPERATOR_READINGS[m.group(2)] + m.group(3), s)
    s = _POWER.sub(lambda m: "的" + "".join(_SUPERSCRIPT_PLAIN[c] for c in m.group(0)) + "次方", s)
    s = _FRACTION.sub(lambda m: _sign(m.group(1)) + read_number(m.group(3)) + "分之" + read_number(m.group(2)), s)
    s = _PERCENT.sub(lambda m: _sign(m.group(1)) + "百分之" + read_number(m.group(2)), s)
    s = _MOBILE.sub(lambda m: _phone(m.group(0), " "), s)
    s = _LANDLINE.sub(lambda m: _phone(m.group(0), "-"), s)
    s = _SERVICE_NUMBER.sub(lambda m: _phone(m.group(0), "-"), s)
    s = _RANGE.sub(lambda m: _NUMBER.sub(_signed, m.group(1)) + "到" + _NUMBER.sub(_signed, m.group(2)), s)
    s = _NEGATIVE.sub(lambda m: "负" + read_number(m.group(1)), s)
    s = _VERSION.sub(lambda m: "".join("点" if c == "." else read_digits(c) for c in m.group(0)), s)
    s = _DECIMAL.sub(_signed, s)
    s = _QUANTIFIED.sub(_quantified, s)
    s = _LONG_DIGITS.sub(lambda m: read_digits(m.group(0), yao=True), s)
    s = _NUMBER.sub(_signed, s)
    s = "".join(_SYMBOL_READINGS.get(c, c) for c in s)
    return _DROP_AFTER.sub("", s)


def split_sentences_for_normalization(text: str) -> list[str]:
    text = _DROP_BEFORE.sub("", text.replace(" ", ""))
    text = _SENTENCE_END.sub(r"\1\n", text).strip()
    return [piece.strip() for piece in re.split(r"\n+", text)]


def map_punctuation(text: str, table: dict[str, str], keep: str = PUNCTUATION) -> str:
    """Map punctuation onto the symbol table, then delete everything that is not CJK or kept."""
    pattern = re.compile("|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)))
    text = pattern.sub(lambda m: table[m.group(0)], text)
    return re.sub(r"[^\u4e00-\u9fa5" + re.escape(keep) + r"]+", "", text)


def collapse_punctuation(text: str) -> str:
    """Runs of punctuation keep their first mark (upstream: avoids reference-audio leakage)."""
    marks = re.escape(PUNCTUATION)
    return re.sub(f"([{marks}])[{marks}]+", r"\1", text)


def normalize_zh(text: str) -> str:
    """The whole zh normalisation: the result holds only U+4E00..U+9FA5 and ``! ? … , . -``."""
    out = []
    for sentence in split_sentences_for_normalization(text):
        s = normalize_sentence(sentence).replace("嗯", "恩").replace("呣", "母")
        out.append(map_punctuation(s, ZH_PUNCTUATION_MAP))
    return collapse_punctuation("".join(out))
