"""How one training sample (image + hole mask) is made from an image file: two pipelines.

``official`` (default; ``train.pipeline``), as the official ``RemovalDataset_v1_2`` of hustvl/Moebius
(``removal/v1_2/dataset.py`` with ``RandomMaskCrop`` and ``LaMaMaskGenerator`` of ``utils.py``, the data
config ``config/data_demo.yaml``; restated in docs/model_facts.md, "The official training step") makes
a sample of a mask-free image:
1. resize the shorter side to the training size S with LANCZOS (torchvision ``Resize(S)``: the longer
   side becomes ⌊S · long / short⌋; an image whose shorter side is S is left as it is);
2. draw a hole on that (h, w) canvas with LaMa's ``MixedMaskGenerator`` and the settings of
   ``random_medium_512.yaml`` (``masks.official_train_protocol``; only the generator: no candidates,
   no hole-area filter, no crop of LaMa's dataset script);
3. with probability 0.99 dilate the hole with a k × k kernel of ones, k uniform in {3, 5, 7}, for 1 or
   2 iterations (uniform);
4. crop image and hole together to S × S along the longer side (``RandomMaskCrop``, below), then flip
   both horizontally with probability 0.5.
``project`` is this repository's earlier pipeline: centre crop to a square, bicubic resize to S, a hole
from a protocol drawn uniformly from ``masks.train_protocols`` (``sample_training_mask``), no dilation,
no flip.

Every draw comes from the numpy generator the caller passes (``TrainStream`` seeds one per stream
position through ``moebius.seeding``), so a sample is a pure function of (seed, position).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from moebius.errors import TrainError

# DEVIATION (official dataset: global np.random / random / torch RNGs of each DataLoader worker): every
# draw of a sample comes from one generator seeded by (run seed, stream position), so the samples follow
# the official distributions but are reproducible and independent of the worker count, as every mask
# of this project is (moebius.seeding).
PIPELINES = ("official", "project")

DILATE_P = 0.99  # share of holes that are dilated
DILATE_KERNELS = (3, 5, 7)  # kernel side, uniform (the official 2·randint(1, 3) + 1)
DILATE_ITERATIONS = (1, 2)  # iterations, uniform
FLIP_P = 0.5  # transforms.RandomHorizontalFlip's default


@dataclass(frozen=True)
class Augmentation:
    """What the official pipeline drew for one sample (for tests and statistics)."""

    kernel: int | None  # dilation kernel side; None when the hole was not dilated
    iterations: int  # dilation iterations (0 when not dilated)
    top: int  # crop offset on the resized image
    left: int
    flipped: bool


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def resize_short_side(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (h, w, 3) with min(h, w) = size, LANCZOS (torchvision ``Resize(size)``)."""
    h, w = img.shape[:2]
    short, long = min(h, w), max(h, w)
    if short == size:
        return img
    new_long = int(size * long / short)  # torchvision truncates
    new_h, new_w = (size, new_long) if h <= w else (new_long, size)
    return np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.LANCZOS))


def centre_square(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): centre crop to a square, bicubic resize (``project``)."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return np.asarray(Image.fromarray(img[top : top + side, left : left + side]).resize((size, size), Image.BICUBIC))


# ---------------------------------------------------------------------------------------------
# Holes
# ---------------------------------------------------------------------------------------------


