"""The single-layer residual VQ of SoVITS (spec 2.2.1-2.2.2): 1024 codes of the 768-dim projected SSL.

Buffers live at ``vq.layers.0._codebook.{inited,cluster_size,embed,embed_avg}`` as upstream; only
``embed`` is used at inference (the others are training statistics kept for round-tripping files).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SSL_DIM = 768
CODEBOOK_SIZE = 1024


class _Codebook(nn.Module):
    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))


class _VectorQuantization(nn.Module):
    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self._codebook = _Codebook(dim, size)


class _ResidualVQ(nn.Module):
    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_VectorQuantization(dim, size)])  # n_q = 1


class ResidualVectorQuantizer(nn.Module):
    def __init__(self, dim: int = SSL_DIM, size: int = CODEBOOK_SIZE) -> None:
        super().__init__()
        self.vq = _ResidualVQ(dim, size)

    @property
    def embed(self) -> torch.Tensor:
        return self.vq.layers[0]._codebook.embed

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D, T] -> codes [B, T] int64: the row with the largest -||x||^2 + 2 x.e - ||e||^2."""
        flat = x.transpose(1, 2)  # [B, T, D]
        e = self.embed
        score = -(flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(-1))
        return score.argmax(dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] -> [B, D, T]."""
        return F.embedding(codes, self.embed).transpose(1, 2)
