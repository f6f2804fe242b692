"""MAT / CoModGAN / MI-GAN brush-and-box masks ("RandomMask" + "RandomBrush").

Source: docs/mask_protocols.md, section "MAT / CoModGAN / MI-GAN brush-and-box generator",
which describes fenglinglwb/MAT ``datasets/mask_generator_{512,256}{,_small}.py`` and
zsyzzsoft/co-mod-gan ``dataset_tools/tfrecord_utils.py`` (also used by MI-GAN). Independent code,
written from that description. Returns a bool array, True = hole (project convention, see
``polarity.py``); the reference builds 1 = known and we convert at this boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# RandomBrush constants (the reference's keyword defaults; identical for 256 and 512).
_MIN_NUM_VERTEX = 4
_MAX_NUM_VERTEX = 18  # exclusive upper bound of randint
_MEAN_ANGLE = 2 * math.pi / 5
_ANGLE_RANGE = 2 * math.pi / 15
_MIN_WIDTH = 12
_MAX_WIDTH = 48


@dataclass(frozen=True)
class BrushBoxConfig:
    """Counts of one RandomMask variant (MASKS.md table; ``randint(k)`` draws 0..k-1)."""

    size: int  # s: square canvas side in pixels
    half_boxes: int  # A: up to A-1 boxes with sides < s//2
    full_boxes: int  # B: up to B-1 boxes with sides < s
    stroke_tries: int  # C: up to C-1 brush strokes
    hole_range: tuple[float, float] = (0.0, 1.0)  # open interval the hole ratio must fall in


def _randint_or_zero(rng: np.random.Generator, n: int) -> int:
    """randint(n), with 0 for n <= 0 (a narrow ``hole_range`` can scale a count to 0; randint(0) errors)."""
    return int(rng.integers(n)) if n > 0 else 0


def random_brush(rng: np.random.Generator, max_tries: int, s: int) -> np.ndarray:
    """RandomBrush: up to ``max_tries - 1`` thick polyline strokes on an s×s canvas; True = stroke."""
    canvas = np.zeros((s, s), np.uint8)
    average_radius = math.sqrt(2 * s * s) / 8  # sqrt(H² + W²) / 8 for a square canvas
    for _ in range(_randint_or_zero(rng, max_tries)):
        num_vertex = int(rng.integers(_MIN_NUM_VERTEX, _MAX_NUM_VERTEX))
        angle_min = _MEAN_ANGLE - rng.uniform(0, _ANGLE_RANGE)
        angle_max = _MEAN_ANGLE + rng.uniform(0, _ANGLE_RANGE)
        # Batched draws per stroke (our stream; the distributions are the reference's).
        angles = rng.uniform(angle_min, angle_max, size=num_vertex)
        # Even-indexed turns go one way and odd ones the other: a zig-zag, not a spiral.
        angles[0::2] = 2 * math.pi - angles[0::2]
        # The reference's scale is average_radius // 2 (floor division of a float), kept as is.
        radii = rng.normal(average_radius, average_radius // 2, size=num_vertex)
        radii = np.clip(radii, 0, 2 * average_radius)
        x, y = int(rng.integers(s)), int(rng.integers(s))
        vertices = [(x, y)]
        for angle, r in zip(angles.tolist(), radii.tolist()):
            # Clip to [0, s] then truncate, from the previous (already truncated) vertex.
            x = int(min(max(x + r * math.cos(angle), 0.0), float(s)))
            y = int(min(max(y + r * math.sin(angle), 0.0), float(s)))
            vertices.append((x, y))
        width = int(rng.uniform(_MIN_WIDTH, _MAX_WIDTH))
        # DEVIATION (MAT: PIL ImageDraw.line + ellipse): drawn with cv2 (pinned, version recorded in
        # every manifest); a joint circle of radius width//2 at each vertex, as the reference does.
        cv2.polylines(canvas, [np.asarray(vertices, np.int32)], isClosed=False, color=1, thickness=width)
        for vx, vy in vertices:
            cv2.circle(canvas, (vx, vy), width // 2, color=1, thickness=-1)
        # The reference also calls PIL's transpose() per stroke but discards its result (a no-op that
        # only consumed random numbers); with our own streams there is nothing to keep.
    hole = canvas.astype(bool)
    if rng.random() > 0.5:
        hole = hole[::-1, :]
    if rng.random() > 0.5:
        hole = hole[:, ::-1]
    return np.ascontiguousarray(hole)


def _fill_boxes(rng: np.random.Generator, hole: np.ndarray, max_tries: int, max_size: int) -> None:
    """Set ``randint(max_tries)`` boxes with sides in [0, max_size) to hole; boxes may leave the image."""
    s = hole.shape[0]
    for _ in range(_randint_or_zero(rng, max_tries)):
        w, h = int(rng.integers(max_size)), int(rng.integers(max_size))
        x = int(rng.integers(-(w // 2), s - w + w // 2))
        y = int(rng.integers(-(h // 2), s - h + h // 2))
        hole[max(y, 0) : min(y + h, s), max(x, 0) : min(x + w, s)] = True


def random_mask(rng: np.random.Generator, cfg: BrushBoxConfig) -> np.ndarray:
    """RandomMask: boxes ≤ s/2, boxes ≤ s, then brush strokes; redrawn until the hole ratio is in range.

    The reference loops without bound; with the default range (0, 1) a redraw only happens for an
    empty or a full mask, so the loop ends after a handful of draws in practice.
    """
    s = cfg.size
    lo, hi = cfg.hole_range
    coef = min(lo + hi, 1.0)  # the reference scales every count by this; 1 for the default range
    while True:
        hole = np.zeros((s, s), bool)
        _fill_boxes(rng, hole, int(cfg.half_boxes * coef), s // 2)
        _fill_boxes(rng, hole, int(cfg.full_boxes * coef), s)
        hole |= random_brush(rng, int(cfg.stroke_tries * coef), s)
        ratio = float(hole.mean())
        if lo < ratio < hi:  # open interval: an all-known or all-hole mask is redrawn
            return hole
