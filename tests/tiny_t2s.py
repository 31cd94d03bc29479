"""The tiny T2S GPT of the T2S tests (test_t2s, test_quantize, test_torch_t2s, test_torch_gpu): its config, the
demo-initialised decoder and random request rows.

Not a conftest: the modules that use it import what they use.
"""

from __future__ import annotations

import numpy as np
import torch

from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder, demo_init_

TINY = T2SConfig(embedding_dim=128, hidden_dim=128, head=4, n_layer=3)


def tiny_decoder() -> Text2SemanticDecoder:
    """A fresh tiny GPT in eval mode, demo-initialised with seed 0 (the same weights on every call)."""
    decoder = Text2SemanticDecoder(TINY).eval()
    demo_init_(decoder, torch.Generator().manual_seed(0))
    return decoder


def tiny_rows(seed: int, lengths: list[int], ty: int = 6) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(phone ids per row, BERT features [1024, n] per row, prompt codes [ty]) of random rows of ``lengths``."""
    rng = np.random.default_rng(seed)
    phones = [rng.integers(0, TINY.phoneme_vocab_size, n).astype(np.int64) for n in lengths]
    berts = [rng.standard_normal((1024, n)).astype(np.float32) for n in lengths]
    prompt = rng.integers(0, 1024, ty).astype(np.int64)
    return phones, berts, prompt
