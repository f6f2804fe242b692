"""Classical baselines: OpenCV's ``cv2.inpaint`` (Telea 2004; Bertalmio et al. 2001).

Not in the paper: a floor for the smoke tables that needs no weights, so it is real at every scale.
"""

from __future__ import annotations

import numpy as np
import torch

from moebius.config import Config
from moebius.eval.baselines import BaselineSpec, Checkpoint, Loaded

CV2_RADIUS = 3  # px neighbourhood of cv2.inpaint (OpenCV's documented example value)
FLAGS = {"telea": "INPAINT_TELEA", "navier_stokes": "INPAINT_NS"}


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) [-1,1] → (B,H,W,3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 → (B,3,H,W) [-1,1]."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def load(cfg: Config, spec: BaselineSpec, checkpoint: Checkpoint | None, size: int | None) -> Loaded:
    """The cv2.inpaint filler named by ``spec`` (the runner of ``telea`` / ``navier_stokes``)."""
    import cv2

    flag = getattr(cv2, FLAGS[spec.name])

    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        pixels = to_uint8(images)
        holes = ((masks[:, 0] > 0.5).cpu().numpy().astype(np.uint8)) * 255  # (B,H,W), nonzero = fill
        out = np.stack([cv2.inpaint(np.ascontiguousarray(p), h, CV2_RADIUS, flag) for p, h in zip(pixels, holes)])
        return from_uint8(out).to(images.device)

    return Loaded(run, {"kind": "official", "method": f"cv2.{FLAGS[spec.name]}", "radius": CV2_RADIUS,
                        "opencv": cv2.__version__})
