"""Mandarin tone sandhi on jieba words (spec 4.4 step 2), the rules of PaddleSpeech's ToneSandhi.

Finals are pypinyin ``FINALS_TONE3`` strings ("ao3"; neutral tone is 5). Two passes:
``merge_words`` regroups the jieba segmentation so that 不/一, reduplications, runs of third tones
and 儿 sit inside one word; ``apply_sandhi`` then changes the tones of one word.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from importlib import resources

Word = tuple[str, str]  # (text, jieba part-of-speech tag)
FinalsOf = Callable[[str], list[str]]

_PARTICLES = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
_STRUCTURAL = "的地得"
_ASPECT = "了着过"
_ASPECT_TAGS = {"ul", "uz", "ug"}
_PLURAL_SUFFIX = "们子"
_LOCATIVE = "上下里"
_DIRECTION_VERB = "上下进出回过起开"
_GE_PREFIX = "几有两半多各整每做是"  # 个 after these (or a numeral) is a measure word: neutral tone
_PUNCT_AFTER_YI = "：，；。？！“”‘’':,;.?!"


@cache
def word_lists() -> dict[str, frozenset[str]]:
    raw = json.loads(resources.files("gsv_triton.text").joinpath("data/zh_word_lists.json").read_text("utf-8"))
    return {k: frozenset(v) for k, v in raw.items() if not k.startswith("_")}


def _with_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: Sequence[str]) -> bool:
    return all(f[-1:] == "3" for f in finals)


@lru_cache(maxsize=50_000)
def _split_compound(word: str) -> tuple[str, str]:
    import jieba

    pieces = sorted(jieba.cut_for_search(word), key=len)
    first = pieces[0]
    if word.find(first) == 0:
        return first, word[len(first) :]
    # upstream assumes the shortest piece otherwise sits at the end
    return word[: -len(first)], first


def split_compound(word: str) -> list[str]:
    """Two parts: the shortest jieba search-mode piece and the rest (upstream's ``_split_word``)."""
    return list(_split_compound(word))


def _neutral_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    lists = word_lists()
    neutral, not_neutral = lists["neutral_tone_words"], lists["not_neutral_tone_words"]
    # reduplicated nouns/verbs/adjectives: 奶奶, 试试
    for j in range(1, len(word)):
        if word[j] == word[j - 1] and pos[:1] in {"n", "v", "a"} and word not in not_neutral:
            finals[j] = _with_tone(finals[j], "5")
    ge = word.find("个")
    if word[-1:] and word[-1] in _PARTICLES:
        finals[-1] = _with_tone(finals[-1], "5")
    elif word[-1:] and word[-1] in _STRUCTURAL:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) == 1 and word in _ASPECT and pos in _ASPECT_TAGS:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in _PLURAL_SUFFIX and pos in {"r", "n"} and word not in not_neutral:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in _LOCATIVE and pos in {"s", "l", "f"}:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "来去" and word[-2] in _DIRECTION_VERB:
        finals[-1] = _with_tone(finals[-1], "5")
    elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in _GE_PREFIX)) or word == "个":
        finals[ge] = _with_tone(finals[ge], "5")
    elif word in neutral or word[-2:] in neutral:
        finals[-1] = _with_tone(finals[-1], "5")

    parts = split_compound(word)
    head = len(parts[0])
    groups = [finals[:head], finals[head:]]
    for part, group in zip(parts, groups, strict=True):
        if group and (part in neutral or part[-2:] in neutral):
            group[-1] = _with_tone(group[-1], "5")
    return groups[0] + groups[1]


def _bu_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":  # 看不懂: the middle 不 is neutral
        finals[1] = _with_tone(finals[1], "5")
        return finals
    for i, char in enumerate(word[:-1]):
        if char == "不" and finals[i + 1][-1:] == "4":  # 不怕: bu2 before a fourth tone
            finals[i] = _with_tone(finals[i], "2")
    return finals


def _yi_sandhi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(c.isnumeric() for c in word if c != "一"):
        return finals  # counting: 一零零, 二一零
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        finals[1] = _with_tone(finals[1], "5")  # 看一看
    elif word.startswith("第一"):
        finals[1] = _with_tone(finals[1], "1")  # ordinal keeps yi1
    else:
        for i, char in enumerate(word[:-1]):
            if char != "一":
                continue
            if finals[i + 1][-1:] == "4":
                finals[i] = _with_tone(finals[i], "2")  # 一段
            elif word[i + 1] not in _PUNCT_AFTER_YI:
                finals[i] = _with_tone(finals[i], "4")  # 一天
    return finals


