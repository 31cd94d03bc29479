"""English normalisation, number words and the out-of-vocabulary model (spec 4.5)."""

from __future__ import annotations

import random

import pytest

from gsv_triton.text import en_oov
from gsv_triton.text.en_g2p import tokenize, word_phones
from gsv_triton.text.en_normalize import normalize_en
from gsv_triton.text.en_numbers import cardinal, ordinal_suffix, ordinal_words, year_style

NORMALIZE = [
    ("I have 3 apples.", "I have three apples."),
    ("It costs $5.50.", "It costs five dollars and fifty cents."),
    ("It costs $1.", "It costs one dollar."),
    ("about £3.05", "about three pounds and five pence"),
    ("a 5$ bill", "a five dollars bill"),
    ("In 1999, 2000, 2005 and 2024.", "In nineteen ninety-nine, two thousand, two thousand five and twenty twenty-four."),
    ("the year 1900", "the year nineteen hundred"),
    ("12,345 people", "twelve thousand, three hundred forty-five people"),
    ("the 21st and 2nd", "the twenty-first and second"),
    ("1. first item", "first, first item"),  # upstream: "N. " is a list ordinal
    ("3.14", "three point one four"),
    ("1/2 and 3/4", "one half and three fourths"),
    ("at 10:30 and 14:00", "at ten thirty a.m. and two o'clock p.m."),
    ("1km, 5km and 2.5h", "one kilometer, five kilometers and two point five hours"),
    ("50% off", "fifty percent off"),
    ("2 + 3 = 5", "two plus three Equals five"),
    # upstream's RE_INTEGER consumes the spaces before the sign (the G2P's word split reads "isnegative")
    ("it is -5 outside", "it isnegative five outside"),
    ("i.e. this, e.g. that", "that is this, for example that"),
    ("OpenAI and iPhone", "Open A I and i Phone"),
    ("café naïve", "cafe naive"),
    ("Wait... what?!", "Wait. what?"),
    # upstream's rep_map is re.escape'd, so ; : " ’ are not mapped but deleted (english.text_normalize)
    ("a; b: c", "a b c"),
    ("don’t", "dont"),
    ('he said "hi"', "he said hi"),
    ("ＡＢＣ ok", " ok"),  # full-width letters are deleted too (no full-width to ASCII in upstream's English)
    ("你好 world。", " world."),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize_en(raw) == expected


def test_number_words() -> None:
    assert cardinal(0) == "zero"
    assert cardinal(115, andword="") == "one hundred fifteen"
    assert cardinal(1001, andword="") == "one thousand one"
    assert cardinal(1100, andword="") == "one thousand, one hundred"
    assert cardinal(1000050, andword="") == "one million fifty"
    assert cardinal(101) == "one hundred and one"
    assert ordinal_words("twenty-two") == "twenty-second"
    assert ordinal_words("forty") == "fortieth"
    assert ordinal_suffix(12) == "12th" and ordinal_suffix(22) == "22nd"
    assert year_style(1905) == "nineteen oh five"


@pytest.mark.slow
def test_number_words_equal_inflect() -> None:
    """Our speller against inflect (slow: importing inflect 7 takes seconds)."""
    import inflect

    eng = inflect.engine()
    rng = random.Random(0)
    numbers = list(range(0, 1200)) + [rng.randrange(10**k) for k in range(2, 16) for _ in range(40)]
    for n in numbers:
        assert cardinal(n, andword="") == eng.number_to_words(n, andword="")
        assert cardinal(n) == eng.number_to_words(n)
        assert ordinal_words(cardinal(n)) == eng.ordinal(eng.number_to_words(n))
        assert ordinal_suffix(n) == eng.ordinal(str(n))


def test_tokenize_like_tweet_tokenizer() -> None:
    assert tokenize("don't stop, GAN-based model's edge.") == [
        "don't", "stop", ",", "GAN-based", "model's", "edge", ".",
    ]
    # TweetTokenizer's naked-domain rule: a clock range glues "a.m." to the next word
    assert tokenize("nine o'clock a.m.ten thirty a.m.") == ["nine", "o'clock", "a.m.ten", "thirty", "a", ".", "m", "."]


def test_letters_and_specials() -> None:
    assert word_phones("A") == ["EY1"]  # capital A alone is the letter
    assert word_phones("a") == ["AH0"]  # the article
    assert word_phones("JSON") == ["JH", "EY1", "S", "AH0", "N"]  # upstream hot entry
    assert word_phones(",") == [","]


# Reference outputs of g2p_en 2.1.0's G2p.predict (upstream's last resort for OOV words).
OOV_REFERENCE = {
    "zxqv": ["Z", "K", "AA1", "V", "K", "S"],
    "blorptastic": ["B", "L", "AO2", "R", "P", "T", "AE1", "S", "T", "IH0", "K"],
    "activationist": ["AE2", "K", "T", "IH0", "V", "EY1", "SH", "AH0", "N", "IH0", "S", "T"],
    "kubernetes": ["K", "AH0", "B", "ER1", "N", "AH0", "T", "S"],
    "huggingface": ["HH", "AH1", "G", "IH0", "NG", "F", "EY2", "S"],
    "xyzzy": ["Z", "IH1", "G", "Z", "IY0"],
    "o'neill": ["OW0", "N", "IY1", "L"],
}


@pytest.mark.skipif(not en_oov.neural_available(), reason="g2p_en (its bundled weights) is not installed")
@pytest.mark.parametrize(("word", "phones"), sorted(OOV_REFERENCE.items()))
def test_oov_model_matches_g2p_en(word: str, phones: list[str]) -> None:
    assert en_oov.predict(word) == phones


def test_tokenize_equals_tweet_tokenizer_on_normalised_text() -> None:
    """Upstream tokenises with NLTK's TweetTokenizer; on what normalisation leaves (letters ' . , ? ! - and
    spaces) our regular expression must cut identically, including its URL, ellipsis and repeat rules."""
    tokenizer = pytest.importorskip("nltk.tokenize").TweetTokenizer()
    rng = random.Random(0)
    pieces = [*"abXY'.,?!- ", "ten", "o", "s", "a.m.", "''''", ". ."]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 20)))
        assert tokenize(text) == tokenizer.tokenize(text), text
