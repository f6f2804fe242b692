"""Putting the known pixels back: hard compositing for scoring, optional blurred paste-back.

docs/mask_protocols.md ("Evaluation conventions"): MAT, LaMa and MI-GAN all blend the output with the known region,
``x·known + y·hole``, before FID / LPIPS. The official Moebius pipeline can additionally paste the
input back through a (blurred) mask after decoding, which hides the VAE's reconstruction error
in the known region; ``paste_back`` is that step (pixel space, images in [-1, 1], mask 1 = hole).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from moebius.errors import SamplerError


def _check(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> None:
    if output.shape != image.shape or output.ndim != 4:
        raise SamplerError(f"output {tuple(output.shape)} and image {tuple(image.shape)} must match (B,C,H,W)")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]:
        raise SamplerError(f"mask must be (B,1,H,W) matching the image, got {tuple(mask.shape)}")


def composite(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``output·hole + image·known`` with a binary mask (1 = hole, binarised at 0.5)."""
    _check(output, image, mask)
    hole = (mask > 0.5).to(output.dtype)
    return output * hole + image * (1.0 - hole)


def gaussian_blur(mask: torch.Tensor, radius: float) -> torch.Tensor:
    """Separable Gaussian blur of a (B,1,H,W) mask, σ = ``radius`` px, kernel ±3σ, edges replicated."""
    if radius <= 0:
        return mask
    half = max(1, math.ceil(3 * radius))
    x = torch.arange(-half, half + 1, dtype=mask.dtype, device=mask.device)
    kernel = torch.exp(-(x**2) / (2 * radius**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(mask, (half, half, half, half), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1))  # along W
    return F.conv2d(out, kernel.view(1, 1, -1, 1))  # along H


def paste_back(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, blur: float = 0.0) -> torch.Tensor:
    """Blend the input back in through the (optionally blurred) hole mask.

    The mask is binarised first, then blurred, so a soft seam of about ``blur`` px forms on both
    sides of the hole edge; ``blur = 0`` is the hard ``composite``.
    """
    _check(output, image, mask)
    if blur < 0:
        raise SamplerError(f"paste-back blur must be >= 0, got {blur}")
    hole = gaussian_blur((mask > 0.5).to(output.dtype), float(blur)).clamp(0.0, 1.0)
    return output * hole + image * (1.0 - hole)
