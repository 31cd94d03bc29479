"""English text normalisation (spec 4.5): numbers, ordinals, years, times, currency, units and
abbreviations are spelled out (inflect's wording, see ``en_numbers``); the result keeps only
``A-Za-z'.,?!-`` and spaces.

Order and readings follow upstream's ``english.text_normalize`` and ``en_normalization/expend.py``,
quirks included (quotes and colons are deleted, "negative" is glued onto the word before it).
"""

from __future__ import annotations

import re
import unicodedata

from gsv_triton.text.en_numbers import cardinal, ordinal_suffix, ordinal_words, year_style

_PUNCT = "!?…,.-"
# Upstream's table (english.py rep_map) is joined with re.escape, so its two character classes ("[;:：，；]"
# and '["’]') match only themselves: ; : ： ， ； " ’ are NOT mapped and ``expand`` deletes them ("don’t" ->
# "dont", '"hi"' -> "hi"). Only the three full-width sentence marks are mapped.
_PRE_MAP = str.maketrans({"。": ".", "！": "!", "？": "?"})

# unit -> (singular, plural)
UNITS: dict[str, tuple[str, str]] = {
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"),
    "L": ("liter", "liters"),
    "tbsp": ("tablespoon", "tablespoons"),
    "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
}
_CURRENCIES = {
    "$": (("dollar", "dollars"), ("cent", "cents")),
    "£": (("pound", "pounds"), ("penny", "pence")),
}

_LIST_ORDINAL = re.compile(r"\b([0-9]+)\. ")  # "1. item" -> "1st, item"
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"-?\d+(?:\.\d+)?[{_SUP}]*|\.\d+[{_SUP}]*|[A-Za-z][{_SUP}]*"
_ARITHMETIC = re.compile(rf"({_OPERAND})\s+([+\-×÷=])\s+({_OPERAND})")
_OPERATORS = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}
# the spaces before the sign are consumed: "is -5" -> "isnegative 5" (the G2P's word split reads it back)
_NEGATIVE = re.compile(r"(?:^|\s+)-(\d+)")
_COMMA_NUMBER = re.compile(r"([0-9][0-9,]+[0-9])")
_TIME = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_MEASURE = re.compile(r"\b([0-9]+(\.[0-9]+)?(m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F))\b")
_MONEY_BEFORE = re.compile(r"([$£])([0-9.,]*[0-9]+)")
_MONEY_AFTER = re.compile(r"([0-9.,]*[0-9]+)([$£])")
_DECIMAL = re.compile(r"([0-9]+)\.\s*([0-9]+)")
_FRACTION = re.compile(r"([0-9]+)/([0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER = re.compile(r"[0-9]+")
_CAPITAL_INSIDE = re.compile(r"(?<!^)(?<!\s)([A-Z])")
_CONSECUTIVE_PUNCT = re.compile(rf"([{re.escape(_PUNCT)}\s])([{re.escape(_PUNCT)}])+")


def number_words(n: int) -> str:
    """Cardinal reading; 1001..2999 read like years ("nineteen ninety-nine", "two thousand five")."""
    if 1000 < n < 3000:
        if n == 2000:
            return "two thousand"
        if 2000 < n < 2010:
            return "two thousand " + cardinal(n % 100)
        if n % 100 == 0:
            return cardinal(n // 100) + " hundred"
        return year_style(n)
    return cardinal(n, andword="")


def _time(m: re.Match[str]) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    hour_word = cardinal(hours)
    if minutes == 0:
        return f"{hour_word} o'clock {period}"
    return f"{hour_word} {cardinal(minutes)} {period}"


def _measure(m: re.Match[str]) -> str:
    unit = m.group(3)
    number = m.group(1)[: -len(unit)]
    singular = m.group(2) is None and int(number) == 1
    return number + " " + UNITS[unit][0 if singular else 1]


def _money(amount: str, symbol: str) -> str:
    (major1, major_n), (minor1, minor_n) = _CURRENCIES[symbol]
    parts = amount.split(".")
    if len(parts) > 2:
        return amount + " " + major_n
    major = int(parts[0].replace(",", "")) if parts[0].replace(",", "") else 0
    minor = int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
    major_text = f"{major} {major1 if major == 1 else major_n}"
    minor_text = f"{minor} {minor1 if minor == 1 else minor_n}"
    if major and minor:
        return f"{major_text} and {minor_text}"
    if major:
        return major_text
    if minor:
        return minor_text
    return "zero " + major_n


def _decimal(m: re.Match[str]) -> str:
    return m.group(1) + " point " + " ".join(m.group(2))


def _fraction(m: re.Match[str]) -> str:
    numerator, denominator = int(m.group(1)), int(m.group(2))
    top = cardinal(numerator)
    if denominator == 1:
        return top
    if denominator == 2:
        return f"{top} {'half' if numerator == 1 else 'halves'}"
    bottom = ordinal_words(cardinal(denominator))
    return f"{top} {bottom}{'s' if numerator > 1 else ''}"


def expand(text: str) -> str:
    """Upstream ``expend.normalize``: spell out numbers and symbols, drop other characters."""
    text = _LIST_ORDINAL.sub(lambda m: ordinal_suffix(int(m.group(1))) + ", ", text)
    while _ARITHMETIC.search(text):
        text = _ARITHMETIC.sub(lambda m: m.group(1) + _OPERATORS[m.group(2)] + m.group(3), text)
    text = _NEGATIVE.sub(lambda m: "negative " + m.group(1), text)
    text = _COMMA_NUMBER.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME.sub(_time, text)
    text = _MEASURE.sub(_measure, text)
    text = _MONEY_BEFORE.sub(lambda m: _money(m.group(2), m.group(1)), text)
    text = _MONEY_AFTER.sub(lambda m: _money(m.group(1), m.group(2)), text)
    text = _DECIMAL.sub(_decimal, text)
    text = _FRACTION.sub(_fraction, text)
    text = _ORDINAL.sub(lambda m: ordinal_words(cardinal(int(m.group(0)[:-2]))), text)
    text = _NUMBER.sub(lambda m: number_words(int(m.group(0))), text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = re.sub(r"[^ A-Za-z'.,?!\-]", "", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    # capitals inside a word start a new token: "OpenAI" -> "Open A I", "GPT" -> "G P T"
    return _CAPITAL_INSIDE.sub(r" \1", text)


def normalize_en(text: str) -> str:
    """The whole en normalisation of spec 4.5 (upstream ``english.text_normalize``)."""
    text = expand(text.translate(_PRE_MAP))
    return _CONSECUTIVE_PUNCT.sub(r"\1", text)
