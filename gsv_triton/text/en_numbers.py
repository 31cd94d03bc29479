"""English number words with the exact output of ``inflect`` as upstream calls it.

Written out here because importing inflect 7 takes seconds (typeguard instruments it) and every
call pays run-time type checks; ``tests/test_text_en.py`` compares the two over many numbers.
Conventions copied from inflect: hyphenated tens ("twenty-one"), ", " between thousand groups,
and the final group joined by " and " (or a space when ``andword`` is "") if it is below 100.
"""

from __future__ import annotations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = ["", "", *"twenty thirty forty fifty sixty seventy eighty ninety".split()]
_MAGNITUDES = ["", *"thousand million billion trillion quadrillion quintillion sextillion septillion "
               "octillion nonillion decillion".split()]
_IRREGULAR_ORDINALS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("-" + _ONES[ones] if ones else "")


def _below_thousand(n: int, andword: str) -> str:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _below_hundred(rest)
    out = _ONES[hundreds] + " hundred"
    if rest:
        out += (f" {andword} " if andword else " ") + _below_hundred(rest)
    return out


def cardinal(n: int, andword: str = "and") -> str:
    """``inflect.engine().number_to_words(n, andword=andword)`` for n >= 0."""
    if n == 0:
        return "zero"
    groups = []
    while n:
        n, g = divmod(n, 1000)
        groups.append(g)
    if len(groups) > len(_MAGNITUDES):
        raise ValueError("number too large to read")
    parts = [
        (i, _below_thousand(g, andword) + (" " + _MAGNITUDES[i] if i else ""))
        for i, g in reversed(list(enumerate(groups)))
        if g
    ]
    out = parts[0][1]
    for i, text in parts[1:]:
        final_small = i == 0 and groups[0] < 100
        out += ((f" {andword} " if andword else " ") if final_small else ", ") + text
    return out


def ordinal_words(words: str) -> str:
    """``inflect.engine().ordinal(words)``: "twenty-two" -> "twenty-second"."""
    head, sep, last = words.rpartition(" ")
    pre, dash, tail = last.rpartition("-")
    if tail in _IRREGULAR_ORDINALS:
        tail = _IRREGULAR_ORDINALS[tail]
    elif tail.endswith("y"):
        tail = tail[:-1] + "ieth"
    else:
        tail += "th"
    return head + sep + pre + dash + tail


def ordinal_suffix(n: int) -> str:
    """``inflect.engine().ordinal("21")`` -> "21st"."""
    if 11 <= n % 100 <= 13:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def year_style(n: int) -> str:
    """A four-digit number read in pairs ("nineteen oh five"), as inflect's group=2 with zero="oh"
    once upstream has replaced its ", " by spaces; for 1000 < n < 10000 and n % 100 != 0."""
    high, low = divmod(n, 100)
    return _below_hundred(high) + " " + (("oh " + _ONES[low]) if low < 10 else _below_hundred(low))
