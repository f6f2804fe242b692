"""Tiny stand-ins with the RemovalModel / AutoencoderKL interfaces, for sampler tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn


class TinyRemoval(nn.Module):
    """forward(noisy_latents (B,9,h,w), timesteps (B,), input_ids (B,10)) → .sample (B,4,h,w); per-sample."""

    def __init__(self, latent_size: int = 8) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.embedding_layer = nn.Embedding(20, 4)
        self.conv = nn.Conv2d(9, 4, 3, padding=1)
        self.calls: list[tuple[int, torch.Tensor]] = []

    def forward(self, noisy_latents, timesteps, input_ids):
        self.calls.append((noisy_latents.shape[0], input_ids.detach().clone()))
        task = self.embedding_layer(input_ids).mean(1)[:, :, None, None]  # (B,4,1,1)
        t = timesteps.float()[:, None, None, None] / 1000.0
        return SimpleNamespace(sample=0.1 * self.conv(noisy_latents) + task * t, block_outputs=[])


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=32, scaling_factor=0.5,
    ).eval()


@pytest.fixture
def model() -> TinyRemoval:
    torch.manual_seed(1)
    return TinyRemoval(latent_size=8).eval()


@pytest.fixture
def vae():
    return tiny_vae()


@pytest.fixture
def batch():
    """Four 32-px images in [-1,1] with distinct box holes."""
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    masks = torch.zeros(4, 1, 32, 32)
    for i in range(4):
        masks[i, :, 4 + 2 * i : 20 + 2 * i, 6:22] = 1.0
    return images, masks
