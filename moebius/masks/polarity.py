"""Mask polarity: the project's one on-disk convention and the foreign one we convert from.

MASKS.md: LaMa stores 1 = hole, MAT / MI-GAN / CoModGAN store 1 = known. The project picks one
convention for every stored mask: single-channel uint8 PNG, **255 = hole, 0 = known**
(``"255_hole"``). In memory a mask is a bool array with True = hole. Sets written the other way
(``"255_known"``) are converted explicitly at the boundary (``load.read_mask_set``), and the
conversion is reported, never done silently.
"""

from __future__ import annotations

from typing import Final

HOLE_255: Final = "255_hole"  # ours (and LaMa's, scaled to 255)
KNOWN_255: Final = "255_known"  # MAT / MI-GAN / CoModGAN (1 = known, scaled to 255)
POLARITIES: Final = (HOLE_255, KNOWN_255)
