"""Pronunciations for words the CMU dictionary lacks: the small GRU encoder-decoder that the
``g2p_en`` package ships (``checkpoint20.npz``, 3 MB of numpy weights), run here with numpy.

This is the model upstream uses as its last resort, so out-of-vocabulary words get the same
phones. The weights are located with ``importlib.util.find_spec`` and never imported through
``g2p_en`` itself, because importing it calls ``nltk.download`` (network). Without the package
the fallback spells the word letter by letter from the CMU dictionary.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

_GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
_PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + (
    "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 ER0 ER1 "
    "ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 "
    "UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH"
).split()
_START, _END = 2, 3
_MAX_PHONES = 20  # the decoder's step limit in g2p_en


def weights_path() -> Path | None:
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "checkpoint20.npz"
    return path if path.is_file() else None


@cache
def _weights() -> dict[str, np.ndarray] | None:
    path = weights_path()
    if path is None:
        return None
    with np.load(path) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def neural_available() -> bool:
    return _weights() is not None


def _gru_step(x: np.ndarray, h: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """One PyTorch-layout GRU cell step (gates r, z, n stacked in that order)."""
    gi = x @ w[prefix + "_w_ih"].T + w[prefix + "_b_ih"]
    gh = h @ w[prefix + "_w_hh"].T + w[prefix + "_b_hh"]
    size = h.shape[-1]
    r = 1.0 / (1.0 + np.exp(-(gi[:, :size] + gh[:, :size])))
    z = 1.0 / (1.0 + np.exp(-(gi[:, size : 2 * size] + gh[:, size : 2 * size])))
    n = np.tanh(gi[:, 2 * size :] + r * gh[:, 2 * size :])
    return (1.0 - z) * n + z * h


def predict(word: str) -> list[str] | None:
    """Greedy decode of ``word`` (lower case); None when the weights are not installed."""
    w = _weights()
    if w is None:
        return None
    index = {g: i for i, g in enumerate(_GRAPHEMES)}
    ids = [index.get(c, 1) for c in word] + [index["</s>"]]
    h = np.zeros((1, w["enc_w_hh"].shape[1]), np.float32)
    for i in ids:
        h = _gru_step(w["enc_emb"][i][None, :], h, w, "enc")
    out: list[str] = []
    token = _START
    for _ in range(_MAX_PHONES):
        h = _gru_step(w["dec_emb"][token][None, :], h, w, "dec")
        token = int(np.argmax(h @ w["fc_w"].T + w["fc_b"]))
        if token == _END:
            break
        out.append(_PHONEMES[token])
    return out
