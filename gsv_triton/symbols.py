"""GPT-SoVITS phoneme symbol tables (v1: 322 symbols, v2: 732; v1 ids are a prefix of v2)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

SYMBOL_VERSIONS = ("v1", "v2")
UNK = "UNK"


@cache
def symbols(version: str = "v2") -> tuple[str, ...]:
    """The ordered symbol list; the index of a symbol is its phoneme id."""
    if version not in SYMBOL_VERSIONS:
        raise ValueError(f"unknown symbol version {version!r}; expected one of {SYMBOL_VERSIONS}")
    text = resources.files("gsv_triton").joinpath(f"data/symbols_{version}.json").read_text("utf-8")
    return tuple(json.loads(text))


@cache
def symbol_to_id(version: str = "v2") -> dict[str, int]:
    return {s: i for i, s in enumerate(symbols(version))}


def phones_to_ids(phones: list[str], version: str = "v2") -> list[int]:
    """Map phones to ids; a phone missing from the table becomes UNK, as upstream does."""
    table = symbol_to_id(version)
    unk = table[UNK]
    return [table.get(p, unk) for p in phones]