def resize_hole(hole: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool (H, W) hole to (height, width), sampling at pixel centres."""
    if hole.shape == (height, width):
        return hole
    rows = ((np.arange(height) + 0.5) * hole.shape[0] / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * hole.shape[1] / width).astype(np.int64)
    return hole[np.ix_(rows, cols)]


def official_hole(rng: np.random.Generator, protocol: str, height: int, width: int, size: int) -> tuple[np.ndarray, Augmentation]:
    """A LaMa ``MixedMaskGenerator`` hole for an (height, width) image whose shorter side is ``size``,
    dilated as the official dataset does; returns (bool (height, width), the dilation drawn).

    Generator and dilation work at the protocol's native scale (512 px for lama_medium_512): at
    S = native this is the official canvas itself; at a smaller S (smoke) the hole is drawn and dilated
    on the canvas scaled to native and then nearest-resized, so that strokes, boxes and dilation keep
    their size relative to the image, as the project's stored masks do.
    """
    from moebius.masks.lama import lama_candidate
    from moebius.masks.registry import LAMA_CONFIGS, get_protocol

    proto = get_protocol(protocol)
    key = protocol.removeprefix("lama_")
    if proto.family != "lama" or key not in LAMA_CONFIGS:
        raise TrainError(f"the official training pipeline needs a LaMa mask protocol, got {protocol!r}")
    cfg = LAMA_CONFIGS[key]
    scale = cfg.size / size
    canvas_h, canvas_w = round(height * scale), round(width * scale)
    hole = lama_candidate(rng, cfg, canvas_h, canvas_w)  # bool (canvas_h, canvas_w)
    kernel, iterations = None, 0
    if rng.random() < DILATE_P:
        kernel = DILATE_KERNELS[int(rng.integers(len(DILATE_KERNELS)))]
        iterations = DILATE_ITERATIONS[int(rng.integers(len(DILATE_ITERATIONS)))]
        hole = cv2.dilate(hole.astype(np.uint8), np.ones((kernel, kernel), np.uint8), iterations=iterations) > 0
    return resize_hole(hole, height, width), Augmentation(kernel, iterations, 0, 0, False)


def mask_crop_offset(rng: np.random.Generator, hole: np.ndarray, size: int) -> tuple[int, int]:
    """(top, left) of a size × size crop of an (h, w) image with min(h, w) = size (``RandomMaskCrop``).

    The crop moves along the longer side only. Without a hole the offset is uniform over
    [0, L − S) (over {0} when L = S). With a hole, let c be the midpoint of the hole's extent
    [a, b] along the longer side, c = a + (b − a)/2: the offset is uniform over the integers of
    [⌊lo⌋, ⌊hi⌋) with lo = max(0, min(L − S − 1, c − S)) and hi = max(lo + 1, min(L − S, c)), so
    the window [o, o + S) reaches to within a pixel of c (min_overlap 0.5): of a hole e ≤ S pixels
    long it keeps ⌊(e − 1)/2⌋ or more, at least one from e = 3 on. These are the official bounds,
    truncated and half-open as numpy's ``randint`` makes them (so the last offset L − S is never drawn,
    and a 1-2 px hole can fall just outside: the official behaviour, kept).
    """
    h, w = hole.shape
    if min(h, w) != size:
        raise TrainError(f"crop of a {h}x{w} image to {size}: the shorter side must be {size}")
    wide = w > h
    long_side = w if wide else h
    line = hole.any(axis=0 if wide else 1)  # (L,) True where the hole reaches along the long side
    idx = np.flatnonzero(line)
    if idx.size == 0:
        offset = int(rng.integers(max(long_side - size, 1)))
    else:
        a, b = int(idx[0]), int(idx[-1])
        c = a + (b - a) * 0.5
        lo = max(0.0, min(long_side - size - 1.0, c - size))
        hi = max(lo + 1.0, min(float(long_side - size), c))
        offset = int(rng.integers(int(lo), int(hi)))
    return (0, offset) if wide else (offset, 0)


# ---------------------------------------------------------------------------------------------
# One sample
# ---------------------------------------------------------------------------------------------


def official_sample(
    rng: np.random.Generator, image: np.ndarray, size: int, protocol: str | None
) -> tuple[np.ndarray, np.ndarray, Augmentation]:
    """Steps 2-4 above on an image already resized by ``resize_short_side``.

    Returns (uint8 (size, size, 3), bool (size, size) hole, what was drawn). ``protocol`` None: no
    hole (VAE training), image crop (uniform offset) and flip only.
    """
    h, w = image.shape[:2]
    if protocol is None:
        hole, drawn = np.zeros((h, w), bool), Augmentation(None, 0, 0, 0, False)
    else:
        hole, drawn = official_hole(rng, protocol, h, w, size)
    top, left = mask_crop_offset(rng, hole, size)
    image = image[top : top + size, left : left + size]
    hole = hole[top : top + size, left : left + size]
    flipped = bool(rng.random() < FLIP_P)
    if flipped:
        image, hole = image[:, ::-1], hole[:, ::-1]
    drawn = Augmentation(drawn.kernel, drawn.iterations, top, left, flipped)
    return np.ascontiguousarray(image), np.ascontiguousarray(hole), drawn