def _third_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_third(finals):
        finals[0] = _with_tone(finals[0], "2")
    elif len(word) == 3:
        parts = split_compound(word)
        head = len(parts[0])
        if _all_third(finals):
            if head == 2:  # 蒙古/包
                finals[0] = _with_tone(finals[0], "2")
                finals[1] = _with_tone(finals[1], "2")
            elif head == 1:  # 纸/老虎
                finals[1] = _with_tone(finals[1], "2")
        else:
            groups = [finals[:head], finals[head:]]
            for i, group in enumerate(groups):
                if _all_third(group) and len(group) == 2:  # 所有/人
                    group[0] = _with_tone(group[0], "2")
                elif i == 1 and not _all_third(group) and group[0][-1:] == "3" and groups[0][-1][-1:] == "3":
                    groups[0][-1] = _with_tone(groups[0][-1], "2")  # 好/喜欢
            finals = groups[0] + groups[1]
    elif len(word) == 4:  # idioms: two pairs
        for start in (0, 2):
            if _all_third(finals[start : start + 2]):
                finals[start] = _with_tone(finals[start], "2")
    return finals


def apply_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    """Tone changes of one word, in upstream's order: 不, 一, neutral tone, third tone."""
    finals = _bu_sandhi(word, list(finals))
    finals = _yi_sandhi(word, finals)
    finals = _neutral_sandhi(word, pos, finals)
    return _third_sandhi(word, finals)


# ---- regrouping of the jieba segmentation -------------------------------------------------


def _merge_bu(words: list[Word]) -> list[Word]:
    out: list[Word] = []
    pending = False
    for text, pos in words:
        if pending:
            text = "不" + text
        pending = text == "不"
        if not pending:
            out.append((text, pos))
    if pending:
        out.append(("不", "d"))
    return out


def _merge_yi(words: list[Word]) -> list[Word]:
    # 听 一 听 (same verb on both sides) -> 听一听
    out: list[list[str]] = []
    i = 0
    while i < len(words):
        text, pos = words[i]
        if i >= 1 and text == "一" and i + 1 < len(words):
            last = out[-1] if out else list(words[i - 1])
            nxt = words[i + 1]
            if last[0] == nxt[0] and last[1] == "v" and nxt[1] == "v":
                out[-1] = [last[0] + "一" + nxt[0], last[1]]
                i += 2
                continue
        out.append([text, pos])
        i += 1
    # a lone 一 joins the word after it
    merged: list[list[str]] = []
    for text, pos in out:
        if merged and merged[-1][0] == "一":
            merged[-1][0] += text
        else:
            merged.append([text, pos])
    return [(t, p) for t, p in merged]


def _merge_reduplication(words: list[Word]) -> list[Word]:
    out: list[list[str]] = []
    for text, pos in words:
        if out and text == out[-1][0]:
            out[-1][0] += text
        else:
            out.append([text, pos])
    return [(t, p) for t, p in out]


def _merge_third_tones(words: list[Word], finals_of: FinalsOf, whole_words: bool) -> list[Word]:
    """Join neighbours of at most 3 characters in total whose tones meet as third tones: both
    words entirely third tone (``whole_words``), or the last syllable of one and the first of the
    next. A reduplication is left alone (it needs the neutral-tone rule)."""
    finals = [finals_of(text) for text, _ in words]
    out: list[list[str]] = []
    merged_prev = False
    for i, (text, pos) in enumerate(words):
        if i >= 1 and not merged_prev:
            prev_text = words[i - 1][0]
            if whole_words:
                meet = _all_third(finals[i - 1]) and _all_third(finals[i])
            else:
                meet = finals[i - 1][-1][-1:] == "3" and finals[i][0][-1:] == "3"
            is_redup = len(prev_text) == 2 and prev_text[0] == prev_text[1]
            if meet and not is_redup and len(prev_text) + len(text) <= 3:
                out[-1][0] += text
                merged_prev = True
                continue
        out.append([text, pos])
        merged_prev = False
    return [(t, p) for t, p in out]


def _merge_er(words: list[Word]) -> list[Word]:
    out: list[list[str]] = []
    for i, (text, pos) in enumerate(words):
        if i >= 1 and text == "儿" and words[i - 1][0] != "#":
            out[-1][0] += text
        else:
            out.append([text, pos])
    return [(t, p) for t, p in out]


def merge_words(words: list[Word], finals_of: FinalsOf) -> list[Word]:
    """Upstream's ``pre_merge_for_modify``; ``finals_of(word)`` gives the word's FINALS_TONE3."""
    words = _merge_bu(words)
    words = _merge_yi(words)
    words = _merge_reduplication(words)
    words = _merge_third_tones(words, finals_of, whole_words=True)
    words = _merge_third_tones(words, finals_of, whole_words=False)
    return _merge_er(words)
