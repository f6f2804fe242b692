"""Drawing single masks: reproducible per-id masks for stored sets, and on-the-fly training masks.

Source: DESIGN.md / STYLE.md ("per-image generators for masks"); the generators are in
``brush_box.py`` and ``lama.py``, the per-mask seeding in ``moebius/seeding.py``. Masks are bool arrays,
True = hole.
"""

from __future__ import annotations

import numpy as np

from moebius.errors import MaskError
from moebius.masks.registry import get_protocol
from moebius.seeding import mask_rng


def resize_nearest(hole: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square mask to size × size, sampling at pixel centres.

    Our own index arithmetic instead of ``cv2.resize(INTER_NEAREST)``, which samples the top-left
    corner of each block (a half-pixel shift) and has changed between OpenCV versions.
    """
    if size < 1:
        raise MaskError(f"mask size must be a positive integer, got {size}")
    src = hole.shape[0]
    if hole.shape != (src, src):
        raise MaskError(f"expected a square mask, got shape {hole.shape}")
    if size == src:
        return hole
    idx = ((np.arange(size) + 0.5) * src / size).astype(np.int64)  # centre of each output pixel
    return hole[np.ix_(idx, idx)]


def generate_mask(protocol: str, image_id: str, seed: int, version: int | None = None) -> np.ndarray:
    """The mask of ``image_id`` under (protocol, version, seed): bool (native, native), True = hole."""
    proto = get_protocol(protocol, version)
    hole = proto.draw(mask_rng(proto.name, proto.version, seed, str(image_id)))
    return np.ascontiguousarray(hole, dtype=bool)


def sample_training_mask(rng: np.random.Generator, size: int, protocols: list[str]) -> np.ndarray:
    """One training mask: a protocol picked uniformly from ``protocols``, drawn with ``rng``, resized.

    The caller owns ``rng`` (seed it per worker / per step), so training masks are reproducible too.
    """
    if not protocols:
        raise MaskError("sample_training_mask needs at least one protocol")
    proto = get_protocol(protocols[int(rng.integers(len(protocols)))])
    return resize_nearest(np.asarray(proto.draw(rng), dtype=bool), size)
