"""Chinese readings of numbers (the rules of PaddleSpeech's zh_normalization, which upstream uses).

Cardinals use 十百千万亿 with 零 for skipped places; "一十…" at the start is read "十…".
Decimal digits are read one by one; trailing zeros of a decimal collapse to a single 零.
"""

from __future__ import annotations

DIGIT_READINGS = "零一二三四五六七八九"
# place value (number of trailing digits) -> unit character, largest first
_UNITS: tuple[tuple[int, str], ...] = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))


def read_digits(digits: str, yao: bool = False) -> str:
    """Digit by digit ("2024" -> 二零二四); ``yao`` reads 1 as 幺 (phone and serial numbers)."""
    out = "".join(DIGIT_READINGS[int(d)] for d in digits)
    return out.replace("一", "幺") if yao else out


def _place_readings(digits: str, use_zero: bool = True) -> list[str]:
    stripped = digits.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        # a skipped place inside a larger number reads 零 (一千零五)
        if use_zero and len(stripped) < len(digits):
            return [DIGIT_READINGS[0], DIGIT_READINGS[int(stripped)]]
        return [DIGIT_READINGS[int(stripped)]]
    power, unit = next((p, u) for p, u in _UNITS if p < len(stripped))
    return _place_readings(digits[:-power]) + [unit] + _place_readings(digits[-power:])


def read_cardinal(digits: str) -> str:
    """An integer given as a digit string ("1050" -> 一千零五十, "10" -> 十, "0" -> 零)."""
    if not digits:
        return ""
    stripped = digits.lstrip("0")
    if not stripped:
        return DIGIT_READINGS[0]
    parts = _place_readings(stripped)
    if len(parts) >= 2 and parts[0] == "一" and parts[1] == "十":
        parts = parts[1:]
    return "".join(parts)


def read_number(value: str) -> str:
    """An unsigned integer or decimal string ("3.14" -> 三点一四, ".5" -> 零点五)."""
    integer, _, decimal = value.partition(".")
    result = read_cardinal(integer)
    decimal = decimal.rstrip("0") + "0" if decimal.endswith("0") else decimal
    if decimal:
        result = (result or DIGIT_READINGS[0]) + "点" + read_digits(decimal)
    return result
