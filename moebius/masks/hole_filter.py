"""Rejection sampling of masks into a hole-ratio window: the ``places2_test`` "40–50%" protocol.

Source: MASKS.md, "Places2 (Test)": LDM App. E.2.2 says its masks come from LaMa's generator on a
fixed Places test set and "40–50%" is the subset whose hole area lies in [0.4, 0.5]. No mask list
was published, so ``places2_test`` is **our reconstruction, not a copy**:

- draws from LaMa's ``thick_512`` config (the 512 config with the most large-area masks; the
  Places2 test images are 512 centre crops);
- one LaMa thick_512 candidate (strokes or boxes) is drawn at a time and kept only if its hole ratio,
  measured on the 512 × 512 mask, lies in the closed interval [0.4, 0.5]; otherwise it is redrawn
  from the same per-mask generator, up to ``max_draws`` (10,000) times, then ``MaskError``. About
  11 % of thick_512 candidates fall in the window (measured), so ~9 draws are needed on average.

Drawing single candidates is exact, not an approximation of LaMa's full pipeline (5 candidates,
drop > 0.5, keep one uniformly): for i.i.d. candidates the kept mask is distributed as one candidate
conditioned on hole ≤ 0.5, and [0.4, 0.5] lies inside that set, so both give one candidate
conditioned on [0.4, 0.5]. tests/masks/test_masks_distributions.py checks this against the literal pipeline.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from moebius.errors import MaskError


def draw_in_hole_range(rng: np.random.Generator, draw: Callable[[np.random.Generator], np.ndarray],
                       lo: float, hi: float, max_draws: int, label: str) -> np.ndarray:
    """First mask from ``draw(rng)`` with lo <= hole ratio <= hi; ``MaskError`` after ``max_draws``."""
    for _ in range(max_draws):
        hole = draw(rng)
        if lo <= hole.mean() <= hi:
            return hole
    raise MaskError(f"{label}: no mask with hole ratio in [{lo}, {hi}] after {max_draws} draws")
