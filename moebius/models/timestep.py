"""Timestep conditioning of the U-Net (DDPM/LDM, paper Sec. 3.1): sinusoid -> 2-layer MLP.

Numerically the same as diffusers' ``Timesteps(C, flip_sin_to_cos=True, downscale_freq_shift=0)``
followed by ``TimestepEmbedding(C, 4C)`` (keys ``linear_1``, ``linear_2``), written here so that
importing the models does not import diffusers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) [cos | sin] features with frequencies max_period^(-i / (dim/2))."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=t.device)  # (half,)
    freqs = torch.exp(-math.log(max_period) * steps / half)  # (half,)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # cos first: flip_sin_to_cos=True
    return F.pad(emb, (0, dim % 2))  # (B, dim)


class TimestepEmbedding(nn.Module):
    """Linear(C -> 4C) -> SiLU -> Linear(4C -> 4C)."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, embed_dim)
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))  # (B, embed_dim)
