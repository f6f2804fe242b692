"""LaMa masks: irregular strokes or boxes (one kind per mask), and LaMa's mask-dataset pipeline.

Source: docs/mask_protocols.md, section "LaMa generator", describing advimman/lama
``saicinpainting/training/data/masks.py`` (``make_random_irregular_mask``,
``make_random_rectangle_mask``, ``MixedMaskGenerator``) and ``bin/gen_mask_dataset.py`` with the
``configs/data_gen/random_{thick,medium,thin}_{256,512}.yaml`` settings. Independent code, written
from that description. Returns bool arrays, True = hole (LaMa's own 1 = hole convention).

The pipeline (``lama_mask``): draw 5 candidates on the image canvas, square-crop each, drop those
with hole area > 0.5, keep one of the rest at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from moebius.errors import MaskError

_TWO_PI_REFERENCE = 2 * 3.1415926  # the reference's literal, kept so even-stroke angles match it
_MAX_SEGMENTS = 5  # each stroke has 1 + randint(5) segments


@dataclass(frozen=True)
class LamaConfig:
    """One ``random_*.yaml`` data-gen config (MASKS.md table)."""

    size: int  # target side: the shorter image side is resized to it, the crop is size × size
    stroke_min: int  # min_times of the irregular generator
    stroke_max: int  # max_times (the generator draws randint(min, max + 2): up to max + 1 strokes)
    max_width: int  # stroke width = 5 + randint(max_width)
    max_len: int  # segment length = 10 + randint(max_len)
    max_angle: int = 4  # segment angle = 0.01 + randint(max_angle) radians
    box_min: int = 0  # boxes' min_times
    box_max: int = 0  # boxes' max_times; 0 with box_proba 0 = no boxes (thin configs)
    bbox_min: int = 30  # bbox_min_size
    bbox_max: int = 150  # bbox_max_size (the generator adds 1 before clamping to the canvas)
    margin: int = 10  # boxes keep this far from the border
    irregular_proba: float = 1.0  # relative weight of the stroke kind
    box_proba: float = 0.3  # relative weight of the box kind (0 for thin)
    n_candidates: int = 5  # variants_n: candidates drawn per image
    max_hole: float = 0.5  # max_tamper_area: candidates with a larger hole area are dropped
    max_rounds: int = 100  # our bound on redraws when every candidate is dropped (see lama_mask)


def irregular_mask(rng: np.random.Generator, cfg: LamaConfig, height: int, width: int) -> np.ndarray:
    """``make_random_irregular_mask`` at ramp coefficient 1: thick polyline strokes; True = hole."""
    canvas = np.zeros((height, width), np.uint8)
    # RandomIrregularMaskGenerator passes max_times + 1 and the function draws randint(min, that + 1).
    n_strokes = int(rng.integers(cfg.stroke_min, cfg.stroke_max + 2))
    # All draws of a mask in four batched calls (our stream; each quantity has the reference's
    # distribution): starts, segment counts, then (angle, length, width) per segment.
    starts = rng.integers((width, height), size=(n_strokes, 2)).tolist()
    n_segments = (1 + rng.integers(_MAX_SEGMENTS, size=n_strokes)).tolist()
    segments = rng.integers((cfg.max_angle, cfg.max_len, cfg.max_width), size=(sum(n_segments), 3)).tolist()
    k = 0
    for i, ((x0, y0), n_seg) in enumerate(zip(starts, n_segments)):
        for a, l, w in segments[k : k + n_seg]:
            angle = 0.01 + a
            if i % 2 == 0:
                angle = _TWO_PI_REFERENCE - angle
            length, brush = 10 + l, 5 + w
            # sin for x and cos for y, truncation toward zero, clip to [0, side]: all as the reference.
            x1 = min(max(int(x0 + length * math.sin(angle)), 0), width)
            y1 = min(max(int(y0 + length * math.cos(angle)), 0), height)
            cv2.line(canvas, (x0, y0), (x1, y1), color=1, thickness=brush)
            x0, y0 = x1, y1
        k += n_seg
    return canvas.astype(bool)


def box_mask(rng: np.random.Generator, cfg: LamaConfig, height: int, width: int) -> np.ndarray:
    """``make_random_rectangle_mask`` at ramp coefficient 1: axis-aligned boxes; True = hole."""
    hole = np.zeros((height, width), bool)
    # RandomRectangleMaskGenerator passes bbox_max + 1; the function clamps it to the canvas.
    max_size = min(cfg.bbox_max + 1, height - 2 * cfg.margin, width - 2 * cfg.margin)
    if max_size <= cfg.bbox_min:
        raise MaskError(f"LaMa boxes: canvas {height}x{width} too small for bbox_min {cfg.bbox_min}")
    for _ in range(int(rng.integers(cfg.box_min, cfg.box_max + 1))):
        bw, bh = int(rng.integers(cfg.bbox_min, max_size)), int(rng.integers(cfg.bbox_min, max_size))
        x = int(rng.integers(cfg.margin, width - cfg.margin - bw + 1))
        y = int(rng.integers(cfg.margin, height - cfg.margin - bh + 1))
        hole[y : y + bh, x : x + bw] = True
    return hole


def lama_candidate(rng: np.random.Generator, cfg: LamaConfig, height: int | None = None,
                   width: int | None = None) -> np.ndarray:
    """``MixedMaskGenerator``: strokes or boxes, chosen with weights irregular : box (normalised)."""
    height = cfg.size if height is None else height
    width = cfg.size if width is None else width
    p_irregular = cfg.irregular_proba / (cfg.irregular_proba + cfg.box_proba)
    if cfg.box_proba == 0 or rng.random() < p_irregular:
        return irregular_mask(rng, cfg, height, width)
    return box_mask(rng, cfg, height, width)


def square_crop(rng: np.random.Generator, hole: np.ndarray) -> np.ndarray:
    """``propose_random_square_crop`` with min_overlap = 1: a side × side crop along the long axis.

    The crop window is drawn so that it reaches the hole's far edge; a square canvas is returned as is.
    """
    height, width = hole.shape
    if height == width:
        return hole
    transposed = height > width  # handle the tall case as the wide one on the transpose
    wide = hole.T if transposed else hole
    side, long_side = wide.shape
    cols = np.flatnonzero(wide.any(axis=0))
    if cols.size == 0:
        # DEVIATION (LaMa crashes on an empty mask here): any crop is as good as another.
        start = int(rng.integers(long_side - side + 1))
    else:
        obj_right = int(cols[-1])  # obj_left + obj_width · min_overlap with min_overlap = 1
        left = max(0, min(long_side - side - 1, obj_right - side))
        right = max(left + 1, min(long_side - side, obj_right))
        start = int(rng.integers(left, right))
    crop = wide[:, start : start + side]
    return np.ascontiguousarray(crop.T if transposed else crop)


def lama_mask(rng: np.random.Generator, cfg: LamaConfig,
              canvas_hw: tuple[int, int] | None = None) -> np.ndarray:
    """LaMa's dataset pipeline: candidates → square crop → drop hole > max_hole → keep one at random.

    ``canvas_hw`` is the image size after LaMa's resize (shorter side = ``cfg.size``); our benchmarks
    use square centre crops, so the default canvas is square and the crop is the identity.
    """
    height, width = canvas_hw if canvas_hw is not None else (cfg.size, cfg.size)
    if min(height, width) != cfg.size:
        raise MaskError(f"LaMa canvas {height}x{width}: shorter side must be {cfg.size}")
    for _ in range(cfg.max_rounds):
        kept = []
        for _ in range(cfg.n_candidates):
            hole = square_crop(rng, lama_candidate(rng, cfg, height, width))
            if hole.mean() <= cfg.max_hole:
                kept.append(hole)
        if kept:
            return kept[int(rng.integers(len(kept)))]
        # DEVIATION (gen_mask_dataset.py skips the image when every candidate is dropped): we need a
        # mask for every image id, so all candidates are redrawn. Per round this happens with
        # probability P(candidate > 0.5)^5: measured ~1.8 % for thick_512 (P = 0.45), ~0.4 % for
        # thick_256 (0.33), < 3e-5 for the others. The kept-mask distribution is unchanged (still one
        # candidate conditioned on hole area <= max_hole); LaMa's set just has fewer images instead.
    raise MaskError(f"LaMa size {cfg.size}: every candidate exceeded hole area {cfg.max_hole} "
                    f"in {cfg.max_rounds} rounds")
