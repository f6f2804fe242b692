"""Putting the known pixels back: hard compositing, and the official pipeline's blurred paste-back.

Three ways the decoded output meets the input (``SampleConfig.paste_back``, chosen by ``finish``):

- ``hard``: ``output·hole + input·known`` with the binary mask, as MAT, LaMa and MI-GAN blend before
  FID / LPIPS (docs/mask_protocols.md, "Evaluation conventions").
- ``blurred``: the official Moebius inference (hustvl/Moebius ``infer_moebius.py``, ``--pst`` on by
  default; ``RemovalSDXLPipeline_BatchMode._post_process``). Measured from that code:
    * the mask is the binarised hole mask (255 = hole) as an 8-bit image, blurred with
      ``PIL.ImageFilter.GaussianBlur(radius=3)`` (σ = 3 px, Pillow's three-pass extended box blur,
      uint8 result), at the resolution the model ran at (512 px), then divided by 255;
    * the decoded image is quantised first: ``uint8(clamp((x + 1) / 2, 0, 1) · 255)`` (truncation);
    * the blend is in pixel space, float64: ``out/255 · m + (1 − m) · input/255``, then ``uint8(· 255)``
      (truncation again). The input is the *whole* input image, so inside the hole, within about 3σ of
      its edge, part of the ground truth is mixed into the answer (43 % at the first hole pixel of a
      straight edge, 7 % four pixels in); outside it, the output bleeds into the known pixels.
- ``none``: the decoded image only, quantised as above (PixelHacker's ``infer_pixelhacker.py``,
  ``paste=False``): the known region is the VAE's reconstruction.

Images are (B,3,H,W) in [-1, 1], masks (B,1,H,W) with 1 = hole (binarised at 0.5).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter

from moebius.errors import SamplerError

PASTE_MODES = ("blurred", "hard", "none")


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


def official_levels(output: torch.Tensor) -> torch.Tensor:
    """The 8-bit levels the official pipelines make of a decoded image: ``uint8(clamp((x+1)/2, 0, 1)·255)``.

    Computed in float32 as they do, truncated (numpy's uint8 cast), returned as float64 integers.
    """
    x = ((output.detach().float() + 1) / 2).clamp(0, 1) * 255
    return torch.floor(x).to(torch.float64)


def blurred_mask(mask: torch.Tensor, radius: float = 3.0) -> torch.Tensor:
    """(B,1,H,W) float64 in [0, 1]: PIL ``GaussianBlur(radius)`` of the 0/255 hole mask, divided by 255."""
    if radius <= 0:
        raise SamplerError(f"paste-back blur must be > 0, got {radius}")
    holes = ((mask.detach() > 0.5).to(torch.uint8) * 255).cpu().numpy()  # (B,1,H,W) uint8, 255 = hole
    blurred = [np.asarray(Image.fromarray(m[0]).filter(ImageFilter.GaussianBlur(radius=radius)))
               for m in holes]
    return torch.from_numpy(np.stack(blurred)[:, None].astype(np.float64) / 255.0)


def paste_back(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, radius: float = 3.0) -> torch.Tensor:
    """The official blurred paste-back (module docstring), returned in [-1, 1] on 8-bit levels."""
    _check(output, image, mask)
    ours = official_levels(output).cpu() / 255.0  # (B,3,H,W) float64
    # The input as the 8-bit image it was read from (a resized input is re-quantised, as PIL's is).
    img = torch.round((image.detach().double().cpu().clamp(-1, 1) + 1) * 127.5) / 255.0
    m = blurred_mask(mask, radius)  # (B,1,H,W), broadcast over RGB as the official RGB copy of the mask
    levels = torch.floor((ours * m + (1 - m) * img) * 255)
    return (levels / 127.5 - 1.0).to(device=output.device, dtype=output.dtype)


def finish(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, mode: str, radius: float = 3.0) -> torch.Tensor:
    """The decoded ``output`` as a method hands it in: ``hard`` | ``blurred`` | ``none`` (module docstring)."""
    _check(output, image, mask)
    if mode == "hard":
        return composite(output, image, mask)
    if mode == "blurred":
        return paste_back(output, image, mask, radius)
    if mode == "none":
        return (official_levels(output) / 127.5 - 1.0).to(device=output.device, dtype=output.dtype)
    raise SamplerError(f"unknown paste-back mode {mode!r}; choose one of {', '.join(PASTE_MODES)}")


def paste_leak(mask: torch.Tensor, radius: float = 3.0) -> float:
    """Share of the hole's pixel weight that the blurred paste-back takes from the input (the ground truth).

    Mean of ``1 − m`` over the hole pixels of all masks (m = ``blurred_mask``); 0 for the hard composite.
    """
    hole = mask.detach().cpu() > 0.5
    if not hole.any():
        return 0.0
    return float((1.0 - blurred_mask(mask, radius))[hole].mean())
