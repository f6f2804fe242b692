"""The latent space every phase shares: VAE factor, encode / decode, latent mask, the 9-channel input.

Source: the official ``RemovalModel`` pipeline (hustvl/Moebius, after diffusers' inpainting pipeline;
docs/model_facts.md, "Latents and the denoiser input"): the denoiser sees cat[z_t (4), mask (1,
1 = hole, binarised and nearest-resized to the latent grid), z_masked (4)], where z_masked encodes
image·(1 − mask) with the image in [-1, 1], and latents are ``(z − shift_factor) · scaling_factor``
of a posterior sample, both read from the VAE's own config (diffusers' convention; SDXL's VAE has
``scaling_factor`` 0.13025 and no shift). Training (``moebius.train.batches``) and the sampler
(``moebius.diffusion.sampler``) both call these functions, so what a model is trained on is what it
is sampled with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F


def vae_factor(vae: torch.nn.Module | Mapping[str, Any]) -> int:
    """Pixels per latent cell along a side, from a VAE or its config: 2^(levels − 1) (8 SDXL, 4 smoke)."""
    config = vae.config if isinstance(vae, torch.nn.Module) else vae
    return 2 ** (len(config["block_out_channels"]) - 1)


def _scale_and_shift(vae: torch.nn.Module) -> tuple[float, float]:
    shift = vae.config.get("shift_factor", None)  # None (SDXL) means no shift
    return float(vae.config["scaling_factor"]), float(shift or 0.0)


@torch.no_grad()  # the VAE is frozen wherever latents are taken (VAE training has its own forward)
def encode(
    vae: torch.nn.Module, pixels: torch.Tensor, noise: torch.Tensor | torch.Generator | None = None
) -> torch.Tensor:
    """Scaled latents of ``pixels`` (B,3,H,W) in [-1, 1]: (posterior mean + std·ε − shift) · scale.

    ``noise`` is ε itself (the sampler's per-image draws), a CPU generator to draw ε from (training),
    or None for the posterior mean. The official code calls ``latent_dist.sample()``; drawing ε
    explicitly makes the sample a function of the caller's seed.
    """
    dist = vae.encode(pixels).latent_dist
    z = dist.mean
    if noise is not None:
        if isinstance(noise, torch.Generator):
            noise = torch.randn(dist.mean.shape, generator=noise)
        z = dist.mean + dist.std * noise.to(dist.mean)
    scale, shift = _scale_and_shift(vae)
    return (z - shift) * scale


def decode(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] of scaled latents (the inverse of ``encode``'s scale and shift)."""
    scale, shift = _scale_and_shift(vae)
    return vae.decode(latents / scale + shift).sample.clamp(-1.0, 1.0)


def latent_mask(masks: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(B,1,H,W) pixel mask, 1 = hole → (B,1,h,w): binarised at 0.5, then nearest-resized (official)."""
    return F.interpolate((masks > 0.5).to(masks.dtype), size=size, mode="nearest")


def denoiser_input(z_t: torch.Tensor, mask_latent: torch.Tensor, z_masked: torch.Tensor) -> torch.Tensor:
    """cat[z_t (4), mask (1), z_masked (4)] → (B, 9, h, w), in z_t's dtype."""
    return torch.cat([z_t, mask_latent.to(z_t.dtype), z_masked.to(z_t.dtype)], dim=1)
