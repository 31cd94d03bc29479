"""BERT input ids aligned to characters (spec 2.4).

Upstream tokenises the normalised Chinese text with the roberta WordPiece tokenizer and assumes,
without checking, one token per character. Normalised zh text only holds CJK characters and
``! ? … , . -``, each its own token in that vocabulary, so looking characters up one by one gives
the same ids and makes the assumption hold by construction: row i+1 of the BERT output belongs
to character i and is repeated word2ph[i] times.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gsv_triton.errors import UserError

CLS, SEP, UNK_TOKEN = "[CLS]", "[SEP]", "[UNK]"


def load_vocab(path: str | Path) -> dict[str, int]:
    """A BERT ``vocab.txt``: one token per line, the line number is the id."""
    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read BERT vocabulary {path}: {exc.strerror}") from exc
    vocab = {token: i for i, token in reversed(list(enumerate(lines)))}  # first occurrence wins
    missing = [t for t in (CLS, SEP, UNK_TOKEN) if t not in vocab]
    if missing:
        raise UserError(f"{path} is not a BERT vocabulary: it lacks {', '.join(missing)}")
    return vocab


def bert_token_ids(norm_text: str, vocab: Mapping[str, int]) -> list[int]:
    """[CLS], one id per character of ``norm_text`` ([UNK] if absent), [SEP]."""
    unk = vocab[UNK_TOKEN]
    # the roberta tokenizer lower-cases; characters of normalised zh text are unaffected
    return [vocab[CLS], *(vocab.get(c, vocab.get(c.lower(), unk)) for c in norm_text), vocab[SEP]]
